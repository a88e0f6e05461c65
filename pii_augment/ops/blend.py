"""Public functional API: PII and FPI blends, the masked Poisson solve, anomaly labels.

Every function takes numpy arrays, cupy arrays or torch tensors (CPU or CUDA) and returns the same
kind on the same device. Inputs are never modified.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import (
    NUMPY_KIND,
    check_array,
    check_image_batch,
    check_same_shape,
    from_backend_array,
    get_xp,
    normalize_alpha,
    normalize_mask,
    on_torch_stream,
    same_device_or_raise,
    same_elements,
    to_backend_array,
)
from .._validate import check_bool, check_choice, check_int, check_real
from .backends import BACKENDS, BOX, MG, get_backend, map_chunks
from ._mg_system import crop_extents, levels_of
from ._host_kernels import box_table, boxes_fit
from .codes import Found, Verdict
from .solver import (
    DIVERGENCE,
    HARMONIC,
    MAX_ITER,
    METHODS,
    MODES,
    SolveInfo,
    prepare_crop,
    report_unconverged,
    solve_crop,
)

__all__ = [
    "poisson_interpolate",
    "foreign_patch_interpolate",
    "anomaly_label",
    "solve_poisson",
    "blend_with_label",
    "DEFAULT_TOL",
]

#: Default relative-residual tolerance of the correction (see :mod:`pii_augment.ops.solver`, "What
#: tol bounds"): keeps max |out - exact| within 1e-4 of the destination's range (tests/ops).
DEFAULT_TOL = 1e-5


def _check_options(*, method: str, tol: Any, max_iter: Any, backend: str, check_finite: Any,
                   on_unconverged: str, return_info: Any, clip: Any) -> float:
    """Validate the solver options of the public functions (before any work); return tol."""
    check_choice("method", method, ("auto",) + METHODS)
    tol = check_real("tol", tol, low=0, low_open=True)
    if max_iter is not None:
        check_int("max_iter", max_iter, low=1)
    check_choice("backend", backend, BACKENDS)
    check_bool("check_finite", check_finite)
    check_choice("on_unconverged", on_unconverged, ("raise", "warn", "ignore"))
    check_bool("return_info", return_info)
    check_bool("clip", clip)
    return tol


def _empty_info(method: str, tol: float, C: int) -> SolveInfo:
    return SolveInfo(method, tol, 0, 0, (0, 0, 0), np.zeros((0, C)), np.ones((0, C), bool))


def _as_5d(x: Any, xp) -> Any:
    """(B, C, H, W) -> contiguous (B, C, 1, H, W); (B, C, D, H, W) -> contiguous copy-if-needed."""
    if x.ndim == 4:
        x = x[:, :, None]
    return xp.ascontiguousarray(x)


def _mask_5d(m: Any, xp) -> Any:
    if m.ndim == 3:
        m = m[:, None]
    return xp.ascontiguousarray(m)


def _prepare(dst, src, mask, names=("dst", "src"), src_optional=False, mask_optional=False):
    """Check and convert the inputs: ``(akind, d, s, m)``, the inputs' array kind (numpy, cupy or
    torch: what the results are returned as) and the backend arrays (``s``: None if ``src`` is;
    ``m``: None if ``mask`` is, with ``mask_optional``)."""
    if (type(dst) is np.ndarray and (type(src) is np.ndarray or (src is None and src_optional))
            and (type(mask) is np.ndarray or (mask is None and mask_optional))):
        # numpy arrays alone (the common host call): what the general path below does for them
        check_image_batch(dst, names[0])
        if src is not None:
            check_same_shape(dst, src, names[0], names[1])
        return NUMPY_KIND, dst, src, None if mask is None else normalize_mask(mask, dst.shape)
    check_array(dst, names[0])
    if src is not None or not src_optional:
        check_array(src, names[1])
    if mask is not None or not mask_optional:
        check_array(mask, "mask")
    arrays = {names[0]: dst} if mask is None else {names[0]: dst, "mask": mask}
    if src is not None:
        arrays[names[1]] = src
    akind = same_device_or_raise(arrays)
    d = to_backend_array(dst, names[0])
    check_image_batch(d, names[0])
    s = None
    if src is not None:
        s = to_backend_array(src, names[1])
        check_same_shape(d, s, names[0], names[1])
    m = None if mask is None else normalize_mask(to_backend_array(mask, "mask"), tuple(d.shape))
    return akind, d, s, m


def _check_boxes(boxes: Any, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """``boxes`` = (lo, hi), each (B, ndim) integers with 0 <= lo and hi <= the spatial shape, as
    (B, 3) int64 arrays over (D, H, W) (2D: z in [0, 1)); a box empty along some axis (hi <= lo)
    becomes lo = hi = 0, as the host's mask scan writes an empty mask."""
    B, spatial = shape[0], tuple(shape[2:])
    nd = len(spatial)
    try:
        lo, hi = (np.asarray(v) for v in boxes)
    except (TypeError, ValueError):
        raise TypeError("boxes must be a pair (lo, hi) of (B, ndim) integer arrays") from None
    for name, v in (("lo", lo), ("hi", hi)):
        if v.dtype.kind not in "iu" or v.shape != (B, nd):
            raise TypeError(f"boxes' {name} must be a (B, ndim) = ({B}, {nd}) integer array; got dtype "
                            f"{v.dtype}, shape {v.shape}")
    lo5, hi5, inside = box_table(lo, hi, spatial)
    if not inside:
        raise ValueError(f"boxes must lie inside the spatial shape {spatial}: 0 <= lo, hi <= shape")
    return lo5, hi5


