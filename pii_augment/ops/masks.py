"""Masks from patch parameters and the batch's patch sources, made where the images live.

:meth:`pii_augment.PatchParams.masks` draws nothing but builds the masks on the host; a batch on a
GPU would then copy one bool per pixel to the device on every call. :func:`patch_masks` builds
them on the images' device instead, from the parameters alone (a few dozen bytes per patch), bit
for bit the host's masks for squares, rectangles and ellipses, rotated and sheared or not, one or
several per sample (the union). Blobs, whose threshold goes through ``exp``, and the user's bank
masks are built on the host and copied. For rotated and sheared patches the host computes the
inverse matrices (sin, cos, tan in float64) and the kernel applies them with the host's
operations in the host's order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._arrays import array_kind, from_backend_array, to_backend_array
from .._validate import check_choice
from ..sampling import PatchParams
from .backends import BACKENDS, get_backend

__all__ = ["patch_masks", "take_samples"]

#: Shapes the device builds itself (the codes of the ``patch_masks`` kernel).
DEVICE_SHAPES = {"square": 0, "rectangle": 0, "ellipse": 1}


def device_codes(patches: PatchParams):
    """The ``patch_masks`` kernel's shape code: one int for every row, (N,) int32 codes for a
    tuple of shapes, or None when some row's shape is made on the host."""
    if isinstance(patches.shape, str):
        return DEVICE_SHAPES.get(patches.shape)
    codes = [DEVICE_SHAPES.get(name) for name in patches.shape]
    if any(c is None for c in codes):
        return None
    return np.asarray(codes, np.int32)[np.asarray(patches.kinds, np.int64)]


def patch_masks(patches: PatchParams, like: Any = None, *, apply: Any = None, backend: str = "auto"):
    """The (B, *spatial) bool masks of ``patches``, on the device and of the kind of ``like``
    (with several patches per sample, the union of each sample's patches).

    Args:
        patches: a :class:`~pii_augment.PatchParams` (from :func:`~pii_augment.sample_patches`).
        like: an array whose kind and device the masks take (numpy, cupy or torch; None: numpy).
        apply: None or (B,) bool: samples with False get an empty mask.
        backend: ``"auto"`` (by where ``like`` lives), ``"numba"``, ``"cupy"`` or
            ``"cuda-emulated"``.

    Returns:
        (B, H, W) or (B, D, H, W) bool, equal to ``patches.masks()`` (with ``apply``).

    Example:
        >>> import numpy as np
        >>> from pii_augment import sample_patches
        >>> from pii_augment.ops import patch_masks
        >>> p = sample_patches(4, (64, 64), shape="ellipse", seed=0)
        >>> bool((patch_masks(p) == p.masks()).all())
        True
        >>> q = sample_patches(4, (64, 64), shape=("rectangle", "ellipse"), n_patches=(1, 3),
        ...                    rotation=(-45, 45), shear=(-15, 15), seed=0)
        >>> bool((patch_masks(q, backend="cuda-emulated") == q.masks()).all())
        True
    """
    if not isinstance(patches, PatchParams):
        raise TypeError(f"patches must be a PatchParams; got {type(patches).__name__}")
    check_choice("backend", backend, BACKENDS)
    B = patches.batch_size
    on = np.ones(B, bool) if apply is None else np.asarray(apply, bool).reshape(-1)
    if on.shape != (B,):
        raise ValueError(f"apply must have shape (B,) = ({B},); got {np.shape(apply)}")
    kind = array_kind(like) if like is not None else None
    ref = to_backend_array(like, "like") if like is not None else np.zeros(0)
    m = get_backend(backend, ref).patch_masks(patches, on, device_codes(patches))
    return m if kind is None else from_backend_array(m, kind)


def take_samples(x: Any, index: Any, *, backend: str = "auto"):
    """``x[index]`` along the batch axis, on ``x``'s device (the index is copied once, a few bytes
    per sample, instead of torch's blocking copy of an index tensor).

    Args:
        x: (B, ...) numpy, cupy or torch array.
        index: (n,) integer host array of batch positions.
        backend: as in :func:`patch_masks`.

    Returns:
        (n, ...) array of the kind and device of ``x``.

    Example:
        >>> import numpy as np
        >>> from pii_augment.ops import take_samples
        >>> take_samples(np.arange(6).reshape(3, 2), np.array([2, 0]))
        array([[4, 5],
               [0, 1]])
    """
    check_choice("backend", backend, BACKENDS)
    kind = array_kind(x)
    a = to_backend_array(x, "x")
    idx = np.asarray(index)
    if idx.dtype.kind not in "iu" or idx.ndim != 1:
        raise TypeError(f"index must be a 1D integer array; got dtype {idx.dtype}, shape {idx.shape}")
    return from_backend_array(get_backend(backend, a).take(a, idx.astype(np.int64)), kind)
