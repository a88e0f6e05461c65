"""sample_patches / PatchParams / sample_source_indices."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pii_augment as pa


def test_original_draws_for_256():
    p = pa.sample_patches(20000, (256, 256), seed=0)
    assert p.centers.min() >= int(0.1 * 256) and p.centers.max() < int(0.9 * 256)
    w = p.half_widths
    assert (w[:, 0] == w[:, 1]).all()  # one half-width for both axes
    assert w.min() == round(0.05 * 256) and w.max() == round(0.2 * 256) - 1
    assert 0.05 <= p.alpha.min() and p.alpha.max() < 0.95
    assert abs(p.alpha.mean() - 0.5) < 0.01


def test_square_uses_first_axis_for_both_half_widths():
    p = pa.sample_patches(5000, (100, 400), seed=1)
    assert p.half_widths.max() < round(0.2 * 100)  # from H, not W
    assert p.centers[:, 1].max() >= int(0.9 * 400) - 40


def test_masks_are_the_clipped_boxes_without_the_outer_ring():
    p = pa.sample_patches(500, (64, 48), seed=2)
    m = p.masks()
    assert not m[:, 0].any() and not m[:, -1].any() and not m[:, :, 0].any() and not m[:, :, -1].any()
    for b in range(0, 500, 37):
        (cy, cx), (wy, wx) = p.centers[b], p.half_widths[b]
        box = np.zeros((64, 48), bool)
        box[max(cy - wy, 1):min(cy + wy, 63), max(cx - wx, 1):min(cx + wx, 47)] = True
        np.testing.assert_array_equal(m[b], box)


def test_border_zero_allows_the_edge():
    p = pa.sample_patches(2000, (32, 32), seed=3, border=0, center=(0.0, 1.0), half_width=(0.1, 0.4))
    assert p.masks()[:, 0].any()


@pytest.mark.parametrize("shape", pa.SHAPES)
@pytest.mark.parametrize("spatial", [(40, 50), (12, 16, 20)])
def test_shapes_are_seeded_and_inside_their_box(shape, spatial):
    a = pa.sample_patches(16, spatial, shape=shape, seed=7)
    b = pa.sample_patches(16, spatial, shape=shape, seed=np.random.default_rng(7))
    ma, mb = a.masks(), b.masks()
    np.testing.assert_array_equal(ma, mb)
    assert ma.shape == (16,) + spatial and ma.dtype == bool
    lo, hi = a.boxes()
    for i in range(16):
        idx = np.nonzero(ma[i])
        if idx[0].size:
            assert all(idx[k].min() >= lo[i, k] and idx[k].max() < hi[i, k] for k in range(len(spatial)))
    assert ma.any(axis=tuple(range(1, ma.ndim))).mean() > 0.5
    c = pa.sample_patches(16, spatial, shape=shape, seed=8)
    assert not np.array_equal(c.masks(), ma)


def test_ellipse_is_inside_the_rectangle_of_the_same_draw():
    r = pa.sample_patches(64, (48, 48), shape="rectangle", seed=4)
    e = pa.sample_patches(64, (48, 48), shape="ellipse", seed=4)
    assert (e.masks() <= r.masks()).all() and e.masks().sum() < r.masks().sum()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shape="star"), "shape must be one of"),
        (dict(alpha=(0.5, 0.2)), "alpha must satisfy"),
        (dict(spatial_shape=(8,)), "spatial_shape"),
        (dict(batch_size=-1), "batch_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(batch_size=4, spatial_shape=(16, 16))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pa.sample_patches(args.pop("batch_size"), args.pop("spatial_shape"), **args)


@pytest.mark.parametrize("n", [2, 3, 7, 64])
def test_source_indices_never_self(n):
    swap = pa.sample_source_indices(n, seed=0)
    assert (swap != np.arange(n)).all() and sorted(swap) == list(range(n))
    if n % 2 == 0:
        assert (swap[swap] == np.arange(n)).all()  # pairs, both ways
    rnd = pa.sample_source_indices(n, seed=0, mode="random")
    assert (rnd != np.arange(n)).all()
    with pytest.raises(ValueError, match="batch_size >= 2"):
        pa.sample_source_indices(1)


# ------------------------------------------------------------------------------------------------
# The draws of valid arguments are those of the sampler before argument checking was added: a
# frozen copy of its drawing code, compared field by field.


def _original_sample_patches(batch_size, spatial_shape, *, shape="square", half_width=(0.05, 0.2),
                             center=(0.1, 0.9), alpha=(0.05, 0.95), border=1, seed=None):
    def int_range(frac, n, how):
        lo, hi = how(frac[0] * n), how(frac[1] * n)
        return int(lo), int(max(hi, lo + 1))

    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    spatial_shape = tuple(int(s) for s in spatial_shape)
    nd, B = len(spatial_shape), int(batch_size)
    centers = np.empty((B, nd), np.int64)
    for a, n in enumerate(spatial_shape):
        lo, hi = int_range(center, n, int)
        centers[:, a] = rng.integers(lo, hi, size=B)
    if shape == "square":
        lo, hi = int_range(half_width, spatial_shape[0], round)
        hw = rng.integers(lo, hi, size=B)
        half_widths = np.repeat(hw[:, None], nd, axis=1).astype(np.int64)
    else:
        half_widths = np.empty((B, nd), np.int64)
        for a, n in enumerate(spatial_shape):
            lo, hi = int_range(half_width, n, round)
            half_widths[:, a] = rng.integers(lo, hi, size=B)
    alphas = rng.uniform(alpha[0], alpha[1], size=B)
    blob_c = blob_r = None
    if shape == "blob":
        blob_c = rng.uniform(-0.5, 0.5, size=(B, 4, nd))
        blob_r = rng.uniform(0.25, 0.5, size=(B, 4))
    return centers, half_widths, alphas, blob_c, blob_r


def _original_source_indices(batch_size, seed, mode):
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if mode == "random":
        return (np.arange(batch_size) + rng.integers(1, batch_size, size=batch_size)) % batch_size
    perm = rng.permutation(batch_size)
    idx = np.empty(batch_size, np.int64)
    n_pairs = batch_size // 2 - (batch_size % 2)
    for k in range(n_pairs):
        i, j = perm[2 * k], perm[2 * k + 1]
        idx[i], idx[j] = j, i
    if batch_size % 2:
        a, b, c = perm[-3:]
        idx[a], idx[b], idx[c] = b, c, a
    return idx


def _pairs():
    return st.tuples(st.floats(0, 1), st.floats(0, 1)).map(sorted).map(tuple)


@settings(max_examples=60, deadline=None)
@given(
    batch_size=st.integers(0, 9),
    spatial=st.lists(st.integers(3, 40), min_size=2, max_size=3).map(tuple),
    shape=st.sampled_from(pa.SHAPES),
    half_width=_pairs(), center=_pairs(), alpha=_pairs(),
    border=st.integers(0, 1),
    seed=st.integers(0, 2**63),
    as_generator=st.booleans(),
)
def test_valid_arguments_draw_what_the_original_drew(
    batch_size, spatial, shape, half_width, center, alpha, border, seed, as_generator
):
    kw = dict(shape=shape, half_width=half_width, center=center, alpha=alpha, border=border)
    mine = pa.sample_patches(batch_size, spatial, seed=np.random.default_rng(seed) if as_generator else seed, **kw)
    ref = _original_sample_patches(batch_size, spatial, seed=np.random.default_rng(seed), **kw)
    got = (mine.centers, mine.half_widths, mine.alpha, mine.blob_centers, mine.blob_radii)
    for a, b in zip(got, ref):
        if b is None:
            assert a is None
        else:
            assert a.dtype == b.dtype and np.array_equal(a, b)
    assert mine.spatial_shape == spatial and mine.border == border and mine.shape == shape


@settings(max_examples=30, deadline=None)
@given(batch_size=st.integers(2, 40), seed=st.integers(0, 2**63), mode=st.sampled_from(["swap", "random"]))
def test_source_indices_draw_what_the_original_drew(batch_size, seed, mode):
    got = pa.sample_source_indices(batch_size, seed=seed, mode=mode)
    np.testing.assert_array_equal(got, _original_source_indices(batch_size, seed, mode))


def test_shape_like_sequences_are_accepted():
    ref = pa.sample_patches(3, (20, 30), seed=0)
    for spatial in ([20, 30], np.array([20, 30]), (np.int64(20), np.int32(30))):
        p = pa.sample_patches(np.int64(3), spatial, seed=0)
        assert p.spatial_shape == (20, 30) and type(p.spatial_shape[0]) is int
        np.testing.assert_array_equal(p.centers, ref.centers)


# ------------------------------------------------------------------------------------------------
# Bad arguments: every class of bad value, a TypeError or ValueError naming the argument and the
# received value, before anything is drawn (also for an empty batch).

_NOT_INTS = [2.5, "3", True, None, np.float64(2.0), [3]]
_NOT_PAIRS = [0.1, "ab", (0.1,), (0.1, 0.2, 0.3), None, {0.1, 0.2}]
_NOT_REAL_PAIRS = [("a", 0.5), (0.1, None), (True, 0.5)]
_BAD_PAIRS = [(-0.1, 0.5), (0.2, 1.5), (0.6, 0.4), (float("nan"), 0.5), (0.1, float("inf"))]

_TYPE_ERRORS = (
    [("batch_size", v) for v in _NOT_INTS]
    + [("spatial_shape", v) for v in [32, "64", None, 2.5, {16, 24}, {"h": 16, "w": 16}, (16.0, 16), (16, "16")]]
    + [(name, v) for name in ("half_width", "center", "alpha") for v in _NOT_PAIRS + _NOT_REAL_PAIRS]
    + [("border", v) for v in [1.0, "1", True, None]]
    + [("seed", v) for v in [1.5, "0", True, [1, 2], np.random.SeedSequence(0), np.random.RandomState(0)]]
)

_VALUE_ERRORS = (
    [("batch_size", v) for v in [-1, -100]]
    + [("spatial_shape", v) for v in [(8,), (4, 4, 4, 4), (), (0, 16), (16, -2), (8, 8, 0)]]
    + [("shape", v) for v in ["star", "Square", "", 3, None]]
    + [(name, v) for name in ("half_width", "center", "alpha") for v in _BAD_PAIRS]
    + [("border", v) for v in [-1, -3, 8, 9, 100]]  # 2 * border >= 16 leaves no room
    + [("seed", v) for v in [-1, -(2**40)]]
)


def _call(name, value, batch_size=4):
    args = dict(batch_size=batch_size, spatial_shape=(16, 16), seed=np.random.default_rng(0))
    args[name] = value
    return pa.sample_patches(args.pop("batch_size"), args.pop("spatial_shape"), **args)


def _names_argument_and_value(err, name, value):
    """The message starts with the argument's name (or one entry of it) and shows what came."""
    text = str(err)
    assert re.match(rf"{name}(\[\d\])?[ =]", text), text
    shown = [repr(value)[:20]]
    if isinstance(value, (tuple, list)):
        shown += [repr(tuple(value))] + [repr(v) for v in value]
    assert any(s in text for s in shown), text


