"""The exact DST-I solve that method="auto" uses for box masks (pii_augment/ops/_spectral.py)."""

from __future__ import annotations

import numpy as np
import pytest
from problems import boxes
from reference_solvers import exact_blend, exact_solve, image_range

import pii_augment as pa


@pytest.mark.parametrize("shape", [(23, 31), (9, 11, 13)])
@pytest.mark.parametrize("gradient", ["pii", "mixed", "source"])
def test_box_solve_is_exact(shape, gradient):
    rng = np.random.default_rng(len(shape))
    dst = rng.standard_normal((5, 2) + shape)
    src = rng.standard_normal((5, 2) + shape)
    mask = boxes(5, shape, rng)
    alpha = rng.uniform(0.05, 0.95, 5)
    out, info = pa.poisson_interpolate(dst, src, mask, alpha, gradient=gradient, clip=False, return_info=True)
    assert info.spectral_samples == 5 and info.method == "auto"
    ref = exact_blend(dst, src, mask, alpha, gradient=gradient, clip=False)
    np.testing.assert_allclose(out, ref, atol=1e-10)
    assert info.converged.all() and info.max_residual < 1e-12


def test_float32_box_solve_and_clip():
    rng = np.random.default_rng(3)
    dst = rng.standard_normal((4, 1, 40, 40)).astype(np.float32)
    src = 3 * rng.standard_normal((4, 1, 40, 40)).astype(np.float32)
    mask = boxes(4, (40, 40), rng)
    out = pa.poisson_interpolate(dst, src, mask, 0.9)
    ref = exact_blend(dst, src, mask, [0.9] * 4)
    assert out.dtype == np.float32
    assert np.all(np.abs(out - ref) <= 1e-5 * image_range(dst))
    assert (out.min(axis=(2, 3)) >= dst.min(axis=(2, 3))).all() and (out.max(axis=(2, 3)) <= dst.max(axis=(2, 3))).all()


def test_auto_mixes_spectral_and_multigrid_and_agrees_with_multigrid():
    rng = np.random.default_rng(5)
    dst = rng.standard_normal((6, 1, 32, 32))
    src = rng.standard_normal((6, 1, 32, 32))
    mask = boxes(6, (32, 32), rng)
    mask[1] = False
    mask[1, 0:10, 5:20] = True  # touches the image edge: multigrid
    mask[2, 10, 10] = False  # a hole: not a box, multigrid
    out, info = pa.poisson_interpolate(dst, src, mask, 0.5, return_info=True)
    assert info.spectral_samples == 4
    mg, info_mg = pa.poisson_interpolate(dst, src, mask, 0.5, method="multigrid", tol=1e-10, return_info=True)
    assert info_mg.spectral_samples == 0
    np.testing.assert_allclose(out, mg, atol=1e-4 * image_range(dst).max())
    np.testing.assert_allclose(out, exact_blend(dst, src, mask, [0.5] * 6), atol=1e-4 * image_range(dst).max())


def test_solve_poisson_with_rhs_on_boxes():
    rng = np.random.default_rng(9)
    dst = rng.standard_normal((2, 1, 20, 24))
    mask = boxes(2, (20, 24), rng)
    rhs = rng.standard_normal(dst.shape)
    f, info = pa.solve_poisson(dst, mask, rhs, return_info=True)
    assert info.spectral_samples == 2
    for b in range(2):
        r = rhs[b, 0].ravel()
        ref = exact_solve(dst[b, 0], mask[b], lambda p, q: r[p] / 4.0)  # 4 in-image neighbours each
        np.testing.assert_allclose(f[b, 0], ref, atol=1e-10)


def test_auto_means_the_same_on_every_backend():
    """The device path takes the exact box solve for the same samples as the CPU (and multigrid
    when asked for it explicitly)."""
    rng = np.random.default_rng(2)
    dst = rng.standard_normal((2, 1, 16, 16)).astype(np.float32)
    mask = boxes(2, (16, 16), rng)
    for method, exact in (("auto", 2), ("multigrid", 0)):
        _, cpu = pa.poisson_interpolate(dst, dst[::-1].copy(), mask, 0.5, method=method, return_info=True)
        _, emu = pa.poisson_interpolate(dst, dst[::-1].copy(), mask, 0.5, method=method, backend="cuda-emulated",
                                        return_info=True)
        assert cpu.spectral_samples == emu.spectral_samples == exact and emu.converged.all()


