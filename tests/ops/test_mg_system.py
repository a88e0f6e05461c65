"""The whole-system multigrid solve: the CPU twin (pii_augment/ops/_mg_system.py) and the CUDA
kernel mg_solve (kernels/mg.cu, run by the emulated backend) on masks that are not boxes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from generic_twin import dot_tree, solve_system
from problems import make_mask, plane_problem
from reference_solvers import exact_blend, image_range

import pii_augment as pa
from pii_augment.ops.backends import get_backend
from pii_augment.ops import _numba_kernels as nk
from pii_augment.ops._mg_system import (_P, _S, _geometry, _level_setup, _merge, _merge_rows, _pad_rows, _split,
                                        _split_rows, guidance_rhs_flat, hierarchy, solve_flat)
from pii_augment.ops.codes import Cell, Guidance
from pii_augment.ops.solver import build_hierarchy, prepare_crop

EMU = "cuda-emulated"
SHAPES = ["ellipse", "blobs", "pixels", "two_rects", "edge_rect", "holes"]
FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(st.integers(0, 2**31 - 1), st.sampled_from([2, 3]), st.sampled_from([np.float32, np.float64]),
       st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3), st.sampled_from(["pii", "mixed", "source"]))
def test_twin_and_kernel_match_exact_and_each_other(seed, ndim, dtype, kinds, gradient):
    dst, src, mask, alpha = plane_problem(seed, ndim, dtype, kinds)
    cpu, info = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, method="multigrid", return_info=True)
    assert info.converged.all()
    exact = exact_blend(dst, src, mask, alpha, gradient=gradient)
    assert np.all(np.abs(cpu - exact) <= 1e-4 * image_range(dst) + 1e-12)
    emu, info_e = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, method="multigrid", backend=EMU,
                                         return_info=True)
    assert np.array_equal(emu, cpu), "the CUDA kernel and its CPU twin differ"
    assert info_e.iterations == info.iterations and np.array_equal(info_e.residual, info.residual)


@pytest.mark.parametrize("ndim", [2, 3])
def test_kernel_is_the_same_in_shuffled_thread_order(ndim, monkeypatch):
    dst, src, mask, alpha = plane_problem(3, ndim, np.float32, ["ellipse", "holes", "blobs"])
    ordered = pa.poisson_interpolate(dst, src, mask, alpha, backend=EMU)
    for seed in ("7", "99"):
        monkeypatch.setenv("PII_AUGMENT_EMULATION_SHUFFLE", seed)
        assert np.array_equal(pa.poisson_interpolate(dst, src, mask, alpha, backend=EMU), ordered)


def test_64_ellipses_at_256_one_sync_few_launches():
    emu = get_backend(EMU, np.zeros(1))
    rng = np.random.default_rng(0)
    dst = rng.standard_normal((64, 1, 256, 256)).astype(np.float32)
    p = pa.sample_patches(64, (256, 256), shape="ellipse", seed=1)
    before = emu.counts()
    out, info = pa.poisson_interpolate(dst, dst[::-1].copy(), p.masks(), p.alpha, backend=EMU, return_info=True)
    after = emu.counts()
    assert info.converged.all() and info.spectral_samples == 0
    assert info.syncs == after["syncs"] - before["syncs"] <= 1
    assert info.launches == after["launches"] - before["launches"] <= 12
    assert info.h2d_bytes <= 64 * 8 + 64


def test_large_crops_take_a_second_pass_in_global_memory():
    """Four masks of about 512^2: too large for a block's shared memory, at most 2 syncs."""
    n = 520
    yy, xx = np.mgrid[:n, :n]
    mask = np.zeros((4, n, n), bool)
    for b in range(4):
        mask[b] = ((yy - 259.5 - b) / 255.0) ** 2 + ((xx - 260.0) / (250.0 - 3 * b)) ** 2 <= 1.0
    rng = np.random.default_rng(1)
    dst = (np.linspace(0, 1, n)[None, None, None] + 0.1 * rng.standard_normal((4, 1, n, n))).astype(np.float32)
    src = np.ascontiguousarray(dst[::-1])
    out, info = pa.poisson_interpolate(dst, src, mask, 0.5, backend=EMU, return_info=True)
    assert info.syncs <= 2 and info.converged.all()
    cpu = pa.poisson_interpolate(dst, src, mask, 0.5)
    assert np.array_equal(out, cpu)


def test_hierarchy_is_the_drivers():
    """The twin coarsens a sample as build_hierarchy does (the same levels, weights, flags)."""
    bk = get_backend("numba", np.zeros(1))
    rng = np.random.default_rng(4)
    m = np.stack([make_mask("ellipse", (37, 23), rng)])[:, None]
    crop = prepare_crop(bk, np.ascontiguousarray(m), 2)
    levels = build_hierarchy(bk, crop)
    exts, ws, flags = hierarchy(crop.ext[0], 2, 16)
    assert [tuple(lv.ext[0]) for lv in levels] == [tuple(e) for e in exts]
    assert all(np.array_equal(lv.w[0], w) for lv, w in zip(levels, ws))
    assert all(np.array_equal(lv.flags[0], f) for lv, f in zip(levels[:-1], flags[:-1]))


