"""The batched masked Poisson solve: crop set-up and the multigrid / Jacobi driver.

The driver is written once, against the primitives of a backend (Numba on the CPU, CUDA kernels
through CuPy on the GPU, or the same CUDA source emulated on the CPU). It works on a padded crop
that holds every sample's mask bounding box plus a one-cell halo, so the cost follows the size of
the patch, not of the image.

Multigrid: cell-centred coarsening by 2 along every axis longer than one cell, coarse labels by
erosion (a coarse cell is unknown iff it has an unknown child and no fixed one, so every coarse
problem keeps a Dirichlet boundary), (bi/tri)linear prolongation and its scaled transpose as
restriction, red-black Gauss-Seidel smoothing. ``method="multigrid"`` runs conjugate gradients on
all systems at once, preconditioned by one symmetric V-cycle, until the relative residual
``||b - A f|| / ||b||`` of every system (sample, channel) is at most ``tol``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SolveInfo", "ConvergenceError", "ConvergenceWarning", "solve_crop", "CropProblem"]

MODES = {"pii": 0, "mixed": 1, "source": 2}
METHODS = ("multigrid", "vcycle", "jacobi")


class ConvergenceError(RuntimeError):
    """A solve stopped before every system reached the requested tolerance."""


class ConvergenceWarning(RuntimeWarning):
    """Issued instead of :class:`ConvergenceError` when ``on_unconverged="warn"``."""


@dataclass
class SolveInfo:
    """What a solve did.

    ``residual``: (B, C) final relative residual per system; ``converged``: (B, C) bool;
    ``iterations``: V-cycles (multigrid) or sweeps (jacobi) performed; ``levels``: grid levels
    used; ``crop_shape``: the padded crop (D, H, W) the solve ran on; ``spectral_samples``: how
    many samples ``method="auto"`` solved exactly by the box (DST-I) solve instead.
    """

    method: str
    tol: float
    iterations: int
    levels: int
    crop_shape: tuple[int, int, int]
    residual: np.ndarray = field(repr=False)
    converged: np.ndarray = field(repr=False)
    spectral_samples: int = 0

    @property
    def max_residual(self) -> float:
        return float(self.residual.max()) if self.residual.size else 0.0


@dataclass
class CropProblem:
    """The padded crop of a batch: per-sample offsets and extents, labels and shape.

    off, ext: (B, 3) int64 host arrays (z, y, x); kind: (B, Dp, Hp, Wp) uint8 backend array.
    """

    off: np.ndarray
    ext: np.ndarray
    shape: tuple[int, int, int]
    kind: Any
    off_dev: Any
    ext_dev: Any


def _bounding_boxes(mask5: Any, ndim: int, xp) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample bounding box of a (B, D, H, W) mask -> (lo, hi) host int64 (B, 3), hi exclusive.

    Empty masks get lo = hi = 0.
    """
    B = mask5.shape[0]
    lo = np.zeros((B, 3), np.int64)
    hi = np.zeros((B, 3), np.int64)
    axes = {0: (2, 3), 1: (1, 3), 2: (1, 2)}
    for a in range(3):
        prof = mask5.any(axis=axes[a])  # (B, n_a)
        n = prof.shape[1]
        first = xp.argmax(prof, axis=1)
        last = n - 1 - xp.argmax(prof[:, ::-1], axis=1)
        any_ = prof.any(axis=1)
        lo[:, a] = np.asarray(first.get() if hasattr(first, "get") else first)
        hi[:, a] = np.asarray(last.get() if hasattr(last, "get") else last) + 1
        empty = ~np.asarray(any_.get() if hasattr(any_, "get") else any_)
        lo[empty, a] = 0
        hi[empty, a] = 0
    return lo, hi