def _box_masks(box_lo: np.ndarray, box_hi: np.ndarray, shape: tuple[int, ...], xp) -> Any:
    """The (B, *spatial) bool masks of the (B, 3) boxes of :func:`_check_boxes`, made with ``xp``."""
    B, spatial = shape[0], tuple(shape[2:])
    m = xp.zeros((B,) + (1,) * (3 - len(spatial)) + spatial, bool)  # (B, D, H, W)
    for b in np.flatnonzero((box_hi > box_lo).all(axis=1)).tolist():
        m[(b,) + tuple(slice(int(a), int(c)) for a, c in zip(box_lo[b], box_hi[b]))] = True
    return m.reshape((B,) + spatial)


def _merge_infos(infos: list[SolveInfo]) -> SolveInfo:
    if len(infos) == 1:
        return infos[0]
    first = infos[0]
    return SolveInfo(
        first.method,
        first.tol,
        max(i.iterations for i in infos),
        max(i.levels for i in infos),
        tuple(int(max(i.crop_shape[a] for i in infos)) for a in range(3)),
        np.concatenate([i.residual for i in infos]),
        np.concatenate([i.converged for i in infos]),
        stalled=np.concatenate([i.stalled for i in infos]),
        dtype=first.dtype,
    )


def _solve(bk, d, m, guide, alpha, mode: int, *, clip: bool, on_unconverged: str, method: str,
           check_finite: bool, guide_name: str = "src", gidx: np.ndarray | None = None, label=None,
           want_info: bool = True, **solver_kw):
    """Shared path of :func:`poisson_interpolate` and :func:`solve_poisson` on backend arrays.

    ``guide``: the source images (guidance modes of ``MODES``), the divergence per pixel (mode
    ``DIVERGENCE``) or None (``HARMONIC``), checked for NaN/Inf with ``dst`` under the name
    ``guide_name``; ``alpha``: (B,) float64 host array. The backend prepares the batch in one
    pass (:meth:`~pii_augment.ops.backends.Backend.prepare`); with ``method="auto"``, samples
    whose mask is a box with its ring inside the image are solved exactly by the backend's box
    solve; one read of the small result tables (:meth:`Backend.report`) follows, then multigrid
    for the other samples. Every solver works on the correction ``e = f - dst`` and writes
    ``clip(dst + e)``. ``gidx``: None, or (B,) int64, sample b's guidance in ``guide[gidx[b]]``
    (read in place where the backend can, else gathered once). ``label``: None, or ``(array,
    tolerance)`` for a backend that :attr:`~pii_augment.ops.backends.BackendBase.fuses_label`:
    with ``method="auto"`` the samples the preparation pass solves (boxes, and on the host the
    other masks too) are labelled into ``array`` in the same pass (the caller labels the others:
    those not in the report's ``labelled``).

    Returns ``(out, info, report)``: the blend (the shape of ``d``), its :class:`SolveInfo` and
    the backend's :class:`~pii_augment.ops.backends.BatchReport` (mask boxes for the label);
    ``info`` is None when ``want_info`` is False and the box solve met ``tol`` in every system of
    the batch on a backend that counts nothing (there is nothing to report then).
    """
    xp = bk.xp
    shape = d.shape
    ndim = d.ndim - 2
    d5 = _as_5d(d, xp)
    m5 = _mask_5d(m, xp)
    g5 = d5 if guide is None else _as_5d(guide, xp)  # unread in HARMONIC mode
    B, C = d5.shape[:2]
    before = bk.counts()
    if gidx is not None and not (bk.indexes_guide and method in ("auto", "multigrid")):
        g5, gidx = bk.take(g5, gidx), None  # the batched driver (vcycle, jacobi) reads g5[b]
    check_guide = check_finite and guide is not None and not same_elements(guide, d)  # dst's check covers it
    max_iter = MAX_ITER["multigrid"] if solver_kw["max_iter"] is None else solver_kw["max_iter"]
    if method == "auto":  # the backend may solve the other masks in the same pass (masks=)
        state = bk.prepare_boxes(d5, g5, gidx, m5, check_guide, alpha, mode, clip, ndim, label=label,
                                 masks=(solver_kw["tol"], max_iter))
    else:
        state = bk.prepare(d5, g5, m5, check_guide)
    if method in ("auto", "multigrid"):
        bk.solve_masks(state, d5, g5, m5, alpha, mode, clip, ndim, solver_kw["tol"], max_iter, gidx=gidx)
    rep = bk.report(state)
    found = rep.found(tuple(m5.shape[1:]))
    if found & _TO_CHECK:
        _check_report(rep, m5, check_finite, guide_name)
    if method == "auto" and not found & _NOT_ALL_BOXED:  # the one pass solved every non-empty mask
        if not want_info and before is None and _all_met(rep, solver_kw["tol"]):
            return state.out.reshape(shape), None, rep
        info = _boxes_info(rep, solver_kw["tol"], d5.dtype)
    else:
        info = _solve_rest(bk, d5, g5, gidx, guide, m5, alpha, mode, ndim, rep, state, clip, method, check_finite,
                           solver_kw)
    info.method = method
    _count(bk, before, info)
    report_unconverged(info, on_unconverged)
    return state.out.reshape(shape), info, rep


