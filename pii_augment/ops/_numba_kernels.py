"""Numba (CPU) primitives of the batched masked Poisson solver.

Each function here has a CUDA twin of the same name and argument order in ``kernels/*.cu``;
the multigrid driver in :mod:`pii_augment.ops.solver` calls either through a backend object.

Array conventions (all C-contiguous):

- field arrays ``u, rhs, r``: ``(B, C, D, H, W)`` float32/float64 (2D problems have ``D == 1``);
- ``kind``: ``(B, D, H, W)`` uint8 per pixel of the padded crop (:class:`~pii_augment.ops.codes.Cell`):
  ``ABSENT`` (0) = not part of the problem (outside the image or outside this sample's crop),
  ``FIXED`` (1) = fixed (Dirichlet value), ``UNKNOWN`` (2) = unknown;
- ``ext``: ``(B, 3)`` int64, the extent of each sample's crop along (z, y, x); cells beyond it
  are never read or written (except by the kernels that explicitly clear them);
- ``off``: ``(B, 3)`` int64, image coordinates of crop cell (0, 0, 0) (may be negative);
- ``w``: ``(B, 3)`` float64, each sample's stencil weight per axis (1/h^2 relative to the finest
  level; samples coarsen on their own schedule, see :func:`pii_augment.ops.solver.build_hierarchy`);
- ``flags``: ``(B, 3)`` int64, 1 where the sample's axis is coarsened between two levels; a sample
  absent from the coarser level has extent 0 there and is skipped by every kernel.

The solver works on the *correction* ``e = f - dst`` (zero on fixed cells): the right-hand side is
the residual of ``f = dst`` and the output is ``dst + e``, so nothing depends on the images' offset.

The operator on unknown cell p is ``A(u)_p = sum_axis w_a sum_{q = p +- e_a, kind_q != ABSENT} (u_p - u_q)``
(with ``w`` the sample's row of the weight table).
Each function is serial and releases the GIL: the host backend runs the driver on chunks of the
batch in parallel threads (see :mod:`pii_augment.ops.backends`). Loops run over the rows
``(b, c, z, y)``, the rows the CUDA twins map to threads; red-black colouring makes the
Gauss-Seidel sweeps order-independent, so every backend computes the same iterates.
"""

from __future__ import annotations

import numpy as np  # noqa: F401
from numba import njit

from .codes import Cell, Guidance

_OPTS = dict(cache=True, nogil=True)

# The codes of :mod:`pii_augment.ops.codes` as plain module-level ints, which Numba freezes as
# compile-time constants (the machine code is that of the bare numbers; no enum member is ever
# passed to a compiled function). The other Numba modules import them from here.
ABSENT, FIXED, UNKNOWN = int(Cell.ABSENT), int(Cell.FIXED), int(Cell.UNKNOWN)
PII, MIXED, SOURCE = int(Guidance.PII), int(Guidance.MIXED), int(Guidance.SOURCE)
DIVERGENCE, HARMONIC = int(Guidance.DIVERGENCE), int(Guidance.HARMONIC)


@njit(inline="always")
def _crop_row(ri, ext, C, Dp, Hp):
    """``(b, c, z, y, ez, ey, ex)`` of row ``ri`` of a (B, C, Dp, Hp) crop (rows in C order) and
    sample b's extent: the row mapping of the CUDA twins (``pii::crop_cell`` in
    kernels/common.cuh), one row per iteration of a kernel's loop; the row is inside the extent
    when ``z < ez and y < ey``."""
    y = ri % Hp
    q = ri // Hp
    z = q % Dp
    q = q // Dp
    b = q // C
    return b, q - b * C, z, y, ext[b, 0], ext[b, 1], ext[b, 2]


