"""Regions to place patches in: the foreground of images, by a threshold or Otsu's method.

:func:`foreground` is deterministic (it draws nothing); its result is the ``region=`` of
:func:`~pii_augment.sample_patches` and of the torch modules, so that patch centres (or whole
patches) lie inside the anatomy instead of on the black background of an MRI slice.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_int, check_real

__all__ = ["foreground", "otsu_threshold", "as_host_bool"]


def as_host_bool(x: Any, name: str) -> np.ndarray:
    """``x`` (numpy, cupy or torch, bool) as a host numpy bool array; a ``TypeError`` naming
    ``name`` for anything else (regions are read on the host, where parameters are drawn)."""
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        if x.dtype != __import__("torch").bool:
            raise TypeError(f"{name} must be a bool array (a mask); got torch tensor of dtype {x.dtype}")
        return x.detach().cpu().numpy()
    if mod == "cupy":
        x = x.get()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a bool numpy/cupy array or torch tensor; got {type(x).__name__}")
    if x.dtype != np.bool_:
        raise TypeError(f"{name} must be a bool array (a mask); got dtype {x.dtype}")
    return x


def _host_float(x: Any, name: str) -> np.ndarray:
    mod = type(x).__module__.split(".")[0]
    if mod == "torch":
        import torch

        t = x.detach().cpu()
        x = (t.float() if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()
    elif mod == "cupy":
        x = x.get()
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a numpy/cupy array or torch tensor; got {type(x).__name__}")
    if x.dtype.kind not in "fiub":
        raise TypeError(f"{name} must hold real numbers; got dtype {x.dtype}")
    return x


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of ``values`` (any shape): the bin centre maximising the between-class
    variance of a ``bins``-bin histogram over [min, max] (as ``skimage.filters.threshold_otsu``).

    Example:
        >>> import numpy as np
        >>> v = np.r_[np.zeros(100), np.ones(50)]
        >>> 0 < otsu_threshold(v) < 1
        True
    """
    v = np.asarray(values, np.float64).ravel()
    if v.size == 0:
        raise ValueError("values is empty: Otsu's threshold needs at least one value")
    lo, hi = float(v.min()), float(v.max())
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError("values contains NaN or Inf")
    if lo == hi:
        return lo
    hist, edges = np.histogram(v, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    hist = hist.astype(np.float64)
    w1 = np.cumsum(hist)
    w2 = np.cumsum(hist[::-1])[::-1]
    m1 = np.cumsum(hist * centres) / np.maximum(w1, 1e-300)
    m2 = (np.cumsum((hist * centres)[::-1]) / np.maximum(w2[::-1], 1e-300))[::-1]
    var = w1[:-1] * w2[1:] * (m1[:-1] - m2[1:]) ** 2
    return float(centres[:-1][int(np.argmax(var))])


def foreground(images: Any, threshold: str | float = "otsu", *, erode: int = 0) -> np.ndarray:
    """The foreground of every image: channel mean above a threshold (per image Otsu by default).

    Args:
        images: (B, C, H, W) or (B, C, D, H, W), numpy, cupy or torch (read on the host).
        threshold: ``"otsu"`` (Otsu's threshold of each image's channel mean) or a number (the
            same absolute threshold for every image).
        erode: pixels to peel off the foreground's edge (an int >= 0; a box erosion), so that
            patches keep away from the outline.

    Returns:
        (B, H, W) or (B, D, H, W) bool numpy array: pass it as ``region=``.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((2, 1, 32, 32), np.float32); x[:, :, 8:24, 8:24] = 1.0
        >>> m = foreground(x)
        >>> m.shape, int(m[0].sum())
        ((2, 32, 32), 256)
    """
    x = _host_float(images, "images")
    if x.ndim not in (4, 5):
        raise ValueError(
            f"images must have shape (B, C, H, W) or (B, C, D, H, W); got {x.ndim} dimensions with shape {x.shape}"
        )
    if isinstance(threshold, str):
        if threshold != "otsu":
            raise ValueError(f"threshold must be 'otsu' or a number; got {threshold!r}")
    else:
        threshold = check_real("threshold", threshold)
    erode = check_int("erode", erode, low=0)
    mean = x.astype(np.float64).mean(axis=1)
    if not np.isfinite(mean).all():
        raise ValueError("images contains NaN or Inf")
    out = np.empty(mean.shape, bool)
    for b in range(mean.shape[0]):
        t = otsu_threshold(mean[b]) if threshold == "otsu" else threshold
        out[b] = mean[b] > t
    if erode:
        out = _erode(out, erode)
    return out


def _erode(m: np.ndarray, r: int) -> np.ndarray:
    """Box erosion of radius r along every spatial axis of a (B, *spatial) mask (outside = False)."""
    out = m.copy()
    for axis in range(1, m.ndim):
        for _ in range(r):
            shifted_lo = np.zeros_like(out)
            shifted_hi = np.zeros_like(out)
            sl = [slice(None)] * m.ndim
            sl_lo, sl_hi = list(sl), list(sl)
            sl_lo[axis], sl_hi[axis] = slice(1, None), slice(None, -1)
            shifted_lo[tuple(sl_hi)] = out[tuple(sl_lo)]
            shifted_hi[tuple(sl_lo)] = out[tuple(sl_hi)]
            out = out & shifted_lo & shifted_hi
    return out