#: Found bits that need :func:`_check_report`, and those that need more than the box solve's info.
_TO_CHECK = int(Found.GUIDE_BAD | Found.DST_BAD | Found.WHOLE_IMAGE)
_NOT_ALL_BOXED = int(Found.LEFT | Found.DST_BAD)
_LEFT = int(Found.LEFT)


def _all_met(rep, tol: float) -> bool:
    """Every system of the report has a residual at most ``tol`` (a NaN one has not)."""
    res = rep.residual
    return not res.size or bool(res.max() <= tol)


def _report_boxes(rep, tol: float, dtype, on_unconverged: str) -> None:
    """:func:`report_unconverged` on the info of a batch the box solve solved (:func:`_boxes_info`),
    made only when some system missed ``tol``."""
    if not _all_met(rep, tol):
        report_unconverged(_boxes_info(rep, tol, dtype), on_unconverged)


def _boxes_info(rep, tol: float, dtype) -> SolveInfo:
    """The info of a batch whose every non-empty mask the exact box solve solved, its destinations
    finite: each system converged when its true residual met ``tol``; an exact solve cannot
    iterate further, so a finite miss is the rounding floor (stalled) and a NaN residual comes from
    non-finite guidance (unchecked with ``check_finite=False``); the systems of empty masks hold
    residual 0."""
    res = rep.residual
    converged = res <= tol
    stalled = np.isfinite(res) > converged  # finite and not converged
    return SolveInfo("auto", tol, 0, 0, (0, 0, 0), res, converged, spectral_samples=int(np.count_nonzero(
        rep.status[:, 0] == BOX)), stalled=stalled, dtype=_DTYPE_NAMES.get(dtype) or np.dtype(dtype).name)


_DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def _solve_rest(bk, d5, g5, gidx, guide, m5, alpha, mode, ndim, rep, state, clip, method, check_finite,
                solver_kw) -> SolveInfo:
    """What :func:`_solve` does after the report when some samples are left to the batched driver
    or some data are not finite: the driver's solves, then the info of every system."""
    boxed = (rep.status == BOX).all(axis=1)
    whole = (rep.status > MG).all(axis=1)  # solved whole by the per-system multigrid
    todo = rep.nonempty & ~boxed & ~whole  # the batched driver gets these samples (vcycle, jacobi)
    if gidx is not None and todo.any():
        g5 = bk.take(g5, gidx)
    info = _driver(bk, d5, g5, guide, m5, alpha, mode, ndim, todo, rep, state.lo, state.hi, clip, state.out, method,
                   solver_kw)
    _record_solved(info, rep, boxed, whole, ndim, solver_kw["tol"])
    if not check_finite:  # a system whose destination holds NaN/Inf is never reported converged
        info.residual[rep.dst_bad] = np.nan
        info.converged[rep.dst_bad] = False
    info.spectral_samples = int(boxed.sum())
    return info


def _check_report(rep, m5, check_finite: bool, guide_name: str) -> None:
    """Raise on what the backend's report shows: NaN/Inf in ``dst`` or the guidance (with
    ``check_finite``), or a mask that covers a whole image."""
    if check_finite and rep.dst_bad.any():
        raise ValueError("dst contains NaN or Inf; pass check_finite=False to skip this check")
    if check_finite and rep.guide_bad:
        raise ValueError(f"{guide_name} contains NaN or Inf; pass check_finite=False to skip this check")
    full = rep.filled
    if full.any():
        full = full & (rep.box_lo == 0).all(axis=1) & (rep.box_hi == np.array(m5.shape[1:])).all(axis=1)
    if full.any():
        raise ValueError(
            f"mask covers the whole image in samples {np.flatnonzero(full)[:5].tolist()}: the Poisson "
            f"problem then has no boundary and no unique solution; leave at least one pixel outside the mask"
        )


