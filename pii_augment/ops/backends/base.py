"""The backend interface and what every backend shares: the :class:`Backend` protocol, the
:class:`BackendBase` defaults, the primitive names, :class:`BatchReport` and the host threads.

A backend exposes the array module (``xp``), allocation helpers, a host copy for the few
tables the driver reads, the solver primitives under the names of
:mod:`pii_augment.ops._numba_kernels` (the CUDA twins carry the same names), and the
capabilities through which :mod:`pii_augment.ops.blend` runs a call without knowing where the
arrays live: ``prepare`` (output copy, clip range, finite checks and mask boxes in one pass),
``solve_boxes`` (the exact solve of box masks), ``prepare_boxes`` (both, in one pass per sample
on the host), ``report`` (the one read of the small result tables), ``label`` /
``label_boxes``, ``fpi`` / ``fpi_label``.

This module imports no other backend module: :mod:`.host`, :mod:`.cuda`, :mod:`.device` and
:mod:`.emulated` import it, and :func:`pii_augment.ops.backends.get_backend` imports them.
"""

from __future__ import annotations

import functools
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from ..codes import Found, SolvedBy


#: Kernel names every backend implements, in the argument order of the Numba twins.
PRIMITIVES = (
    "build_kind",
    "gather_crop",
    "guidance_rhs",
    "rbgs_sweep",
    "jacobi_sweep",
    "residual",
    "coarsen_kind",
    "restrict",
    "prolong_add",
    "dot_unknowns",
    "axpy_unknowns",
    "xpby_unknowns",
    "scatter_crop",
)

#: Composite operations the driver calls; each backend builds them from its primitives.
COMPOSITES = ("smooth",)


def host_threads() -> int:
    """Threads for host backends: ``PII_AUGMENT_NUM_THREADS``, else 1 inside a torch DataLoader
    worker (the workers are the parallelism there), else ``NUMBA_NUM_THREADS``."""
    env = os.environ.get("PII_AUGMENT_NUM_THREADS")
    if env:
        return max(1, int(env))
    data = sys.modules.get("torch.utils.data")
    if data is not None and data.get_worker_info() is not None:
        return 1
    return _numba_threads()


@functools.cache
def _numba_threads() -> int:
    """``NUMBA_NUM_THREADS``, read once: Numba fixes it when it is imported."""
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))


# ------------------------------------------------------------------------------------------------
# host threads
# ------------------------------------------------------------------------------------------------

_POOLS: dict[int, ThreadPoolExecutor] = {}
# A forked child (DataLoader worker) inherits the pool objects but not their threads: start anew.
os.register_at_fork(after_in_child=_POOLS.clear)


def _pool(n: int) -> ThreadPoolExecutor:
    if n not in _POOLS:
        _POOLS[n] = ThreadPoolExecutor(max_workers=n, thread_name_prefix="pii_augment")
    return _POOLS[n]


def run_parts(fn: Callable, parts: list) -> list:
    """``[fn(p) for p in parts]``, the parts in parallel host threads when there are several: the
    calling thread runs the first itself (one hand-off fewer: on a shared VM a hand-off to a
    pool thread and back costs 80-160 us, the time of a small batch's whole solve)."""
    if len(parts) == 1:
        return [fn(parts[0])]
    pool = _pool(len(parts) - 1)
    rest = [pool.submit(fn, p) for p in parts[1:]]
    try:
        first = fn(parts[0])
    except BaseException:
        for f in rest:  # the parts share their outputs: let them finish before the error leaves
            f.exception()
        raise
    return [first] + [f.result() for f in rest]


