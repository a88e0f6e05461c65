"""One system, the whole multigrid-preconditioned CG solve in one call: the CPU twin of the CUDA
kernel ``mg_solve`` (kernels/mg.cu), which solves one system per thread block.

The algorithm is the driver's (:mod:`pii_augment.ops.solver`: PCG preconditioned by one symmetric
V-cycle, each sample coarsening on its own schedule, the offset-invariant residual test on the
correction, the stall rule) for a single system, with every array of the system local and small
enough to stay in cache, and no Python between the steps. Every per-cell operation is the one the
batched driver's primitives (:mod:`pii_augment.ops._numba_kernels`) and the CUDA kernels compute,
in the same order and dtypes; dot products are summed in the order of a block of 256 threads (256
strided partial sums, then a fixed tree), so that the twin and the CUDA kernel give the same bytes.

The solve runs on flat arrays (:func:`solve_flat`, 2D and 3D): every level has odd strides (level
0 is the crop with its rows padded to an odd length, and in 3D its planes to an odd number of
rows; every coarse level has a ring of absent cells), the loops have no branches and vectorise,
the diagonal and masks are computed once per level, and the smoother multiplies by 1 / diag
wherever that is exact (a power-of-two diagonal; the few other cells are divided). With odd
strides a cell's colour is the parity of its flat index, so the red-black smoother keeps each
level as its even and odd halves and a half-sweep updates one half from the other, over the
colour's cells alone (:func:`_half_sweep`); in 2D the prolongation adds straight into those
halves and the restriction sums a coarse row's fine rows in one loop. The conjugate-gradient
vectors stay in the crop's own layout, so that the dot products keep the CUDA kernel's order.
``tests/generic_twin.py`` writes the same solve with the batched driver's primitives;
``tests/ops/test_mg_system.py`` holds the flat solve and the CUDA kernel to it, byte for byte.

Status codes (``STATUS``, :class:`~pii_augment.ops.codes.Verdict`): 1 converged, 2 stalled at the
rounding floor, 3 non-finite, 4 stopped at ``max_iter``; 0 is "not solved here" (see
``mg_solve_samples``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ._numba_kernels import (
    ABSENT,
    DIVERGENCE,
    FIXED,
    PII,
    UNKNOWN,
    _axis_pair,
    _guidance,
    _pair,
    _restrict_x,
    _restrict_weight,
)
from .codes import Verdict

STATUS = {v.name.lower(): int(v) for v in Verdict}

# The verdicts as plain ints for the compiled code (0: go on), as _numba_kernels' codes
# (AT_MAX_ITER: Verdict.MAX_ITER, named apart from solver.MAX_ITER, the iteration limits).
CONVERGED, STALLED, NONFINITE = int(Verdict.CONVERGED), int(Verdict.STALLED), int(Verdict.NONFINITE)
AT_MAX_ITER = int(Verdict.MAX_ITER)

#: nu1, nu2 (red-black sweeps down and up), coarsest (a sample stops coarsening when its largest
#: extent is at most this), max_levels, stall ratio: the settings of every whole-system solve.
#: A coarsest level of at most 8 cells a side rather than 2: the same PCG iterations (ellipses at
#: 256^2: 5.52 against 5.50 on average; 64^2 to 1024^2 and 64^3 the same or +0.06) for two to
#: four fewer levels, whose calls cost more than their cells (one thread: 4-30 % less time,
#: benchmarks/RESULTS.md, thirteenth session).
MG_DEFAULTS = (2, 2, 8, 16, 0.5)


def crop_extents(lo: np.ndarray, hi: np.ndarray, ndim: int) -> np.ndarray:
    """(..., 3) int64 (D, H, W) of crops: each mask's bounding box [lo, hi) (along z, y, x; lo, hi
    of shape (..., 3)) and a one-cell halo (along z only in 3D; D = 1 in 2D).

    Example::

        >>> crop_extents(np.array([[0, 3, 4], [0, 1, 1]]), np.array([[1, 9, 8], [1, 5, 20]]), 2).tolist()
        [[1, 8, 6], [1, 6, 21]]
    """
    e = np.asarray(hi, np.int64) - np.asarray(lo, np.int64) + 2
    if ndim != 3:
        e[..., 0] = 1
    return e


def crop_extent(lo: np.ndarray, hi: np.ndarray, ndim: int) -> tuple[int, int, int]:
    """(D, H, W) of one sample's crop (:func:`crop_extents` of one box)."""
    D, H, W = (int(v) for v in crop_extents(lo, hi, ndim))
    return D, H, W


def levels_of(extent) -> int:
    """How many multigrid levels a crop of this extent gets (the hierarchy of MG_DEFAULTS)."""
    return int(hierarchy(np.asarray(extent, np.int64), MG_DEFAULTS[2], MG_DEFAULTS[3])[0].shape[0])

_OPTS = dict(cache=True, nogil=True)


@njit(inline="always")
def _tree_sum(acc):
    # the block's fixed tree over 256 partial sums: acc[t] += acc[t + s] for s = 128, 64, ..., 1
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


@njit(inline="always")
def _ratio(a, b):
    # a / b of the PCG step sizes, 0 when b is not positive (nothing left to do)
    return a / b if b > 0 else 0.0


@njit(inline="always")
def _first_verdict(rr0, tol):
    # (relative residual, status) before any iteration: CONVERGED, NONFINITE or 0 (iterate)
    rel = _relative(rr0, rr0)  # 1, 0 or NaN
    if rel <= tol:
        return rel, CONVERGED
    if not np.isfinite(rel):
        return rel, NONFINITE
    return rel, 0


@njit(inline="always")
def _verdict(true, said_ok, tol, last, stall_ratio):
    # the status after a check of the true residual: CONVERGED, NONFINITE, STALLED at the rounding
    # floor (the recursive residual said done, the true one did not fall enough since the last
    # check) or 0 (go on)
    if true <= tol:
        return CONVERGED
    if not np.isfinite(true):
        return NONFINITE
    if said_ok and true > stall_ratio * last:
        return STALLED
    return 0


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


@njit(**_OPTS)
def mg_solve_samples(dst, guide, gidx, mask, alpha, mode, samples, box_lo, box_hi, ndim, clip_lo, clip_hi, do_clip,
                     tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio, out, res, status, iters):
    """Solve every system (b, c) of the samples ``samples`` one at a time, whole, and write
    clip(dst + e) into ``out`` (holding dst).

    dst, guide, out: (B, C, D, H, W), sample b's guidance in ``guide[gidx[b]]``; mask: (B, D, H, W) uint8; alpha: (B,) float64; box_lo,
    box_hi: (B, 3) int64 mask bounding boxes; clip_lo, clip_hi: (B, C); res, status, iters: (B, C)
    outputs (relative residual, status code, PCG iterations).
    """
    for t in range(samples.shape[0]):
        solve_sample(dst, guide, gidx[samples[t]], mask, alpha, mode, samples[t], box_lo, box_hi, ndim, clip_lo,
                     clip_hi, do_clip, tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio, out, res, status,
                     iters)


@njit(**_OPTS)
def solve_sample(dst, guide, gb, mask, alpha, mode, b, box_lo, box_hi, ndim, clip_lo, clip_hi, do_clip, tol, max_iter,
                 nu1, nu2, coarsest, max_levels, stall_ratio, out, res, status, iters):
    """:func:`mg_solve_samples` for sample ``b`` alone, its guidance ``guide[gb]``: every channel's
    system on the crop of its mask box and a one-cell halo (the preparation pass calls it while
    the sample is in cache, :func:`pii_augment.ops._host_kernels.prepare_samples`)."""
    off = np.empty((1, 3), np.int64)
    ext = np.empty((1, 3), np.int64)
    for a in range(3):
        h = 1 if (a > 0 or ndim == 3) else 0
        off[0, a] = box_lo[b, a] - h
        ext[0, a] = box_hi[b, a] - box_lo[b, a] + 2 * h
    if ndim == 2:
        ext[0, 0] = 1
    _solve_sample_flat(dst, guide, gb, mask, b, dst.shape[1], alpha[b], mode, off, ext, clip_lo, clip_hi, do_clip, tol,
                       max_iter, nu1, nu2, coarsest, max_levels, stall_ratio, out, res, status, iters)


