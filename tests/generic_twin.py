"""The whole-system solve written with the batched driver's primitives
(:mod:`pii_augment.ops._numba_kernels`, called on views of shape (1, 1, D, H, W)): the reference
that the library's flat solve (:func:`pii_augment.ops._mg_system.solve_flat`) and the CUDA kernel
``mg_solve`` are held to, byte for byte (tests/ops/test_mg_system.py)."""

from __future__ import annotations

import numpy as np
from numba import njit

from pii_augment.ops._mg_system import _first_verdict, _ratio, _relative, _tree_sum, _verdict, hierarchy
from pii_augment.ops._numba_kernels import (
    UNKNOWN,
    axpy_unknowns,
    coarsen_kind,
    prolong_add,
    residual,
    restrict,
    smooth,
    xpby_unknowns,
)

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
        if kf[i] == UNKNOWN:
            acc[i & 255] += 1.0 * xf[i] * yf[i]
    return _tree_sum(acc)


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

    kind0: (1, D, H, W) uint8 crop labels (:class:`~pii_augment.ops.codes.Cell`); r0: (1, 1, D, H, W), the
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
    rel, status = _first_verdict(rr0, tol)
    if status:
        return rel, status, 0
    last = np.inf
    rz = 0.0
    it = 0
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
            coef[0, 0] = _ratio(rz_new, rz)
            xpby_unknowns(z, coef, p, kind, ext)  # p = z + beta p
        rz = rz_new
        residual(p, zero, kind, ext, w, q)  # q = -A p
        coef[0, 0] = _ratio(rz, -dot_tree(p, q, kind))
        axpy_unknowns(coef, p, x, kind, ext)  # x += alpha p
        axpy_unknowns(coef, q, r, kind, ext)  # r -= alpha A p
        it += 1
        est = _relative(dot_tree(r, r, kind), rr0)
        if est <= tol or not np.isfinite(est) or it == max_iter:
            residual(x, r0, kind, ext, w, q)  # the true residual r0 - A x (q is free here)
            rel = _relative(dot_tree(q, q, kind), rr0)
            status = _verdict(rel, est <= tol, tol, last, stall_ratio)
            if status:
                break
            last = rel
    return rel, status if status else 4, it
