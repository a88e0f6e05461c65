"""The batched masked Poisson solve: crop set-up, the multigrid hierarchy, and the batched driver.

``method="multigrid"`` (and ``"auto"`` for masks that are not boxes) solves every system whole,
one at a time (:mod:`pii_augment.ops._mg_system` on the CPU, the ``mg_solve`` kernel on the GPU);
this module holds what that solve shares with the batched driver: the per-sample hierarchy
(:func:`build_hierarchy`), the convergence rule (:class:`_Monitor`, ``STALL_RATIO``) and the
report of a miss (:func:`report_unconverged`). The batched driver (:func:`solve_crop`) is
written once, against the primitives of a backend (Numba on the CPU, CUDA kernels through CuPy
on the GPU, or the same CUDA source emulated on the CPU), and runs ``method="vcycle"`` and
``"jacobi"`` (and multigrid when called directly); it works on a padded crop that holds every
sample's mask bounding box plus a one-cell halo, so the cost follows the size of the patch.

Multigrid: cell-centred coarsening by 2 along every axis longer than one cell, coarse labels by
erosion (a coarse cell is unknown iff it has an unknown child and no fixed one, so every coarse
problem keeps a Dirichlet boundary), (bi/tri)linear prolongation and its scaled transpose as
restriction, red-black Gauss-Seidel smoothing; conjugate gradients preconditioned by one
symmetric V-cycle.

What ``tol`` bounds
-------------------
The unknown is the correction ``e = f - dst`` inside the mask, with ``e = 0`` outside it (the
Dirichlet values are the destination's own). Its right-hand side ``r0`` is the residual of the
destination itself, ``r0_p = sum_q (v_pq - (dst_p - dst_q))``: it holds only differences, so it
does not change when a constant is added to both images, and it scales with them. A system
(sample, channel) is converged when its relative residual

    ||r0 - A e|| / ||r0||  <=  tol

(2-norms over the system's mask pixels). The test is therefore the same for z-scored images, CT
in Hounsfield units, 16-bit X-rays or images at an offset of 1e6: the same masks and guidance
take the same iterations and give the same relative error. The output is ``dst + e`` rounded
once to the image dtype. In practice (benchmarks/RESULTS.md, "Accuracy against tol") the default
``tol=1e-5`` keeps ``max |out - exact|`` at 1e-6 to 2e-6 of the destination's range (within the
1e-4 that the tests hold); float32 reaches relative residuals of about 1e-7 to 1e-6 (its rounding floor), so a float32
solve asked for less stalls there, is reported as such, and should be run in float64.

Convergence is decided per system, and a system that is done (converged, stalled at the rounding
floor, or non-finite) is frozen: no further update touches it. Each sample also coarsens on its
own schedule (:func:`build_hierarchy`). A system's result is thus bitwise the same alone, in any
batch, in any chunk of the batch and with any number of threads (on backends whose reductions
are deterministic: Numba, the emulated and the cupy kernels).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validate import check_choice, check_real, warn_caller
from .codes import MODES, Guidance  # noqa: F401 (MODES: read as solver.MODES by blend and transforms)

__all__ = ["SolveInfo", "ConvergenceError", "ConvergenceWarning", "solve_crop", "build_hierarchy", "CropProblem"]

#: Guidance codes of the kernels (:class:`~pii_augment.ops.codes.Guidance`, as plain ints): the
#: three gradients of DESIGN.md by name (``MODES``), then ``DIVERGENCE`` (the divergence is given
#: per pixel, :func:`pii_augment.solve_poisson` with ``rhs``) and ``HARMONIC`` (zero guidance,
#: ``solve_poisson`` without ``rhs``).
DIVERGENCE, HARMONIC = int(Guidance.DIVERGENCE), int(Guidance.HARMONIC)
METHODS = ("multigrid", "vcycle", "jacobi")

#: A system whose true relative residual, checked twice, fell by less than this factor is stalled
#: at the rounding floor of its dtype and is frozen (multigrid: only once the iteration's own
#: estimate has met the tolerance; jacobi converges too slowly to tell).
STALL_RATIO = {"multigrid": 0.5, "vcycle": 0.95, "jacobi": None}

#: Iterations a method makes at most unless ``max_iter`` is given: PCG iterations, V-cycles, sweeps.
MAX_ITER = {"multigrid": 30, "vcycle": 50, "jacobi": 20000}


class ConvergenceError(RuntimeError):
    """A solve stopped before every system reached the requested tolerance."""


class ConvergenceWarning(RuntimeWarning):
    """Issued instead of :class:`ConvergenceError` when ``on_unconverged="warn"``."""


@dataclass
class SolveInfo:
    """What a solve did.

    ``residual``: (B, C) final relative residual ``||r0 - A e|| / ||r0||`` per system (NaN for a
    system with NaN or Inf in its data); ``converged``: (B, C) bool, residual <= tol;
    ``stalled``: (B, C) bool, systems that stopped improving above tol at the rounding floor of
    their dtype (a float32 solve asked for too small a tol); ``iterations``: the most PCG
    iterations, V-cycles or Jacobi sweeps any system needed; ``levels``: grid levels used;
    ``crop_shape``: the padded crop (D, H, W) the solve ran on; ``spectral_samples``: how many
    samples ``method="auto"`` solved exactly by the box (DST-I) solve instead; ``dtype``: the
    dtype the solve ran in; ``launches``, ``syncs``, ``h2d_bytes``: the kernel launches, host
    synchronisations and host-to-device bytes of the call, counted by the cupy and the emulated
    CUDA backends (None on the Numba backend, which has no device).
    """

    method: str
    tol: float
    iterations: int
    levels: int
    crop_shape: tuple[int, int, int]
    residual: np.ndarray = field(repr=False)
    converged: np.ndarray = field(repr=False)
    spectral_samples: int = 0
    stalled: np.ndarray | None = field(default=None, repr=False)
    dtype: str = "float64"
    launches: int | None = None
    syncs: int | None = None
    h2d_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.stalled is None:
            self.stalled = np.zeros(self.converged.shape, bool)

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
    """One multigrid level: padded shape, per-sample extents (host and backend copies), labels,
    per-sample axis weights and, towards the next level, per-sample coarsening flags."""

    shape: tuple[int, int, int]
    ext: np.ndarray
    ext_dev: Any
    kind: Any
    w: Any
    flags: Any = None  # (B, 3) coarsening flags towards the next level (None on the coarsest)


def build_hierarchy(bk, crop: CropProblem, coarsest: int = 2, max_levels: int = 16) -> list[_Level]:
    """The multigrid levels of a crop, each sample on its own schedule.

    A sample coarsens (by 2 along each of its axes longer than one cell) while its largest extent
    exceeds ``coarsest`` and it has fewer than ``max_levels`` levels; on the levels below its
    last it has extent 0, so every kernel skips it. Its levels, weights and flags are therefore
    those it would have alone: nothing about a sample's solve depends on its batch mates.
    """
    B = crop.ext.shape[0]
    w = np.ones((B, 3))
    levels = [_Level(crop.shape, crop.ext, crop.ext_dev, crop.kind, bk.index_array(w))]
    ext = crop.ext
    while len(levels) < max_levels:
        going = ext.max(axis=1, initial=0) > coarsest
        if not going.any():
            break
        flags = (going[:, None] & (ext > 1)).astype(np.int64)
        ext_c = np.where(going[:, None], np.where(flags == 1, -(-ext // 2), ext), 0)
        w = w * np.where(flags == 1, 0.25, 1.0)
        shape = tuple(int(max(1, v)) for v in ext_c.max(axis=0))
        fine = levels[-1]
        fine.flags = bk.index_array(flags)
        ext_dev = bk.index_array(ext_c)
        kind = bk.empty((B,) + shape, np.uint8)
        bk.coarsen_kind(fine.kind, fine.ext_dev, fine.flags, kind, ext_dev)
        levels.append(_Level(shape, ext_c, ext_dev, kind, bk.index_array(w)))
        ext = ext_c
    return levels


def _relative(rr: np.ndarray, r0n2: np.ndarray) -> np.ndarray:
    """sqrt(||r||^2 / ||r0||^2) per system: 0 where there is nothing to solve (r0 = r = 0), NaN
    where either norm is not finite (a NaN or Inf in the system's data)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.sqrt(rr / r0n2)
        rel = np.where(r0n2 == 0, np.where(rr == 0, 0.0, np.inf), rel)
    return np.where(np.isfinite(r0n2) & np.isfinite(rr), rel, np.nan)


class _Monitor:
    """Per-system convergence bookkeeping of one solve (host arrays of shape (B, C)).

    A system is *active* until it converges (true relative residual <= tol), turns out
    non-finite, or stalls: its true residual, confirmed twice, did not halve although the
    iteration's own estimate says it has converged (the rounding floor of the dtype). Inactive
    systems are frozen: the driver makes no further update to them, so a system's result does
    not depend on how long its batch mates need.
    """

    def __init__(self, r0n2: np.ndarray, tol: float, stall_ratio: float | None = 0.5) -> None:
        self.tol = tol
        self.r0n2 = r0n2
        self.rel = _relative(r0n2, r0n2)  # 1, 0 (nothing to solve) or NaN
        self.converged = self.rel <= tol  # NaN compares False
        self.active = ~self.converged & np.isfinite(self.rel)
        self.stalled = np.zeros_like(self.converged)
        self.last = np.full(r0n2.shape, np.inf)
        self.stall_ratio = stall_ratio

    def estimate(self, rr: np.ndarray) -> np.ndarray:
        return _relative(rr, self.r0n2)

    def confirm(self, candidates: np.ndarray, true_rel: np.ndarray, estimate_ok: np.ndarray | None = None) -> None:
        """Take the true relative residuals of ``candidates``; freeze those that are done."""
        c = candidates & self.active
        self.rel = np.where(c, true_rel, self.rel)
        ok = c & (true_rel <= self.tol)
        bad = c & ~np.isfinite(true_rel)
        if self.stall_ratio is None:
            stuck = np.zeros_like(c)
        else:
            stuck = c & ~ok & ~bad & (true_rel > self.stall_ratio * self.last)
            if estimate_ok is not None:
                stuck &= estimate_ok
        self.last = np.where(c, true_rel, self.last)
        self.converged |= ok
        self.stalled |= stuck
        self.active = self.active & ~(ok | bad | stuck)


#: Check spacing floor per method: Jacobi converges too slowly for a check every sweep to pay.
_MIN_CHECK_EVERY = {"multigrid": 1, "vcycle": 1, "jacobi": 10}


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
    coarsest: int = 2,
    max_levels: int = 16,
    omega: float = 0.8,
    on_unconverged: str = "raise",
) -> SolveInfo:
    """Solve ``A e = rhs`` with ``e = 0`` on fixed cells, in place in ``u``, on the padded crop.

    u: (B, C, Dp, Hp, Wp) zeros on entry (the correction; overwritten with the solution); rhs:
    same shape, the residual of the initial image on unknown cells (see ``guidance_rhs``).
    Because the unknown is the correction, the relative residual ``||rhs - A e|| / ||rhs||`` of
    every system (sample, channel) is invariant to adding a constant to, or scaling, the images.

    Methods: ``"multigrid"`` (conjugate gradients preconditioned by one symmetric V-cycle, the
    default), ``"vcycle"`` (plain V-cycles) and ``"jacobi"`` (weighted Jacobi, for comparison);
    at most :data:`MAX_ITER` iterations of each unless ``max_iter``. All three run in one loop
    (:func:`_iterate`) over a hierarchy built once. Convergence is decided per system every
    ``check_every`` iterations (default: the backend's ``check_every``, 1 on the CPU; each check is
    a host synchronisation on the GPU; Jacobi at most every 10 sweeps); converged, stalled and
    non-finite systems are frozen from then on.
    """
    check_choice("method", method, METHODS)
    tol = check_real("tol", tol, low=0, low_open=True)
    every = max(int(bk.check_every) if check_every is None else check_every, _MIN_CHECK_EVERY[method])
    B = u.shape[0]
    if method == "jacobi":
        levels = [_Level(crop.shape, crop.ext, crop.ext_dev, crop.kind, bk.index_array(np.ones((B, 3))))]
    else:
        levels = build_hierarchy(bk, crop, coarsest, max_levels)
    fine = levels[0]
    # e = 0, so the initial residual is rhs itself
    mon = _Monitor(bk.to_host(_dot(bk, rhs, rhs, fine)), tol, stall_ratio=STALL_RATIO[method])
    if method == "multigrid":
        iteration = _PCG(bk, u, rhs, levels, mon, pre_smooth, post_smooth)
    elif method == "vcycle":
        iteration = _Stationary(bk, u, mon, _VCycleStep(bk, u, rhs, levels, pre_smooth, post_smooth))
    else:
        iteration = _Stationary(bk, u, mon, _JacobiStep(bk, u, rhs, fine, omega))
    it = _iterate(bk, iteration, rhs, fine, mon, MAX_ITER[method] if max_iter is None else max_iter, every)
    info = SolveInfo(method, tol, it, len(levels), crop.shape, mon.rel, mon.converged, stalled=mon.stalled,
                     dtype=np.dtype(u.dtype).name)
    report_unconverged(info, on_unconverged)
    return info