def prepare_crop(bk, mask5: Any, ndim: int, boxes: tuple[np.ndarray, np.ndarray] | None = None) -> CropProblem:
    """Bounding boxes, offsets, extents and cell labels for a (B, D, H, W) bool mask.

    ``boxes`` = (lo, hi) host (B, 3) bounding boxes when the caller has them already (an empty
    box, lo = hi, leaves that sample out of the solve).
    """
    lo, hi = _bounding_boxes(mask5, ndim, bk.xp) if boxes is None else boxes
    halo = np.array([1 if ndim == 3 else 0, 1, 1], np.int64)
    nonempty = (hi > lo).all(axis=1)
    off = np.where(nonempty[:, None], lo - halo, 0)
    ext = np.where(nonempty[:, None], hi - lo + 2 * halo, 0)
    if ndim == 2:
        ext[nonempty, 0] = 1
    shape = tuple(int(max(1, v)) for v in (ext.max(axis=0) if len(ext) else np.ones(3, np.int64)))
    off_dev = bk.index_array(off)
    ext_dev = bk.index_array(ext)
    kind = bk.empty((mask5.shape[0],) + shape, np.uint8)
    bk.build_kind(mask5, off_dev, ext_dev, kind)
    return CropProblem(off, ext, shape, kind, off_dev, ext_dev)


@dataclass
class _Level:
    shape: tuple[int, int, int]
    ext: np.ndarray
    ext_dev: Any
    kind: Any
    w: Any
    flags: Any = None  # coarsening flags towards the next level (None on the coarsest)