def test_solve_poisson_without_rhs_on_boxes_is_the_harmonic_fill():
    rng = np.random.default_rng(10)
    dst = rng.standard_normal((2, 1, 18, 21))
    mask = boxes(2, (18, 21), rng)
    f, info = pa.solve_poisson(dst, mask, return_info=True)
    assert info.spectral_samples == 2
    for b in range(2):
        ref = exact_solve(dst[b, 0], mask[b], lambda p, q: np.zeros(p.shape))
        np.testing.assert_allclose(f[b, 0], ref, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_half_sine_matrices_are_the_parity_halves_of_the_sine_matrix(dtype):
    from pii_augment.ops._spectral import _half_sine_matrices

    for n in (1, 2, 3, 8, 45, 90, 101):
        Fe, Fo, FeT, FoT = _half_sine_matrices(n, np.empty(1, dtype))
        h0, h1 = n // 2, n - n // 2
        j, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        S = np.sin(np.pi * ((j + 1) * (k + 1) % (2 * (n + 1))) / (n + 1)).astype(dtype)
        np.testing.assert_array_equal(Fe[:, :h1], S[:h1, 0::2])
        np.testing.assert_array_equal(Fo[:h0, :h0], S[:h0, 1::2])
        np.testing.assert_array_equal(FeT[:, :h1], Fe[:, :h1].T)
        np.testing.assert_array_equal(FoT[:h0, :h0], Fo[:h0, :h0].T)
        assert not Fe[:, h1:].any() and not Fo[:, h0:].any()  # the zero padding


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_row_transforms_are_the_dst_on_both_sides_of_the_blas_bound(dtype):
    """_dst_x / _idst_x against the dense DST-I in float64, for boxes whose products go to BLAS
    (m n k <= BLAS_MAX_MNK) and for larger ones (the loops), odd and even sides."""
    from pii_augment.ops._spectral import BLAS_MAX_MNK, _dst_x, _half_sine_matrices, _idst_x

    rng = np.random.default_rng(1)
    paths = set()
    for M, n in ((1, 1), (3, 2), (7, 5), (90, 90), (101, 91), (203, 200), (40, 257)):
        h1 = n - n // 2
        paths.add(M * h1 * ((h1 + 7) // 8 * 8) <= BLAS_MAX_MNK)
        Fe, Fo, FeT, FoT = _half_sine_matrices(n, np.empty(1, dtype))
        a = rng.standard_normal((2, M, n)).astype(dtype)
        j, k = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
        S = np.sin(np.pi * (j + 1) * (k + 1) / (n + 1))
        order = np.r_[np.arange(0, n, 2), np.arange(1, n, 2)]  # the modes by parity
        want = (a.astype(np.float64) @ S)[..., order]
        got = _dst_x(a, Fe, Fo)
        tol = (1e-4 if dtype == np.float32 else 1e-12) * np.sqrt(n) * np.abs(a).max()
        np.testing.assert_allclose(got, want, atol=tol)
        back = _idst_x(got, FeT, FoT) * (2.0 / (n + 1))  # S S = (n + 1) / 2
        np.testing.assert_allclose(back, a, atol=10 * tol)
    assert paths == {True, False}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_plane_transform_is_the_dst_on_both_sides_of_the_blas_bound(dtype):
    """_dst_z (3D boxes) against the dense DST-I along the first axis in float64."""
    from pii_augment.ops._spectral import BLAS_MAX_MNK, _dst_z, _sine_matrix

    rng = np.random.default_rng(2)
    paths = set()
    for P, M, N in ((1, 3, 4), (5, 6, 7), (20, 20, 20), (41, 40, 39), (70, 9, 8)):
        paths.add(P * P * M * N <= BLAS_MAX_MNK)
        a = rng.standard_normal((P, M, N)).astype(dtype)
        S = _sine_matrix(P, np.empty(1, dtype))
        want = np.einsum("ij,jqk->iqk", S.astype(np.float64), a.astype(np.float64))
        tol = (1e-4 if dtype == np.float32 else 1e-12) * np.sqrt(P) * np.abs(a).max()
        np.testing.assert_allclose(_dst_z(a, S), want, atol=tol)
    assert paths == {True, False}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_sine_store_holds_the_tables_of_every_side_it_covers(dtype):
    """The store's views are the tables the box solve would build, byte for byte, for every side
    up to STORE_MAX_SIDE; a larger side is built (not read past the store)."""
    from numba import njit

    from pii_augment.ops._spectral import STORE_MAX_SIDE, _half_sine_matrices, _sine_tables, sine_store

    store, offs = sine_store(dtype)
    assert sine_store(dtype)[0] is store and store.dtype == dtype and offs.shape == (STORE_MAX_SIDE + 1, 4)
    like = np.empty(1, dtype)
    tables = njit(lambda n, like, store, offs: _sine_tables(n, like, store, offs))
    for n in list(range(1, STORE_MAX_SIDE + 1)) + [STORE_MAX_SIDE + 1, STORE_MAX_SIDE + 7]:
        got, want = tables(n, like, store, offs), _half_sine_matrices(n, like)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.tobytes() == w.tobytes(), n


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1, 1, 1), (1, 2, 3), (1, 37, 20), (3, 11, 9)])
def test_thomas_solves_each_modes_tridiagonal_system(dtype, shape):
    """_thomas_y: (T_y + lambda) g = f along y for every (z, x) mode, T_y = tridiag(-1, 2, -1),
    against a dense solve in float64."""
    from pii_augment.ops._spectral import _box_eigenvalues, _thomas_y
    from numba import njit

    @njit
    def run(f, lam):
        cp = np.empty(f.shape[1:], f.dtype)
        iv = np.empty(f.shape[1:])
        _thomas_y(f, lam, cp, iv)

    P, M, N = shape
    rng = np.random.default_rng(0)
    f = rng.standard_normal(shape).astype(dtype)
    lam = _box_eigenvalues(P, N, 3 if P > 1 else 2, np.empty(1, dtype))
    g = f.copy()
    run(g, lam)
    T = 2 * np.eye(M) - np.eye(M, k=1) - np.eye(M, k=-1)
    for i in range(P):
        for k in range(N):
            want = np.linalg.solve(T + float(lam[i, k]) * np.eye(M), f[i, :, k].astype(np.float64))
            tol = 1e-5 if dtype == np.float32 else 1e-12
            np.testing.assert_allclose(g[i, :, k], want, rtol=tol, atol=tol * np.abs(want).max())