@njit(**_OPTS)
def build_kind(mask, off, ext, kind):
    """Label the padded crop cells from the full-image mask.

    mask: (B, D, H, W) bool, the full-size region; off, ext: (B, 3); kind: (B, Dp, Hp, Wp) uint8.
    """
    B, Dp, Hp, Wp = kind.shape
    D, H, W = mask.shape[1], mask.shape[2], mask.shape[3]
    for ri in range(B * Dp * Hp):
        b, _, z, y, ez, ey, ex = _crop_row(ri, ext, 1, Dp, Hp)
        iz = off[b, 0] + z
        iy = off[b, 1] + y
        row_ok = z < ez and y < ey and 0 <= iz < D and 0 <= iy < H
        for x in range(Wp):
            ix = off[b, 2] + x
            k = ABSENT
            if row_ok and x < ex and 0 <= ix < W:
                k = UNKNOWN if mask[b, iz, iy, ix] else FIXED
            kind[b, z, y, x] = k


@njit(**_OPTS)
def gather_crop(full, off, ext, out):
    """Copy each sample's crop of a full-size field into the padded crop array.

    full: (B, C, D, H, W); out: (B, C, Dp, Hp, Wp); cells outside the image or the crop get 0.
    """
    B, C, Dp, Hp, Wp = out.shape
    D, H, W = full.shape[2], full.shape[3], full.shape[4]
    for ri in range(B * C * Dp * Hp):
        b, c, z, y, ez, ey, ex = _crop_row(ri, ext, C, Dp, Hp)
        iz = off[b, 0] + z
        iy = off[b, 1] + y
        row_ok = z < ez and y < ey and 0 <= iz < D and 0 <= iy < H
        for x in range(Wp):
            ix = off[b, 2] + x
            out[b, c, z, y, x] = full[b, c, iz, iy, ix] if row_ok and x < ex and 0 <= ix < W else 0


@njit(inline="always")
def _guidance(wa, dp, dq, ws, sp, sq, mode):
    """The guidance rule, the one place it is written for the Numba kernels: with the pair's
    weighted destination difference ``a = wa (dp - dq)`` and weighted source difference
    ``s = ws (sp - sq)``, ``a`` where ``|a| > |s|`` strictly, else ``s``; mode ``SOURCE``: always
    ``s`` (``a`` is not computed). The precision is the operands': :func:`_pick` passes float64
    weights (a and s in float64), :func:`pii_augment.ops._spectral._pick_t` weights of the image
    dtype. The CUDA twin is ``pii::pick_guidance`` (kernels/common.cuh)."""
    s = ws * (sp - sq)
    if mode == SOURCE:
        return s
    a = wa * (dp - dq)
    return a if abs(a) > abs(s) else s  # a select, not a branch (the choice is data-dependent)


@njit(inline="always")
def _pick(dp, dq, sp, sq, al, mode):
    """The guidance v_pq in float64 (differences in the field dtype, widened), as the CUDA twin.

    mode PII: alpha-weighted mixed gradient (weights 1 - al on dst, al on src), MIXED and SOURCE:
    weights 1; the choice is :func:`_guidance`'s."""
    if mode == PII:
        return _guidance(1.0 - al, dp, dq, al, sp, sq, PII)
    return _guidance(1.0, dp, dq, 1.0, sp, sq, mode)


@njit(inline="always")
def _pair(dp, dq, sp, sq, al, mode):
    # v_pq - (dp - dq): the pair's term of the correction's right-hand side (modes DIVERGENCE and
    # HARMONIC have no per-pair guidance)
    dd = 1.0 * (dp - dq)
    if mode >= DIVERGENCE:
        return -dd
    return _pick(dp, dq, sp, sq, al, mode) - dd