def _iterate(bk, iteration, rhs, fine: "_Level", mon: _Monitor, max_iter: int, every: int) -> int:
    """The one loop of every method: ``iteration.step()`` on every system of the batch, and every
    ``every`` steps (and at the last) a check. A check reads the iteration's own estimate of the
    relative residuals where it has one (PCG's recursive residual), else takes every active
    system as a candidate; the candidates' true residuals then decide (:meth:`_Monitor.confirm`)
    and the iteration freezes the systems that are done. Returns the iterations made."""
    r_true = bk.empty(rhs.shape, rhs.dtype)
    it = 0
    while it < max_iter and mon.active.any():
        iteration.step()
        it += 1
        if it % every and it != max_iter:
            continue
        est = iteration.estimate()
        said_ok = None if est is None else est <= mon.tol
        cand = mon.active if est is None else mon.active & (said_ok | ~np.isfinite(est) | (it == max_iter))
        if cand.any():
            bk.residual(iteration.current(), rhs, fine.kind, fine.ext_dev, fine.w, r_true)
            mon.confirm(cand, mon.estimate(bk.to_host(_dot(bk, r_true, r_true, fine))), estimate_ok=said_ok)
            iteration.froze()
    iteration.finish()
    return it


def _dot(bk, x, y, lev: _Level):
    out = bk.zeros((x.shape[0], x.shape[1]), np.float64)
    bk.dot_unknowns(x, y, lev.kind, lev.ext_dev, out)
    return out