def test_dot_tree_is_a_fixed_order_sum():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(1000)
    y = rng.standard_normal(1000)
    kind = np.full(1000, Cell.UNKNOWN, np.uint8)
    kind[::7] = Cell.FIXED
    partial = np.zeros(256)
    for i in range(1000):
        if kind[i] == Cell.UNKNOWN:
            partial[i % 256] += x[i] * y[i]
    s = 128
    while s:
        partial[:s] += partial[s:2 * s]
        s //= 2
    assert dot_tree(x, y, kind) == partial[0]


def _crop_of(dst, src, mask, b, c, alpha, mode):
    """The crop of sample b (its mask's box and a one-cell halo; D == 1 in 2D), its labels and the
    correction's right-hand side, made by the generic primitives."""
    nz = np.nonzero(mask[b])
    lo = [int(i.min()) - 1 for i in nz]
    hi = [int(i.max()) + 2 for i in nz]
    if mask.ndim == 3:  # 2D: one plane, no halo along z
        lo, hi = [0] + lo, [1] + hi
    off = np.array([lo], np.int64)
    ext = np.array([[h - l for l, h in zip(lo, hi)]], np.int64)
    m4 = np.ascontiguousarray(mask[b:b + 1] if mask.ndim == 4 else mask[b:b + 1, None]).view(np.uint8)
    kind = np.empty((1,) + tuple(ext[0]), np.uint8)
    nk.build_kind(m4, off, ext, kind)
    shape5 = (1, 1) + tuple(ext[0])
    dc, gc, rhs = (np.zeros(shape5, dst.dtype) for _ in range(3))
    d5 = dst if dst.ndim == 5 else dst[:, :, None]
    s5 = src if src.ndim == 5 else src[:, :, None]
    nk.gather_crop(d5[b:b + 1, c:c + 1], off, ext, dc)
    nk.gather_crop(s5[b:b + 1, c:c + 1], off, ext, gc)
    nk.guidance_rhs(dc, gc, kind, ext, np.array([alpha[b]]), mode, rhs)
    return kind, dc, gc, rhs, ext


@FAST
@given(st.integers(0, 2**31 - 1), st.sampled_from([2, 3]), st.sampled_from([np.float32, np.float64]),
       st.lists(st.sampled_from(SHAPES), min_size=1, max_size=3), st.sampled_from([int(m) for m in Guidance]))
def test_flat_solve_gives_the_bytes_of_the_generic_solve(seed, ndim, dtype, kinds, mode):
    """solve_flat / guidance_rhs_flat (flat, branch-free, multiplying by 1 / diag where that is
    exact) against solve_system / guidance_rhs (the generic primitives), 2D and 3D: the same bytes,
    the same residual, status and iterations, on every mask shape (edge masks make the smoother
    divide)."""
    dst, src, mask, alpha = plane_problem(seed, ndim, dtype, kinds)
    for b in range(mask.shape[0]):
        for c in range(dst.shape[1]):
            kind, dc, gc, rhs, ext = _crop_of(dst, src, mask, b, c, alpha, mode)
            D, H, W = (int(e) for e in ext[0])
            flat_rhs = np.zeros(D * H * W, dtype)
            guidance_rhs_flat(dc.ravel(), (gc if mode <= Guidance.DIVERGENCE else dc).ravel(), kind.ravel(), D, H, W, alpha[b], mode,
                              flat_rhs)
            assert np.array_equal(flat_rhs, rhs.ravel())
            x = np.zeros_like(rhs)
            ref = solve_system(kind, rhs, x, 1e-6, 60, 2, 2, 2, 16, 0.5)
            xf = np.zeros(D * H * W, dtype)
            got = solve_flat(kind.ravel(), rhs.ravel(), xf, D, H, W, 1e-6, 60, 2, 2, 2, 16, 0.5)
            assert got == ref or (np.isnan(got[0]) and np.isnan(ref[0]) and got[1:] == ref[1:])
            assert np.array_equal(xf, x.ravel())


