"""One system, the whole multigrid-preconditioned CG solve in one call: the CPU twin of the CUDA
kernel ``mg_solve`` (kernels/mg.cu), which solves one system per thread block.

The algorithm is the driver's (:mod:`pii_augment.ops.solver`: PCG preconditioned by one symmetric
V-cycle, each sample coarsening on its own schedule, the offset-invariant residual test on the
correction, the stall rule) for a single system, with every array of the system local and small
enough to stay in cache, and no Python between the steps. It calls the very primitives of
:mod:`pii_augment.ops._numba_kernels` on views of shape (1, 1, D, H, W), so every per-cell
operation is the one the batched driver and the CUDA kernels compute; dot products are summed in
the order of a block of 256 threads (256 strided partial sums, then a fixed tree), so that the
twin and the CUDA kernel give the same bytes.

Status codes (``STATUS``): 1 converged, 2 stalled at the rounding floor, 3 non-finite, 4 stopped
at ``max_iter``; 0 is "not solved here" (see ``mg_solve_samples``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ._numba_kernels import (
    axpy_unknowns,
    build_kind,
    coarsen_kind,
    gather_crop,
    guidance_rhs,
    prolong_add,
    residual,
    restrict,
    scatter_crop,
    smooth,
    xpby_unknowns,
)

STATUS = {"converged": 1, "stalled": 2, "nonfinite": 3, "max_iter": 4}

#: nu1, nu2 (red-black sweeps down and up), coarsest (a sample stops coarsening when its largest
#: extent is at most this), max_levels, stall ratio: the settings of every whole-system solve.
MG_DEFAULTS = (2, 2, 2, 16, 0.5)


def crop_extent(lo: np.ndarray, hi: np.ndarray, ndim: int) -> tuple[int, int, int]:
    """(D, H, W) of a sample's crop: its mask's bounding box [lo, hi) (along z, y, x) and a
    one-cell halo (along z only in 3D)."""
    e = np.asarray(hi) - np.asarray(lo)
    return (int(e[0]) + 2 if ndim == 3 else 1, int(e[1]) + 2, int(e[2]) + 2)


def levels_of(extent) -> int:
    """How many multigrid levels a crop of this extent gets (the hierarchy of MG_DEFAULTS)."""
    return int(hierarchy(np.asarray(extent, np.int64), MG_DEFAULTS[2], MG_DEFAULTS[3])[0].shape[0])

_OPTS = dict(cache=True, nogil=True)


@njit(**_OPTS)
def dot_tree(x, y, kind):
    """sum of x * y (in float64) over the unknown cells, in the order of a block of 256 threads:
    partial[t] sums the cells t, t + 256, ... in turn, then partial[t] += partial[t + s] for
    s = 128, 64, ..., 1. x, y: contiguous arrays of one system; kind: the same shape."""
    xf = x.ravel()
    yf = y.ravel()
    kf = kind.ravel()
    acc = np.zeros(256)
    for i in range(xf.shape[0]):
        if kf[i] == 2:
            acc[i & 255] += 1.0 * xf[i] * yf[i]
    s = 128
    while s > 0:
        for t in range(s):
            acc[t] += acc[t + s]
        s >>= 1
    return acc[0]


@njit(inline="always")
def _relative(rr, rr0):
    # sqrt(rr / rr0): 0 where there is nothing to solve, NaN for non-finite data (solver._relative)
    if not (np.isfinite(rr0) and np.isfinite(rr)):
        return np.nan
    if rr0 == 0.0:
        return 0.0 if rr == 0.0 else np.inf
    return np.sqrt(rr / rr0)


@njit(**_OPTS)
def hierarchy(ext0, coarsest, max_levels):
    """Per-level extents (L, 3), axis weights (L, 3) and coarsening flags (L, 3) of one system,
    as :func:`pii_augment.ops.solver.build_hierarchy` makes them for one sample."""
    exts = np.zeros((max_levels, 3), np.int64)
    ws = np.ones((max_levels, 3))
    flags = np.zeros((max_levels, 3), np.int64)
    exts[0] = ext0
    L = 1
    while L < max_levels and max(exts[L - 1, 0], max(exts[L - 1, 1], exts[L - 1, 2])) > coarsest:
        for a in range(3):
            f = 1 if exts[L - 1, a] > 1 else 0
            flags[L - 1, a] = f
            exts[L, a] = (exts[L - 1, a] + 1) // 2 if f else exts[L - 1, a]
            ws[L, a] = ws[L - 1, a] * (0.25 if f else 1.0)
        L += 1
    return exts[:L].copy(), ws[:L].copy(), flags[:L].copy()


@njit(inline="always")
def _view(buf, off, ext):
    n = ext[0] * ext[1] * ext[2]
    return buf[off:off + n].reshape((1, 1, ext[0], ext[1], ext[2]))


@njit(inline="always")
def _kview(buf, off, ext):
    n = ext[0] * ext[1] * ext[2]
    return buf[off:off + n].reshape((1, ext[0], ext[1], ext[2]))


@njit(**_OPTS)
def solve_system(kind0, r0, x, tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio):
    """Solve A x = r0 (x = 0 on fixed cells) for one system by PCG with a V-cycle.

    kind0: (1, D, H, W) uint8 crop labels (0 none, 1 fixed, 2 unknown); r0: (1, 1, D, H, W), the
    right-hand side of the correction (``guidance_rhs``); x: same, zeros in, the solution out.
    Returns (relative residual, status, iterations); see the module docstring for the status.
    """
    e0 = np.array([kind0.shape[1], kind0.shape[2], kind0.shape[3]], np.int64)
    exts, ws, flags = hierarchy(e0, coarsest, max_levels)
    L = exts.shape[0]
    offs = np.zeros(L + 1, np.int64)
    for k in range(L):
        offs[k + 1] = offs[k] + exts[k, 0] * exts[k, 1] * exts[k, 2]
    n_all = offs[L]
    kinds = np.zeros(n_all, np.uint8)
    kinds[:offs[1]] = kind0.ravel()
    es = np.zeros(n_all, r0.dtype)  # level 0: z; coarse levels: their corrections
    rhss = np.zeros(n_all, r0.dtype)  # level 0: unused (r is the V-cycle's right-hand side)
    rs = np.zeros(n_all, r0.dtype)  # residual scratch of every level
    ext_tab = exts.reshape((L, 1, 3))
    w_tab = ws.reshape((L, 1, 3))
    f_tab = flags.reshape((L, 1, 3))
    for k in range(L - 1):
        coarsen_kind(_kview(kinds, offs[k], exts[k]), ext_tab[k], f_tab[k], _kview(kinds, offs[k + 1], exts[k + 1]),
                     ext_tab[k + 1])
    kind = kinds[:offs[1]].reshape(kind0.shape)
    ext = ext_tab[0]
    w = w_tab[0]
    r = r0.copy()
    p = np.zeros_like(r0)
    q = np.zeros_like(r0)
    zero = np.zeros_like(r0)
    z = _view(es, 0, exts[0])
    coef = np.zeros((1, 1))

    rr0 = dot_tree(r0, r0, kind)
    rel = _relative(rr0, rr0)  # 1, 0 or NaN
    if rel <= tol:
        return rel, 1, 0
    if not np.isfinite(rel):
        return rel, 3, 0
    last = np.inf
    rz = 0.0
    it = 0
    status = 4
    while it < max_iter:
        # z = V-cycle(r)
        z[...] = 0
        for k in range(L):
            ek = _view(es, offs[k], exts[k])
            bk_rhs = r if k == 0 else _view(rhss, offs[k], exts[k])
            kk = _kview(kinds, offs[k], exts[k])
            if k > 0:
                ek[...] = 0
            if nu1:
                smooth(ek, bk_rhs, kk, ext_tab[k], w_tab[k], nu1, False)
            if k + 1 < L:
                rk = _view(rs, offs[k], exts[k])
                residual(ek, bk_rhs, kk, ext_tab[k], w_tab[k], rk)
                restrict(rk, ext_tab[k], _kview(kinds, offs[k + 1], exts[k + 1]), ext_tab[k + 1], f_tab[k],
                         _view(rhss, offs[k + 1], exts[k + 1]))
        for k in range(L - 1, -1, -1):
            ek = _view(es, offs[k], exts[k])
            bk_rhs = r if k == 0 else _view(rhss, offs[k], exts[k])
            kk = _kview(kinds, offs[k], exts[k])
            if k + 1 < L:
                prolong_add(_view(es, offs[k + 1], exts[k + 1]), _kview(kinds, offs[k + 1], exts[k + 1]),
                            ext_tab[k + 1], kk, ext_tab[k], f_tab[k], ek)
            if nu2:
                smooth(ek, bk_rhs, kk, ext_tab[k], w_tab[k], nu2, True)
        rz_new = dot_tree(r, z, kind)
        if it == 0:
            p[...] = z
        else:
            coef[0, 0] = rz_new / rz if rz > 0 else 0.0
            xpby_unknowns(z, coef, p, kind, ext)  # p = z + beta p
        rz = rz_new
        residual(p, zero, kind, ext, w, q)  # q = -A p
        pq = dot_tree(p, q, kind)
        coef[0, 0] = rz / (-pq) if -pq > 0 else 0.0
        axpy_unknowns(coef, p, x, kind, ext)  # x += alpha p
        axpy_unknowns(coef, q, r, kind, ext)  # r -= alpha A p
        it += 1
        est = _relative(dot_tree(r, r, kind), rr0)
        said_ok = est <= tol
        if said_ok or not np.isfinite(est) or it == max_iter:
            residual(x, r0, kind, ext, w, q)  # the true residual r0 - A x (q is free here)
            true = _relative(dot_tree(q, q, kind), rr0)
            rel = true
            if true <= tol:
                status = 1
                break
            if not np.isfinite(true):
                status = 3
                break
            if said_ok and true > stall_ratio * last:
                status = 2
                break
            last = true
    return rel, status, it


@njit(**_OPTS)
def mg_solve_samples(dst, guide, gidx, mask, alpha, mode, samples, box_lo, box_hi, ndim, clip_lo, clip_hi, do_clip,
                     tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio, out, res, status, iters):
    """Solve every system (b, c) of the samples ``samples`` one at a time, whole, and write
    clip(dst + e) into ``out`` (holding dst).

    dst, guide, out: (B, C, D, H, W), sample b's guidance in ``guide[gidx[b]]``; mask: (B, D, H, W) uint8; alpha: (B,) float64; box_lo,
    box_hi: (B, 3) int64 mask bounding boxes; clip_lo, clip_hi: (B, C); res, status, iters: (B, C)
    outputs (relative residual, status code, PCG iterations).
    """
    C = dst.shape[1]
    halo = np.zeros((1, 3), np.int64)
    halo[0, 1] = 1
    halo[0, 2] = 1
    if ndim == 3:
        halo[0, 0] = 1
    for t in range(samples.shape[0]):
        b = samples[t]
        off = np.empty((1, 3), np.int64)
        ext = np.empty((1, 3), np.int64)
        for a in range(3):
            off[0, a] = box_lo[b, a] - halo[0, a]
            ext[0, a] = box_hi[b, a] - box_lo[b, a] + 2 * halo[0, a]
        if ndim == 2:
            ext[0, 0] = 1
        kind = np.empty((1, ext[0, 0], ext[0, 1], ext[0, 2]), np.uint8)
        build_kind(mask[b:b + 1], off, ext, kind)
        shape5 = (1, 1, ext[0, 0], ext[0, 1], ext[0, 2])
        dc = np.empty(shape5, dst.dtype)
        gc = np.empty(shape5, dst.dtype)
        rhs = np.empty(shape5, dst.dtype)
        for c in range(C):
            gather_crop(dst[b:b + 1, c:c + 1], off, ext, dc)
            if mode <= 3:
                gb = gidx[b]
                gather_crop(guide[gb:gb + 1, c:c + 1], off, ext, gc)
            guidance_rhs(dc, gc if mode <= 3 else dc, kind, ext, alpha[b:b + 1], mode, rhs)
            x = np.zeros(shape5, dst.dtype)
            rel, st, it = solve_system(kind, rhs, x, tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio)
            scatter_crop(x, kind, off, ext, clip_lo[b:b + 1, c:c + 1], clip_hi[b:b + 1, c:c + 1], do_clip,
                         out[b:b + 1, c:c + 1])
            res[b, c] = rel
            status[b, c] = st
            iters[b, c] = it