@pytest.mark.parametrize("batch_size", [0, 4], ids=["empty", "batch"])
@pytest.mark.parametrize("name, value", _TYPE_ERRORS, ids=lambda v: repr(v)[:24])
def test_wrong_kinds_are_type_errors(name, value, batch_size):
    if name == "batch_size":
        batch_size = value
    with pytest.raises(TypeError) as info:
        _call(name, value, batch_size)
    _names_argument_and_value(info.value, name, value)


@pytest.mark.parametrize("batch_size", [0, 4], ids=["empty", "batch"])
@pytest.mark.parametrize("name, value", _VALUE_ERRORS, ids=lambda v: repr(v)[:24])
def test_bad_values_are_value_errors(name, value, batch_size):
    if name == "batch_size":
        batch_size = value
    with pytest.raises(ValueError) as info:
        _call(name, value, batch_size)
    _names_argument_and_value(info.value, name, value)


def test_the_border_check_names_the_shape():
    with pytest.raises(ValueError, match=r"border=5 leaves no room .* spatial_shape \(40, 10\)"):
        pa.sample_patches(2, (40, 10), border=5)
    assert pa.sample_patches(2, (40, 11), border=5).masks().shape == (2, 40, 11)
    assert pa.sample_patches(2, (1, 1), border=0).masks().shape == (2, 1, 1)


