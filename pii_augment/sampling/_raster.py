"""Exact rasterisation of patch shapes from their parameters (host, numpy float64).

Every pixel g (integer coordinates, one per axis) is tested at its centre: ``x = (g + 0.5) - c``
with c the patch's integer centre. Shapes that are not deformed use the original tests (a box
``[c - w, c + w)``, an ellipse ``sum((x / w) ** 2) <= 1``). A deformed shape (rotated and/or
sheared) maps x to canonical coordinates ``u = A x`` with ``A = diag(1/w) S^-1 R^T`` (the inverse
of ``x = R S diag(w) u``), computed here in float64 from the angles; the kernel
``patch_masks`` of ``kernels/pointwise.cu`` receives the same A as a table and applies it with
the same operations in the same order (``u_i = (A_i0 x_0 + A_i1 x_1) + A_i2 x_2``, no fused
multiply-add), so host and device masks are bitwise equal.

Canonical tests: square / rectangle ``max |u_i| < 1``; ellipse ``sum u_i^2 <= 1``; blob the
original's bump field on u; a bank mask of shape s is indexed at ``floor(u + s / 2)`` (A then
has no ``1/w`` factor).

Matrices are built entry by entry from (N,) arrays with elementwise operations (no BLAS), so a
row's matrix is the same whatever else is in the batch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["inverse_matrices", "forward_matrices", "row_mask", "n_angles"]


def n_angles(nd: int) -> int:
    """Rotation angles (and shear angles) per patch: 1 in 2D, 3 in 3D."""
    return 1 if nd == 2 else 3


def _eye(nd: int, n: int) -> list[list[np.ndarray]]:
    return [[np.full(n, 1.0 if i == j else 0.0) for j in range(nd)] for i in range(nd)]


def _mm(a, b):
    """Product of two nd x nd matrices stored as lists of (N,) arrays, summed in index order."""
    nd = len(a)
    out = []
    for i in range(nd):
        row = []
        for j in range(nd):
            acc = a[i][0] * b[0][j]
            for k in range(1, nd):
                acc = acc + a[i][k] * b[k][j]
            row.append(acc)
        out.append(row)
    return out


def _transpose(a):
    nd = len(a)
    return [[a[j][i] for j in range(nd)] for i in range(nd)]


#: The planes (axis i, axis j) of the rotation angles, in order: 2D (y, x); 3D (y, x), (z, x), (z, y).
_PLANES = {2: [(0, 1)], 3: [(1, 2), (0, 2), (0, 1)]}
#: The entries (row, col) of the unit lower-triangular shear, one per shear angle:
#: 2D x by y; 3D x by y, x by z, y by z.
_SHEARS = {2: [(1, 0)], 3: [(2, 1), (2, 0), (1, 0)]}


def _rotation(angles_deg: np.ndarray, nd: int):
    """R = P_0 P_1 ... (one plane rotation per angle, in the planes of ``_PLANES``)."""
    n = angles_deg.shape[0]
    r = _eye(nd, n)
    for k, (i, j) in enumerate(_PLANES[nd]):
        t = np.deg2rad(angles_deg[:, k])
        c, s = np.cos(t), np.sin(t)
        p = _eye(nd, n)
        p[i][i], p[i][j], p[j][i], p[j][j] = c, -s, s, c
        r = _mm(r, p)
    return r


def _shear(shear_deg: np.ndarray, nd: int):
    n = shear_deg.shape[0]
    s = _eye(nd, n)
    for k, (i, j) in enumerate(_SHEARS[nd]):
        s[i][j] = np.tan(np.deg2rad(shear_deg[:, k]))
    return s


def _shear_inverse(shear_deg: np.ndarray, nd: int):
    """Inverse of the unit lower-triangular shear, in closed form."""
    s = _shear(shear_deg, nd)
    inv = _eye(nd, shear_deg.shape[0])
    if nd == 2:
        inv[1][0] = -s[1][0]
    else:
        a, b, c = s[1][0], s[2][0], s[2][1]
        inv[1][0], inv[2][1] = -a, -c
        inv[2][0] = a * c - b
    return inv


def forward_matrices(rotation: np.ndarray | None, shear: np.ndarray | None, nd: int, n: int):
    """``R S`` per row (canonical to pixel offsets, before the scale), list-of-lists of (N,)."""
    m = _eye(nd, n)
    if rotation is not None:
        m = _mm(m, _rotation(rotation, nd))
    if shear is not None:
        m = _mm(m, _shear(shear, nd))
    return m


def inverse_matrices(rotation: np.ndarray | None, shear: np.ndarray | None, scale: np.ndarray) -> np.ndarray:
    """(N, nd, nd) float64 ``A = diag(1 / scale) S^-1 R^T`` (``scale``: (N, nd) float64)."""
    n, nd = scale.shape
    m = _eye(nd, n)
    if shear is not None:
        m = _shear_inverse(shear, nd)
    if rotation is not None:
        m = _mm(m, _transpose(_rotation(rotation, nd)))
    out = np.empty((n, nd, nd))
    for i in range(nd):
        for j in range(nd):
            out[:, i, j] = m[i][j] / scale[:, i]
    return out


def _coords(lo, hi, centre):
    """Open grids of ``x = (g + 0.5) - c`` over the box [lo, hi), float64, one per axis."""
    nd = len(lo)
    out = []
    for a in range(nd):
        g = np.arange(int(lo[a]), int(hi[a]), dtype=np.int64)
        shape = [1] * nd
        shape[a] = g.size
        out.append((g + 0.5 - centre[a]).reshape(shape))
    return out


def _apply(matrix, x):
    """u_i = (A_i0 x_0 + A_i1 x_1) + A_i2 x_2, in this order (as the kernel)."""
    nd = len(x)
    u = []
    for i in range(nd):
        acc = matrix[i, 0] * x[0]
        for j in range(1, nd):
            acc = acc + matrix[i, j] * x[j]
        u.append(acc)
    return u


def row_mask(shape: str, lo, hi, centre, width, matrix=None, blob=None, bank=None) -> np.ndarray:
    """The bool mask of one patch over the box [lo, hi) (box shape), exactly from its parameters.

    Args:
        shape: ``"square"``, ``"rectangle"``, ``"ellipse"``, ``"blob"`` or ``"bank"``.
        lo, hi: (nd,) ints, the box to rasterise (any box; coordinates outside the image are
            fine, nothing is clipped here).
        centre: (nd,) int patch centre; width: (nd,) float64 ``max(half_width, 1)``.
        matrix: None (not deformed) or the (nd, nd) float64 inverse matrix.
        blob: (centres (K, nd), radii (K,)) for blobs.
        bank: the (cropped) bank mask for ``"bank"``.
    """
    box = tuple(int(h) - int(l) for l, h in zip(lo, hi))
    if min(box, default=0) <= 0:
        return np.zeros(tuple(max(b, 0) for b in box), bool)
    nd = len(lo)
    if shape == "bank" and matrix is None:  # integer placement: bank pixel k at c - ceil(s/2) + k
        out = np.zeros(box, bool)
        s = bank.shape
        src, dst = [], []
        for a in range(nd):
            start = int(centre[a]) - (s[a] + 1) // 2  # image coordinate of bank pixel 0
            a0, a1 = max(int(lo[a]), start), min(int(hi[a]), start + s[a])
            if a1 <= a0:
                return out
            src.append(slice(a0 - start, a1 - start))
            dst.append(slice(a0 - int(lo[a]), a1 - int(lo[a])))
        out[tuple(dst)] = bank[tuple(src)]
        return out
    if matrix is None and shape in ("square", "rectangle"):
        return np.ones(box, bool)
    x = _coords(lo, hi, centre)
    if matrix is None:
        rel = [x[a] / width[a] for a in range(nd)]
    else:
        rel = _apply(matrix, x)
    if shape in ("square", "rectangle"):
        inside = np.abs(rel[0]) < 1.0
        for a in range(1, nd):
            inside = inside & (np.abs(rel[a]) < 1.0)
        return np.broadcast_to(inside, box).copy()
    if shape == "ellipse":
        r2 = sum(r * r for r in rel)
        return np.broadcast_to(r2 <= 1.0, box).copy()
    if shape == "blob":
        centres, radii = blob
        field = np.zeros(box)
        for k in range(centres.shape[0]):  # the original's order; radii as arrays, as it had them
            d2 = sum((rel[a] - centres[k, a : a + 1]) ** 2 for a in range(nd))
            field += np.exp(-d2 / (2 * radii[k : k + 1] ** 2))
        return field > 0.5
    # deformed bank: index floor(u + s / 2)
    s = bank.shape
    idx = []
    ok = np.ones(box, bool)
    for a in range(nd):
        k = np.floor(rel[a] + s[a] / 2.0)
        ok = ok & (k >= 0) & (k < s[a])
        idx.append(k)
    out = np.zeros(box, bool)
    where = np.nonzero(ok)
    if where[0].size:
        take = tuple(np.broadcast_to(idx[a], box)[where].astype(np.int64) for a in range(nd))
        out[where] = bank[take]
    return out
