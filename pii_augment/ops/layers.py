"""Several patches per sample: one full-batch blend per patch "layer", in sequence.

:func:`blend_patches` takes the patch parameters of a batch (:class:`~pii_augment.PatchParams`,
one or several patches per sample, each with its own alpha) and blends them with the public
functional API: layer k holds the k-th patch of every sample (samples with fewer patches get an
empty mask there), and is one call of :func:`~pii_augment.poisson_interpolate` (or
:func:`~pii_augment.foreign_patch_interpolate`) on the whole batch, its destination the previous
layer's result. So every patch keeps its own alpha, a patch that is a box still takes the exact
box solve (a union of boxes would not be a box), and nothing below the public API is touched.
The cost is one solve per layer: ``max(n_patches)`` solves, not one per patch.

Label rule: a pixel's label is the **largest** of the labels of the patches that hold it, each
patch's label being :func:`~pii_augment.anomaly_label` of its own blend (its alpha where its
blend changed the image). The largest, because a pixel changed by several anomalies is at least
as abnormal as the strongest of them, because it does not depend on the order in which
overlapping patches are drawn, and because with one patch per sample (or equal alphas) it is the
single blend's label exactly.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import numpy as np

from .._arrays import array_kind, check_array, to_backend_array
from .._validate import check_choice
from ..sampling import PatchParams
from .backends import BACKENDS, get_backend
from .blend import anomaly_label, blend_with_label
from .masks import patch_masks

__all__ = ["blend_patches", "BLENDS"]

#: The blends :func:`blend_patches` knows by name.
BLENDS = ("pii", "fpi")


def _maximum(a, b):
    if array_kind(a).framework == "torch":
        return sys.modules["torch"].maximum(a, b)
    if array_kind(a).framework == "cupy":
        return sys.modules["cupy"].maximum(a, b)
    return np.maximum(a, b)


def blend_patches(
    dst: Any,
    src: Any,
    patches: PatchParams,
    *,
    blend: str | Callable = "pii",
    apply: Any = None,
    tolerance: float | None = 1e-3,
    backend: str = "auto",
    boxes_blend: Callable | None = None,
    **options: Any,
):
    """Blend every patch of ``patches`` into ``dst``, one layer after the other, and label them.

    Args:
        dst: (B, C, H, W) or (B, C, D, H, W) float32/float64, numpy, cupy or torch.
        src: same shape, kind and device: the source image of each sample (all of a sample's
            patches come from it, at their own place).
        patches: :class:`~pii_augment.PatchParams` for this batch (from
            :func:`~pii_augment.sample_patches`; ``batch_size`` B and ``spatial_shape`` of dst).
        blend: ``"pii"`` (:func:`~pii_augment.poisson_interpolate`), ``"fpi"``
            (:func:`~pii_augment.foreign_patch_interpolate`), both with their label from
            :func:`~pii_augment.ops.blend_with_label`, or a callable ``(dst, src, mask, alpha)
            -> out`` of that form, or ``-> (out, label)`` with the label of
            :func:`~pii_augment.anomaly_label` at ``tolerance``.
        apply: None or (B,) bool: samples with False are left alone (empty masks, label 0).
        tolerance: label quantisation step of :func:`~pii_augment.anomaly_label` (None: the
            whole patch).
        backend: as in :func:`~pii_augment.poisson_interpolate`.
        boxes_blend: None, or for a callable ``blend``, the same blend given boxes instead of a
            mask: ``(dst, src, (lo, hi), alpha) -> (out, label)`` (``blend_with_label(...,
            boxes=(lo, hi))``). On the host, a layer whose masks are all boxes
            (:meth:`~pii_augment.PatchParams.sample_boxes`) is blended from its boxes, its masks
            never made (a named blend does this itself).
        **options: passed to the blend by name (``gradient``, ``clip``, ``tol``, ``method``,
            ``check_finite``, ...).

    Returns:
        ``(out, label)``: out like ``dst``; label (B, 1, *spatial), the largest label of the
        patches holding each pixel (see the module's docstring), dtype, kind and device of dst.

    Example:
        >>> import numpy as np
        >>> from pii_augment import sample_patches
        >>> from pii_augment.ops import blend_patches
        >>> rng = np.random.default_rng(0)
        >>> dst, src = rng.standard_normal((2, 2, 1, 48, 48)).astype(np.float32)
        >>> p = sample_patches(2, (48, 48), shape=("rectangle", "ellipse"), n_patches=(2, 3),
        ...                    rotation=(-90, 90), seed=0)
        >>> out, label = blend_patches(dst, src, p)
        >>> out.shape, label.shape, bool((label[:, 0] > 0).sum() <= p.masks().sum())
        ((2, 1, 48, 48), (2, 1, 48, 48), True)
        >>> bool(set(np.unique(label)) <= set(np.r_[0.0, p.alpha].astype(np.float32)))
        True
    """
    if not isinstance(patches, PatchParams):
        raise TypeError(f"patches must be a PatchParams; got {type(patches).__name__}")
    if isinstance(blend, str):
        check_choice("blend", blend, BLENDS)
    elif not callable(blend):
        raise TypeError(f"blend must be 'pii', 'fpi' or a callable; got {type(blend).__name__}")
    check_choice("backend", backend, BACKENDS)
    check_array(dst, "dst")
    shape = tuple(dst.shape)
    if len(shape) not in (4, 5) or (shape[0],) + shape[2:] != (patches.batch_size,) + tuple(patches.spatial_shape):
        raise ValueError(
            f"patches were drawn for batch size {patches.batch_size} and spatial shape "
            f"{tuple(patches.spatial_shape)}; dst has shape {shape}"
        )
    B = patches.batch_size
    on = np.ones(B, bool) if apply is None else np.asarray(apply, bool).reshape(-1)
    if on.shape != (B,):
        raise ValueError(f"apply must have shape (B,) = ({B},); got {np.shape(apply)}")
    if isinstance(blend, str):
        name = blend

        def run(d, s, m, a):
            return blend_with_label(d, s, m, a, blend=name, tolerance=tolerance, backend=backend, **options)

        def boxes_blend(d, s, boxes, a):
            return blend_with_label(d, s, None, a, blend=name, tolerance=tolerance, backend=backend, boxes=boxes,
                                    **options)
    else:
        def run(d, s, m, a):
            res = blend(d, s, m, a)
            if isinstance(res, tuple):
                return res
            return res, anomaly_label(d, res, m, a, tolerance=tolerance, backend=backend)
    if patches.n_layers == 0:  # no patch at all (or B = 0): out is a copy of dst, the label 0
        mask = patch_masks(patches, like=dst, apply=on, backend=backend)
        return run(dst, src, mask, np.zeros(B))
    if boxes_blend is not None and get_backend(backend, to_backend_array(dst, "dst")).name != "numba":
        boxes_blend = None  # a device makes all masks in one launch; boxes would cost one per sample
    out = label = None
    cur = dst
    for k in range(patches.n_layers):
        lp, present = patches.layer(k)
        boxes = None if boxes_blend is None else lp.sample_boxes()
        if boxes is not None:
            lo, hi = boxes
            off = ~(on & present)
            lo[off] = hi[off] = 0  # left alone: an empty box
            out, lab = boxes_blend(cur, src, (lo, hi), lp.alpha)
        else:
            mask = patch_masks(lp, like=dst, apply=on & present, backend=backend)
            out, lab = run(cur, src, mask, lp.alpha)
        label = lab if label is None else _maximum(label, lab)
        cur = out
    return out, label