_NOT_SEEDS = [(n, v) for n, v in _TYPE_ERRORS + _VALUE_ERRORS if n != "seed"]


@pytest.mark.parametrize("name, value", _NOT_SEEDS[::3], ids=lambda v: repr(v)[:24])
def test_nothing_is_drawn_before_the_checks(name, value):
    g = np.random.default_rng(5)
    state = g.bit_generator.state
    args = dict(batch_size=4, spatial_shape=(16, 16), seed=g)
    args[name] = value
    with pytest.raises((TypeError, ValueError)):
        pa.sample_patches(args.pop("batch_size"), args.pop("spatial_shape"), **args)
    assert g.bit_generator.state == state


@pytest.mark.parametrize("kwargs", [dict(batch_size=2.5), dict(batch_size=1), dict(mode="pairs")], ids=str)
def test_source_indices_draw_nothing_before_the_checks(kwargs):
    g = np.random.default_rng(5)
    state = g.bit_generator.state
    args = {"batch_size": 4, "seed": g, **kwargs}
    with pytest.raises((TypeError, ValueError)):
        pa.sample_source_indices(args.pop("batch_size"), **args)
    assert g.bit_generator.state == state


@settings(max_examples=40, deadline=None)
@given(value=st.one_of(st.floats(), st.text(max_size=3), st.booleans(), st.none(),
                       st.lists(st.integers(), max_size=2)))