def _work(bk, shape_bc: tuple, levels, first, count: int, dtype) -> list:
    """``[first] + zero arrays of the next count - 1 levels' shapes`` (the V-cycle's work arrays)."""
    return [first] + [bk.zeros(shape_bc + lv.shape, dtype) for lv in levels[1:count]]


class _PCG:
    """Conjugate gradients on every system of the batch at once, preconditioned by one V-cycle.

    The V-cycle is symmetric (red-black pre-smoothing, black-red post-smoothing, restriction the
    scaled transpose of prolongation), so the preconditioner is symmetric positive definite.
    Step sizes are 0 for frozen systems (the device copy of the active flags, updated when
    systems freeze), so they keep their values. Per-system step sizes live on the backend's
    device; only the checks read back.
    """

    def __init__(self, bk, u, rhs, levels, mon: _Monitor, nu1: int, nu2: int) -> None:
        self.bk, self.u, self.levels, self.mon, self.nu = bk, u, levels, mon, (nu1, nu2)
        BC, dtype, n = u.shape[:2], u.dtype, len(levels)
        self.r = bk.copy(rhs)  # residual of e = 0
        self.z, self.q, self.p = (bk.zeros(u.shape, dtype) for _ in range(3))
        self.zero_rhs = bk.zeros(u.shape, dtype)
        self.es = _work(bk, BC, levels, self.z, n, dtype)
        self.rhss = _work(bk, BC, levels, self.r, n, dtype)
        self.rs = _work(bk, BC, levels, self.q, n - 1, dtype)
        self.active = bk.index_array(mon.active)
        self.rz = None

    def step(self) -> None:
        bk, fine = self.bk, self.levels[0]
        bk.fill(self.z, 0)
        _vcycle(bk, self.levels, self.es, self.rhss, self.rs, *self.nu)  # z = M^-1 r
        rz_new = _dot(bk, self.r, self.z, fine)
        if self.rz is None:
            bk.fill(self.p, self.z)
        else:
            beta = bk.ratio(rz_new, self.rz, self.active, 1.0)  # 0 for frozen systems
            bk.xpby_unknowns(self.z, beta, self.p, fine.kind, fine.ext_dev)  # p = z + beta p
        self.rz = rz_new
        bk.residual(self.p, self.zero_rhs, fine.kind, fine.ext_dev, fine.w, self.q)  # q = -A p
        pq = _dot(bk, self.p, self.q, fine)
        alpha = bk.ratio(self.rz, pq, self.active, -1.0)  # rz / (-pq), 0 for frozen systems
        bk.axpy_unknowns(alpha, self.p, self.u, fine.kind, fine.ext_dev)  # u += alpha p
        bk.axpy_unknowns(alpha, self.q, self.r, fine.kind, fine.ext_dev)  # r -= alpha A p

    def estimate(self) -> np.ndarray:
        """The recursively updated residual's relative norms: a free estimate."""
        return self.mon.estimate(self.bk.to_host(_dot(self.bk, self.r, self.r, self.levels[0])))

    def current(self):
        return self.u

    def froze(self) -> None:
        self.active = self.bk.index_array(self.mon.active)

    def finish(self) -> None:
        pass


