"""One system, the whole multigrid-preconditioned CG solve in one call: the CPU twin of the CUDA
kernel ``mg_solve`` (kernels/mg.cu), which solves one system per thread block.

The algorithm is the driver's (:mod:`pii_augment.ops.solver`: PCG preconditioned by one symmetric
V-cycle, each sample coarsening on its own schedule, the offset-invariant residual test on the
correction, the stall rule) for a single system, with every array of the system local and small
enough to stay in cache, and no Python between the steps. Every per-cell operation is the one the
batched driver's primitives (:mod:`pii_augment.ops._numba_kernels`) and the CUDA kernels compute,
in the same order and dtypes; dot products are summed in the order of a block of 256 threads (256
strided partial sums, then a fixed tree), so that the twin and the CUDA kernel give the same bytes.

The solve runs on flat arrays (:func:`solve_flat`, 2D and 3D): every coarse level has a ring of
absent cells and odd strides, the loops have no branches and vectorise, the diagonal and masks are
computed once per level, and the smoother multiplies by 1 / diag wherever that is exact (a
power-of-two diagonal; the few other cells are divided). A half-sweep of the red-black smoother
computes every cell of the level's range (a contiguous loop) and keeps its colour's cells by a
bitwise select. ``tests/generic_twin.py`` writes the same solve with the batched driver's
primitives; ``tests/ops/test_mg_system.py`` holds the flat solve and the CUDA kernel to it, byte
for byte.

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
    build_kind,
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


def crop_extent(lo: np.ndarray, hi: np.ndarray, ndim: int) -> tuple[int, int, int]:
    """(D, H, W) of a sample's crop: its mask's bounding box [lo, hi) (along z, y, x) and a
    one-cell halo (along z only in 3D)."""
    e = np.asarray(hi) - np.asarray(lo)
    return (int(e[0]) + 2 if ndim == 3 else 1, int(e[1]) + 2, int(e[2]) + 2)


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
# A system's level k is one flat array: level 0 the crop itself (D x H x W, a halo of non-unknown
# cells around the mask's box), every coarser level its crop with a ring of absent cells (ABSENT,
# value 0) around it (in z too, in 3D) and odd strides, so that on every level each unknown has
# its neighbours in the array. The stencil loops run over the rows and planes that hold unknowns
# as one flat range (cells on the ring or the halo are computed and thrown away), which the
# compiler vectorises. On the correction every cell that is not unknown holds 0, so a stencil may
# add all its neighbours: an absent one adds 0, which is what leaving it out adds; what depends on
# which neighbours are present (the diagonal) is computed once per level. Each per-cell value is
# the expression of the generic primitives above (same operations, same order, same dtypes), so
# the flat solve gives the bytes of the generic twin (tests/generic_twin.py) and of the CUDA kernel; only the sign of an exact
# zero may differ (x + 0 for an absent neighbour), which compares equal.

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


@njit(**_FLAT)
def _level_setup(kind, g, three, wz, wy, wx, diag, inv, unk, m0, m1):
    # Per cell of the level's range: the diagonal of an unknown (present neighbours added in the
    # order x-, x+, y-, y+, z-, z+, as _stencil adds them; adding 0 for an absent one is exact),
    # its reciprocal where dividing by the diagonal is multiplying by it (the power of two of an
    # unknown with all its neighbours, when the weights are equal), and the masks: unknown, and
    # "the smoother updates it" (an unknown with a neighbour) per colour (the parity of the crop
    # coordinates z + y + x). Returns how many updated cells need the division (_division_cells).
    S, P = g[_S], g[_P]
    zero = wx - wx
    full, full_pow2 = _full_diagonal(three, wz, wy, wx)
    n_div = 0
    for z in range(g[_Z0], g[_Z0] + g[_NZ]):
        for y in range(1, g[_ROWS] + 1):
            b = z * P + y * S
            kc = kind[b:b + S]
            kw = kind[b - 1:b - 1 + S]
            ke = kind[b + 1:b + 1 + S]
            kn = kind[b - S:b]
            ks = kind[b + S:b + 2 * S]
            kd = kind[b - P:b - P + S] if three else kc
            ku = kind[b + P:b + P + S] if three else kc
            dg = diag[b:b + S]
            iv = inv[b:b + S]
            uk = unk[b:b + S]
            c0 = m0[b:b + S]
            c1 = m1[b:b + S]
            par = (z + y + g[_PZ]) & 1
            for x in range(S):  # the diagonal, added in the order of _stencil (three loops, no branches)
                d = zero + (wx if kw[x] != ABSENT else zero)
                d = d + (wx if ke[x] != ABSENT else zero)
                d = d + (wy if kn[x] != ABSENT else zero)
                dg[x] = d + (wy if ks[x] != ABSENT else zero)
            if three:
                for x in range(S):
                    d = dg[x] + (wz if kd[x] != ABSENT else zero)
                    dg[x] = d + (wz if ku[x] != ABSENT else zero)
            for x in range(S):
                d = dg[x]
                u = kc[x] == UNKNOWN
                sm = u & (d > zero)
                dg[x] = d if u else zero
                iv[x] = 1 / d if sm else zero
                uk[x] = u
                black = ((x + par) & 1) == 1
                c0[x] = sm & (not black)
                c1[x] = sm & black
                n_div += sm & ((d != full) | (not full_pow2))
    return n_div


@njit(**_FLAT)
def _division_cells(diag, m, g, three, wz, wy, wx, out):
    # the cells of mask m whose diagonal is not the power of two of an unknown with all its
    # neighbours present (_level_setup counted them): the smoother divides there
    full, full_pow2 = _full_diagonal(three, wz, wy, wx)
    n = 0
    for j in range(g[_START], g[_START] + g[_N]):
        if m[j] and (diag[j] != full or not full_pow2):
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


#: Cells per chunk of a red-black half-sweep (_half_sweep): its values go through a buffer this long.
SWEEP_CHUNK = 512


@njit(inline="always")
def _sweep_chunk(e, rhs, m, inv, j0, n, S, P, three, wz, wy, wx, tmp):
    # u = (rhs + neighbours) * (1 / diag) on the n cells from j0, into tmp, then kept where m says
    # so. Every cell is computed (both colours) so that the loop is contiguous and vectorises; a
    # cell that m keeps reads only neighbours of the other colour, which this half-sweep does not
    # write, so the values are those of a sweep over the colour's cells alone.
    ew = e[j0 - 1:j0 - 1 + n]
    ee = e[j0 + 1:j0 + 1 + n]
    en = e[j0 - S:j0 - S + n]
    es = e[j0 + S:j0 + S + n]
    rr = rhs[j0:j0 + n]
    dd = inv[j0:j0 + n]
    if three:
        ed = e[j0 - P:j0 - P + n]
        eu = e[j0 + P:j0 + P + n]
        for i in range(n):
            tmp[i] = (rr[i] + ((wx * (ew[i] + ee[i]) + wy * (en[i] + es[i])) + wz * (ed[i] + eu[i]))) * dd[i]
    else:
        for i in range(n):
            tmp[i] = (rr[i] + (wx * (ew[i] + ee[i]) + wy * (en[i] + es[i]))) * dd[i]
    # the select bit by bit (m: each cell's flag as itemsize bytes of 0xFF or 0, _byte_mask), which
    # vectorises where a select of floats under a byte flag does not
    it = e.itemsize
    eb = e[j0:j0 + n].view(np.uint8)
    tb = tmp[:n].view(np.uint8)
    kb = m[j0 * it:(j0 + n) * it]
    for i in range(n * it):
        eb[i] = (tb[i] & kb[i]) | (eb[i] & ~kb[i])


@njit(inline="always")
def _byte_mask(m, item):
    # every cell's flag of m as item bytes of 0xFF (set) or 0, for the smoother's bitwise select
    out = np.empty(m.shape[0] * item, np.uint8)
    if item == 4:  # float32 cells: one 32-bit word each
        w4 = out.view(np.int32)
        for i in range(m.shape[0]):
            w4[i] = np.int32(-1) if m[i] else np.int32(0)
    else:  # float64
        w8 = out.view(np.int64)
        for i in range(m.shape[0]):
            w8[i] = np.int64(-1) if m[i] else np.int64(0)
    return out


@njit(**_FLAT)
def _half_sweep(e, rhs, m, diag, inv, fix, g, three, wz, wy, wx, tmp):
    # One colour of smooth() on the level's range: the cells m holds (the unknowns of one colour,
    # the parity of z + y + x, that have a neighbour; as bytes, _byte_mask), in chunks of
    # SWEEP_CHUNK cells (_sweep_chunk). u = (rhs + neighbours) / diag is computed as (rhs + neighbours) * (1 / diag),
    # the same number when diag is a power of two; the cells ``fix`` (the others) are computed
    # again with the division.
    S, P, start, n = g[_S], g[_P], g[_START], g[_N]
    for j0 in range(start, start + n, SWEEP_CHUNK):
        _sweep_chunk(e, rhs, m, inv, j0, min(SWEEP_CHUNK, start + n - j0), S, P, three, wz, wy, wx, tmp)
    for t in range(fix.shape[0]):
        j = fix[t]
        nb = wx * (e[j - 1] + e[j + 1]) + wy * (e[j - S] + e[j + S])
        if three:
            nb = nb + wz * (e[j - P] + e[j + P])
        e[j] = (rhs[j] + nb) / diag[j]


@njit(**_FLAT)
def _residual_flat(u, rhs, unk, diag, g, three, wz, wy, wx, r):
    # residual(): r = rhs - A u on unknowns, 0 elsewhere (cells outside the range stay 0)
    S, P, start, n = g[_S], g[_P], g[_START], g[_N]
    zero = wx - wx
    uw = u[start - 1:start - 1 + n]
    ue = u[start + 1:start + 1 + n]
    un = u[start - S:start - S + n]
    us = u[start + S:start + S + n]
    uc = u[start:start + n]
    rr = rhs[start:start + n]
    dd = diag[start:start + n]
    mm = unk[start:start + n]
    ro = r[start:start + n]
    if three:
        ud = u[start - P:start - P + n]
        uu = u[start + P:start + P + n]
        for i in range(n):
            v = rr[i] - (dd[i] * uc[i] - ((wx * (uw[i] + ue[i]) + wy * (un[i] + us[i])) + wz * (ud[i] + uu[i])))
            ro[i] = v if mm[i] else zero
    else:
        for i in range(n):
            v = rr[i] - (dd[i] * uc[i] - (wx * (uw[i] + ue[i]) + wy * (un[i] + us[i])))
            ro[i] = v if mm[i] else zero


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
    # every level's geometry row (_S, _P, ...): level 0 the crop as it is, the coarser levels with
    # a ring of absent cells and odd row and plane strides
    L = exts.shape[0]
    three = D > 1
    g = np.zeros((L, 9), np.int64)
    cells = np.zeros(L, np.int64)
    for k in range(L):
        ez, ey, ex = exts[k, 0], exts[k, 1], exts[k, 2]
        if k == 0:
            S, R, Dk, pz, pad = W, H, D, 0, 0
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
    # division cells and prolongation tables, and every level's work arrays (see solve_flat)
    three = D > 1
    exts, ws, flags = hierarchy(np.array([D, H, W], np.int64), coarsest, max_levels)
    L = exts.shape[0]
    g, cells = _geometry(exts, D, H, W)
    offs = np.zeros(L + 1, np.int64)
    for k in range(L):
        offs[k + 1] = offs[k] + cells[k]
    n_all = offs[L]
    dt = r0.dtype
    wt = ws.astype(dt)
    kinds = np.zeros(n_all, np.uint8)
    unks = np.zeros(n_all, np.uint8)
    m0s = np.zeros(n_all, np.uint8)
    m1s = np.zeros(n_all, np.uint8)
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
    kinds[:offs[1]] = kind0
    n_div = np.zeros(L, np.int64)
    for k in range(L):
        a, b = offs[k], offs[k + 1]
        if k > 0:
            _coarsen_flat(kinds[offs[k - 1]:a], g[k - 1], exts[k - 1, 0], exts[k - 1, 1], exts[k - 1, 2], flags[k - 1, 0],
                          flags[k - 1, 1], flags[k - 1, 2], kinds[a:b], g[k], exts[k, 0], exts[k, 1], exts[k, 2], three)
        n_div[k] = _level_setup(kinds[a:b], g[k], three, wt[k, 0], wt[k, 1], wt[k, 2], diags[a:b], invs[a:b], unks[a:b],
                                m0s[a:b], m1s[a:b])
        if k + 1 < L:
            _prolong_table(exts[k, 2], flags[k, 2], exts[k + 1, 2], xt0[k], xt1[k], wt0[k], wt1[k])
    # the cells of each colour that the smoother divides at (_division_cells), level k's in
    # fix_c[fo_c[k]:fo_c[k + 1]]
    fix0 = np.empty(n_div.sum(), np.int64)
    fix1 = np.empty(n_div.sum(), np.int64)
    fo0 = np.zeros(L + 1, np.int64)
    fo1 = np.zeros(L + 1, np.int64)
    for k in range(L):
        a, b = offs[k], offs[k + 1]
        w3 = (wt[k, 0], wt[k, 1], wt[k, 2])
        n0 = _division_cells(diags[a:b], m0s[a:b], g[k], three, w3[0], w3[1], w3[2], fix0[fo0[k]:]) if n_div[k] else 0
        n1 = _division_cells(diags[a:b], m1s[a:b], g[k], three, w3[0], w3[1], w3[2], fix1[fo1[k]:]) if n_div[k] else 0
        fo0[k + 1] = fo0[k] + n0
        fo1[k + 1] = fo1[k] + n1
    tmp = np.empty(SWEEP_CHUNK, dt)  # the smoother's values (_half_sweep)
    # the colours' masks as the smoother reads them
    km0, km1 = _byte_mask(m0s, r0.itemsize), _byte_mask(m1s, r0.itemsize)
    lv = (L, three, offs, g, exts, flags, wt, unks, kinds, km0, km1, diags, invs, fix0, fix1, fo0, fo1, xt0, xt1,
          wt0, wt1, tmp)
    return lv, es, rhss, rs, acc, ec, fr


@njit(inline="always")
def _vcycle_flat(lv, r, es, rhss, rs, acc, ec, fr, nu1, nu2):
    # es[:offs[1]] = one symmetric V-cycle applied to r (the preconditioner); the levels of _flat_levels
    L, three, offs, g, exts, flags, wt, unks, kinds, km0, km1, diags, invs, fix0, fix1, fo0, fo1, xt0, xt1, wt0, wt1, tmp = lv
    it = es.itemsize
    es[:] = 0
    for k in range(L):
        a, b = offs[k], offs[k + 1]
        bk = r if k == 0 else rhss[a:b]
        for _ in range(nu1):  # red, then black
            _half_sweep(es[a:b], bk, km0[a * it:b * it], diags[a:b], invs[a:b], fix0[fo0[k]:fo0[k + 1]], g[k], three,
                        wt[k, 0], wt[k, 1], wt[k, 2], tmp)
            _half_sweep(es[a:b], bk, km1[a * it:b * it], diags[a:b], invs[a:b], fix1[fo1[k]:fo1[k + 1]], g[k], three,
                        wt[k, 0], wt[k, 1], wt[k, 2], tmp)
        if k + 1 < L:
            c, d = b, offs[k + 2]
            _residual_flat(es[a:b], bk, unks[a:b], diags[a:b], g[k], three, wt[k, 0], wt[k, 1], wt[k, 2], rs[a:b])
            _restrict_flat(rs[a:b], g[k], exts[k, 0], exts[k, 1], exts[k, 2], kinds[c:d], g[k + 1], exts[k + 1, 0],
                           exts[k + 1, 1], exts[k + 1, 2], flags[k, 0], flags[k, 1], flags[k, 2], rhss[c:d], acc)
    for k in range(L - 1, -1, -1):
        a, b = offs[k], offs[k + 1]
        bk = r if k == 0 else rhss[a:b]
        if k + 1 < L:
            c, d = b, offs[k + 2]
            _prolong_flat(es[c:d], g[k + 1], exts[k + 1, 0], exts[k + 1, 1], exts[k + 1, 2], unks[a:b], g[k],
                          exts[k, 0], exts[k, 1], exts[k, 2], flags[k, 0], flags[k, 1], flags[k, 2], xt0[k], xt1[k],
                          wt0[k], wt1[k], es[a:b], ec, fr)
        for _ in range(nu2):  # black, then red
            _half_sweep(es[a:b], bk, km1[a * it:b * it], diags[a:b], invs[a:b], fix1[fo1[k]:fo1[k + 1]], g[k], three,
                        wt[k, 0], wt[k, 1], wt[k, 2], tmp)
            _half_sweep(es[a:b], bk, km0[a * it:b * it], diags[a:b], invs[a:b], fix0[fo0[k]:fo0[k + 1]], g[k], three,
                        wt[k, 0], wt[k, 1], wt[k, 2], tmp)


@njit(**_FLAT)
def solve_flat(kind0, r0, x, D, H, W, tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio):
    """The whole-system solve of one system on flat arrays: kind0, r0, x of D * H * W cells (the crop, a halo of
    non-unknown cells around the mask's box; D == 1 in 2D); r0: the correction's right-hand side
    (guidance_rhs_flat); x: zeros in, the solution out. Returns (relative residual, status,
    iterations); see the module docstring for the status."""
    lv, es, rhss, rs, acc, ec, fr = _flat_levels(kind0, r0, D, H, W, coarsest, max_levels)
    three, offs, g, wt, unks, diags = lv[1], lv[2], lv[3], lv[6], lv[7], lv[11]
    unk = unks[:offs[1]]
    diag = diags[:offs[1]]
    wz, wy, wx = wt[0, 0], wt[0, 1], wt[0, 2]
    r = r0.copy()
    p = np.zeros_like(r0)
    q = np.zeros_like(r0)
    zero = np.zeros_like(r0)
    z = es[:offs[1]]

    rr0 = _dot_flat(r0, r0, unk, acc)
    rel, status = _first_verdict(rr0, tol)
    if status:
        return rel, status, 0
    last = np.inf
    rz = 0.0
    it = 0
    while it < max_iter:
        _vcycle_flat(lv, r, es, rhss, rs, acc, ec, fr, nu1, nu2)  # z = V-cycle(r)
        rz_new = _dot_flat(r, z, unk, acc)
        if it == 0:
            p[:] = z
        else:
            _xpby_flat(z, _ratio(rz_new, rz), p, unk)  # p = z + beta p
        rz = rz_new
        _residual_flat(p, zero, unk, diag, g[0], three, wz, wy, wx, q)  # q = -A p
        alpha = _ratio(rz, -_dot_flat(p, q, unk, acc))
        est = _relative(_update_flat(alpha, p, q, x, r, unk, acc), rr0)  # x += alpha p, r -= alpha A p
        it += 1
        if est <= tol or not np.isfinite(est) or it == max_iter:
            _residual_flat(x, r0, unk, diag, g[0], three, wz, wy, wx, q)  # the true residual r0 - A x
            rel = _relative(_dot_flat(q, q, unk, acc), rr0)
            status = _verdict(rel, est <= tol, tol, last, stall_ratio)
            if status:
                break
            last = rel
    return rel, status if status else AT_MAX_ITER, it


@njit(**_FLAT)
def _solve_sample_flat(dst, guide, gb, mask, b, C, al, mode, off, ext, clip_lo, clip_hi, do_clip, tol, max_iter,
                       nu1, nu2, coarsest, max_levels, stall_ratio, out, res, status, iters):
    # mg_solve_samples() for one sample, every channel, on flat crops
    D, H, W = ext[0, 0], ext[0, 1], ext[0, 2]
    kind = np.empty((1, D, H, W), np.uint8)
    build_kind(mask[b:b + 1], off, ext, kind)
    kf = kind.ravel()
    Di, Hi, Wi = dst.shape[2], dst.shape[3], dst.shape[4]
    oz, oy, ox = off[0, 0], off[0, 1], off[0, 2]
    n = D * H * W
    dc = np.zeros(n, dst.dtype)
    gc = np.zeros(n, dst.dtype)
    rhs = np.zeros(n, dst.dtype)
    inside = oz >= 0 and oy >= 0 and ox >= 0 and oz + D <= Di and oy + H <= Hi and ox + W <= Wi
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
        rel, st, it = solve_flat(kf, rhs, xs, D, H, W, tol, max_iter, nu1, nu2, coarsest, max_levels, stall_ratio)
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