def chunks(bk, batch: int) -> list[slice]:
    """Contiguous batch ranges solved independently (one per host thread; one on a device)."""
    n = min(batch, getattr(bk, "threads", 1))
    bounds = np.linspace(0, batch, n + 1).round().astype(int)
    return [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def all_finite_host(x: np.ndarray) -> bool:
    """No NaN or Inf in the host array ``x`` (batch first): one pass, the batch split over the
    host threads."""
    from .._host_kernels import all_finite

    x = np.ascontiguousarray(x)
    if x.ndim == 0 or x.shape[0] < 2:
        return bool(all_finite(x.reshape(-1)))
    n = min(x.shape[0], host_threads())
    bounds = np.linspace(0, x.shape[0], n + 1).round().astype(int)
    return all(run_parts(lambda ab: bool(all_finite(x[ab[0]:ab[1]].reshape(-1))), list(zip(bounds[:-1], bounds[1:]))))


def map_chunks(bk, fn: Callable, batch: int) -> list:
    """``fn(slice)`` over the batch chunks of :func:`chunks`, in the host thread pool."""
    return run_parts(fn, chunks(bk, batch))


# ------------------------------------------------------------------------------------------------
# the interface
# ------------------------------------------------------------------------------------------------


@dataclass
class BatchReport:
    """What preparation and the exact box solve found, as host arrays (B samples, C channels).

    ``box_lo``, ``box_hi``: (B, 3) int64 bounding box [lo, hi) of each sample's mask along
    (z, y, x), zeros for an empty mask; ``filled``: (B,) bool, the mask is non-empty and fills its
    box; ``dst_bad``: (B, C) bool, the system's destination holds NaN or Inf; ``guide_bad``:
    bool, the guidance array (src or rhs) holds NaN or Inf (only looked at when checked);
    ``status``: (B, C) int, who solved the system (:class:`~pii_augment.ops.codes.SolvedBy`):
    ``NONE`` nobody (yet), :data:`BOX` the exact box solve, ``MG + v`` the whole-system multigrid
    with its :class:`~pii_augment.ops.codes.Verdict` ``v`` (converged, stalled, non-finite,
    stopped at max_iter); ``residual``: (B, C) float64,
    the relative residual of the solve that wrote it; ``iters``: (B, C) its PCG iterations;
    ``flags``: the :class:`~pii_augment.ops.codes.Found` bits of the batch as an int, when the
    backend's preparation computed them (the host kernels do), else None (see :meth:`found`);
    ``labelled``: (B,) bool, the samples whose label ``prepare_boxes(label=...)`` wrote (a backend
    that :attr:`~BackendBase.fuses_label`), else None.
    """

    box_lo: np.ndarray
    box_hi: np.ndarray
    filled: np.ndarray
    dst_bad: np.ndarray
    guide_bad: bool
    status: np.ndarray
    residual: np.ndarray
    iters: np.ndarray
    flags: int | None = None
    labelled: np.ndarray | None = None

    def found(self, spatial: tuple[int, ...]) -> int:
        """The :class:`~pii_augment.ops.codes.Found` bits as an int: :attr:`flags`, or, when the
        backend left them to the tables, derived from them (``spatial``: the (D, H, W) of the
        masks). ``LEFT``: a non-empty mask not solved by the box solve in every channel."""
        if self.flags is not None:
            return self.flags
        whole = self.filled & (self.box_lo == 0).all(axis=1) & (self.box_hi == np.array(spatial)).all(axis=1)
        left = self.nonempty & (self.status != BOX).any(axis=1)
        bits = ((Found.GUIDE_BAD, self.guide_bad), (Found.DST_BAD, self.dst_bad.any()),
                (Found.WHOLE_IMAGE, whole.any()), (Found.LEFT, left.any()))
        return sum(int(bit) for bit, on in bits if on)

    @property
    def nonempty(self) -> np.ndarray:
        return (self.box_hi > self.box_lo).all(axis=1)


#: Codes of :attr:`BatchReport.status`, as plain ints (they are passed to Numba); the device tables
#: also use ``SolvedBy.BOX_PENDING`` and ``MG_PENDING`` for systems left to a second pass.
BOX, MG = int(SolvedBy.BOX), int(SolvedBy.MG)


@runtime_checkable
class Backend(Protocol):
    """The interface the functional layer and the solver call; every backend implements it.

    :class:`BackendBase` gives the defaults; the implementations are
    :class:`~pii_augment.ops.backends.host.NumbaBackend` (``"numba"``),
    :class:`~pii_augment.ops.backends.device.CupyBackend` (``"cupy"``) and
    :class:`~pii_augment.ops.backends.emulated.EmulatedCudaBackend` (``"cuda-emulated"``).
    Besides the members below, a backend has the solver primitives of :data:`PRIMITIVES` and the
    composites of :data:`COMPOSITES` as methods, with the arguments of the Numba kernels of the
    same names (:mod:`pii_augment.ops._numba_kernels`).

    Example:
        >>> from pii_augment.ops.backends import Backend, get_backend
        >>> import numpy as np
        >>> bk = get_backend("numba", np.zeros(1))
        >>> isinstance(bk, Backend), bk.name, bk.on_device
        (True, 'numba', False)
    """

    name: str
    xp: Any
    on_device: bool
    indexes_guide: bool
    fuses_label: bool
    check_every: int

    @property
    def threads(self) -> int: ...
    def counts(self) -> dict[str, int] | None: ...
    def empty(self, shape, dtype): ...
    def zeros(self, shape, dtype): ...
    def fill(self, x, value) -> None: ...
    def copy(self, x): ...
    def ratio(self, num, den, active, sign: float): ...
    def index_array(self, a): ...
    def to_host(self, x) -> np.ndarray: ...
    def prepare(self, d5, g5, m5, check_guide: bool): ...
    def solve_boxes(self, state, d5, g5, alpha: np.ndarray, mode: int, clip: bool, ndim: int) -> None: ...
    def prepare_boxes(self, d5, g5, gidx, m5, check_guide: bool, alpha: np.ndarray, mode: int, clip: bool,
                      ndim: int, label=None, masks=None): ...
    def solve_masks(self, state, d5, g5, m5, alpha, mode, clip, ndim, tol, max_iter, gidx=None) -> None: ...
    def report(self, state) -> BatchReport: ...
    def label(self, d5, o5, m5, alpha: np.ndarray, tolerance: float | None): ...
    def label_boxes(self, d5, o5, m5, alpha: np.ndarray, tolerance: float | None, box_lo, box_hi): ...
    def fpi(self, d5, s5, m5, alpha: np.ndarray, check_finite: bool): ...
    def fpi_label(self, d5, s5, gidx, m5, alpha: np.ndarray, tolerance: float | None, check_finite: bool): ...
    def take(self, x, index: np.ndarray): ...
    def patch_masks(self, patches, apply: np.ndarray, shape_code: int | None): ...


class BackendBase:
    """Defaults of the :class:`Backend` interface that the backends inherit (the primitives of
    :data:`PRIMITIVES` aside).

    Capabilities, each one pass over the data on every backend:

    - ``prepare(d5, g5, m5, check_guide)`` -> state with ``.out`` (a copy of dst to blend into)
      and ``.lo``, ``.hi`` (the clip range per system); also finds the mask boxes and NaN/Inf.
    - ``solve_boxes(state, d5, g5, alpha, mode, clip, ndim)``: the exact (DST-I) solve of every system
      whose mask is a box with its ring inside the image (see ``_spectral.box_samples``).
    - ``solve_masks(state, d5, g5, m5, alpha, mode, clip, ndim, tol, max_iter)``: every other
      non-empty system, whole, by multigrid-preconditioned CG (one system per task on the CPU, per
      thread block on the GPU; see :mod:`pii_augment.ops._mg_system`).
    - ``report(state)`` -> :class:`BatchReport` on the host: on a device, the call's one
      synchronisation.
    - ``label(d5, o5, m5, alpha, tolerance)`` and ``fpi(d5, s5, m5, alpha, check_finite)``.
    - ``take(x, index)``: ``x[index]`` along the batch axis, and ``patch_masks(patches, apply,
      shape_code)``: the masks of patch parameters (see :mod:`pii_augment.ops.masks`).

    ``counts()`` gives the kernel launches, host synchronisations and host-to-device bytes made
    so far (None on host backends, which have no device).
    """

    name = "base"
    xp: Any = np
    on_device = False
    #: Whether ``prepare_boxes``, ``solve_masks`` and ``fpi_label`` read sample b's guidance from
    #: ``g5[gidx[b]]``; if not, the caller gathers it first (a copy of the batch).
    indexes_guide = False
    #: ``prepare_boxes`` takes ``label=(array, tolerance)`` (``array``: any contents) and writes
    #: it whole: the samples it solves labelled (``BatchReport.labelled``), zeros for the
    #: others, which the caller labels in their boxes; and ``label_boxes`` takes
    #: ``into=`` and ``samples=`` (the host backend); else the label is a pass of its own after
    #: the blend.
    fuses_label = False
    #: PCG iterations between two convergence checks of the batched driver when
    #: :func:`~pii_augment.ops.solver.solve_crop` is not told (each check is a host
    #: synchronisation on a GPU; free on the CPU).
    check_every = 1

    @property
    def threads(self) -> int:
        """Host threads the batch is split over."""
        return 1

    def counts(self) -> dict[str, int] | None:
        """Kernel launches, host synchronisations and host-to-device bytes so far (device backends)."""
        return None

    def empty(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return self.xp.zeros(shape, dtype=dtype)

    def fill(self, x, value) -> None:
        """``x[...] = value`` (a scalar, or an array of x's shape)."""
        x[...] = value

    def copy(self, x):
        return x.copy()

    def ratio(self, num, den, active, sign: float):
        """Per-system step size: ``num / (sign * den)`` where ``active`` and ``sign * den > 0``,
        else 0 (all (B, C) float64 arrays of this backend's kind)."""
        ok = active & (sign * den > 0)
        return np.where(ok, num / np.where(ok, sign * den, 1.0), 0.0)

    def index_array(self, a):
        """A small host table as a C-contiguous array of this backend's kind."""
        return np.ascontiguousarray(a)

    def to_host(self, x) -> np.ndarray:
        return np.asarray(x)

    def prepare(self, d5, g5, m5, check_guide: bool):
        raise NotImplementedError

    def solve_boxes(self, state, d5, g5, alpha: np.ndarray, mode: int, clip: bool, ndim: int) -> None:
        raise NotImplementedError

    def prepare_boxes(self, d5, g5, gidx, m5, check_guide: bool, alpha: np.ndarray, mode: int, clip: bool,
                      ndim: int, label=None, masks=None):
        """``prepare`` then ``solve_boxes``; the host backend does both in one pass, sample by
        sample, and reads sample b's guidance from ``g5[gidx[b]]`` (see :attr:`indexes_guide`;
        here ``gidx`` is None: the caller gathered the guidance). ``label``: None here (see
        :attr:`fuses_label`). ``masks``: ``(tol, max_iter)`` of :meth:`solve_masks`, which a
        backend may use to solve the other masks in the same pass (the host backend does);
        ignored here (``solve_masks`` solves them)."""
        state = self.prepare(d5, g5, m5, check_guide)
        self.solve_boxes(state, d5, g5, alpha, mode, clip, ndim)
        return state

    def solve_masks(self, state, d5, g5, m5, alpha, mode, clip, ndim, tol, max_iter, gidx=None) -> None:
        raise NotImplementedError

    def report(self, state) -> BatchReport:
        raise NotImplementedError

    def label(self, d5, o5, m5, alpha: np.ndarray, tolerance: float | None):
        raise NotImplementedError

    def label_boxes(self, d5, o5, m5, alpha: np.ndarray, tolerance: float | None, box_lo, box_hi):
        """``label`` knowing each sample's mask box (host arrays (B, 3)): the host reads only
        the boxes."""
        return self.label(d5, o5, m5, alpha, tolerance)

    def fpi_label(self, d5, s5, gidx, m5, alpha: np.ndarray, tolerance: float | None, check_finite: bool):
        """``fpi`` with sample b's source in ``s5[gidx[b]]`` (None: ``s5[b]``) and its ``label``:
        ``(out, label)``, in one pass on the host."""
        out = self.fpi(d5, s5 if gidx is None else self.take(s5, gidx), m5, alpha, check_finite)
        return out, self.label(d5, out, m5, alpha, tolerance)

    def take(self, x, index: np.ndarray):
        """``x[index]`` along the batch axis."""
        return np.take(x, index, axis=0)

    def patch_masks(self, patches, apply: np.ndarray, shape_code: int | None):
        """The (B, *spatial) bool masks of ``patches`` (host: :meth:`PatchParams.masks`)."""
        m = patches.masks()
        m[~apply] = False
        return m

    def fpi(self, d5, s5, m5, alpha: np.ndarray, check_finite: bool):
        raise NotImplementedError