class _VCycleStep:
    """``x = step(x)``: one V-cycle on the correction, in place (the finest work array is ``u``)."""

    def __init__(self, bk, u, rhs, levels, nu1: int, nu2: int) -> None:
        n, BC, dtype = len(levels), u.shape[:2], u.dtype
        self.args = (bk, levels, _work(bk, BC, levels, u, n, dtype), _work(bk, BC, levels, rhs, n, dtype),
                     _work(bk, BC, levels, bk.empty(u.shape, dtype), n - 1, dtype), nu1, nu2)

    def __call__(self, x):
        _vcycle(*self.args)
        return x


class _JacobiStep:
    """``y = step(x)``: one weighted Jacobi sweep from ``x`` into the other of two buffers."""

    def __init__(self, bk, u, rhs, fine: "_Level", omega: float) -> None:
        self.bk, self.rhs, self.fine, self.omega = bk, rhs, fine, omega
        self.buffers = [u, bk.zeros(u.shape, u.dtype)]

    def __call__(self, x):
        y = self.buffers[1] if x is self.buffers[0] else self.buffers[0]
        f = self.fine
        self.bk.jacobi_sweep(x, self.rhs, f.kind, f.ext_dev, f.w, self.omega, y)
        return y


class _Stationary:
    """A stationary iteration ``x = step(x)`` from ``u`` (V-cycles or Jacobi sweeps); a frozen
    system's values are kept as they were when it froze, and restored into ``u`` at the end."""

    def __init__(self, bk, u, mon: _Monitor, step) -> None:
        self.bk, self.u, self.mon, self.step_fn = bk, u, mon, step
        self.frozen = ~mon.active
        self.keep = bk.copy(u) if self.frozen.any() else None  # the frozen systems' values when they froze
        self.cur = u

    def step(self) -> None:
        self.cur = self.step_fn(self.cur)

    def estimate(self) -> None:
        return None

    def current(self):
        return self.cur

    def froze(self) -> None:
        newly = ~self.mon.active & ~self.frozen
        if newly.any():
            if self.keep is None:
                self.keep = self.bk.copy(self.cur)
            else:
                idx = self.bk.index_array(newly)
                self.keep[idx] = self.cur[idx]
            self.frozen = ~self.mon.active

    def finish(self) -> None:
        if self.cur is not self.u:
            self.bk.fill(self.u, self.cur)
        if self.keep is not None:
            idx = self.bk.index_array(self.frozen)
            self.u[idx] = self.keep[idx]