def _record_solved(info: SolveInfo, rep, boxed: np.ndarray, whole: np.ndarray, ndim: int, tol: float) -> None:
    """Put in ``info`` the results of the samples the box solve (``boxed``) and the per-system
    multigrid (``whole``) solved, from the backend's report."""
    for done, solver in ((boxed, "box"), (whole, "whole")):
        if not done.any():
            continue
        res = rep.residual[done]
        info.residual[done] = res
        if solver == "box":
            info.converged[done] = res <= tol
            # an exact solve cannot iterate further: a miss is the rounding floor (or non-finite data)
            info.stalled[done] = ~info.converged[done] & np.isfinite(res)
        else:
            code = rep.status[done] - MG
            info.converged[done] = code == Verdict.CONVERGED
            info.stalled[done] = code == Verdict.STALLED
            info.iterations = max(info.iterations, int(rep.iters[done].max()))
            # the largest crop: its longest side sets the most levels (the hierarchy's depth grows
            # with a crop's longest side alone)
            biggest = tuple(int(v) for v in crop_extents(rep.box_lo[done], rep.box_hi[done], ndim).max(axis=0))
            info.levels = max(info.levels, levels_of(biggest))
            info.crop_shape = tuple(max(int(a), b) for a, b in zip(info.crop_shape, biggest))


def _driver(bk, d5, g5, guide, m5, alpha, mode, ndim, todo, rep, lo, hi, clip, out, method, solver_kw) -> SolveInfo:
    """The batched driver (:func:`~pii_augment.ops.solver.solve_crop`) on the samples ``todo``
    (``method="vcycle"`` or ``"jacobi"``, or systems no other solve took), chunk by chunk; an
    info of every system (converged where there was nothing to do)."""
    B, C = d5.shape[:2]
    mg_method = "multigrid" if method == "auto" else method
    if not todo.any():
        return SolveInfo(mg_method, solver_kw["tol"], 0, 0, (0, 0, 0), np.zeros((B, C)), np.ones((B, C), bool),
                         dtype=np.dtype(d5.dtype).name)
    mg_lo = np.where(todo[:, None], rep.box_lo, 0)
    mg_hi = np.where(todo[:, None], rep.box_hi, 0)
    alpha_dev = bk.index_array(alpha)

    def run(sl: slice) -> SolveInfo:
        crop = prepare_crop(bk, m5[sl], ndim, (mg_lo[sl], mg_hi[sl]))
        shape_c = (sl.stop - sl.start, C) + crop.shape
        dst_c = bk.empty(shape_c, d5.dtype)
        bk.gather_crop(d5[sl], crop.off_dev, crop.ext_dev, dst_c)
        guide_c = dst_c
        if guide is not None:
            guide_c = bk.empty(shape_c, d5.dtype)
            bk.gather_crop(g5[sl], crop.off_dev, crop.ext_dev, guide_c)
        rhs = bk.empty(shape_c, d5.dtype)
        bk.guidance_rhs(dst_c, guide_c, crop.kind, crop.ext_dev, alpha_dev[sl], mode, rhs)
        u = dst_c  # reused for the correction e, which starts at 0 (and is 0 on fixed cells)
        bk.fill(u, 0)
        info = solve_crop(bk, u, rhs, crop, method=mg_method, on_unconverged="ignore", **solver_kw)
        bk.scatter_crop(u, crop.kind, crop.off_dev, crop.ext_dev, lo[sl], hi[sl], bool(clip), out[sl])
        return info

    return _merge_infos(map_chunks(bk, run, B))


def _solve_public(dst, guide, mask, alpha, mode: int, *, clip, tol, method, max_iter, backend, check_finite,
                  on_unconverged, return_info, guide_name: str = "src", guide_optional: bool = False):
    """Shared body of :func:`poisson_interpolate` and :func:`solve_poisson`: check the options and
    the inputs (``guide`` under the name ``guide_name``; None allowed with ``guide_optional``),
    solve and return the result as the inputs' kind (and its info if asked)."""
    tol = _check_options(method=method, tol=tol, max_iter=max_iter, backend=backend, check_finite=check_finite,
                         on_unconverged=on_unconverged, return_info=return_info, clip=clip)
    akind, d, g, m = _prepare(dst, guide, mask, names=("dst", guide_name), src_optional=guide_optional)
    a = normalize_alpha(alpha, d.shape[0], get_xp(d))
    bk = get_backend(backend, d)
    if d.shape[0] == 0:
        out = from_backend_array(d.copy(), akind)
        return (out, _empty_info(method, tol, d.shape[1])) if return_info else out
    out, info, _ = _solve(
        bk, d, m, g, a, mode, clip=clip, tol=tol, method=method, max_iter=max_iter,
        on_unconverged=on_unconverged, check_finite=check_finite, guide_name=guide_name, want_info=return_info,
    )
    out = from_backend_array(out, akind)
    return (out, info) if return_info else out