# --- The same solve on flat arrays (2D and 3D) ----------------------------------------------------
#
# A system's level k is one flat array with odd strides: level 0 the crop itself (D x H x W, a
# halo of non-unknown cells around the mask's box; its rows padded with an absent cell when W is
# even, in 3D its planes with an absent row when H is even), every coarser level its crop with a
# ring of absent cells (ABSENT, value 0) around it (in z too, in 3D), so that on every level each
# unknown has its neighbours in the array and its colour is the parity of its flat index. The stencil loops run over the rows and planes that hold unknowns
# as one flat range (cells on the ring or the halo are computed and thrown away), which the
# compiler vectorises. On the correction every cell that is not unknown holds 0, so a stencil may
# add all its neighbours: an absent one adds 0, which is what leaving it out adds; what depends on
# which neighbours are present (the diagonal) is computed once per level. Each per-cell value is
# the expression of the generic primitives above (same operations, same order, same dtypes), so
# the flat solve gives the bytes of the generic twin (tests/generic_twin.py) and of the CUDA
# kernel; only the sign of an exact zero may differ (x + 0 for an absent neighbour, a term of
# weight 0 left out, 0 times a negative sum on a cell that is not unknown), which compares equal
# and never reaches the output (only unknowns are written).

# error_model="numpy": a division by 0 (on cells that are thrown away) gives inf instead of raising,
# which is what lets the loops vectorise
_FLAT = dict(cache=True, nogil=True, error_model="numpy")

# Columns of a level's geometry row (solve_flat): row stride, plane stride, the flat range
# [START, START + N) that holds the unknowns, its first plane and number of planes, rows per
# plane in it (from row 1), the z and y/x padding, and the ring's parity shift of the colours.
_S, _P, _START, _N, _Z0, _NZ, _ROWS, _PZ, _PAD = range(9)


@njit(inline="always")
def _full_diagonal(three, wz, wy, wx):
    # the diagonal of an unknown with all its neighbours present (added as _stencil adds them), and
    # whether it is a power of two (then dividing by it is multiplying by its reciprocal)
    zero = wx - wx
    full = (((zero + wx) + wx) + wy) + wy
    if three:
        full = (full + wz) + wz
    return full, math.frexp(full)[0] == 0.5


@njit(inline="always")
def _stencil_views(a, lo, m, S):
    # the cells [lo, lo + m) of a level's flat array a, and their x-, x+, y- and y+ neighbours
    return a[lo:lo + m], a[lo - 1:lo - 1 + m], a[lo + 1:lo + 1 + m], a[lo - S:lo - S + m], a[lo + S:lo + S + m]


@njit(**_FLAT)
def _level_setup(kind, g, three, wz, wy, wx, diag, inv, unk, sm):
    # Per cell of the level's range, in one flat loop: the diagonal of an unknown (present
    # neighbours added in the order x-, x+, y-, y+, z-, z+, as _stencil adds them; adding 0 for an
    # absent one is exact), its reciprocal where dividing by the diagonal is multiplying by it (the
    # power of two of an unknown with all its neighbours, when the weights are equal), and the
    # flags "unknown" and "the smoother updates it" (an unknown with a neighbour; its colour is the
    # parity of its flat index, see _half_sweep). Returns how many updated cells need the division
    # (_division_cells).
    S, P, start, n = g[_S], g[_P], g[_START], g[_N]
    zero = wx - wx
    full, full_pow2 = _full_diagonal(three, wz, wy, wx)
    kc, kw, ke, kn, ks = _stencil_views(kind, start, n, S)
    dg = diag[start:start + n]
    iv = inv[start:start + n]
    uk = unk[start:start + n]
    sv = sm[start:start + n]
    for i in range(n):  # the diagonal, added in the order of _stencil (no branches)
        d = zero + (wx if kw[i] != ABSENT else zero)
        d = d + (wx if ke[i] != ABSENT else zero)
        d = d + (wy if kn[i] != ABSENT else zero)
        dg[i] = d + (wy if ks[i] != ABSENT else zero)
    if three:
        kd = kind[start - P:start - P + n]
        ku = kind[start + P:start + P + n]
        for i in range(n):
            d = dg[i] + (wz if kd[i] != ABSENT else zero)
            dg[i] = d + (wz if ku[i] != ABSENT else zero)
    n_div = 0
    for i in range(n):
        d = dg[i]
        u = kc[i] == UNKNOWN
        s = u & (d > zero)
        dg[i] = d if u else zero
        iv[i] = 1 / d if s else zero
        uk[i] = u
        sv[i] = s
        n_div += s & ((d != full) | (not full_pow2))
    return n_div


@njit(**_FLAT)
def _has_lone_unknowns(unk, sm):
    # whether some unknown of the level has no neighbour (the smoother never updates it)
    n = 0
    for j in range(unk.shape[0]):
        n += unk[j] & (sm[j] ^ 1)
    return n > 0


@njit(**_FLAT)
def _division_cells(diag, sm, q, g, three, wz, wy, wx, out):
    # the cells that the smoother updates, of flat-index parity q, whose diagonal is not the power
    # of two of an unknown with all its neighbours present (_level_setup counted them): the
    # smoother divides there
    full, full_pow2 = _full_diagonal(three, wz, wy, wx)
    n = 0
    for j in range(g[_START], g[_START] + g[_N]):
        if sm[j] and (j & 1) == q and (diag[j] != full or not full_pow2):
            out[n] = j
            n += 1
    return n


@njit(**_FLAT)
def _coarsen_flat(kf, gf, ezf, eyf, exf, fz, fy, fx, kc, gc, ezc, eyc, exc, three):
    # coarsen_kind() between levels: unknown iff an unknown child and no fixed child (ABSENT
    # ignored). In 2D, coarse cells with four children inside the fine extent take a branch-free path.
    Sf, Pf, pzf, pf = gf[_S], gf[_P], gf[_PZ], gf[_PAD]
    Sc, Pc, pzc = gc[_S], gc[_P], gc[_PZ]
    full_y = eyf // 2 if (fy and not three) else 0
    full_x = exf // 2 if fx else 0
    for Z in range(ezc):
        for Y in range(eyc):
            b = (Z + pzc) * Pc + (Y + 1) * Sc + 1
            out = kc[b:b + exc]
            lo = 0
            if Y < full_y:
                r0 = kf[(2 * Y + pf) * Sf + pf:(2 * Y + pf) * Sf + pf + 2 * full_x]
                r1 = kf[(2 * Y + 1 + pf) * Sf + pf:(2 * Y + 1 + pf) * Sf + pf + 2 * full_x]
                for X in range(full_x):
                    a, b_, c, d = r0[2 * X], r0[2 * X + 1], r1[2 * X], r1[2 * X + 1]
                    has1 = (a == FIXED) | (b_ == FIXED) | (c == FIXED) | (d == FIXED)
                    has2 = (a == UNKNOWN) | (b_ == UNKNOWN) | (c == UNKNOWN) | (d == UNKNOWN)
                    out[X] = FIXED if has1 else (UNKNOWN if has2 else ABSENT)
                lo = full_x
            for X in range(lo, exc):
                has1 = False
                has2 = False
                for dz in range(1 + fz):
                    z = (Z << fz) + dz
                    if z >= ezf:
                        continue
                    for dy in range(1 + fy):
                        y = (Y << fy) + dy
                        if y >= eyf:
                            continue
                        for dx in range(1 + fx):
                            x = (X << fx) + dx
                            if x >= exf:
                                continue
                            k = kf[(z + pzf) * Pf + (y + pf) * Sf + x + pf]
                            if k == FIXED:
                                has1 = True
                            elif k == UNKNOWN:
                                has2 = True
                out[X] = FIXED if has1 else (UNKNOWN if has2 else ABSENT)


# --- The smoother on the colours' halves ------------------------------------------------------
#
# Every level has odd strides, so a cell's colour (the parity of z + y + x) is the parity of its
# flat index j (shifted by the level's _PZ). The smoother keeps each level as two halves, A[i] =
# e[2i] and B[i] = e[2i + 1] (_split, _merge): a half-sweep updates one half from the other, and
# every neighbour of j = 2i is a constant offset from i in the other half, so the loop runs over the
# colour's cells alone, contiguous, and vectorises (no cell of the other colour computed and thrown
# away, no select over the whole range). The per-cell values are the ones of smooth().


@njit(**_FLAT)
def _split(e, a, b):
    # a[i] = e[2i], b[i] = e[2i + 1] (a level's array into its even and odd halves)
    n = e.shape[0] // 2
    for i in range(n):
        a[i] = e[2 * i]
        b[i] = e[2 * i + 1]
    if e.shape[0] & 1:
        a[n] = e[2 * n]


@njit(**_FLAT)
def _merge(a, b, e):
    # the inverse of _split
    n = e.shape[0] // 2
    for i in range(n):
        e[2 * i] = a[i]
        e[2 * i + 1] = b[i]
    if e.shape[0] & 1:
        e[2 * n] = a[n]


@njit(inline="always")
def _colour_range(g, q):
    # the half-indices [i0, i0 + m) of the level range's cells whose flat index has parity q
    start, n = g[_START], g[_N]
    j0 = start + ((start + q) & 1)
    j1 = start + n - 1
    j1 -= (j1 + q) & 1
    return j0 >> 1, (j1 >> 1) - (j0 >> 1) + 1