@njit(**_OPTS)
def guidance_rhs(dst, src, kind, ext, alpha, mode, rhs):
    """Right-hand side of the correction ``e = f - dst`` on unknown cells (0 elsewhere).

    rhs_p = sum over in-image neighbours q of (v_pq - (dst_p - dst_q)), the residual of f = dst,
    accumulated in float64 in the order x-, x+, y-, y+, z-, z+ (as the CUDA twin). Guidance by
    ``mode`` (:class:`~pii_augment.ops.codes.Guidance`): PII, MIXED, SOURCE (v from dst and src,
    see DESIGN.md); DIVERGENCE: ``src`` holds the divergence per pixel, rhs_p = src_p - sum_q
    (dst_p - dst_q); HARMONIC: zero guidance (harmonic fill).
    dst, src, rhs: (B, C, Dp, Hp, Wp) crops; alpha: (B,) float64.
    """
    B, C, Dp, Hp, Wp = rhs.shape
    for ri in range(B * C * Dp * Hp):
        b, c, z, y, ez, ey, ex = _crop_row(ri, ext, C, Dp, Hp)
        if z >= ez or y >= ey:
            continue
        al = alpha[b]
        for x in range(ex):
            if kind[b, z, y, x] != UNKNOWN:
                rhs[b, c, z, y, x] = 0
                continue
            dp = dst[b, c, z, y, x]
            sp = src[b, c, z, y, x]
            acc = 1.0 * sp if mode == DIVERGENCE else 0.0
            if x > 0 and kind[b, z, y, x - 1] != ABSENT:
                acc += _pair(dp, dst[b, c, z, y, x - 1], sp, src[b, c, z, y, x - 1], al, mode)
            if x + 1 < ex and kind[b, z, y, x + 1] != ABSENT:
                acc += _pair(dp, dst[b, c, z, y, x + 1], sp, src[b, c, z, y, x + 1], al, mode)
            if y > 0 and kind[b, z, y - 1, x] != ABSENT:
                acc += _pair(dp, dst[b, c, z, y - 1, x], sp, src[b, c, z, y - 1, x], al, mode)
            if y + 1 < ey and kind[b, z, y + 1, x] != ABSENT:
                acc += _pair(dp, dst[b, c, z, y + 1, x], sp, src[b, c, z, y + 1, x], al, mode)
            if z > 0 and kind[b, z - 1, y, x] != ABSENT:
                acc += _pair(dp, dst[b, c, z - 1, y, x], sp, src[b, c, z - 1, y, x], al, mode)
            if z + 1 < ez and kind[b, z + 1, y, x] != ABSENT:
                acc += _pair(dp, dst[b, c, z + 1, y, x], sp, src[b, c, z + 1, y, x], al, mode)
            rhs[b, c, z, y, x] = acc


@njit(inline="always")
def _row_is_interior(kind, b, z, y, ez, ey, ex):
    """True when every unknown of row (b, z, y) has all its axis neighbours present: the rows
    around it exist and hold no ABSENT cell, and its first and last cells are not unknown.
    Such rows take the branch-free (vectorisable) path; the result is the same as the generic one.
    """
    if y == 0 or y + 1 >= ey or ex < 3:
        return False
    if ez > 1 and (z == 0 or z + 1 >= ez):
        return False
    kr = kind[b, z, y]
    if kr[0] == UNKNOWN or kr[ex - 1] == UNKNOWN:
        return False
    kn = kind[b, z, y - 1]
    ks = kind[b, z, y + 1]
    lowest = kr[0]
    for x in range(ex):  # a min over uint8 rows vectorises
        lowest = min(lowest, min(kr[x], min(kn[x], ks[x])))
    if ez > 1:
        kd = kind[b, z - 1, y]
        ku = kind[b, z + 1, y]
        for x in range(ex):
            lowest = min(lowest, min(kd[x], ku[x]))
    return lowest > ABSENT


@njit(inline="always")
def _stencil(u, kind, b, c, z, y, x, ez, ey, ex, wz, wy, wx, zero):
    """(neighbour term, diagonal) of cell (z, y, x), in the field dtype, in the canonical order the
    CUDA twins use: ``(wx * (W + E) + wy * (N + S)) + wz * (D + U)`` over present neighbours."""
    sx = zero
    sy = zero
    sz = zero
    diag = zero
    if x > 0 and kind[b, z, y, x - 1] != ABSENT:
        sx += u[b, c, z, y, x - 1]
        diag += wx
    if x + 1 < ex and kind[b, z, y, x + 1] != ABSENT:
        sx += u[b, c, z, y, x + 1]
        diag += wx
    if y > 0 and kind[b, z, y - 1, x] != ABSENT:
        sy += u[b, c, z, y - 1, x]
        diag += wy
    if y + 1 < ey and kind[b, z, y + 1, x] != ABSENT:
        sy += u[b, c, z, y + 1, x]
        diag += wy
    if z > 0 and kind[b, z - 1, y, x] != ABSENT:
        sz += u[b, c, z - 1, y, x]
        diag += wz
    if z + 1 < ez and kind[b, z + 1, y, x] != ABSENT:
        sz += u[b, c, z + 1, y, x]
        diag += wz
    return (wx * sx + wy * sy) + wz * sz, diag