def report_unconverged(info: SolveInfo, on_unconverged: str) -> None:
    """Raise :class:`ConvergenceError` or warn (at the caller's line) when a system missed tol.

    The message says why: non-finite data, the rounding floor of the dtype (use float64 or a
    larger tol), or too few iterations (raise max_iter or tol).
    """
    check_choice("on_unconverged", on_unconverged, ("raise", "warn", "ignore"))
    if info.converged.all() or on_unconverged == "ignore":
        return
    missed = ~info.converged
    finite = np.isfinite(info.residual)
    nonfinite = missed & ~finite
    floor = missed & finite & info.stalled
    slow = missed & finite & ~info.stalled
    parts = []
    if nonfinite.any():
        parts.append(
            f"{int(nonfinite.sum())} systems have a non-finite residual: their images (or rhs) hold "
            f"NaN or Inf (check_finite=True rejects them up front)"
        )
    if floor.any():
        worst = float(info.residual[floor].max())
        hint = (
            "pass float64 images (float32 reaches about 1e-7 to 1e-6)" if info.dtype == "float32"
            else f"raise tol to at least {worst:.1g}"
        )
        parts.append(
            f"{int(floor.sum())} systems stalled at relative residual {worst:.3g}, the rounding floor "
            f"of {info.dtype}, which is above tol={info.tol:.3g}: {hint}"
        )
    if slow.any():
        parts.append(
            f"{int(slow.sum())} systems stopped after {info.iterations} iterations with relative residual "
            f"up to {float(info.residual[slow].max()):.3g} > tol={info.tol:.3g}: raise max_iter or tol"
        )
    msg = f"{info.method} solve missed its tolerance in {int(missed.sum())} of {missed.size} systems; " + "; ".join(parts)
    if on_unconverged == "raise":
        raise ConvergenceError(msg)
    warn_caller(msg, ConvergenceWarning)


