"""The CPU backend (``backend="numba"``): numpy arrays, serial Numba kernels that release the
GIL, the batch split over host threads."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import _numba_kernels as _k
from .._host_kernels import (
    _EXPONENT,
    _NO_BITS,
    _NO_BOXES,
    _NO_LABEL,
    _NO_MASK,
    all_finite,
    fpi_samples,
    label_host,
    label_in_boxes,
    prepare_samples,
)
from .._mg_system import MG_DEFAULTS, mg_solve_samples
from .._spectral import box_samples, sine_store, spectral_box_solve
from ..._arrays import same_elements
from ..codes import Found
from .base import BOX, MG, BackendBase, BatchReport, host_threads, run_parts

DST_BAD, GUIDE_BAD, LEFT = int(Found.DST_BAD), int(Found.GUIDE_BAD), int(Found.LEFT)


class _HostState:
    """What ``prepare`` makes for a batch ``d5`` (B, C, D, H, W) and the solves fill: the output,
    the clip range, the mask boxes, and the per-system status, residual and iterations."""

    def __init__(self, d5):
        B, C = d5.shape[:2]
        self.out = np.empty_like(d5)
        self.lo = np.empty((B, C), d5.dtype)
        self.hi = np.empty((B, C), d5.dtype)
        self.box_lo = np.zeros((B, 3), np.int64)
        self.box_hi = np.zeros((B, 3), np.int64)
        self.filled = np.zeros(B, bool)
        self.flags = 0  # the Found bits of the preparation
        self.status = np.zeros((B, C), np.int64)
        self.residual = np.zeros((B, C))
        self.iters = np.zeros((B, C), np.int64)
        self.labelled = None  # (B,) bool: the samples the preparation labelled (prepare_boxes(label=))


def _label_args(d5, alpha, tolerance) -> tuple:
    """The label kernels' (alpha, tolerance, quantise): alpha (B,) and the tolerance in the image
    dtype (so the label's arithmetic is the image dtype's); quantise: ``tolerance`` is not None."""
    return alpha.astype(d5.dtype), d5.dtype.type(tolerance if tolerance is not None else 1), tolerance is not None


class NumbaBackend(BackendBase):
    """CPU backend: numpy arrays, serial Numba primitives that release the GIL.

    The batch is split into ``threads`` contiguous chunks solved in parallel threads, each with
    its own crop (so a chunk of small patches does not pay for the largest patch of the batch).
    """

    name = "numba"
    xp = np
    on_device = False

    # the primitives and the composite are the Numba kernels themselves (PRIMITIVES, COMPOSITES)
    build_kind = staticmethod(_k.build_kind)
    gather_crop = staticmethod(_k.gather_crop)
    guidance_rhs = staticmethod(_k.guidance_rhs)
    rbgs_sweep = staticmethod(_k.rbgs_sweep)
    jacobi_sweep = staticmethod(_k.jacobi_sweep)
    residual = staticmethod(_k.residual)
    coarsen_kind = staticmethod(_k.coarsen_kind)
    restrict = staticmethod(_k.restrict)
    prolong_add = staticmethod(_k.prolong_add)
    dot_unknowns = staticmethod(_k.dot_unknowns)
    axpy_unknowns = staticmethod(_k.axpy_unknowns)
    xpby_unknowns = staticmethod(_k.xpby_unknowns)
    scatter_crop = staticmethod(_k.scatter_crop)
    smooth = staticmethod(_k.smooth)

    @property
    def threads(self) -> int:
        return host_threads()

    def prepare(self, d5, g5, m5, check_guide: bool) -> _HostState:
        return self._prepare(d5, g5, None, m5, check_guide, None)

    def prepare_boxes(self, d5, g5, gidx, m5, check_guide, alpha, mode, clip, ndim, label=None,
                      masks=None, boxes=None) -> _HostState:
        """See :meth:`BackendBase.prepare_boxes`; with ``label`` = ``(array, tolerance)`` (see
        :attr:`fuses_label`), also the label of every sample this pass solves, into ``array``
        ((B, 1, D, H, W), any contents), while the sample is in cache (the report's
        ``labelled``), and zeros for the other samples: ``array`` is written whole, once. With ``masks`` = ``(tol,
        max_iter)``, the same pass solves every other non-empty mask by the whole-system
        multigrid (what :meth:`solve_masks` does, while the sample is in cache; :meth:`solve_masks`
        then has nothing left). With ``m5`` None and ``boxes`` = (box_lo, box_hi), (B, 3) int64
        (an empty mask lo = hi = 0), the masks are those boxes and no mask is read; a box that
        the box solve does not take is then left unsolved (the report's ``LEFT``)."""
        if label is not None:
            label = (label[0],) + _label_args(d5, alpha, label[1])
        if boxes is not None:
            masks = None
        return self._prepare(d5, g5, gidx, m5, check_guide, (alpha, mode, clip, ndim), label, masks, boxes)

    def _prepare(self, d5, g5, gidx, m5, check_guide: bool, solve, label=None, masks=None, boxes=None) -> _HostState:
        """Sample by sample (:func:`~pii_augment.ops._host_kernels.prepare_samples`): the copy,
        the clip range, the finite checks, the mask box and, with ``solve`` = (alpha, mode, clip,
        ndim), the exact box solve (and the label, with ``label``), while the sample's images are
        in cache; the samples interleaved over the host threads, so that large and small boxes
        balance."""
        B = d5.shape[0]
        state = _HostState(d5)
        if boxes is not None:
            state.box_lo[...], state.box_hi[...] = boxes
        gidx = np.arange(B) if gidx is None else gidx
        alpha, mode, clip, ndim = solve if solve is not None else (np.zeros(B), 0, False, 2)

        mg = None if masks is None else (masks[0], masks[1], MG, state.iters)

        def part(samples: np.ndarray) -> int:
            return prepare_samples(d5, g5, gidx, m5, samples, check_guide, solve is not None, alpha, mode, clip,
                                   ndim, BOX, state.out, state.lo, state.hi, state.box_lo, state.box_hi,
                                   state.filled, state.status, state.residual, label, mg)

        for found in self._per_sample(B, part):
            state.flags |= found
        if label is not None:  # the pass labelled every sample it solved
            state.labelled = state.status[:, 0] != 0
        return state

    def solve_boxes(self, state: _HostState, d5, g5, alpha, mode, clip, ndim) -> None:
        idx = np.flatnonzero(box_samples(state.box_lo, state.box_hi, state.filled, d5.shape[2:], ndim))
        idx = idx[(state.status[idx] != BOX).any(axis=1)]
        if not idx.size:
            return
        gidx = np.arange(d5.shape[0])
        store, offs = sine_store(d5.dtype)

        def part(p: np.ndarray) -> None:
            spectral_box_solve(d5, g5, gidx, alpha, mode, p, state.box_lo, state.box_hi, ndim, state.lo, state.hi,
                               bool(clip), state.out, state.residual, store, offs)

        n = min(idx.size, self.threads)
        run_parts(part, [idx[i::n] for i in range(n)])  # interleaved: sizes balance
        state.status[idx] = BOX

    def solve_masks(self, state: _HostState, d5, g5, m5, alpha, mode, clip, ndim, tol, max_iter, gidx=None) -> None:
        if not state.flags & LEFT:  # the preparation solved every non-empty mask
            return
        nonempty = (state.box_hi > state.box_lo).all(axis=1)
        idx = np.flatnonzero(nonempty & (state.status == 0).any(axis=1))  # neither solve has solved them
        if not idx.size:
            return
        status = np.zeros_like(state.status)
        gidx = np.arange(d5.shape[0]) if gidx is None else gidx

        def part(p: np.ndarray) -> None:
            mg_solve_samples(d5, g5, gidx, m5.view(np.uint8), alpha, mode, p, state.box_lo, state.box_hi, ndim, state.lo,
                             state.hi, bool(clip), tol, max_iter, *MG_DEFAULTS, state.out, state.residual, status,
                             state.iters)

        n = min(idx.size, self.threads)
        run_parts(part, [idx[i::n] for i in range(n)])  # interleaved: sizes balance
        state.status[idx] = MG + status[idx]

    def report(self, state: _HostState) -> BatchReport:
        dst_bad = ~(np.isfinite(state.lo) & np.isfinite(state.hi)) if state.flags & DST_BAD else np.zeros(
            state.lo.shape, bool)
        return BatchReport(state.box_lo, state.box_hi, state.filled, dst_bad, bool(state.flags & GUIDE_BAD),
                           state.status, state.residual, state.iters, flags=state.flags, labelled=state.labelled)

    indexes_guide = True
    fuses_label = True

    def label_boxes(self, d5, o5, m5, alpha, tolerance, box_lo, box_hi, *, into=None, samples=None):
        """See :meth:`BackendBase.label_boxes`; ``into``: write into this label (zeros, or the
        labels of other samples) instead of a new one; ``samples``: label only these samples."""
        B = d5.shape[0]
        label = np.zeros((B, 1) + d5.shape[2:], d5.dtype) if into is None else into  # written in the boxes only
        a, tol, quantise = _label_args(d5, alpha, tolerance)
        samples = np.arange(B) if samples is None else np.asarray(samples, np.int64)
        n = min(samples.size, self.threads)
        if n:
            run_parts(lambda p: label_in_boxes(d5, o5, m5, a, tol, quantise, box_lo, box_hi, p, label),
                      [samples[i::n] for i in range(n)])
        return label

    def _per_sample(self, batch: int, fn: Callable) -> list:
        """``[fn(samples), ...]`` over the batch's samples interleaved across the host threads
        (so that large and small patches balance)."""
        n = min(batch, self.threads) if batch > 1 else 1  # one sample: no thread count to look up
        return run_parts(fn, [np.arange(i, batch, n) for i in range(n)])

    def fpi_label(self, d5, s5, gidx, m5, alpha, tolerance, check_finite, boxes=None):
        """See :meth:`BackendBase.fpi_label`; ``m5`` None and ``boxes`` = (box_lo, box_hi), (B, 3)
        int64: the masks are those boxes (:func:`~pii_augment.ops._host_kernels.fpi_samples`)."""
        a, tol, quantise = _label_args(d5, alpha, tolerance)
        label = self.empty((d5.shape[0], 1) + d5.shape[2:], d5.dtype)  # the pass writes every row
        return self._fpi(d5, s5, gidx, m5, a, tol, quantise, label, check_finite, boxes), label

    def fpi(self, d5, s5, m5, alpha, check_finite):
        a = alpha.astype(d5.dtype)
        return self._fpi(d5, s5, None, m5, a, d5.dtype.type(1), False, None, check_finite)

    def _fpi(self, d5, s5, gidx, m5, a, tol, quantise, label, check_finite, boxes=None):
        """The FPI blend of every sample (and its label, unless ``label`` is None) in one
        :func:`fpi_samples` pass over the host threads, the NaN/Inf test of the rows it reads
        folded in; source samples that no sample reads are tested on their own, so the check
        covers all of ``src`` as documented. Raises for dst before src."""
        B = d5.shape[0]
        out = np.empty_like(d5)
        gidx = np.arange(B) if gidx is None else np.asarray(gidx, np.int64)
        label = _NO_LABEL[d5.dtype.itemsize][0] if label is None else label
        itype, exponent = _EXPONENT[d5.dtype.itemsize]
        skip = _NO_BITS[d5.dtype.itemsize]
        d_bits = d5.view(itype) if check_finite else skip
        s_bits = s5.view(itype) if check_finite and not same_elements(s5, d5) else skip  # s5 is d5: checked
        one_minus = (1 - a).astype(d5.dtype)
        box_lo, box_hi = _NO_BOXES if boxes is None else boxes
        m5 = _NO_MASK if boxes is not None else m5
        found = self._per_sample(B, lambda p: fpi_samples(d5, s5, gidx, m5, a, one_minus, tol, quantise, p, out,
                                                          label, d_bits, s_bits, itype(exponent), box_lo, box_hi,
                                                          boxes is not None))
        bad = 0
        for f in found:
            bad |= f
        if not bad and s_bits.shape[0] and s5.shape[0]:
            unread = np.ones(s5.shape[0], bool)
            unread[gidx] = False
            bad = 2 * any(not all_finite(s5[i]) for i in np.flatnonzero(unread))
        for flag, name in ((1, "dst"), (2, "src")):
            if bad & flag:
                raise ValueError(f"{name} contains NaN or Inf; pass check_finite=False to skip this check")
        return out

    def label(self, d5, o5, m5, alpha, tolerance):
        label = np.empty((d5.shape[0], 1) + d5.shape[2:], d5.dtype)
        label_host(d5, o5, m5, *_label_args(d5, alpha, tolerance), label)
        return label