def test_any_non_int_batch_size_is_a_type_error(value):
    for call in (lambda: pa.sample_patches(value, (16, 16)), lambda: pa.sample_source_indices(value)):
        with pytest.raises(TypeError, match=r"^batch_size must be an int; got "):
            call()


@settings(max_examples=60, deadline=None)
@given(name=st.sampled_from(["half_width", "center", "alpha"]),
       low=st.floats(-2, 2, allow_nan=False), high=st.floats(-2, 2, allow_nan=False))
def test_any_pair_outside_the_unit_interval_or_reversed_is_a_value_error(name, low, high):
    ok = 0.0 <= low <= high <= 1.0
    kw = {name: (low, high)}
    if ok:
        pa.sample_patches(2, (16, 16), seed=0, **kw)
    else:
        with pytest.raises(ValueError, match=rf"^{name} must satisfy 0.0 <= low <= high <= 1.0; got"):
            pa.sample_patches(2, (16, 16), seed=0, **kw)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(batch_size=2.5), TypeError, r"batch_size must be an int; got float 2.5"),
        (dict(batch_size="3"), TypeError, r"batch_size must be an int; got str '3'"),
        (dict(batch_size=True), TypeError, r"batch_size must be an int; got bool True"),
        (dict(batch_size=1), ValueError, r"batch_size >= 2; got 1"),
        (dict(batch_size=-4), ValueError, r"batch_size >= 2; got -4"),
        (dict(mode="pairs"), ValueError, r"mode must be one of \('swap', 'random'\); got 'pairs'"),
        (dict(mode=None), ValueError, r"mode must be one of"),
        (dict(seed=1.5), TypeError, r"seed must be None, an int >= 0 or a numpy.random.Generator; got float"),
        (dict(seed=-1), ValueError, r"seed must be an int >= 0; got -1"),
    ],
)
def test_source_indices_bad_arguments(kwargs, error, match):
    args = dict(batch_size=4)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        pa.sample_source_indices(args.pop("batch_size"), **args)