def _count(bk, before: dict | None, info: SolveInfo) -> None:
    """Put the backend's launches, synchronisations and host-to-device bytes of this call in info."""
    if before is None:
        return
    after = bk.counts()
    info.launches, info.syncs, info.h2d_bytes = (after[k] - before[k] for k in ("launches", "syncs", "h2d_bytes"))


@on_torch_stream
def poisson_interpolate(
    dst: Any,
    src: Any,
    mask: Any,
    alpha: Any,
    *,
    gradient: str = "pii",
    clip: bool = True,
    tol: float = DEFAULT_TOL,
    method: str = "auto",
    max_iter: int | None = None,
    backend: str = "auto",
    check_finite: bool = True,
    on_unconverged: str = "raise",
    return_info: bool = False,
):
    """Poisson Image Interpolation: blend ``src`` into ``dst`` inside ``mask`` (Tan et al. 2021).

    Solves, for every sample b and channel c, ``sum_{q in N_p} (f_p - f_q) = sum_{q in N_p} v_pq``
    on the mask pixels p, with ``f = dst`` outside the mask, where ``v`` is the guidance of
    ``gradient``: ``"pii"`` (alpha-weighted mixed gradient, Eqn 8 of the paper), ``"mixed"``
    (Perez et al. 2003) or ``"source"`` (seamless cloning).

    Args:
        dst: (B, C, H, W) or (B, C, D, H, W) float32/float64, the destination images.
        src: same shape and dtype as ``dst``, the source images (patch donors).
        mask: (B, H, W) or (B, 1, H, W) bool (or the 3D forms), the region to replace. It may have
            any shape and touch the image edge, but must leave at least one pixel free.
        alpha: scalar or (B,) in [0, 1], the interpolation factor.
        gradient: ``"pii"``, ``"mixed"`` or ``"source"``.
        clip: clip the result to [min, max] of ``dst`` per sample and channel (as the original).
        tol: relative residual ``||r0 - A e|| / ||r0||`` of the correction ``e = out - dst`` at
            which a system is converged (``r0``: the residual of ``dst``); invariant to the images'
            offset and scale. See :mod:`pii_augment.ops.solver` for what it bounds in practice.
        method: ``"auto"`` (the default: on the CPU, samples whose mask is a box with its one-pixel
            ring inside the image, as the original's patches, get an exact DST-I solve; all others
            multigrid), ``"multigrid"`` (conjugate gradients preconditioned by a V-cycle, for every
            sample), ``"vcycle"`` (plain V-cycles) or ``"jacobi"`` (weighted Jacobi, for comparison).
        max_iter: PCG iterations (multigrid, default 30), V-cycles (vcycle, default 50) or sweeps
            (jacobi, default 20000).
        backend: ``"auto"`` (by where the arrays live), ``"numba"``, ``"cupy"`` or
            ``"cuda-emulated"`` (the CUDA kernels compiled for the CPU, for testing).
        check_finite: reject NaN/Inf in ``dst``/``src`` with a ``ValueError``. With False, a
            system (sample, channel) whose data hold NaN or Inf is reported unconverged.
        on_unconverged: ``"raise"`` (:class:`ConvergenceError`), ``"warn"`` (a
            :class:`ConvergenceWarning`) or ``"ignore"``; a miss is never silent in the info.
        return_info: also return a :class:`SolveInfo`.

    Returns:
        The blended batch, same shape, dtype, kind and device as ``dst`` (and the info if asked).

    Example:
        >>> import numpy as np
        >>> from pii_augment import poisson_interpolate
        >>> rng = np.random.default_rng(0)
        >>> dst = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
        >>> src = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
        >>> mask = np.zeros((2, 32, 32), bool); mask[:, 8:20, 10:24] = True
        >>> out = poisson_interpolate(dst, src, mask, alpha=0.5)
        >>> out.shape, bool((out[:, 0][~mask] == dst[:, 0][~mask]).all())
        ((2, 1, 32, 32), True)
    """
    check_choice("gradient", gradient, tuple(MODES))
    return _solve_public(dst, src, mask, alpha, MODES[gradient], clip=clip, tol=tol, method=method, max_iter=max_iter, backend=backend,
                         check_finite=check_finite, on_unconverged=on_unconverged, return_info=return_info)


