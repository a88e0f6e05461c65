"""The one-pass host kernels of pii_augment/ops/_host_kernels.py (and the intrinsics they use),
against numpy: the copy with its clip range and NaN/Inf test, the mask's bounding box, and the
Found bits of a batch, which the functional layer trusts instead of reading the tables."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit
from problems import MASK_KINDS, boxes, make_mask

import pii_augment as pa
from pii_augment.ops import _host_kernels as hk
from pii_augment.ops._intrinsics import fmax, fmin
from pii_augment.ops.backends import get_backend
from pii_augment.ops.codes import Found


@njit(fastmath={"nnan", "reassoc"})
def _min_max(x):
    mn = x[0]
    mx = x[0]
    for i in range(x.shape[0]):
        mn = fmin(mn, x[i])
        mx = fmax(mx, x[i])
    return mn, mx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_intrinsic_min_max_are_numpys(dtype):
    rng = np.random.default_rng(0)
    for n in (1, 7, 64, 1001):
        x = rng.standard_normal(n).astype(dtype)
        assert _min_max(x) == (x.min(), x.max())


def _copy_minmax(src):
    """hk._copy_minmax_sample on a (C, D, H, W) array: (out, lo, hi)."""
    itype, bits = hk._EXPONENT[src.dtype.itemsize]
    out = np.empty_like(src)
    lo = np.empty(src.shape[0], src.dtype)
    hi = np.empty(src.shape[0], src.dtype)
    _copy_minmax_njit(src, src.view(itype), itype(bits), out, lo, hi)
    return out, lo, hi


@njit
def _copy_minmax_njit(src, bits, exponent, out, lo, hi):
    hk._copy_minmax_sample(src, bits, exponent, out, lo, hi)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 1, 7, 13), (3, 4, 5, 33), (1, 1, 256, 256)])
def test_copy_minmax_is_a_copy_with_numpys_range(dtype, shape):
    rng = np.random.default_rng(shape[-1])
    src = (rng.standard_normal(shape) * 10 + 3).astype(dtype)
    out, lo, hi = _copy_minmax(src)
    assert out.tobytes() == src.tobytes()
    np.testing.assert_array_equal(lo, src.reshape(shape[0], -1).min(axis=1))
    np.testing.assert_array_equal(hi, src.reshape(shape[0], -1).max(axis=1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_copy_minmax_gives_nan_bounds_to_a_channel_with_nan_or_inf(dtype, bad):
    src = np.random.default_rng(1).standard_normal((3, 1, 9, 17)).astype(dtype)
    src[1, 0, 4, 16] = bad
    out, lo, hi = _copy_minmax(src)
    assert np.isnan(lo[1]) and np.isnan(hi[1])
    assert np.isfinite(lo[[0, 2]]).all() and np.isfinite(hi[[0, 2]]).all()
    np.testing.assert_array_equal(out, src)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("pattern", [[-0.0, 0.0], [0.0, -0.0], [-0.0, -0.0, -0.0]])
def test_a_zero_bound_is_positive_zero_whatever_the_lanes_met(dtype, pattern):
    # -0.0 and +0.0 compare equal; which one a vectorised min keeps depends on the lanes, so the
    # kernel stores +0.0 (the clip range, and so the output, cannot depend on the vector width)
    for fill in (1.0, -1.0):  # zero is the minimum, then the maximum
        src = np.full((1, 1, 1, 40), fill, dtype)
        src[0, 0, 0, 5:5 + len(pattern)] = pattern
        src[0, 0, 0, 30:30 + len(pattern)] = pattern
        _, lo, hi = _copy_minmax(src)
        zero = lo[0] if fill > 0 else hi[0]
        assert zero == 0 and not np.signbit(zero)


def _mask_box(mask):
    """hk._mask_box on one (D, H, W) bool mask: (filled, lo, hi)."""
    m8 = mask[None].view(np.uint8)
    words = hk.mask_words(m8)
    lo = np.zeros((1, 3), np.int64)
    hi = np.zeros((1, 3), np.int64)
    filled = _mask_box_njit(m8, words, lo, hi)
    return bool(filled), lo[0], hi[0]


@njit
def _mask_box_njit(m8, words, lo, hi):
    return hk._mask_box(m8[0], words[0], lo[0], hi[0])


def _numpy_box(mask):
    idx = np.argwhere(mask)
    if not idx.size:
        return False, np.zeros(3, np.int64), np.zeros(3, np.int64)
    lo, hi = idx.min(axis=0), idx.max(axis=0) + 1
    return bool(mask[tuple(slice(a, b) for a, b in zip(lo, hi))].all()), lo, hi


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(MASK_KINDS + ("box", "holes")), seed=st.integers(0, 2**16),
       shape=st.sampled_from([(1, 17, 23), (1, 16, 64), (1, 9, 8), (5, 7, 16), (4, 6, 11), (1, 5, 200)]))
def test_mask_box_is_numpys_bounding_box(kind, seed, shape):
    # (..., 16) / (..., 64): the 8-pixel word scan; (..., 23), (..., 11): the byte scan
    rng = np.random.default_rng(seed)
    mask = make_mask(kind, shape[1:] if shape[0] == 1 else shape, rng).reshape(shape)
    got = _mask_box(mask)
    want = _numpy_box(mask)
    assert got[0] == want[0]
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_array_equal(got[2], want[2])


def _host_report(dst, src, mask, check_guide=True):
    bk = get_backend("numba", dst)
    d5, g5, m5 = dst[:, :, None], src[:, :, None], mask[:, None]
    state = bk.prepare_boxes(d5, g5, None, m5, check_guide, np.full(len(dst), 0.5), 0, True, 2)
    return bk.report(state), m5.shape[1:]


@pytest.mark.parametrize("case", ["boxes", "mixed", "empty", "nan_dst", "nan_src", "whole", "edge_box", "one_pixel"])
def test_the_kernels_found_bits_are_the_tables(case):
    rng = np.random.default_rng(7)
    B, shape = 5, (24, 32)
    dst = rng.standard_normal((B, 2) + shape)
    src = rng.standard_normal((B, 2) + shape)
    mask = boxes(B, shape, rng)
    if case == "mixed":
        mask[1] = make_mask("ellipse", shape, rng)
    elif case == "empty":
        mask[2] = False
    elif case == "nan_dst":
        dst[3, 1, 0, 0] = np.nan
    elif case == "nan_src":
        src[0, 0, 5, 5] = np.inf
    elif case == "whole":
        mask[4] = True
    elif case == "edge_box":
        mask[0] = False
        mask[0, :5, 3:9] = True  # a box touching the edge: multigrid's
    elif case == "one_pixel":
        mask[2] = False
        mask[2, 10, 10] = True
    rep, spatial = _host_report(dst, src, mask)
    from_tables = dataclasses.replace(rep, flags=None).found(spatial)
    assert rep.flags == from_tables
    expected = {"boxes": 0, "mixed": Found.LEFT, "empty": 0, "nan_dst": Found.DST_BAD, "nan_src": Found.GUIDE_BAD,
                "whole": Found.WHOLE_IMAGE | Found.LEFT, "edge_box": Found.LEFT, "one_pixel": 0}[case]
    assert rep.flags == int(expected)


def test_the_guidance_is_checked_only_when_asked():
    rng = np.random.default_rng(8)
    dst = rng.standard_normal((2, 1, 16, 16))
    src = dst.copy()
    src[1, 0, 3, 3] = np.nan
    rep, _ = _host_report(dst, src, boxes(2, (16, 16), rng), check_guide=False)
    assert rep.flags == 0


def test_the_box_only_info_is_the_general_paths():
    # the same box samples, alone (every mask solved in the one pass: the short path) and next to
    # an ellipse (the general path, which also runs multigrid): the same info for the boxes
    rng = np.random.default_rng(9)
    B, shape = 6, (40, 48)
    dst = rng.standard_normal((B + 1, 1) + shape).astype(np.float32)
    src = rng.standard_normal((B + 1, 1) + shape).astype(np.float32)
    mask = boxes(B + 1, shape, rng)
    mask[2] = False  # an empty mask: residual 0, converged
    mask[B] = make_mask("ellipse", shape, rng)
    alpha = rng.uniform(0.1, 0.9, B + 1)
    out_a, info_a = pa.poisson_interpolate(dst[:B], src[:B], mask[:B], alpha[:B], return_info=True, tol=1e-9,
                                           on_unconverged="ignore")
    out_b, info_b = pa.poisson_interpolate(dst, src, mask, alpha, return_info=True, tol=1e-9,
                                           on_unconverged="ignore")
    assert out_a.tobytes() == out_b[:B].tobytes()
    for field in ("residual", "converged", "stalled"):
        np.testing.assert_array_equal(getattr(info_a, field), getattr(info_b, field)[:B])
    assert info_a.spectral_samples == info_b.spectral_samples == B - 1
    assert info_a.stalled.any()  # float32 at tol=1e-9: the rounding floor, reported as such
    assert (info_a.method, info_a.iterations, info_a.levels, info_a.dtype) == ("auto", 0, 0, "float32")


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.sampled_from([2, 3]), st.sampled_from(["int64", "int32", "uint8", "uint64"]),
       st.integers(0, 2**31 - 1))
def test_box_table_is_the_numpy_definition(B, nd, dtype, seed):
    # boxes inside, at the edges, empty along an axis and reversed: the (B, 3) table and the
    # inside test of blend_with_label's boxes= are what the numpy expressions they replace give
    rng = np.random.default_rng(seed)
    spatial = tuple(int(v) for v in rng.integers(3, 12, size=nd))
    lo = np.stack([rng.integers(0, s, size=B) for s in spatial], axis=1).reshape(B, nd)
    hi = np.stack([rng.integers(0, s + 1, size=B) for s in spatial], axis=1).reshape(B, nd)
    if B and rng.random() < 0.3:
        hi[rng.integers(B), rng.integers(nd)] = spatial[0] + 5  # outside
    lo, hi = lo.astype(dtype), hi.astype(dtype)
    lo5, hi5, inside = hk.box_table(lo, hi, spatial)
    want_inside = not B or not ((lo < 0).any() or (hi > np.asarray(spatial)).any())
    assert inside == want_inside
    if want_inside:
        ref_lo, ref_hi = np.zeros((B, 3), np.int64), np.ones((B, 3), np.int64)
        ref_lo[:, 3 - nd:], ref_hi[:, 3 - nd:] = lo, hi
        empty = (ref_hi <= ref_lo).any(axis=1)
        ref_lo[empty] = ref_hi[empty] = 0
        np.testing.assert_array_equal(lo5, ref_lo)
        np.testing.assert_array_equal(hi5, ref_hi)


def test_box_table_sees_a_huge_unsigned_box_outside():
    lo = np.zeros((1, 2), np.uint64)
    hi = np.array([[2**63 + 5, 4]], np.uint64)  # wraps negative as int64: compared before the cast
    assert not hk.box_table(lo, hi, (8, 8))[2]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 6), st.sampled_from([2, 3]), st.integers(0, 2**31 - 1))
def test_boxes_fit_is_box_samples(B, nd, seed):
    from pii_augment.ops._spectral import MAX_SIDE_SUM, box_samples

    rng = np.random.default_rng(seed)
    side = int(rng.choice([6, 40, MAX_SIDE_SUM // 2 + 40]))  # the last: sides over the bound
    spatial = (1,) * (3 - nd) + (side,) * nd
    lo = np.zeros((B, 3), np.int64)
    hi = np.ones((B, 3), np.int64)
    lo[:, 3 - nd:] = rng.integers(0, side // 2, size=(B, nd))
    hi[:, 3 - nd:] = lo[:, 3 - nd:] + rng.integers(0, side // 2 + 1, size=(B, nd))
    empty = (hi <= lo).any(axis=1)
    lo[empty] = hi[empty] = 0
    nonempty = (hi > lo).all(axis=1)
    assert hk.boxes_fit(lo, hi, spatial, nd) == bool(box_samples(lo, hi, nonempty, spatial, nd)[nonempty].all())
