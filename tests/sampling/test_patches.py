"""sample_patches / PatchParams / sample_source_indices."""

from __future__ import annotations

import hashlib
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
# a seeded generator, recorded with the sampler of commit df96c25.

_RECORDED_DRAWS = [
    # (batch_size, spatial_shape, shape, half_width, center, alpha, border, seed, sha256[:16])
    (4, (11, 5, 23), 'square', (0.353, 0.623), (0.155, 0.351), (0.188, 0.496), 0, 2316299620216275395, 'c4a60745881f4571'),
    (2, (26, 12), 'rectangle', (0.288, 0.93), (0.203, 0.514), (0.52, 0.538), 0, 1925411879443920995, '4bc69f23a1675106'),
    (6, (30, 18, 23), 'ellipse', (0.294, 0.346), (0.42, 0.794), (0.668, 0.822), 1, 1239992607434048063, '8f398d118ce60cd9'),
    (4, (12, 15, 37), 'blob', (0.868, 0.873), (0.015, 0.098), (0.13, 0.174), 0, 4011161263481418485, '0928ad3c568e23c5'),
    (0, (18, 37, 27), 'square', (0.037, 0.929), (0.257, 0.461), (0.319, 0.338), 0, 1601711989963257923, 'b63a1fb74b317c48'),
    (4, (16, 12), 'rectangle', (0.041, 0.799), (0.155, 0.757), (0.037, 0.432), 1, 1722847025357505085, 'fa7630e7cef6e794'),
    (8, (11, 22), 'ellipse', (0.956, 0.975), (0.101, 0.836), (0.253, 0.569), 0, 3634992263088935126, 'a07de06c1ec51338'),
    (4, (39, 3), 'blob', (0.227, 0.485), (0.685, 0.96), (0.495, 0.92), 0, 2404180674644493854, 'fef4bb14a59f78d3'),
    (3, (32, 32, 32), 'square', (0.675, 0.987), (0.021, 0.398), (0.244, 0.494), 0, 654269048280351878, '47f4dfb6a124cf10'),
    (5, (15, 31), 'rectangle', (0.581, 0.607), (0.585, 0.926), (0.332, 0.366), 1, 821524154548418742, 'd17f38e4ea645ef0'),
    (5, (10, 17), 'ellipse', (0.406, 0.431), (0.427, 0.849), (0.094, 0.139), 1, 2996539631597854153, '4144c8045c02d14c'),
    (7, (23, 24, 21), 'blob', (0.416, 0.541), (0.535, 0.67), (0.224, 0.407), 0, 3655109697302755529, 'bf68dee42d14e081'),
    (3, (33, 30), 'square', (0.355, 0.632), (0.538, 0.849), (0.224, 0.828), 0, 3318325864352426158, 'a4ecb536283e38f7'),
    (1, (37, 25), 'rectangle', (0.486, 0.617), (0.22, 0.483), (0.765, 0.786), 0, 847000005489284096, '195ec95382f67f59'),
    (5, (30, 33, 19), 'ellipse', (0.507, 0.908), (0.316, 0.693), (0.35, 0.859), 1, 363754616077158857, '0ea4339a7e6f4a07'),
    (6, (31, 24), 'blob', (0.309, 0.896), (0.276, 0.36), (0.559, 0.922), 0, 3881279154377962712, 'bde099d78fba5461'),
    (6, (7, 7, 11), 'square', (0.414, 0.793), (0.237, 0.245), (0.615, 0.968), 1, 4426659778687717483, 'cd1af98ed5a4b846'),
    (3, (8, 22, 25), 'rectangle', (0.019, 0.499), (0.237, 0.959), (0.01, 0.879), 0, 4469717229512473656, '58b45f1e532649fd'),
    (0, (14, 24), 'ellipse', (0.795, 0.94), (0.099, 0.756), (0.457, 0.727), 1, 3074205922011115785, 'b63a1fb74b317c48'),
    (4, (29, 40, 24), 'blob', (0.262, 0.908), (0.08, 0.517), (0.51, 0.741), 1, 641968411981719115, '45c0c0a5041e56d3'),
    (0, (24, 8, 31), 'square', (0.563, 0.837), (0.313, 0.459), (0.166, 0.979), 0, 2035177901936839448, 'b63a1fb74b317c48'),
    (7, (17, 3, 15), 'rectangle', (0.229, 0.253), (0.282, 0.821), (0.354, 0.974), 0, 1798428479873413393, '72580506f16c3089'),
    (0, (7, 8, 25), 'ellipse', (0.049, 0.681), (0.292, 0.376), (0.166, 0.886), 0, 2674783996910312195, 'b63a1fb74b317c48'),
    (2, (40, 9), 'blob', (0.539, 0.938), (0.375, 0.711), (0.458, 0.956), 1, 2470721993788136630, '887ecae8afa9ea22'),
    (9, (32, 15, 9), 'square', (0.129, 0.248), (0.037, 0.549), (0.803, 0.912), 0, 1517710968280929037, '596f5d433017d226'),
    (8, (22, 23, 27), 'rectangle', (0.175, 0.836), (0.039, 0.24), (0.584, 0.867), 0, 1661270602891300456, '621068b50e70df58'),
    (9, (25, 33, 5), 'ellipse', (0.169, 0.478), (0.129, 0.187), (0.241, 0.531), 0, 3224804158149965525, '6c08970b84e94b07'),
    (3, (21, 22, 27), 'blob', (0.115, 0.374), (0.445, 0.782), (0.059, 0.368), 0, 3919489175518467864, '812532cdc8f43ebd'),
    (0, (38, 28, 20), 'square', (0.007, 0.156), (0.125, 0.389), (0.315, 0.921), 0, 6708207130571862, 'b63a1fb74b317c48'),
    (6, (4, 34, 31), 'rectangle', (0.385, 0.43), (0.167, 0.409), (0.611, 0.65), 1, 2825420114736859690, 'adcb5b33cb33a500'),
    (7, (11, 12, 40), 'ellipse', (0.161, 0.525), (0.39, 0.474), (0.429, 0.686), 0, 3485365342009609434, '1a370669ce346add'),
    (8, (18, 21), 'blob', (0.421, 0.51), (0.638, 0.938), (0.092, 0.802), 1, 1213687551235703367, '0cf0c0378328d2f2'),
    (9, (15, 13), 'square', (0.047, 0.199), (0.829, 0.862), (0.135, 0.458), 1, 3749038103928058799, '54b38748f11724e2'),
    (7, (3, 9), 'rectangle', (0.387, 0.627), (0.438, 0.642), (0.277, 0.285), 0, 3900928848044363616, '9533f0472e86b7a6'),
    (0, (6, 33), 'ellipse', (0.045, 0.708), (0.045, 0.159), (0.05, 0.681), 0, 2994520165153926682, 'b63a1fb74b317c48'),
    (2, (24, 35, 24), 'blob', (0.134, 0.265), (0.574, 0.705), (0.389, 0.934), 0, 2629641409331393759, 'c0959bc42250b33f'),
    (6, (16, 26, 18), 'square', (0.785, 0.935), (0.511, 0.947), (0.809, 0.975), 1, 1924651533839290686, '93bf1abc6940c4a7'),
    (7, (12, 13), 'rectangle', (0.102, 0.648), (0.368, 0.424), (0.152, 0.677), 0, 3257321159157534827, '8d33bba48d345cb9'),
    (7, (16, 12), 'ellipse', (0.586, 0.789), (0.23, 0.438), (0.456, 0.86), 0, 63300001493560639, '8eb39b59e9744551'),
    (4, (21, 37), 'blob', (0.685, 0.769), (0.541, 0.555), (0.367, 0.706), 1, 4040496032190293722, '4ed07b6a5b5395f8'),
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
