"""Numba (CPU) primitives of the batched masked Poisson solver.

Each function here has a CUDA twin of the same name and argument order in ``kernels/*.cu``;
the multigrid driver in :mod:`pii_augment.ops.solver` calls either through a backend object.

Array conventions (all C-contiguous):

- field arrays ``u, rhs, r``: ``(B, C, D, H, W)`` float32/float64 (2D problems have ``D == 1``);
- ``kind``: ``(B, D, H, W)`` uint8 per pixel of the padded crop: 0 = not part of the problem
  (outside the image or outside this sample's crop), 1 = fixed (Dirichlet value), 2 = unknown;
- ``ext``: ``(B, 3)`` int64, the extent of each sample's crop along (z, y, x); cells beyond it
  are never read or written (except by the kernels that explicitly clear them);
- ``off``: ``(B, 3)`` int64, image coordinates of crop cell (0, 0, 0) (may be negative);
- ``w``: ``(3,)`` float64, the stencil weight per axis (1/h^2 relative to the finest level);
- ``flags``: ``(3,)`` int64, 1 where the axis is coarsened between two levels.

The operator on unknown cell p is ``A(u)_p = sum_axis w_a sum_{q = p +- e_a, kind_q >= 1} (u_p - u_q)``.
Each function is serial and releases the GIL: the host backend runs the driver on chunks of the
batch in parallel threads (see :mod:`pii_augment.ops._backends`). Loops run over flattened rows
``(b, c, z, y)`` exactly as the CUDA twins map rows to threads; red-black colouring makes the
Gauss-Seidel sweeps order-independent, so every backend computes the same iterates.
"""

from __future__ import annotations

import numpy as np  # noqa: F401
from numba import njit

_OPTS = dict(cache=True, nogil=True)