@njit(inline="always")
def _rbgs_row(u, rhs, kind, b, c, z, y, ez, ey, ex, wz, wy, wx, zero, color, tmp, interior):
    """Red-black update of the cells of colour ``color`` in row (b, c, z, y); ``interior`` is
    :func:`_row_is_interior` of the row."""
    par = (color + z + y) & 1
    if interior:
        # only the cells of this colour, x = first, first + 2, ... (1 <= x <= ex - 2): an explicit
        # index over j vectorises the strided loads and stores (about 1.5x the "compute the whole
        # row, keep half" of earlier versions, the same values)
        first = 1 + ((par + 1) & 1)
        cnt = (ex - first) // 2  # x = first, ..., at most ex - 2
        row = u[b, c, z, y]
        rn = u[b, c, z, y - 1]
        rs = u[b, c, z, y + 1]
        rr = rhs[b, c, z, y]
        kr = kind[b, z, y]
        if ez > 1:
            rd = u[b, c, z - 1, y]
            ru = u[b, c, z + 1, y]
            diag = ((wx + wx) + (wy + wy)) + (wz + wz)
            for j in range(cnt):
                x = first + 2 * j
                v = (rr[x] + ((wx * (row[x - 1] + row[x + 1]) + wy * (rn[x] + rs[x])) + wz * (rd[x] + ru[x]))) / diag
                row[x] = v if kr[x] == UNKNOWN else row[x]
        else:
            diag = (wx + wx) + (wy + wy)
            for j in range(cnt):
                x = first + 2 * j
                v = (rr[x] + (wx * (row[x - 1] + row[x + 1]) + wy * (rn[x] + rs[x]))) / diag
                row[x] = v if kr[x] == UNKNOWN else row[x]
        return
    for x in range(par, ex, 2):
        if kind[b, z, y, x] != UNKNOWN:
            continue
        nb, diag = _stencil(u, kind, b, c, z, y, x, ez, ey, ex, wz, wy, wx, zero)
        if diag > zero:
            u[b, c, z, y, x] = (rhs[b, c, z, y, x] + nb) / diag


@njit(**_OPTS)
def rbgs_sweep(u, rhs, kind, ext, w, color):
    """One red-black Gauss-Seidel half sweep: update unknowns with (z + y + x) % 2 == color.

    u_p = (rhs_p + (wx (u_W + u_E) + wy (u_N + u_S)) + wz (u_D + u_U)) / diag_p over the present
    neighbours, computed in the field's dtype.
    """
    B, C, Dp, Hp, Wp = u.shape
    wt = w.astype(u.dtype)
    tmp = np.empty(Wp, u.dtype)
    for b in range(B):
        wz, wy, wx = wt[b, 0], wt[b, 1], wt[b, 2]
        zero = wx - wx
        ez, ey, ex = ext[b, 0], ext[b, 1], ext[b, 2]
        for c in range(C):
            for z in range(ez):
                for y in range(ey):
                    _rbgs_row(u, rhs, kind, b, c, z, y, ez, ey, ex, wz, wy, wx, zero, color, tmp,
                              _row_is_interior(kind, b, z, y, ez, ey, ex))