@on_torch_stream
def solve_poisson(
    dst: Any,
    mask: Any,
    rhs: Any = None,
    *,
    clip: bool = False,
    tol: float = DEFAULT_TOL,
    method: str = "auto",
    max_iter: int | None = None,
    backend: str = "auto",
    check_finite: bool = True,
    on_unconverged: str = "raise",
    return_info: bool = False,
):
    """The low-level batched masked Poisson solve with a given guidance divergence.

    Solves ``sum_{q in N_p} (f_p - f_q) = rhs_p`` on the mask pixels p (N_p: the axis neighbours
    of p inside the image), with ``f = dst`` outside the mask. ``rhs = None`` means zero (the
    membrane / harmonic fill of the hole from its boundary).

    Args:
        dst: (B, C, H, W) or (B, C, D, H, W) float32/float64: boundary values (and initial guess).
        mask: (B, H, W) or (B, 1, H, W) bool (or the 3D forms), the unknowns.
        rhs: None or an array of the shape and dtype of ``dst``; only mask pixels are read.
        clip, tol, method, max_iter, backend, check_finite, on_unconverged, return_info: as in
            :func:`poisson_interpolate` (``clip`` defaults to False here).

    Returns:
        f with the shape, dtype, kind and device of ``dst`` (and a :class:`SolveInfo` if asked).

    Example:
        >>> import numpy as np
        >>> from pii_augment import solve_poisson
        >>> dst = np.zeros((1, 1, 16, 16)); dst[..., :, 8:] = 1.0
        >>> mask = np.zeros((1, 16, 16), bool); mask[0, 4:12, 4:12] = True
        >>> f = solve_poisson(dst, mask)  # harmonic fill between the 0 and 1 halves
        >>> bool((f[0, 0, 4:12, 4:12] > 0).all() and (f[0, 0, 4:12, 4:12] < 1).all())
        True
    """
    return _solve_public(dst, rhs, mask, 0.0, HARMONIC if rhs is None else DIVERGENCE, guide_name="rhs",
                         guide_optional=True, clip=clip, tol=tol, method=method, max_iter=max_iter, backend=backend,
                         check_finite=check_finite, on_unconverged=on_unconverged, return_info=return_info)


@on_torch_stream
def foreign_patch_interpolate(
    dst: Any, src: Any, mask: Any, alpha: Any, *, backend: str = "auto", check_finite: bool = True
):
    """Foreign Patch Interpolation: ``(1 - alpha) dst + alpha src`` inside ``mask``, ``dst`` outside.

    Args:
        dst: (B, C, H, W) or (B, C, D, H, W) float32/float64.
        src: same shape and dtype as ``dst``.
        mask: (B, H, W) or (B, 1, H, W) bool (or the 3D forms).
        alpha: scalar or (B,) in [0, 1].
        backend: ``"auto"``, ``"numba"`` (host arrays), ``"cupy"`` (device arrays) or
            ``"cuda-emulated"``; one fused pass on every backend.
        check_finite: reject NaN/Inf inputs (folded into the same pass).

    Returns:
        The blended batch, same shape, dtype, kind and device as ``dst``.

    Example:
        >>> import numpy as np
        >>> from pii_augment import foreign_patch_interpolate
        >>> dst, src = np.zeros((1, 1, 4, 4), np.float32), np.ones((1, 1, 4, 4), np.float32)
        >>> mask = np.zeros((1, 4, 4), bool); mask[0, 1:3, 1:3] = True
        >>> foreign_patch_interpolate(dst, src, mask, 0.25)[0, 0, 1]
        array([0.  , 0.25, 0.25, 0.  ], dtype=float32)
    """
    check_choice("backend", backend, BACKENDS)
    check_bool("check_finite", check_finite)
    akind, d, s, m = _prepare(dst, src, mask)
    xp = get_xp(d)
    a = normalize_alpha(alpha, d.shape[0], xp)
    bk = get_backend(backend, d)
    if d.shape[0] == 0:
        return from_backend_array(d.copy(), akind)
    out = bk.fpi(_as_5d(d, xp), _as_5d(s, xp), _mask_5d(m, xp), a, check_finite)
    return from_backend_array(out.reshape(d.shape), akind)


@on_torch_stream
def anomaly_label(dst: Any, out: Any, mask: Any, alpha: Any, *, tolerance: float | None = 1e-3,
                  backend: str = "auto"):
    """Per-pixel training label: ``alpha`` where the blend changed the image, 0 elsewhere.

    A mask pixel counts as changed when, in any channel, ``floor(dst / tolerance) !=
    floor(out / tolerance)`` (the original's quantised comparison); ``tolerance=None`` labels the
    whole mask (Eqn 2 of the paper).

    Args:
        dst: (B, C, H, W) or (B, C, D, H, W) float, the image before blending.
        out: same shape and dtype, the blended image.
        mask: (B, H, W) or (B, 1, H, W) bool (or the 3D forms), the blended region.
        alpha: scalar or (B,) in [0, 1].
        tolerance: quantisation step (> 0) or None.
        backend: ``"auto"``, ``"numba"``, ``"cupy"`` or ``"cuda-emulated"``; one fused pass.

    Returns:
        (B, 1, H, W) or (B, 1, D, H, W) label with the dtype, kind and device of ``dst``.

    Example:
        >>> import numpy as np
        >>> from pii_augment import anomaly_label
        >>> dst = np.zeros((1, 1, 2, 2), np.float32); out = dst.copy(); out[0, 0, 0, 0] = 0.5
        >>> anomaly_label(dst, out, np.ones((1, 2, 2), bool), 0.7)[0, 0]
        array([[0.7, 0. ],
               [0. , 0. ]], dtype=float32)
    """
    if tolerance is not None:
        tolerance = check_real("tolerance", tolerance, low=0, low_open=True)
    check_choice("backend", backend, BACKENDS)
    akind, d, o, m = _prepare(dst, out, mask, names=("dst", "out"))
    xp = get_xp(d)
    a = normalize_alpha(alpha, d.shape[0], xp)
    bk = get_backend(backend, d)
    label_shape = (d.shape[0], 1) + tuple(d.shape[2:])
    if d.shape[0] == 0:
        return from_backend_array(xp.zeros(label_shape, d.dtype), akind)
    label = bk.label(_as_5d(d, xp), _as_5d(o, xp), _mask_5d(m, xp), a, tolerance)
    return from_backend_array(label.reshape(label_shape), akind)