def test_masks_on_the_image_edge_take_the_division():
    """An unknown beside a cell outside the image has a diagonal of 3 (not a power of two): the
    smoother must divide there, and the solve still matches the generic one."""
    rng = np.random.default_rng(5)
    dst = rng.standard_normal((1, 1, 20, 31)).astype(np.float32)
    src = rng.standard_normal((1, 1, 20, 31)).astype(np.float32)
    mask = np.zeros((1, 20, 31), bool)
    mask[0, 0:9, 4:20] = True  # touches the top edge
    mask[0, 3, 7] = False
    kind, dc, gc, rhs, ext = _crop_of(dst, src, mask, 0, 0, np.array([0.4]), int(Guidance.PII))
    D, H, W = (int(e) for e in ext[0])
    n = D * H * W
    g, cells = _geometry(hierarchy(np.array([D, H, W]), 2, 16)[0], D, H, W)
    diag, inv = np.zeros(cells[0], np.float32), np.zeros(cells[0], np.float32)
    unk, sm, kp = (np.zeros(cells[0], np.uint8) for _ in range(3))
    _pad_rows(kind.ravel(), kp, D, H, W, g[0])  # level 0's layout: rows padded to an odd stride
    one = np.float32(1)
    assert _level_setup(kp, g[0], False, one, one, one, diag, inv, unk, sm) > 0
    x = np.zeros_like(rhs)
    ref = solve_system(kind, rhs, x, 1e-6, 60, 2, 2, 2, 16, 0.5)
    xf = np.zeros(n, np.float32)
    assert solve_flat(kind.ravel(), rhs.ravel(), xf, D, H, W, 1e-6, 60, 2, 2, 2, 16, 0.5) == ref
    assert np.array_equal(xf, x.ravel())


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([2, 3]), st.integers(3, 40), st.integers(3, 40), st.integers(3, 12))
def test_every_level_has_odd_strides_so_a_colour_is_a_parity(ndim, H, W, D):
    """The smoother's halves rest on this: with odd row and plane strides on every level (level 0
    padded), the parity of a cell's flat index is the parity of z + y + x (shifted by _PZ), its
    colour; and a crop goes into level 0's halves and back unchanged, as _pad_rows then _split."""
    D = D if ndim == 3 else 1
    exts = hierarchy(np.array([D, H, W], np.int64), 2, 16)[0]
    g, cells = _geometry(exts, D, H, W)
    for k in range(g.shape[0]):
        S, P = int(g[k, _S]), int(g[k, _P])
        assert S % 2 == 1 and (ndim == 2 or P % 2 == 1)
        z, y, x = np.meshgrid(*(np.arange(n) for n in (int(cells[k]) // P, P // S, S)), indexing="ij")
        j = (z * P + y * S + x).ravel()
        assert np.array_equal(j % 2, (z + y + x).ravel() % 2)
    nat = np.random.default_rng(H * 41 + W).standard_normal(D * H * W).astype(np.float32)
    h = (int(cells[0]) + 1) // 2
    ha, hb = np.zeros(h, np.float32), np.zeros(h, np.float32)
    _split_rows(nat, ha, hb, D, H, W, g[0])
    pad = np.zeros(int(cells[0]), np.float32)
    _pad_rows(nat, pad, D, H, W, g[0])
    pa_, pb_ = np.zeros(h, np.float32), np.zeros(h, np.float32)
    _split(pad, pa_, pb_)
    assert np.array_equal(ha, pa_) and np.array_equal(hb, pb_)
    back = np.zeros_like(nat)
    _merge_rows(ha, hb, back, D, H, W, g[0])
    assert np.array_equal(back, nat)
    again = np.zeros_like(pad)
    _merge(pa_, pb_, again)
    assert np.array_equal(again, pad)


@pytest.mark.parametrize("ndim", [2, 3])
def test_channels_sharing_a_hierarchy_give_each_channels_own_bytes(ndim):
    """The channels of a sample share one hierarchy (_solve_sample_flat builds it once): a 3-channel
    solve gives, channel by channel, the bytes, residuals and iterations of each channel solved
    alone (whatever the earlier channels left in the work arrays), and the emulated kernel's."""
    probs = [plane_problem(seed, ndim, np.float32, ["ellipse", "holes", "edge_rect"]) for seed in (11, 12, 13)]
    shape = min(p[0].shape[2:] for p in probs)  # the three problems on a common grid
    cut = (slice(None), slice(0, 1)) + tuple(slice(0, s) for s in shape)
    dst = np.concatenate([p[0][cut] for p in probs], axis=1)
    src = np.concatenate([p[1][cut] for p in probs], axis=1)
    mask = probs[0][2][(slice(None),) + cut[2:]]
    alpha = probs[0][3]
    assert mask.any()
    out, info = pa.poisson_interpolate(dst, src, mask, alpha, method="multigrid", return_info=True)
    for c in range(3):
        one, info_c = pa.poisson_interpolate(dst[:, c:c + 1], src[:, c:c + 1], mask, alpha, method="multigrid",
                                             return_info=True)
        assert np.array_equal(out[:, c:c + 1], one)
        assert np.array_equal(info.residual[:, c:c + 1], info_c.residual)
    emu = pa.poisson_interpolate(dst, src, mask, alpha, method="multigrid", backend=EMU)
    assert np.array_equal(emu, out)