@njit(**_OPTS)
def jacobi_sweep(u, rhs, kind, ext, w, omega, u_out):
    """One weighted Jacobi sweep from ``u`` into ``u_out`` (non-unknown cells are copied)."""
    B, C, Dp, Hp, Wp = u.shape
    for ri in range(B * C * Dp * Hp):
        b, c, z, y, ez, ey, ex = _crop_row(ri, ext, C, Dp, Hp)
        if z >= ez or y >= ey:
            continue
        wz, wy, wx = w[b, 0], w[b, 1], w[b, 2]
        for x in range(ex):
            up = u[b, c, z, y, x]
            if kind[b, z, y, x] != UNKNOWN:
                u_out[b, c, z, y, x] = up
                continue
            diag = 0.0
            acc = 1.0 * rhs[b, c, z, y, x]
            if x > 0 and kind[b, z, y, x - 1] != ABSENT:
                diag += wx
                acc += wx * u[b, c, z, y, x - 1]
            if x + 1 < ex and kind[b, z, y, x + 1] != ABSENT:
                diag += wx
                acc += wx * u[b, c, z, y, x + 1]
            if y > 0 and kind[b, z, y - 1, x] != ABSENT:
                diag += wy
                acc += wy * u[b, c, z, y - 1, x]
            if y + 1 < ey and kind[b, z, y + 1, x] != ABSENT:
                diag += wy
                acc += wy * u[b, c, z, y + 1, x]
            if z > 0 and kind[b, z - 1, y, x] != ABSENT:
                diag += wz
                acc += wz * u[b, c, z - 1, y, x]
            if z + 1 < ez and kind[b, z + 1, y, x] != ABSENT:
                diag += wz
                acc += wz * u[b, c, z + 1, y, x]
            if diag > 0.0:
                u_out[b, c, z, y, x] = (1.0 - omega) * up + omega * (acc / diag)
            else:
                u_out[b, c, z, y, x] = up


@njit(**_OPTS)
def residual(u, rhs, kind, ext, w, r):
    """r = rhs - A(u) on unknown cells, 0 on the other cells of the crop.

    A(u)_p = diag_p u_p - ((wx (u_W + u_E) + wy (u_N + u_S)) + wz (u_D + u_U)), in the field dtype.
    """
    B, C, Dp, Hp, Wp = u.shape
    wt = w.astype(u.dtype)
    for ri in range(B * C * Dp * Hp):
        b, c, z, y, ez, ey, ex = _crop_row(ri, ext, C, Dp, Hp)
        if z >= ez or y >= ey:
            continue
        wz, wy, wx = wt[b, 0], wt[b, 1], wt[b, 2]
        zero = wx - wx
        if _row_is_interior(kind, b, z, y, ez, ey, ex):
            m = ex - 2
            uc = u[b, c, z, y, 1:ex - 1]
            uw = u[b, c, z, y, 0:m]
            ue = u[b, c, z, y, 2:ex]
            un = u[b, c, z, y - 1, 1:ex - 1]
            us = u[b, c, z, y + 1, 1:ex - 1]
            rr = rhs[b, c, z, y, 1:ex - 1]
            kr = kind[b, z, y, 1:ex - 1]
            ro = r[b, c, z, y, 1:ex - 1]
            r[b, c, z, y, 0] = zero
            r[b, c, z, y, ex - 1] = zero
            if ez > 1:
                ud = u[b, c, z - 1, y, 1:ex - 1]
                uu = u[b, c, z + 1, y, 1:ex - 1]
                diag = ((wx + wx) + (wy + wy)) + (wz + wz)
                for i in range(m):
                    v = rr[i] - (diag * uc[i] - ((wx * (uw[i] + ue[i]) + wy * (un[i] + us[i]))
                                                 + wz * (ud[i] + uu[i])))
                    ro[i] = v if kr[i] == UNKNOWN else zero
            else:
                diag = (wx + wx) + (wy + wy)
                for i in range(m):
                    v = rr[i] - (diag * uc[i] - (wx * (uw[i] + ue[i]) + wy * (un[i] + us[i])))
                    ro[i] = v if kr[i] == UNKNOWN else zero
            continue
        for x in range(ex):
            if kind[b, z, y, x] != UNKNOWN:
                r[b, c, z, y, x] = zero
                continue
            nb, diag = _stencil(u, kind, b, c, z, y, x, ez, ey, ex, wz, wy, wx, zero)
            r[b, c, z, y, x] = rhs[b, c, z, y, x] - (diag * u[b, c, z, y, x] - nb)


