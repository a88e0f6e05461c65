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



@njit(inline="always")
def _pick_t(dp, dq, sp, sq, wa, ws, mode):
    """The guidance rule of :func:`pii_augment.ops._numba_kernels._pick` in the image dtype:
    a = wa (dp - dq), s = ws (sp - sq), a where |a| > |s| strictly, else s (mode 2: s)."""
    s = ws * (sp - sq)
    if mode == 2:
        return s
    a = wa * (dp - dq)
    return a if abs(a) > abs(s) else s

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
    """a (P, M, N) -> the DST-I (unnormalised, matrix S) along ``axis``; row views keep the
    inner loops contiguous and vectorisable."""
    P, M, N = a.shape
    out = np.zeros_like(a)
    if axis == 2:
        n4 = N - N % 4
        for p in range(P):
            for i in range(M):
                arow = a[p, i]
                orow = out[p, i]
                # four rows of S per pass over orow: a quarter of the loads and stores of orow
                for j in range(0, n4, 4):
                    v0, v1, v2, v3 = arow[j], arow[j + 1], arow[j + 2], arow[j + 3]
                    s0, s1, s2, s3 = S[j], S[j + 1], S[j + 2], S[j + 3]
                    for k in range(N):
                        orow[k] += (v0 * s0[k] + v1 * s1[k]) + (v2 * s2[k] + v3 * s3[k])
                for j in range(n4, N):
                    v = arow[j]
                    srow = S[j]
                    for k in range(N):
                        orow[k] += v * srow[k]
    elif axis == 1:
        for p in range(P):
            for i in range(M):
                orow = out[p, i]
                for j in range(M):
                    s = S[i, j]
                    arow = a[p, j]
                    for k in range(N):
                        orow[k] += s * arow[k]
    else:
        p4 = P - P % 4
        for i in range(P):
            for j in range(0, p4, 4):  # four planes per pass, as along x
                c0, c1, c2, c3 = S[i, j], S[i, j + 1], S[i, j + 2], S[i, j + 3]
                for q in range(M):
                    orow = out[i, q]
                    r0, r1, r2, r3 = a[j, q], a[j + 1, q], a[j + 2, q], a[j + 3, q]
                    for k in range(N):
                        orow[k] += (c0 * r0[k] + c1 * r1[k]) + (c2 * r2[k] + c3 * r3[k])
            for j in range(p4, P):
                s = S[i, j]
                for q in range(M):
                    orow = out[i, q]
                    arow = a[j, q]
                    for k in range(N):
                        orow[k] += s * arow[k]
    return out


@njit(inline="always")
def _stencil_rows(a, z, y, x0, N, ndim):
    """Row views of a (D, H, W) array around row (z, y) of a box starting at column x0: the row
    itself with one extra cell each side, then the rows above/below (y) and before/after (z; the
    row itself again in 2D), each N long. Contiguous views: no per-pixel 3D indexing."""
    zd = z - 1 if ndim == 3 else z
    zu = z + 1 if ndim == 3 else z
    return (a[z, y, x0 - 1:x0 + N + 1], a[z, y - 1, x0:x0 + N], a[z, y + 1, x0:x0 + N],
            a[zd, y, x0:x0 + N], a[zu, y, x0:x0 + N])