@njit(**_OPTS)
def build_kind(mask, off, ext, kind):
    """Label the padded crop cells from the full-image mask.

    mask: (B, D, H, W) bool, the full-size region; off, ext: (B, 3); kind: (B, Dp, Hp, Wp) uint8.
    """
    B, Dp, Hp, Wp = kind.shape
    D, H, W = mask.shape[1], mask.shape[2], mask.shape[3]
    for n in range(B * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        b = t // Dp
        iz = off[b, 0] + z
        iy = off[b, 1] + y
        row_ok = z < ext[b, 0] and y < ext[b, 1] and 0 <= iz < D and 0 <= iy < H
        for x in range(Wp):
            ix = off[b, 2] + x
            k = 0
            if row_ok and x < ext[b, 2] and 0 <= ix < W:
                k = 2 if mask[b, iz, iy, ix] else 1
            kind[b, z, y, x] = k


@njit(**_OPTS)
def gather_crop(full, off, ext, out):
    """Copy each sample's crop of a full-size field into the padded crop array.

    full: (B, C, D, H, W); out: (B, C, Dp, Hp, Wp); cells outside the image or the crop get 0.
    """
    B, C, Dp, Hp, Wp = out.shape
    D, H, W = full.shape[2], full.shape[3], full.shape[4]
    for n in range(B * C * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        iz = off[b, 0] + z
        iy = off[b, 1] + y
        row_ok = z < ext[b, 0] and y < ext[b, 1] and 0 <= iz < D and 0 <= iy < H
        for x in range(Wp):
            ix = off[b, 2] + x
            if row_ok and x < ext[b, 2] and 0 <= ix < W:
                out[b, c, z, y, x] = full[b, c, iz, iy, ix]
            else:
                out[b, c, z, y, x] = 0


@njit(inline="always")
def _pick(dp, dq, sp, sq, al, mode):
    # mode 0: PII (alpha-weighted mixed gradient), 1: mixed, 2: source
    if mode == 2:
        return sp - sq
    if mode == 0:
        a = (1.0 - al) * (dp - dq)
        s = al * (sp - sq)
    else:
        a = dp - dq
        s = sp - sq
    if abs(a) > abs(s):
        return a
    return s


@njit(**_OPTS)
def guidance_rhs(dst, src, kind, ext, alpha, mode, rhs):
    """Divergence of the guidance field on unknown cells (0 elsewhere).

    rhs_p = sum over in-image neighbours q of v_pq (see DESIGN.md, gradient modes).
    dst, src, rhs: (B, C, Dp, Hp, Wp) crops; alpha: (B,) float64; mode: 0 pii, 1 mixed, 2 source.
    """
    B, C, Dp, Hp, Wp = rhs.shape
    for n in range(B * C * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        ez, ey, ex = ext[b, 0], ext[b, 1], ext[b, 2]
        if z >= ez or y >= ey:
            continue
        al = alpha[b]
        for x in range(ex):
            if kind[b, z, y, x] != 2:
                rhs[b, c, z, y, x] = 0
                continue
            dp = dst[b, c, z, y, x]
            sp = src[b, c, z, y, x]
            acc = 0.0
            if x > 0 and kind[b, z, y, x - 1] != 0:
                acc += _pick(dp, dst[b, c, z, y, x - 1], sp, src[b, c, z, y, x - 1], al, mode)
            if x + 1 < ex and kind[b, z, y, x + 1] != 0:
                acc += _pick(dp, dst[b, c, z, y, x + 1], sp, src[b, c, z, y, x + 1], al, mode)
            if y > 0 and kind[b, z, y - 1, x] != 0:
                acc += _pick(dp, dst[b, c, z, y - 1, x], sp, src[b, c, z, y - 1, x], al, mode)
            if y + 1 < ey and kind[b, z, y + 1, x] != 0:
                acc += _pick(dp, dst[b, c, z, y + 1, x], sp, src[b, c, z, y + 1, x], al, mode)
            if z > 0 and kind[b, z - 1, y, x] != 0:
                acc += _pick(dp, dst[b, c, z - 1, y, x], sp, src[b, c, z - 1, y, x], al, mode)
            if z + 1 < ez and kind[b, z + 1, y, x] != 0:
                acc += _pick(dp, dst[b, c, z + 1, y, x], sp, src[b, c, z + 1, y, x], al, mode)
            rhs[b, c, z, y, x] = acc


@njit(**_OPTS)
def fill_unknowns(u, kind, ext, value):
    """Set ``u`` to ``value`` on every unknown cell."""
    B, C, Dp, Hp, Wp = u.shape
    for n in range(B * C * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        b = t // C
        c = t % C
        if z >= ext[b, 0] or y >= ext[b, 1]:
            continue
        for x in range(ext[b, 2]):
            if kind[b, z, y, x] == 2:
                u[b, c, z, y, x] = value


@njit(**_OPTS)
def rbgs_sweep(u, rhs, kind, ext, w, color):
    """One red-black Gauss-Seidel half sweep: update unknowns with (z + y + x) % 2 == color."""
    B, C, Dp, Hp, Wp = u.shape
    wz, wy, wx = w[0], w[1], w[2]
    for n in range(B * C * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        ez, ey, ex = ext[b, 0], ext[b, 1], ext[b, 2]
        if z >= ez or y >= ey:
            continue
        for x in range((color + z + y) & 1, ex, 2):
            if kind[b, z, y, x] != 2:
                continue
            diag = 0.0
            acc = 1.0 * rhs[b, c, z, y, x]
            if x > 0 and kind[b, z, y, x - 1] != 0:
                diag += wx
                acc += wx * u[b, c, z, y, x - 1]
            if x + 1 < ex and kind[b, z, y, x + 1] != 0:
                diag += wx
                acc += wx * u[b, c, z, y, x + 1]
            if y > 0 and kind[b, z, y - 1, x] != 0:
                diag += wy
                acc += wy * u[b, c, z, y - 1, x]
            if y + 1 < ey and kind[b, z, y + 1, x] != 0:
                diag += wy
                acc += wy * u[b, c, z, y + 1, x]
            if z > 0 and kind[b, z - 1, y, x] != 0:
                diag += wz
                acc += wz * u[b, c, z - 1, y, x]
            if z + 1 < ez and kind[b, z + 1, y, x] != 0:
                diag += wz
                acc += wz * u[b, c, z + 1, y, x]
            if diag > 0.0:
                u[b, c, z, y, x] = acc / diag


@njit(**_OPTS)
def jacobi_sweep(u, rhs, kind, ext, w, omega, u_out):
    """One weighted Jacobi sweep from ``u`` into ``u_out`` (non-unknown cells are copied)."""
    B, C, Dp, Hp, Wp = u.shape
    wz, wy, wx = w[0], w[1], w[2]
    for n in range(B * C * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        ez, ey, ex = ext[b, 0], ext[b, 1], ext[b, 2]
        if z >= ez or y >= ey:
            continue
        for x in range(ex):
            up = u[b, c, z, y, x]
            if kind[b, z, y, x] != 2:
                u_out[b, c, z, y, x] = up
                continue
            diag = 0.0
            acc = 1.0 * rhs[b, c, z, y, x]
            if x > 0 and kind[b, z, y, x - 1] != 0:
                diag += wx
                acc += wx * u[b, c, z, y, x - 1]
            if x + 1 < ex and kind[b, z, y, x + 1] != 0:
                diag += wx
                acc += wx * u[b, c, z, y, x + 1]
            if y > 0 and kind[b, z, y - 1, x] != 0:
                diag += wy
                acc += wy * u[b, c, z, y - 1, x]
            if y + 1 < ey and kind[b, z, y + 1, x] != 0:
                diag += wy
                acc += wy * u[b, c, z, y + 1, x]
            if z > 0 and kind[b, z - 1, y, x] != 0:
                diag += wz
                acc += wz * u[b, c, z - 1, y, x]
            if z + 1 < ez and kind[b, z + 1, y, x] != 0:
                diag += wz
                acc += wz * u[b, c, z + 1, y, x]
            if diag > 0.0:
                u_out[b, c, z, y, x] = (1.0 - omega) * up + omega * (acc / diag)
            else:
                u_out[b, c, z, y, x] = up


@njit(**_OPTS)
def residual(u, rhs, kind, ext, w, r):
    """r = rhs - A(u) on unknown cells, 0 on the other cells of the crop."""
    B, C, Dp, Hp, Wp = u.shape
    wz, wy, wx = w[0], w[1], w[2]
    for n in range(B * C * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        ez, ey, ex = ext[b, 0], ext[b, 1], ext[b, 2]
        if z >= ez or y >= ey:
            continue
        for x in range(ex):
            if kind[b, z, y, x] != 2:
                r[b, c, z, y, x] = 0
                continue
            up = 1.0 * u[b, c, z, y, x]
            acc = 0.0
            if x > 0 and kind[b, z, y, x - 1] != 0:
                acc += wx * (up - u[b, c, z, y, x - 1])
            if x + 1 < ex and kind[b, z, y, x + 1] != 0:
                acc += wx * (up - u[b, c, z, y, x + 1])
            if y > 0 and kind[b, z, y - 1, x] != 0:
                acc += wy * (up - u[b, c, z, y - 1, x])
            if y + 1 < ey and kind[b, z, y + 1, x] != 0:
                acc += wy * (up - u[b, c, z, y + 1, x])
            if z > 0 and kind[b, z - 1, y, x] != 0:
                acc += wz * (up - u[b, c, z - 1, y, x])
            if z + 1 < ez and kind[b, z + 1, y, x] != 0:
                acc += wz * (up - u[b, c, z + 1, y, x])
            r[b, c, z, y, x] = rhs[b, c, z, y, x] - acc


@njit(**_OPTS)
def coarsen_kind(kind_f, ext_f, flags, kind_c, ext_c):
    """Coarse cell labels by erosion: unknown iff it has an unknown child and no fixed child.

    Children outside the image/crop (kind 0) are ignored, so Neumann edges stay Neumann and
    every fixed fine cell keeps a fixed parent (no coarse problem loses its Dirichlet boundary).
    """
    B, Dc, Hc, Wc = kind_c.shape
    fz, fy, fx = flags[0], flags[1], flags[2]
    for n in range(B * Dc * Hc):
        Y = n % Hc
        t = n // Hc
        Z = t % Dc
        b = t // Dc
        row_ok = Z < ext_c[b, 0] and Y < ext_c[b, 1]
        for X in range(Wc):
            k = 0
            if row_ok and X < ext_c[b, 2]:
                has1 = False
                has2 = False
                for dz in range(1 + fz):
                    z = (Z << fz) + dz
                    if z >= ext_f[b, 0]:
                        continue
                    for dy in range(1 + fy):
                        y = (Y << fy) + dy
                        if y >= ext_f[b, 1]:
                            continue
                        for dx in range(1 + fx):
                            x = (X << fx) + dx
                            if x >= ext_f[b, 2]:
                                continue
                            kf = kind_f[b, z, y, x]
                            if kf == 1:
                                has1 = True
                            elif kf == 2:
                                has2 = True
                if has1:
                    k = 1
                elif has2:
                    k = 2
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


@njit(**_OPTS)
def restrict(r_f, ext_f, kind_c, ext_c, flags, rhs_c):
    """Coarse right-hand side on coarse unknowns: the transpose of :func:`prolong_add`, scaled by
    2^-k (k coarsened axes) so that it averages; 0 on the other coarse cells.

    Being the exact (scaled) transpose of the prolongation keeps the V-cycle symmetric, as the
    conjugate-gradient driver needs.
    """
    B, C, Dc, Hc, Wc = rhs_c.shape
    fz, fy, fx = flags[0], flags[1], flags[2]
    scale = 1.0 / (1 << (fz + fy + fx))
    for n in range(B * C * Dc * Hc):
        Y = n % Hc
        t = n // Hc
        Z = t % Dc
        t = t // Dc
        c = t % C
        b = t // C
        if Z >= ext_c[b, 0] or Y >= ext_c[b, 1]:
            continue
        for X in range(ext_c[b, 2]):
            if kind_c[b, Z, Y, X] != 2:
                rhs_c[b, c, Z, Y, X] = 0
                continue
            s = 0.0
            for z in range(max((Z << fz) - fz, 0), min((Z << fz) + 1 + 2 * fz, ext_f[b, 0])):
                wz_ = _restrict_weight(Z, z, fz, ext_c[b, 0])
                if wz_ == 0.0:
                    continue
                for y in range(max((Y << fy) - fy, 0), min((Y << fy) + 1 + 2 * fy, ext_f[b, 1])):
                    wy_ = _restrict_weight(Y, y, fy, ext_c[b, 1])
                    if wy_ == 0.0:
                        continue
                    for x in range(max((X << fx) - fx, 0), min((X << fx) + 1 + 2 * fx, ext_f[b, 2])):
                        wx_ = _restrict_weight(X, x, fx, ext_c[b, 2])
                        if wx_ != 0.0:
                            s += wz_ * wy_ * wx_ * r_f[b, c, z, y, x]
            rhs_c[b, c, Z, Y, X] = s * scale


@njit(**_OPTS)
def prolong_add(e_c, kind_c, ext_c, kind_f, ext_f, flags, u_f):
    """u_f += P e_c on fine unknowns: cell-centred (bi/tri)linear interpolation (weights 3/4, 1/4
    per coarsened axis; at the end of the coarse extent, the nearest coarse cell).

    Coarse cells that are not unknown hold a zero correction. ``kind_c`` is not read (it is part
    of the signature for symmetry with :func:`restrict`).
    """
    B, C, Df, Hf, Wf = u_f.shape
    fz, fy, fx = flags[0], flags[1], flags[2]
    for n in range(B * C * Df * Hf):
        y = n % Hf
        t = n // Hf
        z = t % Df
        t = t // Df
        c = t % C
        b = t // C
        if z >= ext_f[b, 0] or y >= ext_f[b, 1]:
            continue
        z0, z1, wz0, wz1 = _axis_pair(z, fz, ext_c[b, 0])
        y0, y1, wy0, wy1 = _axis_pair(y, fy, ext_c[b, 1])
        for x in range(ext_f[b, 2]):
            if kind_f[b, z, y, x] != 2:
                continue
            x0, x1, wx0, wx1 = _axis_pair(x, fx, ext_c[b, 2])
            acc = wz0 * (wy0 * (wx0 * e_c[b, c, z0, y0, x0] + wx1 * e_c[b, c, z0, y0, x1])
                         + wy1 * (wx0 * e_c[b, c, z0, y1, x0] + wx1 * e_c[b, c, z0, y1, x1]))
            if wz1 != 0.0:
                acc += wz1 * (wy0 * (wx0 * e_c[b, c, z1, y0, x0] + wx1 * e_c[b, c, z1, y0, x1])
                              + wy1 * (wx0 * e_c[b, c, z1, y1, x0] + wx1 * e_c[b, c, z1, y1, x1]))
            u_f[b, c, z, y, x] += acc


@njit(**_OPTS)
def dot_unknowns(x, y, kind, ext, out):
    """out[b, c] = sum of x * y over the unknown cells of system (b, c), in float64."""
    B, C, Dp, Hp, Wp = x.shape
    for n in range(B * C):
        c = n % C
        b = n // C
        s = 0.0
        for z in range(ext[b, 0]):
            for yy in range(ext[b, 1]):
                for xx in range(ext[b, 2]):
                    if kind[b, z, yy, xx] == 2:
                        s += 1.0 * x[b, c, z, yy, xx] * y[b, c, z, yy, xx]
        out[b, c] = s


@njit(**_OPTS)
def axpy_unknowns(a, x, y, kind, ext):
    """y += a[b, c] * x on the unknown cells of every system (b, c); a: (B, C) float64."""
    B, C, Dp, Hp, Wp = x.shape
    for n in range(B * C * Dp * Hp):
        yy = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        if z >= ext[b, 0] or yy >= ext[b, 1]:
            continue
        s = a[b, c]
        for xx in range(ext[b, 2]):
            if kind[b, z, yy, xx] == 2:
                y[b, c, z, yy, xx] += s * x[b, c, z, yy, xx]


@njit(**_OPTS)
def xpby_unknowns(x, beta, y, kind, ext):
    """y = x + beta[b, c] * y on the unknown cells of every system (b, c); beta: (B, C) float64."""
    B, C, Dp, Hp, Wp = x.shape
    for n in range(B * C * Dp * Hp):
        yy = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        if z >= ext[b, 0] or yy >= ext[b, 1]:
            continue
        s = beta[b, c]
        for xx in range(ext[b, 2]):
            if kind[b, z, yy, xx] == 2:
                y[b, c, z, yy, xx] = x[b, c, z, yy, xx] + s * y[b, c, z, yy, xx]


@njit(**_OPTS)
def scatter_crop(u, kind, off, ext, lo, hi, do_clip, out):
    """Write the unknown cells of the crop solution into the full-size output.

    u: (B, C, Dp, Hp, Wp); out: (B, C, D, H, W), already holding dst; lo, hi: (B, C) clip bounds.
    """
    B, C, Dp, Hp, Wp = u.shape
    for n in range(B * C * Dp * Hp):
        y = n % Hp
        t = n // Hp
        z = t % Dp
        t = t // Dp
        c = t % C
        b = t // C
        if z >= ext[b, 0] or y >= ext[b, 1]:
            continue
        iz = off[b, 0] + z
        iy = off[b, 1] + y
        for x in range(ext[b, 2]):
            if kind[b, z, y, x] != 2:
                continue
            v = u[b, c, z, y, x]
            if do_clip:
                if v < lo[b, c]:
                    v = lo[b, c]
                elif v > hi[b, c]:
                    v = hi[b, c]
            out[b, c, iz, iy, off[b, 2] + x] = v


@njit(**_OPTS)
def smooth(u, rhs, kind, ext, w, sweeps, reverse):
    """``sweeps`` red-black Gauss-Seidel sweeps (black first when ``reverse``), in one call."""
    first = 1 if reverse else 0
    for _ in range(sweeps):
        rbgs_sweep(u, rhs, kind, ext, w, first)
        rbgs_sweep(u, rhs, kind, ext, w, 1 - first)