@njit(**_OPTS)
def coarsen_kind(kind_f, ext_f, flags, kind_c, ext_c):
    """Coarse cell labels by erosion: unknown iff it has an unknown child and no fixed child.

    Children outside the image/crop (ABSENT) are ignored, so Neumann edges stay Neumann and
    every fixed fine cell keeps a fixed parent (no coarse problem loses its Dirichlet boundary).
    """
    B, Dc, Hc, Wc = kind_c.shape
    for ri in range(B * Dc * Hc):
        b, _, Z, Y, ezc, eyc, exc = _crop_row(ri, ext_c, 1, Dc, Hc)
        fz, fy, fx = flags[b, 0], flags[b, 1], flags[b, 2]
        for X in range(Wc):
            k = ABSENT
            if Z < ezc and Y < eyc and X < exc:
                has1 = False
                has2 = False
                for t in range((1 + fz) * (1 + fy) * (1 + fx)):  # the children (dz, dy, dx), x fastest
                    z = (Z << fz) + (t >> (fy + fx))
                    y = (Y << fy) + ((t >> fx) & fy)
                    x = (X << fx) + (t & fx)
                    if z < ext_f[b, 0] and y < ext_f[b, 1] and x < ext_f[b, 2]:
                        kf = kind_f[b, z, y, x]
                        has1 = has1 or kf == FIXED
                        has2 = has2 or kf == UNKNOWN
                if has1:
                    k = FIXED
                elif has2:
                    k = UNKNOWN
            kind_c[b, Z, Y, X] = k


@njit(inline="always")
def _axis_pair(i, f, n_c):
    # Cell-centred linear interpolation along one axis for fine index i:
    # (primary coarse index, secondary coarse index, weight of primary, weight of secondary).
    if f == 0:
        return i, i, 1.0, 0.0
    p = i >> 1
    s = p + 1 if (i & 1) else p - 1
    if s < 0 or s >= n_c:
        return p, p, 1.0, 0.0
    return p, s, 0.75, 0.25


@njit(inline="always")
def _restrict_weight(I, i, f, n_c):
    # Weight with which fine index i interpolates from coarse index I (the transpose of
    # _axis_pair), 0 when i does not touch I.
    p, s, wp, ws = _axis_pair(i, f, n_c)
    w = 0.0
    if p == I:
        w += wp
    if s == I:
        w += ws
    return w


@njit(inline="always")
def _restrict_x(acc, X, fx, nxc, exf):
    # restrict()'s x weights at coarse X on a row ``acc`` already summed over z and y
    if fx == 0:
        return acc[X]
    if X >= 1 and X + 2 <= nxc and 2 * X + 2 < exf:
        return 0.25 * acc[2 * X - 1] + 0.75 * acc[2 * X] + 0.75 * acc[2 * X + 1] + 0.25 * acc[2 * X + 2]
    s = 0.0
    for x in range(max(2 * X - 1, 0), min(2 * X + 3, exf)):
        s += _restrict_weight(X, x, 1, nxc) * acc[x]
    return s


@njit(**_OPTS)
def restrict(r_f, ext_f, kind_c, ext_c, flags, rhs_c):
    """Coarse right-hand side on coarse unknowns: the transpose of :func:`prolong_add`, scaled by
    2^-k (k coarsened axes) so that it averages; 0 on the other coarse cells.

    Being the exact (scaled) transpose of the prolongation keeps the V-cycle symmetric, as the
    conjugate-gradient driver needs. Computed as a weighted sum of fine rows (z, y weights), then
    the x weights along the summed row.
    """
    B, C, Dc, Hc, Wc = rhs_c.shape
    Wf = r_f.shape[4]
    acc = np.empty(Wf)
    for ri in range(B * C * Dc * Hc):
        b, c, Z, Y, ezc, eyc, nxc = _crop_row(ri, ext_c, C, Dc, Hc)
        if Z >= ezc or Y >= eyc:
            continue
        fz, fy, fx = flags[b, 0], flags[b, 1], flags[b, 2]
        scale = 1.0 / (1 << (fz + fy + fx))
        exf = ext_f[b, 2]
        nxc = ext_c[b, 2]
        acc[:exf] = 0.0
        for z in range(max((Z << fz) - fz, 0), min((Z << fz) + 1 + 2 * fz, ext_f[b, 0])):
            wz_ = _restrict_weight(Z, z, fz, ext_c[b, 0])
            if wz_ == 0.0:
                continue
            for y in range(max((Y << fy) - fy, 0), min((Y << fy) + 1 + 2 * fy, ext_f[b, 1])):
                wzy = wz_ * _restrict_weight(Y, y, fy, ext_c[b, 1])
                if wzy == 0.0:
                    continue
                row = r_f[b, c, z, y]
                for x in range(exf):
                    acc[x] += wzy * row[x]
        out = rhs_c[b, c, Z, Y]
        kc = kind_c[b, Z, Y]
        for X in range(nxc):
            out[X] = _restrict_x(acc, X, fx, nxc, exf) * scale if kc[X] == UNKNOWN else 0