@njit(cache=True, nogil=True)
def spectral_box_solve(dst, src, rhs, alpha, mode, idx, lo, hi, ndim, clip_lo, clip_hi, do_clip,
                       out, residual):
    """Solve every sample ``idx[i]`` (a box mask [lo, hi)) exactly and write it into ``out``.

    dst, out: (B, C, D, H, W); src: same (guidance modes 0 pii, 1 mixed, 2 source) or unused with
    mode -1, where ``rhs`` (B, C, D, H, W) is the divergence per pixel, or unused with mode -2 (zero
    divergence); alpha: (B,) float64;
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
        gr = np.empty(N)  # one row of the right-hand side without the ring values
        # guidance weights in the image dtype: a = wa (d_p - d_q), s = ws (s_p - s_q)
        wv = np.empty(2, dst.dtype)
        wv[0] = 1.0 - alpha[b] if mode == 0 else 1.0
        wv[1] = alpha[b] if mode == 0 else 1.0
        wa, ws = wv[0], wv[1]
        for c in range(C):
            d = dst[b, c]
            rb = np.empty((P, M, N), work.dtype)  # every element is written below
            for i in range(P):
                z = z0 + i
                for j in range(M):
                    y = y0 + j
                    dc, dn, ds, dd, du = _stencil_rows(d, z, y, x0, N, ndim)
                    out_row = rb[i, j]
                    if mode == -2:  # no guidance: the membrane (harmonic) fill
                        out_row[:] = 0
                    elif mode == -1:
                        rr = rhs[b, c, z, y, x0:x0 + N]
                        for k in range(N):
                            out_row[k] = rr[k]
                    else:
                        sc, sn, ss, sd, su = _stencil_rows(src[b, c], z, y, x0, N, ndim)
                        # in the image dtype, branch-free: the loop vectorises
                        for k in range(N):
                            dp = dc[k + 1]
                            sp = sc[k + 1]
                            acc = _pick_t(dp, dc[k], sp, sc[k], wa, ws, mode)
                            acc += _pick_t(dp, dc[k + 2], sp, sc[k + 2], wa, ws, mode)
                            acc += _pick_t(dp, dn[k], sp, sn[k], wa, ws, mode)
                            acc += _pick_t(dp, ds[k], sp, ss[k], wa, ws, mode)
                            if ndim == 3:
                                acc += _pick_t(dp, dd[k], sp, sd[k], wa, ws, mode)
                                acc += _pick_t(dp, du[k], sp, su[k], wa, ws, mode)
                            out_row[k] = acc
                    # Dirichlet values of the ring
                    out_row[0] += dc[0]
                    out_row[N - 1] += dc[N + 1]
                    if j == 0:
                        for k in range(N):
                            out_row[k] += dn[k]
                    if j == M - 1:
                        for k in range(N):
                            out_row[k] += ds[k]
                    if ndim == 3 and i == 0:
                        for k in range(N):
                            out_row[k] += dd[k]
                    if ndim == 3 and i == P - 1:
                        for k in range(N):
                            out_row[k] += du[k]
            f = _transform(rb, Sx, 2)
            if ndim == 3:
                f = _transform(f, Sz, 0)
            two = lam[0, 0] - lam[0, 0] + 2  # 2 in the work dtype
            for i in range(P):  # (T_y + lambda) g = f along y for every (z, x) mode, in place
                g = f[i]
                lm = lam[i]
                g0 = g[0]
                c0 = cp[0]
                for k in range(N):
                    dk = two + lm[k]
                    c0[k] = -1 / dk
                    g0[k] = g0[k] / dk
                for j in range(1, M):
                    gj = g[j]
                    gp = g[j - 1]
                    cj = cp[j]
                    cq = cp[j - 1]
                    for k in range(N):
                        den = two + lm[k] + cq[k]
                        cj[k] = -1 / den
                        gj[k] = (gj[k] + gp[k]) / den
                for j in range(M - 2, -1, -1):
                    gj = g[j]
                    gn = g[j + 1]
                    cj = cp[j]
                    for k in range(N):
                        gj[k] = gj[k] - cj[k] * gn[k]
            f = _transform(f, Sx, 2)
            if ndim == 3:
                f = _transform(f, Sz, 0)
            # store (rounded to the image dtype), then the true residual of the stored values
            o = out[b, c]
            for i in range(P):
                for j in range(M):
                    orow = o[z0 + i, y0 + j, x0:x0 + N]
                    frow = f[i, j]
                    for k in range(N):
                        orow[k] = frow[k] * scale
            r0 = r1 = r2 = r3 = 0.0
            b0 = b1 = b2 = b3 = 0.0
            n4 = N - N % 4
            for i in range(P):
                z = z0 + i
                for j in range(M):
                    y = y0 + j
                    oc, on, os_, od, ou = _stencil_rows(o, z, y, x0, N, ndim)
                    dc, dn, ds, dd, du = _stencil_rows(d, z, y, x0, N, ndim)
                    brow = rb[i, j]
                    # gr = b minus the ring's dst values (o's ring still holds dst, as out starts
                    # as a copy of dst), so the equation reads 4 f_p - sum_q o_q = gr_p
                    for k in range(N):
                        gr[k] = brow[k]
                    gr[0] -= dc[0]
                    gr[N - 1] -= dc[N + 1]
                    if j == 0:
                        for k in range(N):
                            gr[k] -= dn[k]
                    if j == M - 1:
                        for k in range(N):
                            gr[k] -= ds[k]
                    if ndim == 3 and i == 0:
                        for k in range(N):
                            gr[k] -= dd[k]
                    if ndim == 3 and i == P - 1:
                        for k in range(N):
                            gr[k] -= du[k]
                    if ndim == 3:
                        for k in range(N):
                            gr[k] -= 6.0 * oc[k + 1] - oc[k] - oc[k + 2] - on[k] - os_[k] - od[k] - ou[k]
                    else:
                        for k in range(N):
                            gr[k] -= 4.0 * oc[k + 1] - oc[k] - oc[k + 2] - on[k] - os_[k]
                    # gr is now the residual row; sum squares with four independent accumulators
                    for k in range(0, n4, 4):
                        r0 += gr[k] * gr[k]
                        r1 += gr[k + 1] * gr[k + 1]
                        r2 += gr[k + 2] * gr[k + 2]
                        r3 += gr[k + 3] * gr[k + 3]
                        b0 += 1.0 * brow[k] * brow[k]
                        b1 += 1.0 * brow[k + 1] * brow[k + 1]
                        b2 += 1.0 * brow[k + 2] * brow[k + 2]
                        b3 += 1.0 * brow[k + 3] * brow[k + 3]
                    for k in range(n4, N):
                        r0 += gr[k] * gr[k]
                        b0 += 1.0 * brow[k] * brow[k]
            rr = (r0 + r1) + (r2 + r3)
            bb = (b0 + b1) + (b2 + b3)
            residual[b, c] = np.sqrt(rr / bb) if bb > 0 else 0.0
            if do_clip:
                lo_v, hi_v = clip_lo[b, c], clip_hi[b, c]
                for i in range(P):
                    for j in range(M):
                        orow = o[z0 + i, y0 + j, x0:x0 + N]
                        for k in range(N):
                            v = orow[k]
                            orow[k] = lo_v if v < lo_v else (hi_v if v > hi_v else v)
