"""Exact reference solves, written independently of the library (scipy.sparse + direct LU)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla


def guidance_pairs(dp, dq, sp_, sq, alpha, gradient):
    """Guidance v_pq of DESIGN.md for arrays of pixel pairs (p in the mask, q a neighbour)."""
    if gradient == "source":
        return sp_ - sq
    if gradient == "pii":
        a = (1.0 - alpha) * (dp - dq)
        s = alpha * (sp_ - sq)
    elif gradient == "mixed":
        a = dp - dq
        s = sp_ - sq
    else:
        raise ValueError(gradient)
    return np.where(np.abs(a) > np.abs(s), a, s)


def exact_solve(dst, mask, rhs_fn):
    """Exact solve of sum_{q in N_p}(f_p - f_q) = g_p on one image (any ndim), f = dst outside.

    dst: (*spatial) float64; mask: (*spatial) bool; rhs_fn(p_flat, q_flat) -> guidance per pair.
    Returns f (*spatial) float64, built with scipy.sparse and solved with a direct LU.
    """
    shape = dst.shape
    n = dst.size
    idx = -np.ones(n, np.int64)
    flat_mask = mask.ravel()
    unknowns = np.flatnonzero(flat_mask)
    idx[unknowns] = np.arange(unknowns.size)
    rows, cols, vals = [], [], []
    b = np.zeros(unknowns.size)
    diag = np.zeros(unknowns.size)
    coords = np.array(np.unravel_index(unknowns, shape))  # (ndim, U)
    for axis in range(len(shape)):
        for step in (-1, 1):
            qc = coords.copy()
            qc[axis] += step
            inside = (qc[axis] >= 0) & (qc[axis] < shape[axis])
            p_flat = unknowns[inside]
            q_flat = np.ravel_multi_index(tuple(qc[:, inside]), shape)
            pi = idx[p_flat]
            diag[pi] += 1
            np.add.at(b, pi, rhs_fn(p_flat, q_flat))
            q_unknown = flat_mask[q_flat]
            rows.append(pi[q_unknown])
            cols.append(idx[q_flat[q_unknown]])
            vals.append(-np.ones(q_unknown.sum()))
            np.add.at(b, pi[~q_unknown], dst.ravel()[q_flat[~q_unknown]])
    rows.append(np.arange(unknowns.size))
    cols.append(np.arange(unknowns.size))
    vals.append(diag)
    A = sp.csc_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(unknowns.size, unknowns.size),
    )
    f = dst.astype(np.float64).ravel().copy()
    if unknowns.size:
        f[unknowns] = spla.splu(A).solve(b)
    return f.reshape(shape)


def exact_blend(dst, src, mask, alpha, gradient="pii", clip=True):
    """Exact reference of poisson_interpolate for a batch: (B, C, *spatial) float64 out."""
    dst = np.asarray(dst, np.float64)
    src = np.asarray(src, np.float64)
    alpha = np.broadcast_to(np.asarray(alpha, np.float64), (dst.shape[0],))
    out = np.empty_like(dst)
    for b in range(dst.shape[0]):
        for c in range(dst.shape[1]):
            d, s = dst[b, c].ravel(), src[b, c].ravel()

            def rhs(p, q, d=d, s=s, a=alpha[b]):
                return guidance_pairs(d[p], d[q], s[p], s[q], a, gradient)

            f = exact_solve(dst[b, c], mask[b], rhs)
            if clip:
                f = np.clip(f, dst[b, c].min(), dst[b, c].max())
            out[b, c] = f
    return out


def image_range(x):
    """Per-(sample, channel) range of a (B, C, ...) batch, shaped to broadcast."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    r = flat.max(axis=2) - flat.min(axis=2)
    return r.reshape(r.shape + (1,) * (x.ndim - 2))
