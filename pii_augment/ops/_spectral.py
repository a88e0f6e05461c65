"""Exact spectral solve for box-shaped masks (CPU, Numba).

When a sample's mask is a full axis-aligned box whose one-pixel ring lies inside the image (the
original PII's square patches), the masked Poisson problem is the Dirichlet Laplacian on a
rectangle, which the type-I discrete sine transform (DST-I) diagonalises exactly:
``f = S (S b / lambda)`` with ``S`` the sine matrix of each axis and ``lambda`` the sums of the
1D eigenvalues ``2 - 2 cos(pi k / (N + 1))``. The transforms are dense products with the sine
matrices, so a box of sides ``n_i`` costs ``prod(n_i) * sum(n_i)`` multiply-adds: far less than
multigrid for the patch sizes of the original, more for very large boxes, so
:func:`spectral_eligible` limits the sides' sum. Arithmetic is float64 whatever the image dtype.

The solve reads the full images and writes the output directly (no crop copies) and reports the
true relative residual of the value it stores, so nothing about its accuracy is assumed.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba_kernels import _pick  # the guidance rule, shared with the multigrid path

#: Boxes whose sides add up to more than this are left to multigrid (cost ~ volume * sides).
MAX_SIDE_SUM = 640


def box_samples(lo: np.ndarray, hi: np.ndarray, full_box: np.ndarray, spatial_shape, ndim: int) -> np.ndarray:
    """Which samples are full boxes [lo, hi) (from :func:`mask_boxes`) whose one-pixel ring lies
    inside the image and whose sides are small enough for the spectral solve: (B,) bool."""
    shape = np.array(spatial_shape, np.int64)
    spatial = slice(3 - ndim, 3)
    ring_inside = ((lo[:, spatial] >= 1) & (hi[:, spatial] <= shape[spatial] - 1)).all(axis=1)
    small = (hi - lo)[:, spatial].sum(axis=1) <= MAX_SIDE_SUM
    return full_box & ring_inside & small


@njit(cache=True, nogil=True)
def _sine_matrix(n, like):
    # S[j, k] = sin(pi (j + 1) (k + 1) / (n + 1)), symmetric, from a table of one period, in the
    # dtype of ``like``
    period = 2 * (n + 1)
    tab = np.sin(np.pi * np.arange(period) / (n + 1)).astype(like.dtype)
    S = np.empty((n, n), like.dtype)
    for j in range(n):
        t = (j + 1) * (j + 1) % period
        for k in range(j, n):
            S[j, k] = tab[t]
            S[k, j] = tab[t]
            t += j + 1
            if t >= period:
                t -= period
    return S


@njit(cache=True, nogil=True)
def _transform(a, S, axis):
    """a (P, M, N) float64 -> the DST-I (unnormalised, matrix S) along ``axis``."""
    P, M, N = a.shape
    out = np.zeros_like(a)
    if axis == 2:
        for p in range(P):
            for i in range(M):
                for j in range(N):
                    v = a[p, i, j]
                    for k in range(N):
                        out[p, i, k] += v * S[j, k]
    elif axis == 1:
        for p in range(P):
            for i in range(M):
                for j in range(M):
                    s = S[i, j]
                    for k in range(N):
                        out[p, i, k] += s * a[p, j, k]
    else:
        for i in range(P):
            for j in range(P):
                s = S[i, j]
                for q in range(M):
                    for k in range(N):
                        out[i, q, k] += s * a[j, q, k]
    return out


@njit(cache=True, nogil=True)
def spectral_box_solve(dst, src, rhs, alpha, mode, idx, lo, hi, ndim, clip_lo, clip_hi, do_clip,
                       out, residual):
    """Solve every sample ``idx[i]`` (a box mask [lo, hi)) exactly and write it into ``out``.

    dst, out: (B, C, D, H, W); src: same (guidance modes 0 pii, 1 mixed, 2 source) or unused with
    mode -1, where ``rhs`` (B, C, D, H, W) is the divergence per pixel; alpha: (B,) float64;
    clip_lo, clip_hi: (B, C); residual: (B, C) float64, receives ||b - A f|| / ||b|| of the
    stored (rounded, unclipped) solution.
    """
    C = dst.shape[1]
    work = np.empty(1, dst.dtype)  # the transforms run in the image dtype (float32 or float64)
    for t in range(idx.shape[0]):
        b = idx[t]
        z0, y0, x0 = lo[b, 0], lo[b, 1], lo[b, 2]
        P, M, N = hi[b, 0] - z0, hi[b, 1] - y0, hi[b, 2] - x0
        Sz = _sine_matrix(P, work)
        Sx = _sine_matrix(N, work)
        # eigenvalues of the transformed axes (x, and z in 3D); y is solved by Thomas' algorithm
        lam = np.empty((P, N), work.dtype)
        for i in range(P):
            lz = 2.0 - 2.0 * np.cos(np.pi * (i + 1) / (P + 1)) if ndim == 3 else 0.0
            for k in range(N):
                lam[i, k] = lz + 2.0 - 2.0 * np.cos(np.pi * (k + 1) / (N + 1))
        scale = 2.0 / (N + 1)  # S S = (n + 1) / 2 per transformed axis
        if ndim == 3:
            scale *= 2.0 / (P + 1)
        cp = np.empty((M, N), work.dtype)
        al = alpha[b]
        for c in range(C):
            d = dst[b, c]
            rb = np.zeros((P, M, N), work.dtype)
            for i in range(P):
                z = z0 + i
                for j in range(M):
                    y = y0 + j
                    for k in range(N):
                        x = x0 + k
                        acc = 0.0
                        dp = 1.0 * d[z, y, x]
                        if mode < 0:
                            acc = 1.0 * rhs[b, c, z, y, x]
                        else:
                            sp = 1.0 * src[b, c, z, y, x]
                            acc += _pick(dp, d[z, y, x - 1], sp, src[b, c, z, y, x - 1], al, mode)
                            acc += _pick(dp, d[z, y, x + 1], sp, src[b, c, z, y, x + 1], al, mode)
                            acc += _pick(dp, d[z, y - 1, x], sp, src[b, c, z, y - 1, x], al, mode)
                            acc += _pick(dp, d[z, y + 1, x], sp, src[b, c, z, y + 1, x], al, mode)
                            if ndim == 3:
                                acc += _pick(dp, d[z - 1, y, x], sp, src[b, c, z - 1, y, x], al, mode)
                                acc += _pick(dp, d[z + 1, y, x], sp, src[b, c, z + 1, y, x], al, mode)
                        # Dirichlet values of the ring
                        if k == 0:
                            acc += d[z, y, x - 1]
                        if k == N - 1:
                            acc += d[z, y, x + 1]
                        if j == 0:
                            acc += d[z, y - 1, x]
                        if j == M - 1:
                            acc += d[z, y + 1, x]
                        if ndim == 3:
                            if i == 0:
                                acc += d[z - 1, y, x]
                            if i == P - 1:
                                acc += d[z + 1, y, x]
                        rb[i, j, k] = acc
            f = _transform(rb, Sx, 2)
            if ndim == 3:
                f = _transform(f, Sz, 0)
            for i in range(P):  # (T_y + lambda) g = f along y for every (z, x) mode, in place
                g = f[i]
                lm = lam[i]
                for k in range(N):
                    dk = 2.0 + lm[k]
                    cp[0, k] = -1.0 / dk
                    g[0, k] = g[0, k] / dk
                for j in range(1, M):
                    for k in range(N):
                        den = 2.0 + lm[k] + cp[j - 1, k]
                        cp[j, k] = -1.0 / den
                        g[j, k] = (g[j, k] + g[j - 1, k]) / den
                for j in range(M - 2, -1, -1):
                    for k in range(N):
                        g[j, k] = g[j, k] - cp[j, k] * g[j + 1, k]
            f = _transform(f, Sx, 2)
            if ndim == 3:
                f = _transform(f, Sz, 0)
            # store (rounded to the image dtype), then the true residual of the stored values
            o = out[b, c]
            for i in range(P):
                for j in range(M):
                    for k in range(N):
                        o[z0 + i, y0 + j, x0 + k] = f[i, j, k] * scale
            rr = 0.0
            bb = 0.0
            for i in range(P):
                z = z0 + i
                for j in range(M):
                    y = y0 + j
                    for k in range(N):
                        x = x0 + k
                        lap = 4.0 * o[z, y, x] - o[z, y, x - 1] - o[z, y, x + 1] - o[z, y - 1, x] - o[z, y + 1, x]
                        if ndim == 3:
                            lap += 2.0 * o[z, y, x] - o[z - 1, y, x] - o[z + 1, y, x]
                        # ring cells of o still hold dst (out starts as a copy of dst)
                        r = rb[i, j, k] - lap
                        if k == 0:
                            r -= d[z, y, x - 1]
                        if k == N - 1:
                            r -= d[z, y, x + 1]
                        if j == 0:
                            r -= d[z, y - 1, x]
                        if j == M - 1:
                            r -= d[z, y + 1, x]
                        if ndim == 3:
                            if i == 0:
                                r -= d[z - 1, y, x]
                            if i == P - 1:
                                r -= d[z + 1, y, x]
                        rr += r * r
                        bb += rb[i, j, k] * rb[i, j, k]
            residual[b, c] = np.sqrt(rr / bb) if bb > 0 else 0.0
            if do_clip:
                for i in range(P):
                    for j in range(M):
                        for k in range(N):
                            v = o[z0 + i, y0 + j, x0 + k]
                            if v < clip_lo[b, c]:
                                o[z0 + i, y0 + j, x0 + k] = clip_lo[b, c]
                            elif v > clip_hi[b, c]:
                                o[z0 + i, y0 + j, x0 + k] = clip_hi[b, c]