def _smooth(bk, x, rhs, lev, sweeps, reverse=False):
    if sweeps:
        bk.smooth(x, rhs, lev.kind, lev.ext_dev, lev.w, sweeps, reverse)


def _vcycle(bk, levels, es, rhss, rs, nu1, nu2):
    """One V-cycle from es[0] (updated in place) for the right-hand side rhss[0].

    Every level, the coarsest included, gets ``nu1`` red-black sweeps on the way down and ``nu2``
    black-red sweeps on the way up, so a sample's coarsest level is treated the same whether or
    not its batch mates go deeper (a sample absent from a level is skipped there).
    """
    L = len(levels)
    for k in range(L):
        lev = levels[k]
        if k > 0:
            bk.fill(es[k], 0)
        _smooth(bk, es[k], rhss[k], lev, nu1)
        if k + 1 < L:
            nxt = levels[k + 1]
            bk.residual(es[k], rhss[k], lev.kind, lev.ext_dev, lev.w, rs[k])
            bk.restrict(rs[k], lev.ext_dev, nxt.kind, nxt.ext_dev, lev.flags, rhss[k + 1])
    for k in range(L - 1, -1, -1):
        lev = levels[k]
        if k + 1 < L:
            crs = levels[k + 1]
            bk.prolong_add(es[k + 1], crs.kind, crs.ext_dev, lev.kind, lev.ext_dev, lev.flags, es[k])
        _smooth(bk, es[k], rhss[k], lev, nu2, reverse=True)