def _host_boxes_with_label(bk, d, s, gidx, a, box_lo, box_hi, blend, mode, tolerance, check_finite, solver):
    """:func:`blend_with_label` on the host for masks that are the boxes ``box_lo``, ``box_hi``
    ((B, 3), :func:`_check_boxes`): ``(out, label)``, no mask made or read; or None where the
    masks' path must run (a PII box the box solve does not take, a method other than "auto", or
    anything the report flags: NaN/Inf, which that path raises on, with its messages)."""
    xp = bk.xp
    d5, s5 = _as_5d(d, xp), _as_5d(s, xp)
    if blend == "fpi":
        out, label = bk.fpi_label(d5, s5, gidx, None, a, tolerance, check_finite, boxes=(box_lo, box_hi))
        return out.reshape(d.shape), label
    ndim = d.ndim - 2
    if solver["method"] != "auto" or not boxes_fit(box_lo, box_hi, d5.shape[2:], ndim):
        return None
    label = bk.empty((d5.shape[0], 1) + tuple(d5.shape[2:]), d.dtype)  # the pass writes it whole
    check_guide = check_finite and not same_elements(s, d)
    state = bk.prepare_boxes(d5, s5, gidx, None, check_guide, a, mode, solver["clip"], ndim,
                             label=(label, tolerance), boxes=(box_lo, box_hi))
    rep = bk.report(state)
    if rep.found(tuple(d5.shape[2:])) & (_TO_CHECK | _NOT_ALL_BOXED):
        return None
    _report_boxes(rep, solver["tol"], d5.dtype, solver["on_unconverged"])
    return state.out.reshape(d.shape), label


def _source_index(index: Any, batch: int) -> np.ndarray | None:
    if index is None:
        return None
    idx = np.asarray(index)
    if idx.dtype.kind not in "iu" or idx.shape != (batch,):
        raise TypeError(f"src_index must be a (B,) = ({batch},) integer array; got dtype {idx.dtype}, shape {idx.shape}")
    if batch and (idx.min() < 0 or idx.max() >= batch):
        raise ValueError(f"src_index must hold batch positions in [0, {batch}); got {idx.min()}..{idx.max()}")
    return idx.astype(np.int64)