@njit(**_OPTS)
def prolong_add(e_c, kind_c, ext_c, kind_f, ext_f, flags, u_f):
    """u_f += P e_c on fine unknowns: cell-centred (bi/tri)linear interpolation (weights 3/4, 1/4
    per coarsened axis; at the end of the coarse extent, the nearest coarse cell).

    Coarse cells that are not unknown hold a zero correction; a sample absent from the coarse level
    (coarse extent 0) gets nothing. ``kind_c`` is not read (it is part of the signature for
    symmetry with :func:`restrict`).
    """
    B, C, Df, Hf, Wf = u_f.shape
    Wc = e_c.shape[4]
    ec = np.empty(Wc)
    for ri in range(B * C * Df * Hf):
        b, c, z, y, ezf, eyf, exf = _crop_row(ri, ext_f, C, Df, Hf)
        if z >= ezf or y >= eyf or ext_c[b, 0] == 0 or ext_c[b, 1] == 0 or ext_c[b, 2] == 0:
            continue
        fz, fy, fx = flags[b, 0], flags[b, 1], flags[b, 2]
        nxc = ext_c[b, 2]
        z0, z1, wz0, wz1 = _axis_pair(z, fz, ext_c[b, 0])
        y0, y1, wy0, wy1 = _axis_pair(y, fy, ext_c[b, 1])
        # the coarse row interpolated in z and y, then along x
        a00 = e_c[b, c, z0, y0]
        a01 = e_c[b, c, z0, y1]
        a10 = e_c[b, c, z1, y0]
        a11 = e_c[b, c, z1, y1]
        w00, w01, w10, w11 = wz0 * wy0, wz0 * wy1, wz1 * wy0, wz1 * wy1
        for X in range(nxc):
            ec[X] = (w00 * a00[X] + w01 * a01[X]) + (w10 * a10[X] + w11 * a11[X])
        uf = u_f[b, c, z, y]
        kf = kind_f[b, z, y]
        for x in range(ext_f[b, 2]):
            if kf[x] != UNKNOWN:
                continue
            x0, x1, wx0, wx1 = _axis_pair(x, fx, nxc)
            uf[x] += wx0 * ec[x0] + wx1 * ec[x1]


@njit(**_OPTS)
def dot_unknowns(x, y, kind, ext, out):
    """out[b, c] = sum of x * y over the unknown cells of system (b, c), in float64."""
    B, C, Dp, Hp, Wp = x.shape
    for b in range(B):
        for c in range(C):
            s = 0.0
            for z in range(ext[b, 0]):
                for yy in range(ext[b, 1]):
                    xr = x[b, c, z, yy]
                    yr = y[b, c, z, yy]
                    kr = kind[b, z, yy]
                    for xx in range(ext[b, 2]):
                        s += 1.0 * xr[xx] * yr[xx] if kr[xx] == UNKNOWN else 0.0
            out[b, c] = s