def _hierarchy(bk, crop: CropProblem, coarsest: int, max_levels: int) -> list[_Level]:
    levels = [_Level(crop.shape, crop.ext, crop.ext_dev, crop.kind, bk.index_array(np.ones(3)))]
    w = np.ones(3)
    while max(levels[-1].shape) > coarsest and len(levels) < max_levels:
        fine = levels[-1]
        flags = np.array([1 if s > 1 else 0 for s in fine.shape], np.int64)
        shape = tuple(int(-(-s // 2)) if f else int(s) for s, f in zip(fine.shape, flags))
        ext = np.where(flags[None, :] == 1, -(-fine.ext // 2), fine.ext)
        w = w * np.where(flags == 1, 0.25, 1.0)
        fine.flags = bk.index_array(flags)
        ext_dev = bk.index_array(ext)
        kind = bk.empty((crop.kind.shape[0],) + shape, np.uint8)
        bk.coarsen_kind(fine.kind, fine.ext_dev, fine.flags, kind, ext_dev)
        levels.append(_Level(shape, ext, ext_dev, kind, bk.index_array(w.copy())))
    return levels


def _relative_residual(bk, u, rhs, lev: _Level, r, bnorm2: np.ndarray) -> np.ndarray:
    bk.residual(u, rhs, lev.kind, lev.ext_dev, lev.w, r)
    return _relative(bk.to_host(_dot(bk, r, r, lev)), bnorm2)


def _relative(rr: np.ndarray, bnorm2: np.ndarray) -> np.ndarray:
    """sqrt(||r||^2 / ||b||^2) per system, 0 where b = 0 (nothing to solve)."""
    return np.sqrt(np.where(bnorm2 > 0, rr / np.where(bnorm2 > 0, bnorm2, 1.0), 0.0))


def solve_crop(
    bk,
    u: Any,
    rhs: Any,
    crop: CropProblem,
    *,
    method: str = "multigrid",
    tol: float = 1e-6,
    max_iter: int | None = None,
    check_every: int | None = None,
    pre_smooth: int = 2,
    post_smooth: int = 2,
    coarse_sweeps: int = 16,
    coarsest: int = 2,
    max_levels: int = 16,
    omega: float = 0.8,
    on_unconverged: str = "raise",
) -> SolveInfo:
    """Solve ``A f = rhs`` (plus the Dirichlet values held in ``u``) in place on the padded crop.

    u: (B, C, Dp, Hp, Wp) initial guess holding the fixed values on kind-1 cells (overwritten with
    the solution); rhs: same shape, guidance divergence on unknown cells.

    Methods: ``"multigrid"`` (conjugate gradients preconditioned by one symmetric V-cycle, the
    default), ``"vcycle"`` (plain V-cycle iteration) and ``"jacobi"`` (weighted Jacobi, for
    comparison). The relative residual is checked every ``check_every`` iterations (default: the
    backend's ``check_every``, 1 on the CPU); each check is the only host synchronisation.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}; got {method!r}")
    if not (tol > 0):
        raise ValueError(f"tol must be positive; got {tol}")
    if check_every is None:
        check_every = int(getattr(bk, "check_every", 1))
    B, C = u.shape[:2]
    dtype = u.dtype
    fine_kind, fine_ext = crop.kind, crop.ext_dev
    w1 = bk.index_array(np.ones(3))
    fine = _Level(crop.shape, crop.ext, fine_ext, fine_kind, w1)

    # ||b||, b = rhs + Dirichlet contributions, is the residual of the field with zero unknowns.
    r0 = bk.empty(u.shape, dtype)
    saved = u.copy()
    bk.fill_unknowns(u, fine_kind, fine_ext, 0.0)
    bk.residual(u, rhs, fine_kind, fine_ext, w1, r0)
    bnorm2 = bk.to_host(_dot(bk, r0, r0, fine))
    u[...] = saved
    del saved

    def check(x) -> np.ndarray:
        return _relative_residual(bk, x, rhs, fine, r0, bnorm2)

    it = 0
    levels = [fine]
    if method == "jacobi":
        max_iter = 20000 if max_iter is None else max_iter
        every = max(check_every, 10)
        cur, nxt = u, u.copy()
        rel = check(cur)
        while it < max_iter and rel.max(initial=0.0) > tol:
            for _ in range(min(every, max_iter - it)):
                bk.jacobi_sweep(cur, rhs, fine_kind, fine_ext, w1, omega, nxt)
                cur, nxt = nxt, cur
                it += 1
            rel = check(cur)
        if cur is not u:
            u[...] = cur
    elif method == "vcycle":
        levels = _hierarchy(bk, crop, coarsest, max_levels)
        max_iter = 50 if max_iter is None else max_iter
        es = [u] + [bk.zeros((B, C) + lv.shape, dtype) for lv in levels[1:]]
        rhss = [rhs] + [bk.zeros((B, C) + lv.shape, dtype) for lv in levels[1:]]
        rs = [bk.empty(u.shape, dtype)] + [bk.zeros((B, C) + lv.shape, dtype) for lv in levels[1:-1]]
        rel = check(u)
        while it < max_iter and rel.max(initial=0.0) > tol:
            for _ in range(min(check_every, max_iter - it)):
                _vcycle(bk, levels, es, rhss, rs, pre_smooth, post_smooth, coarse_sweeps)
                it += 1
            rel = check(u)
    else:
        levels = _hierarchy(bk, crop, coarsest, max_levels)
        max_iter = 30 if max_iter is None else max_iter
        rel, it = _pcg(bk, u, rhs, levels, check, bnorm2, tol, max_iter, check_every,
                       pre_smooth, post_smooth, coarse_sweeps)

    converged = rel <= tol
    info = SolveInfo(method, tol, it, len(levels), crop.shape, rel, converged)
    report_unconverged(info, on_unconverged)
    return info


def _dot(bk, x, y, lev: _Level):
    out = bk.zeros((x.shape[0], x.shape[1]), np.float64)
    bk.dot_unknowns(x, y, lev.kind, lev.ext_dev, out)
    return out


def _pcg(bk, u, rhs, levels, check, bnorm2, tol, max_iter, check_every, nu1, nu2, coarse_sweeps):
    """Conjugate gradients on every system of the batch at once, preconditioned by one V-cycle.

    The V-cycle is symmetric (red-black pre-smoothing, black-red post-smoothing, restriction the
    scaled transpose of prolongation), so the preconditioner is symmetric positive definite.
    Per-system step sizes live on the backend's device; only the convergence check reads back.
    """
    xp = bk.xp
    fine = levels[0]
    B, C = u.shape[:2]
    dtype = u.dtype
    r = bk.empty(u.shape, dtype)
    bk.residual(u, rhs, fine.kind, fine.ext_dev, fine.w, r)
    z = bk.zeros(u.shape, dtype)
    q = bk.zeros(u.shape, dtype)
    zero_rhs = bk.zeros(u.shape, dtype)
    es = [z] + [bk.zeros((B, C) + lv.shape, dtype) for lv in levels[1:]]
    rhss = [r] + [bk.zeros((B, C) + lv.shape, dtype) for lv in levels[1:]]
    rs = [q] + [bk.zeros((B, C) + lv.shape, dtype) for lv in levels[1:-1]]

    def precondition():
        z[...] = 0
        _vcycle(bk, levels, es, rhss, rs, nu1, nu2, coarse_sweeps)

    rel = check(u)
    it = 0
    if rel.max(initial=0.0) <= tol:
        return rel, it
    precondition()
    p = z.copy()
    rz = _dot(bk, r, z, fine)
    while it < max_iter:
        bk.residual(p, zero_rhs, fine.kind, fine.ext_dev, fine.w, q)  # q = -A p
        pq = _dot(bk, p, q, fine)
        ok = pq < 0
        alpha = xp.where(ok, rz / xp.where(ok, -pq, 1.0), 0.0)
        bk.axpy_unknowns(alpha, p, u, fine.kind, fine.ext_dev)  # u += alpha p
        bk.axpy_unknowns(alpha, q, r, fine.kind, fine.ext_dev)  # r -= alpha A p
        it += 1
        if it % check_every == 0 or it == max_iter:
            # the recursively updated residual is a free estimate; confirm with the true one
            rel = _relative(bk.to_host(_dot(bk, r, r, fine)), bnorm2)
            if rel.max(initial=0.0) <= tol or it == max_iter:
                rel = check(u)
                if rel.max(initial=0.0) <= tol:
                    break
        precondition()
        rz_new = _dot(bk, r, z, fine)
        pos = rz > 0
        beta = xp.where(pos, rz_new / xp.where(pos, rz, 1.0), 0.0)
        bk.xpby_unknowns(z, beta, p, fine.kind, fine.ext_dev)  # p = z + beta p
        rz = rz_new
    return rel, it


def report_unconverged(info: SolveInfo, on_unconverged: str) -> None:
    """Raise :class:`ConvergenceError` or warn when some system missed the tolerance."""
    if on_unconverged not in ("raise", "warn", "ignore"):
        raise ValueError(f"on_unconverged must be 'raise', 'warn' or 'ignore'; got {on_unconverged!r}")
    if info.converged.all() or on_unconverged == "ignore":
        return
    msg = (
        f"{info.method} solve stopped after {info.iterations} iterations with relative residual "
        f"{info.max_residual:.3g} > tol={info.tol:.3g} in {(~info.converged).sum()} of "
        f"{info.converged.size} systems; raise max_iter or tol"
    )
    if on_unconverged == "raise":
        raise ConvergenceError(msg)
    warnings.warn(msg, ConvergenceWarning, stacklevel=4)


def _smooth(bk, x, rhs, lev, sweeps, reverse=False):
    if sweeps:
        bk.smooth(x, rhs, lev.kind, lev.ext_dev, lev.w, sweeps, reverse)


def _vcycle(bk, levels, es, rhss, rs, nu1, nu2, coarse_sweeps):
    L = len(levels)
    # descend
    for k in range(L - 1):
        lev = levels[k]
        if k > 0:
            es[k][...] = 0
        _smooth(bk, es[k], rhss[k], lev, nu1)
        bk.residual(es[k], rhss[k], lev.kind, lev.ext_dev, lev.w, rs[k])
        nxt = levels[k + 1]
        bk.restrict(rs[k], lev.ext_dev, nxt.kind, nxt.ext_dev, lev.flags, rhss[k + 1])
    # coarsest
    if L > 1:
        es[L - 1][...] = 0
    _smooth(bk, es[L - 1], rhss[L - 1], levels[L - 1], coarse_sweeps if L > 1 else nu1 + nu2)
    # ascend
    for k in range(L - 2, -1, -1):
        lev, crs = levels[k], levels[k + 1]
        bk.prolong_add(es[k + 1], crs.kind, crs.ext_dev, lev.kind, lev.ext_dev, lev.flags, es[k])
        _smooth(bk, es[k], rhss[k], lev, nu2, reverse=True)