@on_torch_stream
def blend_with_label(
    dst: Any,
    src: Any,
    mask: Any,
    alpha: Any,
    *,
    blend: str = "pii",
    src_index: Any = None,
    tolerance: float | None = 1e-3,
    backend: str = "auto",
    check_finite: bool = True,
    boxes: Any = None,
    **options: Any,
):
    """A blend and its label in one call: what the transforms need, at the cost of the blend.

    The same as ``out = poisson_interpolate(dst, src[src_index], mask, alpha, **options)`` (or
    :func:`foreign_patch_interpolate` with ``blend="fpi"``) followed by ``anomaly_label(dst,
    out, mask, alpha, tolerance=tolerance)``, and equal to it bit for bit, but the source of
    sample b is read in place from ``src[src_index[b]]`` (no gathered copy of the batch), the
    host reads only the masks' boxes for the label, and FPI writes blend and label in one pass.

    Args:
        dst, src, mask, alpha: as in :func:`poisson_interpolate`; ``src`` has the shape of
            ``dst``.
        blend: ``"pii"`` or ``"fpi"``.
        src_index: None (sample b's source is ``src[b]``) or (B,) integers in [0, B).
        tolerance: as in :func:`anomaly_label`.
        backend, check_finite: as in :func:`poisson_interpolate`.
        boxes: None, or ``(lo, hi)`` with ``mask=None``: (B, ndim) integer arrays, sample b's mask
            being the box ``lo[b] <= p < hi[b]`` (empty where some ``hi <= lo``; ``0 <= lo``, ``hi
            <=`` the spatial shape). The same result, bit for bit, as the mask of those boxes,
            which the host never makes nor reads (FPI reads the source inside the boxes only);
            other backends make the masks.
        **options: ``poisson_interpolate``'s solver options (``gradient``, ``clip``, ``tol``,
            ``method``, ``max_iter``, ``on_unconverged``), for ``blend="pii"``.

    Returns:
        ``(out, label)``: out like ``dst``; label (B, 1, *spatial), dtype, kind and device of dst.

    Example:
        >>> import numpy as np
        >>> from pii_augment import anomaly_label, poisson_interpolate
        >>> from pii_augment.ops import blend_with_label
        >>> rng = np.random.default_rng(0)
        >>> dst = rng.standard_normal((2, 1, 32, 32)).astype(np.float32)
        >>> mask = np.zeros((2, 32, 32), bool); mask[:, 8:20, 10:24] = True
        >>> out, label = blend_with_label(dst, dst, mask, 0.5, src_index=[1, 0])
        >>> ref = poisson_interpolate(dst, dst[[1, 0]], mask, 0.5)
        >>> bool((out == ref).all() and (label == anomaly_label(dst, ref, mask, 0.5)).all())
        True
        >>> lo, hi = np.array([[8, 10]] * 2), np.array([[20, 24]] * 2)  # the same masks, as boxes
        >>> out2, label2 = blend_with_label(dst, dst, None, 0.5, src_index=[1, 0], boxes=(lo, hi))
        >>> bool((out2 == out).all() and (label2 == label).all())
        True
    """
    check_choice("blend", blend, ("pii", "fpi"))
    if (boxes is None) == (mask is None):
        raise TypeError("pass either mask or boxes=(lo, hi) (with mask=None)")
    if blend == "fpi" and options:
        raise TypeError(f"blend='fpi' takes no solver options; got {sorted(options)}")
    gradient = options.pop("gradient", "pii")
    check_choice("gradient", gradient, tuple(MODES))
    solver = dict(clip=options.pop("clip", True), tol=options.pop("tol", DEFAULT_TOL),
                  method=options.pop("method", "auto"), max_iter=options.pop("max_iter", None),
                  on_unconverged=options.pop("on_unconverged", "raise"))
    if options:
        raise TypeError(f"unexpected options {sorted(options)}")
    if tolerance is not None:
        tolerance = check_real("tolerance", tolerance, low=0, low_open=True)
    tol = _check_options(backend=backend, check_finite=check_finite, return_info=False, **solver)
    solver["tol"] = tol
    akind, d, s, m = _prepare(dst, src, mask, mask_optional=True)
    xp = get_xp(d)
    B = d.shape[0]
    gidx = _source_index(src_index, B)
    a = normalize_alpha(alpha, B, xp)
    bk = get_backend(backend, d)
    label_shape = (B, 1) + tuple(d.shape[2:])
    if boxes is not None:
        box_lo, box_hi = _check_boxes(boxes, tuple(d.shape))
        if B and bk.name == "numba":
            res = _host_boxes_with_label(bk, d, s, gidx, a, box_lo, box_hi, blend, MODES[gradient], tolerance,
                                         check_finite, solver)
            if res is not None:
                return from_backend_array(res[0], akind), from_backend_array(res[1].reshape(label_shape), akind)
        m = _box_masks(box_lo, box_hi, tuple(d.shape), xp)  # the general path, on the masks of the boxes
    if B == 0:
        return from_backend_array(d.copy(), akind), from_backend_array(xp.zeros(label_shape, d.dtype), akind)
    d5, m5 = _as_5d(d, xp), _mask_5d(m, xp)
    if blend == "fpi":
        s5 = _as_5d(s, xp)
        if gidx is not None and not bk.indexes_guide:
            s5, gidx = bk.take(s5, gidx), None
        out, label = bk.fpi_label(d5, s5, gidx, m5, a, tolerance, check_finite)
    else:
        if gidx is not None and not bk.indexes_guide:
            s, gidx = bk.take(s, gidx), None
        label = None
        if bk.fuses_label:  # "auto": the pass writes it whole (labels, zeros); else only the boxes are
            label = (bk.empty if solver["method"] == "auto" else bk.zeros)((B, 1) + tuple(d5.shape[2:]), d.dtype)
        out, _, rep = _solve(bk, d, m, s, a, MODES[gradient], check_finite=check_finite, gidx=gidx,
                             label=None if label is None else (label, tolerance), want_info=False, **solver)
        if label is None:
            label = bk.label_boxes(d5, _as_5d(out, xp), m5, a, tolerance, rep.box_lo, rep.box_hi)
        elif rep.found(tuple(m5.shape[1:])) & _LEFT or solver["method"] != "auto":  # the samples not labelled yet
            done = rep.labelled if rep.labelled is not None else rep.status[:, 0] == BOX
            rest = np.flatnonzero(rep.nonempty & ~done)
            bk.label_boxes(d5, _as_5d(out, xp), m5, a, tolerance, rep.box_lo, rep.box_hi, into=label, samples=rest)
    return from_backend_array(out.reshape(d.shape), akind), from_backend_array(label.reshape(label_shape), akind)