@njit(inline="always")
def _offsets(q, S, P):
    # offsets into the other half of the neighbours x-, x+, y-, y+, z-, z+ of the cell j = 2i + q
    hs, hp = (S - 1) // 2, (P - 1) // 2
    if q == 0:
        return -1, 0, -(hs + 1), hs, -(hp + 1), hp
    return 0, 1, -hs, hs + 1, -hp, hp + 1


#: How a half-sweep treats the half it writes: KEEP its cells that it does not update, ZERO them
#: (the half held 0 before), FROM_ZERO (both halves held 0: the neighbours are not read), or
#: store every cell's value (ALL: the level has no unknown without a neighbour, so every cell
#: that is not updated is not unknown and has rhs = 0 and 1 / diag = 0, and its value, 0 times a
#: finite sum, is the 0 it held, up to the sign of the zero).
KEEP, ZERO, FROM_ZERO, ALL = 0, 1, 2, 3


@njit(inline="always")
def _half_sweep(x, y, rhs, inv, sm, diag, dh, fix, q, g, three, wz, wy, wx, how, divide):
    # One colour of smooth() on the level's range: the half x (parity q) from the other half y.
    # u = (rhs + neighbours) / diag on the cells sm holds (unknowns of this colour with a
    # neighbour), computed as (rhs + neighbours) * (1 / diag), the same number where diag is a power
    # of two; the cells ``fix`` (flat indices of the others) are computed again with the division.
    # With ``divide`` (a level where most cells need it: 3D, or weights that differ), every cell is
    # divided in the vector loop instead (the same correctly rounded quotient), and ``fix`` is not
    # read. rhs, inv, sm, dh (the diagonal): this half's; diag: the level's (flat). ``how``: KEEP,
    # ZERO, FROM_ZERO or ALL (not with ``divide``).
    S, P = g[_S], g[_P]
    i0, m = _colour_range(g, q)
    dl, dr, dn, ds, dd, du = _offsets(q, S, P)
    zero = wx - wx
    xx = x[i0:i0 + m]
    rr = rhs[i0:i0 + m]
    iv = inv[i0:i0 + m]
    mm = sm[i0:i0 + m]
    dv = dh[i0:i0 + m]
    if how == FROM_ZERO and divide:
        for i in range(m):
            xx[i] = rr[i] / dv[i] if mm[i] else zero
        return
    if how == FROM_ZERO:  # rhs + (wx (0 + 0) + wy (0 + 0)) is rhs (up to the sign of a zero)
        for i in range(m):
            xx[i] = rr[i] * iv[i] if mm[i] else zero
        for t in range(fix.shape[0]):
            i = fix[t] >> 1
            x[i] = rhs[i] / diag[fix[t]]
        return
    yl = y[i0 + dl:i0 + dl + m]
    yr = y[i0 + dr:i0 + dr + m]
    yn = y[i0 + dn:i0 + dn + m]
    ys = y[i0 + ds:i0 + ds + m]
    if divide:  # cells that are not updated divide by 0: the select drops them
        if three:
            yd = y[i0 + dd:i0 + dd + m]
            yu = y[i0 + du:i0 + du + m]
            for i in range(m):
                v = (rr[i] + ((wx * (yl[i] + yr[i]) + wy * (yn[i] + ys[i])) + wz * (yd[i] + yu[i]))) / dv[i]
                xx[i] = v if mm[i] else (zero if how == ZERO else xx[i])
        else:
            for i in range(m):
                v = (rr[i] + (wx * (yl[i] + yr[i]) + wy * (yn[i] + ys[i]))) / dv[i]
                xx[i] = v if mm[i] else (zero if how == ZERO else xx[i])
        return
    if three:
        yd = y[i0 + dd:i0 + dd + m]
        yu = y[i0 + du:i0 + du + m]
        if how == ALL:
            for i in range(m):
                xx[i] = (rr[i] + ((wx * (yl[i] + yr[i]) + wy * (yn[i] + ys[i])) + wz * (yd[i] + yu[i]))) * iv[i]
        else:
            for i in range(m):
                v = (rr[i] + ((wx * (yl[i] + yr[i]) + wy * (yn[i] + ys[i])) + wz * (yd[i] + yu[i]))) * iv[i]
                xx[i] = v if mm[i] else (zero if how == ZERO else xx[i])
    elif how == ALL:
        for i in range(m):
            xx[i] = (rr[i] + (wx * (yl[i] + yr[i]) + wy * (yn[i] + ys[i]))) * iv[i]
    else:
        for i in range(m):
            v = (rr[i] + (wx * (yl[i] + yr[i]) + wy * (yn[i] + ys[i]))) * iv[i]
            xx[i] = v if mm[i] else (zero if how == ZERO else xx[i])
    for t in range(fix.shape[0]):
        j = fix[t]
        i = j >> 1
        nb = wx * (y[i + dl] + y[i + dr]) + wy * (y[i + dn] + y[i + ds])
        if three:
            nb = nb + wz * (y[i + dd] + y[i + du])
        x[i] = (rhs[i] + nb) / diag[j]


@njit(**_FLAT)
def _pad_rows(nat, pad, D, H, W, g0):
    # a crop (D * H * W, natural strides) into level 0's padded layout (the pad cells untouched)
    S, P = g0[_S], g0[_P]
    for z in range(D):
        for y in range(H):
            pad[z * P + y * S:z * P + y * S + W] = nat[(z * H + y) * W:(z * H + y + 1) * W]


@njit(**_FLAT)
def _unpad_rows(pad, nat, D, H, W, g0):
    # the inverse of _pad_rows
    S, P = g0[_S], g0[_P]
    for z in range(D):
        for y in range(H):
            nat[(z * H + y) * W:(z * H + y + 1) * W] = pad[z * P + y * S:z * P + y * S + W]


@njit(inline="always")
def _half_at(ha, hb, j):
    # the value of flat cell j from a level's halves
    return ha[j >> 1] if j & 1 == 0 else hb[j >> 1]


@njit(**_FLAT)
def _residual_halves(ea, eb, ra, rb, da, db, ua, ub, g, three, wz, wy, wx, r):
    # _residual_flat() on a level held as halves (the correction ea, eb; its right-hand side ra,
    # rb; the diagonal da, db; "unknown" ua, ub), into the flat array r: each pair of cells
    # (2i, 2i + 1) in one iteration, the even one's neighbours from eb, the odd one's from ea
    S, P, start, n = g[_S], g[_P], g[_START], g[_N]
    zero = wx - wx
    hs, hp = (S - 1) // 2, (P - 1) // 2
    i0 = (start + 1) >> 1  # the pairs (2i, 2i + 1) inside the range
    m = ((start + n - 2) >> 1) - i0 + 1
    ae, be = ea[i0:i0 + m], eb[i0:i0 + m]
    bw, bn, bs = eb[i0 - 1:i0 - 1 + m], eb[i0 - hs - 1:i0 - hs - 1 + m], eb[i0 + hs:i0 + hs + m]
    ae2, an, as_ = ea[i0 + 1:i0 + 1 + m], ea[i0 - hs:i0 - hs + m], ea[i0 + hs + 1:i0 + hs + 1 + m]
    rra, rrb, dda, ddb, mma, mmb = ra[i0:i0 + m], rb[i0:i0 + m], da[i0:i0 + m], db[i0:i0 + m], ua[i0:i0 + m], ub[i0:i0 + m]
    ro = r[2 * i0:2 * i0 + 2 * m]
    if three:
        bd, bu = eb[i0 - hp - 1:i0 - hp - 1 + m], eb[i0 + hp:i0 + hp + m]
        ad, au = ea[i0 - hp:i0 - hp + m], ea[i0 + hp + 1:i0 + hp + 1 + m]
        for i in range(m):
            v = rra[i] - (dda[i] * ae[i] - ((wx * (bw[i] + be[i]) + wy * (bn[i] + bs[i])) + wz * (bd[i] + bu[i])))
            ro[2 * i] = v if mma[i] else zero
            v = rrb[i] - (ddb[i] * be[i] - ((wx * (ae[i] + ae2[i]) + wy * (an[i] + as_[i])) + wz * (ad[i] + au[i])))
            ro[2 * i + 1] = v if mmb[i] else zero
    else:
        for i in range(m):
            v = rra[i] - (dda[i] * ae[i] - (wx * (bw[i] + be[i]) + wy * (bn[i] + bs[i])))
            ro[2 * i] = v if mma[i] else zero
            v = rrb[i] - (ddb[i] * be[i] - (wx * (ae[i] + ae2[i]) + wy * (an[i] + as_[i])))
            ro[2 * i + 1] = v if mmb[i] else zero
    for j in (start, start + n - 1):  # the range's first and last cell, when outside the pairs
        if 2 * i0 <= j < 2 * (i0 + m):
            continue
        nb = wx * (_half_at(ea, eb, j - 1) + _half_at(ea, eb, j + 1)) + wy * (_half_at(ea, eb, j - S) +
                                                                             _half_at(ea, eb, j + S))
        if three:
            nb = nb + wz * (_half_at(ea, eb, j - P) + _half_at(ea, eb, j + P))
        v = _half_at(ra, rb, j) - (_half_at(da, db, j) * _half_at(ea, eb, j) - nb)
        r[j] = v if _half_at(ua, ub, j) else zero


