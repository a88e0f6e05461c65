"""sample_patches / PatchParams / sample_source_indices."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

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
    p = pa.sample_patches(2000, (32, 32), seed=3, border=0, center=(0.0, 1.0), half_width_frac=(0.1, 0.4))
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
# The draws of valid arguments are those of the sampler before argument checking was added:
# digests of its draws (centres, half-widths, alpha, blob parameters) for arguments drawn once from
# a seeded generator, recorded with the sampler of commit df96c25, in recorded_draws.json.

_DRAW_KEYS = ("batch_size", "spatial_shape", "shape", "half_width_frac", "center", "alpha", "border", "seed",
              "sha256_16")
_RECORDED_DRAWS = [
    tuple(c[k] if not isinstance(c[k], list) else tuple(c[k]) for k in _DRAW_KEYS)
    for c in json.loads((Path(__file__).parent / "recorded_draws.json").read_text())["cases"]
]

_RECORDED_SOURCES = [
    # (batch_size, mode, sample_source_indices(batch_size, seed=7 * batch_size + 1, mode=mode))
    (2, 'swap', [1, 0]),
    (2, 'random', [1, 0]),
    (3, 'swap', [1, 2, 0]),
    (3, 'random', [2, 2, 1]),
    (7, 'swap', [3, 6, 4, 0, 2, 1, 5]),
    (7, 'random', [5, 6, 0, 2, 2, 2, 1]),
    (16, 'swap', [6, 7, 4, 14, 2, 9, 0, 1, 15, 5, 11, 10, 13, 12, 3, 8]),
    (16, 'random', [5, 3, 14, 6, 0, 8, 13, 1, 4, 0, 11, 10, 11, 5, 2, 2]),
]


def _digest(p) -> str:
    h = hashlib.sha256()
    for x in (p.centers, p.half_widths, p.alpha, p.blob_centers, p.blob_radii):
        if x is not None:
            h.update(x.dtype.str.encode())
            h.update(np.ascontiguousarray(x).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("case", _RECORDED_DRAWS, ids=lambda c: f"{c[2]}-{len(c[1])}d-B{c[0]}")
@pytest.mark.parametrize("as_generator", [False, True])
def test_valid_arguments_draw_what_the_sampler_drew_before(case, as_generator):
    batch, spatial, shape, half_width, center, alpha, border, seed, digest = case
    p = pa.sample_patches(batch, spatial, shape=shape, half_width_frac=half_width, center=center, alpha=alpha,
                          border=border, seed=np.random.default_rng(seed) if as_generator else seed)
    assert _digest(p) == digest
    assert p.spatial_shape == spatial and p.border == border and p.shape == shape


@pytest.mark.parametrize("batch, mode, expected", _RECORDED_SOURCES)
def test_source_indices_draw_what_they_drew_before(batch, mode, expected):
    assert pa.sample_source_indices(batch, seed=7 * batch + 1, mode=mode).tolist() == expected


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
    + [(name, v) for name in ("half_width_frac", "center", "alpha") for v in _NOT_PAIRS + _NOT_REAL_PAIRS]
    + [("border", v) for v in [1.0, "1", True, None]]
    + [("seed", v) for v in [1.5, "0", True, [1, 2], np.random.SeedSequence(0), np.random.RandomState(0)]]
)

_VALUE_ERRORS = (
    [("batch_size", v) for v in [-1, -100]]
    + [("spatial_shape", v) for v in [(8,), (4, 4, 4, 4), (), (0, 16), (16, -2), (8, 8, 0)]]
    + [("shape", v) for v in ["star", "Square", "", 3, None]]
    + [(name, v) for name in ("half_width_frac", "center", "alpha") for v in _BAD_PAIRS]
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
@pytest.mark.parametrize(
    "error, name, value",
    [(TypeError, n, v) for n, v in _TYPE_ERRORS] + [(ValueError, n, v) for n, v in _VALUE_ERRORS],
    ids=lambda v: repr(v)[:24],
)
def test_bad_arguments_are_named(error, name, value, batch_size):
    """Wrong kinds of value are TypeErrors, right kinds with bad values ValueErrors."""
    if name == "batch_size":
        batch_size = value
    with pytest.raises(error) as info:
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
@given(name=st.sampled_from(["half_width_frac", "center", "alpha"]),
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


@pytest.mark.parametrize("spatial", [(40, 36), (12, 20, 18)])
def test_sample_boxes_are_the_masks_of_axis_aligned_boxes(spatial):
    for kwargs in ({}, {"shape": "rectangle"}, {"shape": ("square", "rectangle")}, {"border": 0},
                   {"half_width_frac": (0.4, 0.6), "border": 0}):
        p = pa.sample_patches(7, spatial, seed=3, **kwargs)
        lo, hi = p.sample_boxes()
        assert lo.shape == hi.shape == (7, len(spatial)) and lo.dtype == hi.dtype == np.int64
        m = np.zeros((7,) + spatial, bool)
        for b in range(7):
            m[(b,) + tuple(slice(a, c) for a, c in zip(lo[b], hi[b]))] = True
        np.testing.assert_array_equal(m, p.masks())
    for kwargs in ({"shape": "ellipse"}, {"shape": ("square", "blob")}, {"rotation": (-30, 30)},
                   {"shear": (-10, 10)}, {"n_patches": (1, 2)}):
        assert pa.sample_patches(7, spatial, seed=3, **kwargs).sample_boxes() is None, kwargs