@njit(inline="always")
def _combine_unknowns(x, coef, y, kind, ext, axpy):
    # on the unknown cells of every system (b, c): y += coef[b, c] x (axpy; systems with coef 0
    # are left alone) or y = x + coef[b, c] y
    B, C, Dp, Hp, Wp = x.shape
    for ri in range(B * C * Dp * Hp):
        b, c, z, yy, ez, ey, ex = _crop_row(ri, ext, C, Dp, Hp)
        s = coef[b, c]
        if z >= ez or yy >= ey or (axpy and s == 0):
            continue
        xr = x[b, c, z, yy]
        yr = y[b, c, z, yy]
        kr = kind[b, z, yy]
        if axpy:
            for xx in range(ext[b, 2]):
                yr[xx] = yr[xx] + s * xr[xx] if kr[xx] == UNKNOWN else yr[xx]
        else:
            for xx in range(ext[b, 2]):
                yr[xx] = xr[xx] + s * yr[xx] if kr[xx] == UNKNOWN else yr[xx]


@njit(**_OPTS)
def axpy_unknowns(a, x, y, kind, ext):
    """y += a[b, c] * x on the unknown cells of every system (b, c); a: (B, C) float64.

    Systems with a == 0 are left alone (frozen systems of the driver cost nothing here)."""
    _combine_unknowns(x, a, y, kind, ext, True)


@njit(**_OPTS)
def xpby_unknowns(x, beta, y, kind, ext):
    """y = x + beta[b, c] * y on the unknown cells of every system (b, c); beta: (B, C) float64."""
    _combine_unknowns(x, beta, y, kind, ext, False)


@njit(**_OPTS)
def scatter_crop(u, kind, off, ext, lo, hi, do_clip, out):
    """Add the crop's correction to the full-size output on unknown cells: out = clip(dst + e).

    u: (B, C, Dp, Hp, Wp) the correction e; out: (B, C, D, H, W), holding dst (the sum is
    rounded once, to the image dtype); lo, hi: (B, C) clip bounds.
    """
    B, C, Dp, Hp, Wp = u.shape
    for ri in range(B * C * Dp * Hp):
        b, c, z, y, ez, ey, ex = _crop_row(ri, ext, C, Dp, Hp)
        if z >= ez or y >= ey:
            continue
        iz = off[b, 0] + z
        iy = off[b, 1] + y
        for x in range(ext[b, 2]):
            if kind[b, z, y, x] != UNKNOWN:
                continue
            ix = off[b, 2] + x
            v = out[b, c, iz, iy, ix] + u[b, c, z, y, x]
            if do_clip:
                if v < lo[b, c]:
                    v = lo[b, c]
                elif v > hi[b, c]:
                    v = hi[b, c]
            out[b, c, iz, iy, ix] = v


@njit(**_OPTS)
def smooth(u, rhs, kind, ext, w, sweeps, reverse):
    """``sweeps`` red-black Gauss-Seidel sweeps (black first when ``reverse``), in one call.

    Same result as ``rbgs_sweep(first)`` then ``rbgs_sweep(1 - first)``, repeated, but both
    colours go through the rows of a system in one pass: the second colour trails the first by
    the rows it depends on (one row in 2D, one plane in 3D), while they are still in cache.
    """
    B, C, Dp, Hp, Wp = u.shape
    wt = w.astype(u.dtype)
    tmp = np.empty(Wp, u.dtype)
    first = 1 if reverse else 0
    interior = np.empty(Dp * Hp, np.bool_)
    for b in range(B):
        wz, wy, wx = wt[b, 0], wt[b, 1], wt[b, 2]
        zero = wx - wx
        ez, ey, ex = ext[b, 0], ext[b, 1], ext[b, 2]
        rows = ez * ey
        lag = ey if ez > 1 else 1
        for r in range(rows):  # the same for every channel, sweep and colour
            interior[r] = _row_is_interior(kind, b, r // ey, r % ey, ez, ey, ex)
        for c in range(C):
            for _ in range(sweeps):
                for r in range(rows + lag):
                    if r < rows:
                        _rbgs_row(u, rhs, kind, b, c, r // ey, r % ey, ez, ey, ex, wz, wy, wx, zero,
                                  first, tmp, interior[r])
                    q = r - lag
                    if q >= 0:
                        _rbgs_row(u, rhs, kind, b, c, q // ey, q % ey, ez, ey, ex, wz, wy, wx, zero,
                                  1 - first, tmp, interior[q])