@njit(inline="always")
def _crop_row_views(nat, ha, hb, z, y, H, W, g0):
    # row (z, y) of a crop in its own layout (D * H * W), and that row's even-x and odd-x cells in
    # level 0's halves (its padded layout)
    he, ho, ie, io = _row_halves(ha, hb, z * g0[_P] + y * g0[_S])
    return nat[(z * H + y) * W:(z * H + y + 1) * W], he[ie:ie + (W + 1) // 2], ho[io:io + W // 2]


@njit(**_FLAT)
def _split_rows(nat, ha, hb, D, H, W, g0):
    # a crop straight into level 0's halves (the pad cells untouched): _pad_rows then _split
    # (each row's even and odd cells in one loop: two stride-2 loops of their own do not vectorise)
    h = W // 2
    for z in range(D):
        for y in range(H):
            row, ev, od = _crop_row_views(nat, ha, hb, z, y, H, W, g0)
            for i in range(h):
                ev[i] = row[2 * i]
                od[i] = row[2 * i + 1]
            if W & 1:
                ev[h] = row[W - 1]


@njit(**_FLAT)
def _merge_rows(ha, hb, nat, D, H, W, g0):
    # the inverse of _split_rows
    h = W // 2
    for z in range(D):
        for y in range(H):
            row, ev, od = _crop_row_views(nat, ha, hb, z, y, H, W, g0)
            for i in range(h):
                row[2 * i] = ev[i]
                row[2 * i + 1] = od[i]
            if W & 1:
                row[W - 1] = ev[h]


@njit(inline="always")
def _residual_span(u, rhs, unk, diag, S, P, lo, m, three, wz, wy, wx, r):
    # residual() on the cells [lo, lo + m) of a level's range: r = rhs - A u on unknowns, 0 elsewhere
    zero = wx - wx
    uc, uw, ue, un, us = _stencil_views(u, lo, m, S)
    rr = rhs[lo:lo + m]
    dd = diag[lo:lo + m]
    mm = unk[lo:lo + m]
    ro = r[lo:lo + m]
    if three:
        ud = u[lo - P:lo - P + m]
        uu = u[lo + P:lo + P + m]
        for i in range(m):
            v = rr[i] - (dd[i] * uc[i] - ((wx * (uw[i] + ue[i]) + wy * (un[i] + us[i])) + wz * (ud[i] + uu[i])))
            ro[i] = v if mm[i] else zero
    else:
        for i in range(m):
            v = rr[i] - (dd[i] * uc[i] - (wx * (uw[i] + ue[i]) + wy * (un[i] + us[i])))
            ro[i] = v if mm[i] else zero


@njit(**_FLAT)
def _residual_flat(u, rhs, unk, diag, g, three, wz, wy, wx, r):
    # residual(): r = rhs - A u on unknowns, 0 elsewhere (cells outside the range stay 0)
    _residual_span(u, rhs, unk, diag, g[_S], g[_P], g[_START], g[_N], three, wz, wy, wx, r)


@njit(**_FLAT)
def _restrict_flat(r_f, gf, ezf, eyf, exf, kind_c, gc, ezc, eyc, exc, fz, fy, fx, rhs_c, acc):
    # restrict() between levels; the coarse level has a ring
    Sf, Pf, pzf, pf = gf[_S], gf[_P], gf[_PZ], gf[_PAD]
    Sc, Pc, pzc = gc[_S], gc[_P], gc[_PZ]
    scale = 1.0 / (1 << (fz + fy + fx))
    hi = min(exc - 2, (exf - 3) // 2) + 1 if fx else 0  # X whose four fine cells are inside
    for Z in range(ezc):
        for Y in range(eyc):
            acc[:exf] = 0.0
            for z in range(max((Z << fz) - fz, 0), min((Z << fz) + 1 + 2 * fz, ezf)):
                wz_ = _restrict_weight(Z, z, fz, ezc)
                if wz_ == 0.0:
                    continue
                for y in range(max((Y << fy) - fy, 0), min((Y << fy) + 1 + 2 * fy, eyf)):
                    wzy = wz_ * _restrict_weight(Y, y, fy, eyc)
                    if wzy == 0.0:
                        continue
                    b = (z + pzf) * Pf + (y + pf) * Sf + pf
                    row = r_f[b:b + exf]
                    for x in range(exf):
                        acc[x] += wzy * row[x]
            b = (Z + pzc) * Pc + (Y + 1) * Sc + 1
            out = rhs_c[b:b + exc]
            kc = kind_c[b:b + exc]
            for X in range(1, hi):  # restrict()'s first case, without branches
                v = (0.25 * acc[2 * X - 1] + 0.75 * acc[2 * X] + 0.75 * acc[2 * X + 1] + 0.25 * acc[2 * X + 2]) * scale
                out[X] = v if kc[X] == UNKNOWN else 0.0
            for q in range(exc - max(hi, 1) + 1):  # the other X: 0, then hi (or 1) to exc - 1
                X = q + max(hi, 1) - 1 if q else 0
                out[X] = _restrict_x(acc, X, fx, exc, exf) * scale if kc[X] == UNKNOWN else 0


@njit(**_FLAT)
def _prolong_table(exf, fx, exc, x0, x1, w0, w1):
    # _axis_pair() of every fine x, once per level
    for x in range(exf):
        x0[x], x1[x], w0[x], w1[x] = _axis_pair(x, fx, exc)


@njit(**_FLAT)
def _prolong_flat(e_c, gc, ezc, eyc, exc, unk_f, gf, ezf, eyf, exf, fz, fy, fx, x0, x1, w0, w1, u_f, ec, fr):
    # prolong_add() between levels (the coarse level has a ring); x0 .. w1: _prolong_table()
    Sf, Pf, pzf, pf = gf[_S], gf[_P], gf[_PZ], gf[_PAD]
    Sc, Pc, pzc = gc[_S], gc[_P], gc[_PZ]
    for z in range(ezf):
        z0, z1, wz0, wz1 = _axis_pair(z, fz, ezc)
        for y in range(eyf):
            y0, y1, wy0, wy1 = _axis_pair(y, fy, eyc)
            w00, w01, w10, w11 = wz0 * wy0, wz0 * wy1, wz1 * wy0, wz1 * wy1
            a00 = e_c[(z0 + pzc) * Pc + (y0 + 1) * Sc + 1:(z0 + pzc) * Pc + (y0 + 1) * Sc + 1 + exc]
            a01 = e_c[(z0 + pzc) * Pc + (y1 + 1) * Sc + 1:(z0 + pzc) * Pc + (y1 + 1) * Sc + 1 + exc]
            a10 = e_c[(z1 + pzc) * Pc + (y0 + 1) * Sc + 1:(z1 + pzc) * Pc + (y0 + 1) * Sc + 1 + exc]
            a11 = e_c[(z1 + pzc) * Pc + (y1 + 1) * Sc + 1:(z1 + pzc) * Pc + (y1 + 1) * Sc + 1 + exc]
            for X in range(exc):
                ec[X] = (w00 * a00[X] + w01 * a01[X]) + (w10 * a10[X] + w11 * a11[X])
            if fx == 1:  # _axis_pair() along x written out: even x = 2X from X and X - 1, odd from X and X + 1
                fr[0] = w0[0] * ec[0] + w1[0] * ec[0]
                if exf > 1:
                    fr[1] = 0.75 * ec[0] + 0.25 * ec[1] if 1 < exc else 1.0 * ec[0] + 0.0 * ec[0]
                m = max(1, min(exc - 1, exf // 2))  # the X below m (from 1) have both fine cells inside
                for X in range(1, m):  # one loop, so that the pair of stores vectorises
                    fr[2 * X] = 0.75 * ec[X] + 0.25 * ec[X - 1]
                    fr[2 * X + 1] = 0.75 * ec[X] + 0.25 * ec[X + 1]
                for X in range(m, exc):
                    fr[2 * X] = 0.75 * ec[X] + 0.25 * ec[X - 1]
                for X in range(m, exf // 2):
                    fr[2 * X + 1] = 0.75 * ec[X] + 0.25 * ec[X + 1] if X + 1 < exc else 1.0 * ec[X] + 0.0 * ec[X]
            else:
                for x in range(exf):
                    fr[x] = w0[x] * ec[x0[x]] + w1[x] * ec[x1[x]]
            b = (z + pzf) * Pf + (y + pf) * Sf + pf
            uu = u_f[b:b + exf]
            mm = unk_f[b:b + exf]
            # uu + fr on unknowns; elsewhere uu + 0, uu itself: a cell that is not unknown holds +0 on
            # every level's correction (see above)
            for x in range(exf):
                uu[x] = uu[x] + (fr[x] if mm[x] else 0.0)


@njit(inline="always")
def _row_halves(x_half_a, x_half_b, bf):
    # the halves holding a fine row's even and odd x (the row's first cell at flat index bf), and
    # the half-index of its x = 0 and x = 1 cells
    if bf & 1 == 0:
        return x_half_a, x_half_b, bf >> 1, bf >> 1
    return x_half_b, x_half_a, bf >> 1, (bf + 1) >> 1


@njit(**_FLAT)
def _restrict_2d(r_f, gf, eyf, exf, kind_c, gc, eyc, exc, rhs_c, acc):
    # _restrict_flat() for a 2D level coarsened along y and x: each coarse row's fine rows summed
    # in one loop (their y weights, in the order of y; a row that is not there adds 0 times a row
    # that is, an exact zero), then the x weights as there
    Sf, pf, Sc = gf[_S], gf[_PAD], gc[_S]
    hi = min(exc - 2, (exf - 3) // 2) + 1  # X whose four fine cells are inside
    for Y in range(eyc):
        y0 = 2 * Y
        w0 = 0.25 if Y >= 1 else 0.0  # row 2Y - 1
        w1 = 0.75 if Y >= 1 else 1.0  # row 2Y
        w2 = (0.75 if Y + 1 < eyc else 1.0) if y0 + 1 < eyf else 0.0
        w3 = 0.25 if y0 + 2 < eyf else 0.0
        b1 = (y0 + pf) * Sf + pf
        r0 = r_f[b1 - Sf:b1 - Sf + exf] if Y >= 1 else r_f[b1:b1 + exf]
        r1 = r_f[b1:b1 + exf]
        r2 = r_f[b1 + Sf:b1 + Sf + exf] if y0 + 1 < eyf else r1
        r3 = r_f[b1 + 2 * Sf:b1 + 2 * Sf + exf] if y0 + 2 < eyf else r1
        for x in range(exf):
            acc[x] = ((w0 * r0[x] + w1 * r1[x]) + w2 * r2[x]) + w3 * r3[x]
        b = (Y + 1) * Sc + 1
        out = rhs_c[b:b + exc]
        kc = kind_c[b:b + exc]
        for X in range(1, hi):  # restrict()'s first case, without branches
            v = (0.25 * acc[2 * X - 1] + 0.75 * acc[2 * X] + 0.75 * acc[2 * X + 1] + 0.25 * acc[2 * X + 2]) * 0.25
            out[X] = v if kc[X] == UNKNOWN else 0.0
        for q in range(exc - max(hi, 1) + 1):  # the other X: 0, then hi (or 1) to exc - 1
            X = q + max(hi, 1) - 1 if q else 0
            out[X] = _restrict_x(acc, X, 1, exc, exf) * 0.25 if kc[X] == UNKNOWN else 0


@njit(**_FLAT)
def _prolong_halves_2d(e_c, gc, eyc, exc, gf, eyf, exf, ha, hb, ua, ub, te, to):
    # _prolong_flat() for a 2D level coarsened along y and x, added straight into the fine level's
    # halves (ha, hb: the correction; ua, ub: "unknown"): the same values, with the z terms of
    # weight 0 (they add an exact zero) left out. The y weights first, for every coarse row at
    # once (flat loops over the coarse level: te for the even fine rows 2Y, from rows Y and Y - 1,
    # to for the odd ones, from Y and Y + 1; the edge rows take _axis_pair's (1, 0)), then the x
    # weights row by row.
    Sc, Sf, pf = gc[_S], gf[_S], gf[_PAD]
    lo = Sc + 1  # coarse (Y, X) = (0, 0)
    n = (eyc - 1) * Sc + exc
    ce = e_c[lo:lo + n]
    cn = e_c[lo - Sc:lo - Sc + n]
    cs = e_c[lo + Sc:lo + Sc + n]
    tE = te[:n]
    tO = to[:n]
    for i in range(n):
        c = ce[i]
        tE[i] = 0.75 * c + 0.25 * cn[i]
        tO[i] = 0.75 * c + 0.25 * cs[i]
    for X in range(exc):  # fine row 0: _axis_pair(0) = (0, 0, 1, 0)
        tE[X] = 1.0 * ce[X] + 0.0 * ce[X]
    last = (eyc - 1) * Sc
    for X in range(exc):  # fine row 2 eyc - 1, when inside: (eyc - 1, eyc - 1, 1, 0)
        tO[last + X] = 1.0 * ce[last + X] + 0.0 * ce[last + X]
    m = max(1, min(exc - 1, exf // 2))  # the X below m (from 1) have both fine cells inside
    for y in range(eyf):
        t = tO if y & 1 else tE
        ec = t[(y >> 1) * Sc:(y >> 1) * Sc + exc]
        bf = (y + pf) * Sf + pf
        he, ho, ie, io = _row_halves(ha, hb, bf)
        ue, uo, _, _ = _row_halves(ua, ub, bf)
        # x = 0 and 1 (_axis_pair at the row's start)
        he[ie] = he[ie] + ((1.0 * ec[0] + 0.0 * ec[0]) if ue[ie] else 0.0)
        if exf > 1:
            v = 0.75 * ec[0] + 0.25 * ec[1] if 1 < exc else 1.0 * ec[0] + 0.0 * ec[0]
            ho[io] = ho[io] + (v if uo[io] else 0.0)
        ee = he[ie + 1:ie + m]
        oo = ho[io + 1:io + m]
        eu = ue[ie + 1:ie + m]
        ou = uo[io + 1:io + m]
        for X in range(m - 1):  # x = 2X and 2X + 1 for X from 1, both inside
            c = ec[X + 1]
            ee[X] = ee[X] + ((0.75 * c + 0.25 * ec[X]) if eu[X] else 0.0)
            oo[X] = oo[X] + ((0.75 * c + 0.25 * ec[X + 2]) if ou[X] else 0.0)
        for X in range(m, exc):
            v = 0.75 * ec[X] + 0.25 * ec[X - 1]
            he[ie + X] = he[ie + X] + (v if ue[ie + X] else 0.0)
        for X in range(m, exf // 2):
            v = 0.75 * ec[X] + 0.25 * ec[X + 1] if X + 1 < exc else 1.0 * ec[X] + 0.0 * ec[X]
            ho[io + X] = ho[io + X] + (v if uo[io + X] else 0.0)


@njit(inline="always")
def _acc_block(acc, aa, bb, mm, n):
    # one block of 256 cells into the partial sums: acc[t] += aa[t] * bb[t] (in float64) on unknowns
    for t in range(n):
        acc[t] += 1.0 * aa[t] * bb[t] if mm[t] else 0.0


@njit(**_FLAT)
def _dot_flat(a, b, unk, acc):
    # sum of a * b (in float64) over the unknowns, in the order of mg_solve's block of 256 threads:
    # cell i goes to partial sum i % 256, then the fixed tree
    acc[:256] = 0.0
    N = a.shape[0]
    for c0 in range(0, N, 256):
        n = min(256, N - c0)
        _acc_block(acc, a[c0:c0 + n], b[c0:c0 + n], unk[c0:c0 + n], n)
    return _tree_sum(acc)


@njit(**_FLAT)
def _neg_apply_dot(u, zeros, unk, diag, g, three, wz, wy, wx, q, acc):
    # q = -A u on unknowns (_residual_flat with a right-hand side of zeros: 0 - A u), and in the
    # same pass the sum of u * q over the unknowns in the order of _dot_flat (cells outside the
    # range are not unknown: they add nothing)
    S, P, start, n = g[_S], g[_P], g[_START], g[_N]
    acc[:256] = 0.0
    end = start + n
    c0 = start - (start & 255)
    while c0 < end:
        lo, hi = max(c0, start), min(c0 + 256, end)
        m = hi - lo
        _residual_span(u, zeros, unk, diag, S, P, lo, m, three, wz, wy, wx, q)
        _acc_block(acc[lo - c0:lo - c0 + m], u[lo:lo + m], q[lo:lo + m], unk[lo:lo + m], m)
        c0 += 256
    return _tree_sum(acc)


@njit(**_FLAT)
def _xpby_flat(x, s, y, unk):
    # xpby_unknowns(): y = x + s y on unknowns
    for i in range(y.shape[0]):
        y[i] = x[i] + s * y[i] if unk[i] else y[i]


@njit(**_FLAT)
def _update_flat(s, p, q, x, r, unk, acc):
    # axpy_unknowns() twice (x += s p, r += s q on unknowns; nothing when s == 0), then
    # _dot_flat(r, r), in one pass: the same operations per cell, the dot in its order
    acc[:256] = 0.0
    N = r.shape[0]
    for c0 in range(0, N, 256):
        n = min(256, N - c0)
        pp = p[c0:c0 + n]
        qq = q[c0:c0 + n]
        xx = x[c0:c0 + n]
        rr = r[c0:c0 + n]
        mm = unk[c0:c0 + n]
        if s != 0:
            for t in range(n):
                xx[t] = xx[t] + s * pp[t] if mm[t] else xx[t]
                rr[t] = rr[t] + s * qq[t] if mm[t] else rr[t]
        _acc_block(acc, rr, rr, mm, n)
    return _tree_sum(acc)


@njit(inline="always")
def _pair_pii(dp, dq, sp, sq, al):
    # _pair() of mode PII, the same operations
    dd = 1.0 * (dp - dq)
    return _guidance(1.0 - al, dp, dq, al, sp, sq, PII) - dd


@njit(**_FLAT)
def guidance_rhs_flat(d, g, kind, D, H, W, al, mode, rhs):
    """guidance_rhs() of one crop, flat: d, g (dst and guidance crops), kind, rhs of D * H * W cells
    (D == 1 in 2D); the crop's outer cells are never unknown (its halo), so every unknown has its
    neighbours in the arrays. rhs must hold 0 outside the planes and rows that hold unknowns."""
    three = D > 1
    P = H * W
    st = P if three else W  # the planes (3D) or rows (2D) that hold unknowns
    n = (D - 2) * P if three else (H - 2) * W
    dc, dw, de, dn, ds = d[st:st + n], d[st - 1:st - 1 + n], d[st + 1:st + 1 + n], d[st - W:st - W + n], d[st + W:st + W + n]
    gc, gw, ge, gn, gs = g[st:st + n], g[st - 1:st - 1 + n], g[st + 1:st + 1 + n], g[st - W:st - W + n], g[st + W:st + W + n]
    kc, kw, ke, kn, ks = (kind[st:st + n], kind[st - 1:st - 1 + n], kind[st + 1:st + 1 + n], kind[st - W:st - W + n],
                          kind[st + W:st + W + n])
    zs = P if three else 0  # 2D: the z terms below read the cell itself and are never added
    dd, du, gd, gu = d[st - zs:st - zs + n], d[st + zs:st + zs + n], g[st - zs:st - zs + n], g[st + zs:st + zs + n]
    kd, ku = kind[st - zs:st - zs + n], kind[st + zs:st + zs + n]
    out = rhs[st:st + n]
    if mode == PII and not three:  # the common case, without the mode's branches
        for i in range(n):
            acc = 0.0 + (_pair_pii(dc[i], dw[i], gc[i], gw[i], al) if kw[i] != ABSENT else 0.0)
            acc += _pair_pii(dc[i], de[i], gc[i], ge[i], al) if ke[i] != ABSENT else 0.0
            acc += _pair_pii(dc[i], dn[i], gc[i], gn[i], al) if kn[i] != ABSENT else 0.0
            acc += _pair_pii(dc[i], ds[i], gc[i], gs[i], al) if ks[i] != ABSENT else 0.0
            out[i] = acc if kc[i] == UNKNOWN else 0.0
        return
    for i in range(n):
        acc = 1.0 * gc[i] if mode == DIVERGENCE else 0.0
        acc += _pair(dc[i], dw[i], gc[i], gw[i], al, mode) if kw[i] != ABSENT else 0.0
        acc += _pair(dc[i], de[i], gc[i], ge[i], al, mode) if ke[i] != ABSENT else 0.0
        acc += _pair(dc[i], dn[i], gc[i], gn[i], al, mode) if kn[i] != ABSENT else 0.0
        acc += _pair(dc[i], ds[i], gc[i], gs[i], al, mode) if ks[i] != ABSENT else 0.0
        if three:
            acc += _pair(dc[i], dd[i], gc[i], gd[i], al, mode) if kd[i] != ABSENT else 0.0
            acc += _pair(dc[i], du[i], gc[i], gu[i], al, mode) if ku[i] != ABSENT else 0.0
        out[i] = acc if kc[i] == UNKNOWN else 0.0


@njit(**_FLAT)
def _geometry(exts, D, H, W):
    # every level's geometry row (_S, _P, ...): level 0 the crop (rows padded to an odd stride,
    # and in 3D planes to an odd number of rows), the coarser levels with a ring of absent cells
    # and odd row and plane strides: on every level a cell's colour is the parity of its flat index
    L = exts.shape[0]
    three = D > 1
    g = np.zeros((L, 9), np.int64)
    cells = np.zeros(L, np.int64)
    for k in range(L):
        ez, ey, ex = exts[k, 0], exts[k, 1], exts[k, 2]
        if k == 0:  # the crop, padded to odd strides (an absent column, and in 3D an absent row)
            S, R, Dk, pz, pad = W | 1, (H | 1) if three else H, D, 0, 0
            z0, nz, rows = (1, D - 2, H - 2) if three else (0, 1, H - 2)
        else:
            pad = 1
            pz = 1 if three else 0
            S = ex + 2 + ((ex + 1) & 1)  # odd
            R = ey + 2 + ((ey + 1) & 1) if three else ey + 2
            Dk = ez + 2 * pz
            z0, nz, rows = pz, ez if three else 1, ey
        P = R * S
        g[k, _S], g[k, _P], g[k, _Z0], g[k, _NZ], g[k, _ROWS], g[k, _PZ], g[k, _PAD] = S, P, z0, nz, rows, pz, pad
        g[k, _START] = z0 * P + S
        g[k, _N] = (nz - 1) * P + rows * S
        cells[k] = Dk * P
    return g, cells


@njit(inline="always")
def _flat_levels(kind0, r0, D, H, W, coarsest, max_levels):
    # the hierarchy of one system on flat arrays: the levels' geometry, labels, masks, diagonals,
    # division cells and prolongation tables, the smoother's halves (_half_sweep), and every
    # level's work arrays (see solve_flat)
    three = D > 1
    exts, ws, flags = hierarchy(np.array([D, H, W], np.int64), coarsest, max_levels)
    L = exts.shape[0]
    g, cells = _geometry(exts, D, H, W)
    offs = np.zeros(L + 1, np.int64)
    hoffs = np.zeros(L + 1, np.int64)  # each level's halves: [hoffs[k], hoffs[k + 1]) of the half arrays
    for k in range(L):
        offs[k + 1] = offs[k] + cells[k]
        hoffs[k + 1] = hoffs[k] + (cells[k] + 1) // 2
    n_all, h_all = offs[L], hoffs[L]
    dt = r0.dtype
    wt = ws.astype(dt)
    kinds = np.zeros(n_all, np.uint8)
    unks = np.zeros(n_all, np.uint8)
    sms = np.zeros(n_all, np.uint8)
    diags = np.zeros(n_all, dt)
    invs = np.zeros(n_all, dt)
    es = np.zeros(n_all, dt)
    rhss = np.zeros(n_all, dt)
    rs = np.zeros(n_all, dt)
    acc = np.empty(max(W, 256))
    ec = np.empty(W)
    fr = np.empty(W)
    xt0 = np.zeros((L, W), np.int64)  # the prolongation's x weights of every level (_prolong_table)
    xt1 = np.zeros((L, W), np.int64)
    wt0 = np.zeros((L, W))
    wt1 = np.zeros((L, W))
    _pad_rows(kind0, kinds[:offs[1]], D, H, W, g[0])
    n_div = np.zeros(L, np.int64)
    lone = np.zeros(L, np.bool_)  # the level has an unknown that the smoother does not update
    for k in range(L):
        a, b = offs[k], offs[k + 1]
        if k > 0:
            _coarsen_flat(kinds[offs[k - 1]:a], g[k - 1], exts[k - 1, 0], exts[k - 1, 1], exts[k - 1, 2], flags[k - 1, 0],
                          flags[k - 1, 1], flags[k - 1, 2], kinds[a:b], g[k], exts[k, 0], exts[k, 1], exts[k, 2], three)
        n_div[k] = _level_setup(kinds[a:b], g[k], three, wt[k, 0], wt[k, 1], wt[k, 2], diags[a:b], invs[a:b], unks[a:b],
                                sms[a:b])
        lone[k] = _has_lone_unknowns(unks[a:b], sms[a:b])
        if k + 1 < L:
            _prolong_table(exts[k, 2], flags[k, 2], exts[k + 1, 2], xt0[k], xt1[k], wt0[k], wt1[k])
    # the cells of each colour that the smoother divides at (_division_cells), level k's in
    # fix_c[fo_c[k]:fo_c[k + 1]]; colour 0 holds the cells whose flat index has the parity of _PZ
    fix0 = np.empty(n_div.sum(), np.int64)
    fix1 = np.empty(n_div.sum(), np.int64)
    fo0 = np.zeros(L + 1, np.int64)
    fo1 = np.zeros(L + 1, np.int64)
    # A level where more than a quarter of the cells would be divided (3D, or weights that differ)
    # divides every cell in the smoother's vector loop instead, and needs no list (_half_sweep).
    divide = np.zeros(L, np.bool_)
    for k in range(L):
        a, b = offs[k], offs[k + 1]
        w3 = (wt[k, 0], wt[k, 1], wt[k, 2])
        q0 = g[k, _PZ] & 1
        divide[k] = 4 * n_div[k] > b - a
        listed = n_div[k] and not divide[k]
        n0 = _division_cells(diags[a:b], sms[a:b], q0, g[k], three, w3[0], w3[1], w3[2], fix0[fo0[k]:]) if listed else 0
        n1 = _division_cells(diags[a:b], sms[a:b], 1 - q0, g[k], three, w3[0], w3[1], w3[2], fix1[fo1[k]:]) if listed else 0
        fo0[k + 1] = fo0[k] + n0
        fo1[k + 1] = fo1[k] + n1
    # the smoother's halves: the correction, its right-hand side, 1 / diag, "updated" and "unknown"
    ea = np.zeros(h_all, dt)
    eb = np.zeros(h_all, dt)
    ra = np.zeros(h_all, dt)
    rb = np.zeros(h_all, dt)
    ia = np.zeros(h_all, dt)
    ib = np.zeros(h_all, dt)
    sa = np.zeros(h_all, np.uint8)
    sb = np.zeros(h_all, np.uint8)
    ua = np.zeros(h_all, np.uint8)
    ub = np.zeros(h_all, np.uint8)
    da = np.zeros(h_all, dt)
    db = np.zeros(h_all, dt)
    for k in range(L):
        a, b = offs[k], offs[k + 1]
        c, d = hoffs[k], hoffs[k + 1]
        _split(invs[a:b], ia[c:d], ib[c:d])
        _split(diags[a:b], da[c:d], db[c:d])
        _split(sms[a:b], sa[c:d], sb[c:d])
        _split(unks[a:b], ua[c:d], ub[c:d])
    te = np.empty(cells[1] if L > 1 else 1)  # the 2D prolongation's y-weighted coarse rows (_prolong_halves_2d)
    to = np.empty(cells[1] if L > 1 else 1)
    lv = (L, three, offs, g, exts, flags, wt, unks, kinds, diags, fix0, fix1, fo0, fo1, xt0, xt1, wt0, wt1, hoffs, ea,
          eb, ra, rb, ia, ib, sa, sb, ua, ub, lone, te, to, da, db, divide)
    return lv, es, rhss, rs, acc, ec, fr


@njit(**_FLAT)
def _smooth_level(ex, ey, rx, ry, ix, iy, sx, sy, dx, dy, dg, f0, f1, q0, gk, three, wz, wy, wx, nu, first, down, lone,
                  divide):
    # nu red-black sweeps of one level on its halves (ex, rx, ix, sx, dx: colour 0's correction,
    # right-hand side, 1 / diag, flags and diagonal, of parity q0; ey ...: colour 1's): down the
    # V-cycle colour 0 then 1 (from a zero correction when ``first``: the first sweep reads no
    # neighbours), up it colour 1 then 0. One call per level and leg, the half-sweeps inlined.
    sel = lone or divide  # the cells that are not updated are kept (or zeroed), not stored
    keep = KEEP if sel else ALL
    for s in range(nu):
        if down:
            _half_sweep(ex, ey, rx, ix, sx, dg, dx, f0, q0, gk, three, wz, wy, wx,
                        FROM_ZERO if first and s == 0 else keep, divide)
            _half_sweep(ey, ex, ry, iy, sy, dg, dy, f1, 1 - q0, gk, three, wz, wy, wx,
                        (ZERO if sel else ALL) if first and s == 0 else keep, divide)
        else:
            _half_sweep(ey, ex, ry, iy, sy, dg, dy, f1, 1 - q0, gk, three, wz, wy, wx, keep, divide)
            _half_sweep(ex, ey, rx, ix, sx, dg, dx, f0, q0, gk, three, wz, wy, wx, keep, divide)


@njit(inline="always")
def _smooth_flat(lv, k, nu, first, down):
    # _smooth_level() on level k of _flat_levels
    L, three, offs, g, exts, flags, wt, unks, kinds, diags, fix0, fix1, fo0, fo1, xt0, xt1, wt0, wt1, hoffs, ea, eb, ra, \
        rb, ia, ib, sa, sb, ua, ub, lone, te, to, da, db, divide = lv
    a, b = offs[k], offs[k + 1]
    c, d = hoffs[k], hoffs[k + 1]
    q0 = g[k, _PZ] & 1  # the parity of colour 0's cells
    ex, ey = (ea[c:d], eb[c:d]) if q0 == 0 else (eb[c:d], ea[c:d])  # colour 0's half, colour 1's
    rx, ry = (ra[c:d], rb[c:d]) if q0 == 0 else (rb[c:d], ra[c:d])
    ix, iy = (ia[c:d], ib[c:d]) if q0 == 0 else (ib[c:d], ia[c:d])
    sx, sy = (sa[c:d], sb[c:d]) if q0 == 0 else (sb[c:d], sa[c:d])
    dx, dy = (da[c:d], db[c:d]) if q0 == 0 else (db[c:d], da[c:d])
    _smooth_level(ex, ey, rx, ry, ix, iy, sx, sy, dx, dy, diags[a:b], fix0[fo0[k]:fo0[k + 1]], fix1[fo1[k]:fo1[k + 1]],
                  q0, g[k], three, wt[k, 0], wt[k, 1], wt[k, 2], nu, first, down, lone[k], divide[k])


@njit(inline="always")
def _vcycle_flat(lv, D, H, W, r, z, es, rhss, rs, acc, ec, fr, nu1, nu2):
    # z = one symmetric V-cycle applied to r (the preconditioner; r, z: the crop, D * H * W); the
    # levels of _flat_levels. Each level is smoothed on its halves (_smooth_flat), its residual
    # computed from them (_residual_halves), and its correction merged into the flat array where
    # a transfer reads it (the coarse side of a prolongation; the 3D transfers).
    L, three, offs, g, exts, flags, wt, unks, kinds, diags, fix0, fix1, fo0, fo1, xt0, xt1, wt0, wt1, hoffs, ea, eb, ra, \
        rb, ia, ib, sa, sb, ua, ub, lone, te, to, da, db, divide = lv
    for k in range(L):
        a, b = offs[k], offs[k + 1]
        c, d = hoffs[k], hoffs[k + 1]
        if k == 0:
            _split_rows(r, ra[c:d], rb[c:d], D, H, W, g[0])
        else:
            _split(rhss[a:b], ra[c:d], rb[c:d])
        if nu1 == 0:
            ea[c:d] = 0
            eb[c:d] = 0
        _smooth_flat(lv, k, nu1, True, True)
        if k + 1 < L:
            c2, d2 = b, offs[k + 2]
            _residual_halves(ea[c:d], eb[c:d], ra[c:d], rb[c:d], da[c:d], db[c:d], ua[c:d], ub[c:d], g[k], three,
                             wt[k, 0], wt[k, 1], wt[k, 2], rs[a:b])
            if not three and flags[k, 1] == 1 and flags[k, 2] == 1:
                _restrict_2d(rs[a:b], g[k], exts[k, 1], exts[k, 2], kinds[c2:d2], g[k + 1], exts[k + 1, 1], exts[k + 1, 2],
                             rhss[c2:d2], acc)
            else:
                _restrict_flat(rs[a:b], g[k], exts[k, 0], exts[k, 1], exts[k, 2], kinds[c2:d2], g[k + 1],
                               exts[k + 1, 0], exts[k + 1, 1], exts[k + 1, 2], flags[k, 0], flags[k, 1], flags[k, 2],
                               rhss[c2:d2], acc)
    for k in range(L - 1, -1, -1):
        a, b = offs[k], offs[k + 1]
        c, d = hoffs[k], hoffs[k + 1]
        if k + 1 < L:
            c2, d2 = b, offs[k + 2]
            if not three and flags[k, 1] == 1 and flags[k, 2] == 1:  # into the halves (which hold the pre-smoothed e)
                _prolong_halves_2d(es[c2:d2], g[k + 1], exts[k + 1, 1], exts[k + 1, 2], g[k], exts[k, 1], exts[k, 2],
                                   ea[c:d], eb[c:d], ua[c:d], ub[c:d], te, to)
            else:
                _merge(ea[c:d], eb[c:d], es[a:b])
                _prolong_flat(es[c2:d2], g[k + 1], exts[k + 1, 0], exts[k + 1, 1], exts[k + 1, 2], unks[a:b], g[k],
                              exts[k, 0], exts[k, 1], exts[k, 2], flags[k, 0], flags[k, 1], flags[k, 2], xt0[k], xt1[k],
                              wt0[k], wt1[k], es[a:b], ec, fr)
                _split(es[a:b], ea[c:d], eb[c:d])
        _smooth_flat(lv, k, nu2, False, False)
        if k > 0:
            _merge(ea[c:d], eb[c:d], es[a:b])
        else:
            _merge_rows(ea[c:d], eb[c:d], z, D, H, W, g[0])


@njit(**_FLAT)
def solve_flat(kind0, r0, x, D, H, W, tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio):
    """The whole-system solve of one system on flat arrays: kind0, r0, x of D * H * W cells (the crop, a halo of
    non-unknown cells around the mask's box; D == 1 in 2D); r0: the correction's right-hand side
    (guidance_rhs_flat); x: zeros in, the solution out. Returns (relative residual, status,
    iterations); see the module docstring for the status."""
    lv, es, rhss, rs, acc, ec, fr = _flat_levels(kind0, r0, D, H, W, coarsest, max_levels)
    unk, diag, g0 = _crop_operator(lv, D, H, W, r0)
    return _pcg_flat(lv, es, rhss, rs, acc, ec, fr, unk, diag, g0, r0, x, D, H, W, tol, max_iter, nu1, nu2,
                     stall_ratio)


@njit(inline="always")
def _crop_operator(lv, D, H, W, like):
    # level 0's "unknown" flags and diagonal in the crop's own layout (D * H * W, the dtype of
    # ``like``), for CG, and the crop's geometry row (level 0 without the padding)
    offs, g, unks, diags = lv[2], lv[3], lv[7], lv[9]
    n = D * H * W
    unk = np.empty(n, np.uint8)
    diag = np.empty(n, like.dtype)
    _unpad_rows(unks[:offs[1]], unk, D, H, W, g[0])
    _unpad_rows(diags[:offs[1]], diag, D, H, W, g[0])
    g0 = g[0].copy()
    g0[_S], g0[_P] = W, H * W
    g0[_START] = g0[_Z0] * g0[_P] + W
    g0[_N] = (g0[_NZ] - 1) * g0[_P] + g0[_ROWS] * W
    return unk, diag, g0


@njit(**_FLAT)
def _pcg_flat(lv, es, rhss, rs, acc, ec, fr, unk, diag, g0, r0, x, D, H, W, tol, max_iter, nu1, nu2, stall_ratio):
    # solve_flat() on a hierarchy that _flat_levels built (and _crop_operator's level 0): every
    # work array may hold what an earlier solve on the same hierarchy left (each V-cycle sets
    # what it reads, as between iterations), so the channels of a sample share one hierarchy
    three, wt = lv[1], lv[6]
    wz, wy, wx = wt[0, 0], wt[0, 1], wt[0, 2]
    r = r0.copy()
    p = np.zeros_like(r0)
    q = np.zeros_like(r0)
    zero = np.zeros_like(r0)
    z = np.zeros_like(r0)

    rr0 = _dot_flat(r0, r0, unk, acc)
    rel, status = _first_verdict(rr0, tol)
    if status:
        return rel, status, 0
    last = np.inf
    rz = 0.0
    it = 0
    while it < max_iter:
        _vcycle_flat(lv, D, H, W, r, z, es, rhss, rs, acc, ec, fr, nu1, nu2)  # z = V-cycle(r)
        rz_new = _dot_flat(r, z, unk, acc)
        if it == 0:
            p[:] = z
        else:
            _xpby_flat(z, _ratio(rz_new, rz), p, unk)  # p = z + beta p
        rz = rz_new
        alpha = _ratio(rz, -_neg_apply_dot(p, zero, unk, diag, g0, three, wz, wy, wx, q, acc))  # q = -A p; p . q
        est = _relative(_update_flat(alpha, p, q, x, r, unk, acc), rr0)  # x += alpha p, r -= alpha A p
        it += 1
        if est <= tol or not np.isfinite(est) or it == max_iter:
            _residual_flat(x, r0, unk, diag, g0, three, wz, wy, wx, q)  # the true residual r0 - A x
            rel = _relative(_dot_flat(q, q, unk, acc), rr0)
            status = _verdict(rel, est <= tol, tol, last, stall_ratio)
            if status:
                break
            last = rel
    return rel, status if status else AT_MAX_ITER, it


@njit(**_FLAT)
def _crop_kind(mask, b, oz, oy, ox, D, H, W, kind):
    # build_kind() of one sample's crop (D * H * W cells from the image offset oz, oy, ox), row by
    # row: FIXED + 1 (UNKNOWN) where the mask is set, in a loop that vectorises; ABSENT outside the image
    Di, Hi, Wi = mask.shape[1], mask.shape[2], mask.shape[3]
    x0, x1 = max(0, -ox), max(0, min(W, Wi - ox))
    for z in range(D):
        for y in range(H):
            row = kind[(z * H + y) * W:(z * H + y + 1) * W]
            if not (0 <= oz + z < Di and 0 <= oy + y < Hi) or x1 <= x0:
                row[:] = ABSENT
                continue
            row[:x0] = ABSENT
            row[x1:] = ABSENT
            mr = mask[b, oz + z, oy + y, ox + x0:ox + x1]
            kr = row[x0:x1]
            for x in range(x1 - x0):
                kr[x] = FIXED + (mr[x] != 0)


@njit(**_FLAT)
def _solve_sample_flat(dst, guide, gb, mask, b, C, al, mode, off, ext, clip_lo, clip_hi, do_clip, tol, max_iter,
                       nu1, nu2, coarsest, max_levels, stall_ratio, out, res, status, iters):
    # mg_solve_samples() for one sample, every channel, on flat crops
    D, H, W = ext[0, 0], ext[0, 1], ext[0, 2]
    Di, Hi, Wi = dst.shape[2], dst.shape[3], dst.shape[4]
    oz, oy, ox = off[0, 0], off[0, 1], off[0, 2]
    kf = np.empty(D * H * W, np.uint8)
    _crop_kind(mask, b, oz, oy, ox, D, H, W, kf)
    n = D * H * W
    dc = np.zeros(n, dst.dtype)
    gc = np.zeros(n, dst.dtype)
    rhs = np.zeros(n, dst.dtype)
    inside = oz >= 0 and oy >= 0 and ox >= 0 and oz + D <= Di and oy + H <= Hi and ox + W <= Wi
    # the hierarchy depends on the mask alone: built once, for every channel
    lv, es, rhss, rs, acc, ec, fr = _flat_levels(kf, rhs, D, H, W, coarsest, max_levels)
    unk, diag, g0 = _crop_operator(lv, D, H, W, rhs)
    for c in range(C):
        if inside:  # the common case: whole rows, copies that vectorise
            for z in range(D):
                for y in range(H):
                    j = (z * H + y) * W
                    dc[j:j + W] = dst[b, c, oz + z, oy + y, ox:ox + W]
                    if mode <= DIVERGENCE:  # HARMONIC reads no guidance
                        gc[j:j + W] = guide[gb, c, oz + z, oy + y, ox:ox + W]
        for z in range(D if not inside else 0):  # a crop over the image's edge: its cells inside
            iz = oz + z
            for y in range(H):
                iy = oy + y
                if not (0 <= iz < Di and 0 <= iy < Hi):
                    continue
                j = (z * H + y) * W
                for x in range(W):
                    ix = ox + x
                    if 0 <= ix < Wi:
                        dc[j + x] = dst[b, c, iz, iy, ix]
                        if mode <= DIVERGENCE:
                            gc[j + x] = guide[gb, c, iz, iy, ix]
        guidance_rhs_flat(dc, gc if mode <= DIVERGENCE else dc, kf, D, H, W, al, mode, rhs)
        xs = np.zeros(n, dst.dtype)
        rel, st, it = _pcg_flat(lv, es, rhss, rs, acc, ec, fr, unk, diag, g0, rhs, xs, D, H, W, tol, max_iter, nu1, nu2,
                                stall_ratio)
        lo_c, hi_c = clip_lo[b, c], clip_hi[b, c]
        for z in range(D):
            for y in range(H):
                j = (z * H + y) * W
                if not (0 <= oz + z < Di and 0 <= oy + y < Hi):
                    continue  # never unknown (the halo)
                x0, x1 = max(0, -ox), min(W, Wi - ox)
                row = out[b, c, oz + z, oy + y, ox + x0:ox + x1]
                kr = kf[j + x0:j + x1]
                er = xs[j + x0:j + x1]
                for x in range(x1 - x0):  # clip(dst + e) on unknowns, as selects: the loop vectorises
                    o = row[x]
                    v = o + er[x]
                    if do_clip:
                        v = lo_c if v < lo_c else (hi_c if v > hi_c else v)
                    row[x] = v if kr[x] == UNKNOWN else o
        res[b, c] = rel
        status[b, c] = st
        iters[b, c] = it
