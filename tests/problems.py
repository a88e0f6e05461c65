"""Problem generators shared by the tests: masks, blend problems and the kernels' crop set-ups.

Importable as ``problems`` (pyproject's ``pythonpath = ["tests"]``, as ``reference_solvers``).
Every generator is deterministic in its seed or ``rng``: the same arguments give the same arrays,
so the recorded tolerances of the tests that use them keep holding.
"""

from __future__ import annotations

import numpy as np

#: The kinds of :func:`make_mask` that the property tests draw from.
MASK_KINDS = ("rect", "ellipse", "blobs", "pixels", "two_rects", "edge_rect", "empty")


# ------------------------------------------------------------------------------------------------
# masks
# ------------------------------------------------------------------------------------------------


def box_mask(shape: tuple[int, ...], rng: np.random.Generator, lo_min: int = 1, hi_margin: int = 0) -> np.ndarray:
    """One box, ``lo`` in [lo_min, s - 2) and ``hi`` in [lo + 1, s - hi_margin) on every axis.

    The defaults leave the box's one-pixel ring inside the image: the exact (spectral) path of
    ``method="auto"``.
    """
    m = np.zeros(shape, bool)
    lo = [int(rng.integers(lo_min, s - 2)) for s in shape]
    hi = [int(rng.integers(l + 1, s - hi_margin)) for l, s in zip(lo, shape)]
    m[tuple(slice(a, b) for a, b in zip(lo, hi))] = True
    return m


def boxes(batch: int, shape: tuple[int, ...], rng: np.random.Generator, ring: bool = True) -> np.ndarray:
    """(batch, *shape) boxes; with ``ring`` one pixel clear of the image edge on every side."""
    kw = dict(lo_min=1, hi_margin=1) if ring else dict(lo_min=0, hi_margin=0)
    return np.stack([box_mask(shape, rng, **kw) for _ in range(batch)]) if batch else np.zeros((0,) + shape, bool)


def make_mask(kind: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A bool mask of one of several shapes; never the whole image.

    ``kind``: one of :data:`MASK_KINDS`, or ``"box"`` (:func:`box_mask`) or ``"holes"`` (a box
    with holes in it: not a box, several boundaries).
    """
    if kind == "box":
        return box_mask(shape, rng)
    if kind == "holes":
        m = np.zeros(shape, bool)
        m[tuple(slice(1, s - 1) for s in shape)] = True
        m &= rng.random(shape) > 0.15
        return m
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    if kind == "empty":
        return np.zeros(shape, bool)
    if kind in ("rect", "edge_rect", "two_rects"):
        m = np.zeros(shape, bool)
        for _ in range(2 if kind == "two_rects" else 1):
            lo = [int(rng.integers(0, s - 1)) for s in shape]
            hi = [int(rng.integers(l + 1, s + 1)) for l, s in zip(lo, shape)]
            if kind == "edge_rect":  # touch the image edge on one side of one axis
                a = int(rng.integers(len(shape)))
                lo[a] = 0
            m[tuple(slice(l, h) for l, h in zip(lo, hi))] = True
    elif kind == "ellipse":
        c = [rng.uniform(0, s) for s in shape]
        r = [rng.uniform(1.0, s / 1.5) for s in shape]
        m = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip(grids, c, r)) <= 1.0
    elif kind == "blobs":
        field = np.zeros(shape)
        for _ in range(3):
            c = [rng.uniform(0, s) for s in shape]
            r = rng.uniform(1.0, max(shape) / 3)
            field += np.exp(-sum((g - ci) ** 2 for g, ci in zip(grids, c)) / (2 * r * r))
        m = field > 0.5
    elif kind == "pixels":
        m = rng.random(shape) < 0.3
    else:
        raise ValueError(kind)
    if m.all():
        m.flat[int(rng.integers(m.size))] = False
    return m


def region_mask(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random region: a box (often touching the image edge), scattered pixels, or both."""
    m = np.zeros(shape, bool)
    kind = int(rng.integers(3))
    if kind in (0, 2):
        lo = [int(rng.integers(0, s)) if rng.random() < 0.6 else 0 for s in shape]  # edge often
        hi = [int(rng.integers(l + 1, s + 1)) for l, s in zip(lo, shape)]
        m[tuple(slice(l, h) for l, h in zip(lo, hi))] = True
    if kind in (1, 2):
        m |= rng.random(shape) < 0.3
    if m.all():
        m.flat[int(rng.integers(m.size))] = False
    return m


# ------------------------------------------------------------------------------------------------
# blend problems: (dst, src, mask, alpha)
# ------------------------------------------------------------------------------------------------


def random_problem(seed: int, batch: int, channels: int, shape, kinds, dtype=np.float64):
    """Noise images (dst with a ramp along the last axis), masks of ``kinds`` in turn."""
    rng = np.random.default_rng(seed)
    dst = rng.standard_normal((batch, channels) + tuple(shape)).astype(dtype)
    src = rng.standard_normal((batch, channels) + tuple(shape)).astype(dtype)
    # a smooth component so that the blend has structure beyond noise
    ramp = np.linspace(-2, 2, shape[-1]).astype(dtype)
    dst += ramp
    mask = np.stack([make_mask(kinds[b % len(kinds)], tuple(shape), rng) for b in range(batch)])
    alpha = rng.uniform(0.05, 0.95, batch)
    return dst, src, mask, alpha


def region_problem(seed: int, ndim: int, dtype):
    """Random batch, channels and shape; :func:`region_mask` masks (boxes at the edge, pixels)."""
    rng = np.random.default_rng(seed)
    B, C = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    shape = tuple(int(rng.integers(3, 9 if ndim == 3 else 25)) for _ in range(ndim))
    dst = (rng.standard_normal((B, C) + shape) + np.linspace(-2, 2, shape[-1])).astype(dtype)
    src = rng.standard_normal((B, C) + shape).astype(dtype)
    mask = np.stack([region_mask(rng, shape) for _ in range(B)])
    alpha = rng.uniform(0.05, 0.95, B)
    return dst, src, mask, alpha


def box_problem(seed: int, ndim: int, dtype, offset: float = 0.0, batch: int | None = None):
    """Random box masks with their ring inside the image, smooth images at an offset."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(rng.integers(6, 12 if ndim == 3 else 30)) for _ in range(ndim))
    B = batch or int(rng.integers(1, 5))
    C = int(rng.integers(1, 3))
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    base = sum(rng.normal() * g for g in grids)
    dst = (base + 0.3 * rng.standard_normal((B, C) + shape) + offset).astype(dtype)
    src = (rng.normal() * grids[-1] + 0.3 * rng.standard_normal((B, C) + shape) + offset).astype(dtype)
    mask = np.zeros((B,) + shape, bool)
    for b in range(B):
        mask[b] = box_mask(shape, rng)
    return dst, src, mask, rng.uniform(0.05, 0.95, B)


def plane_problem(seed: int, ndim: int, dtype, kinds):
    """Planes plus noise, one sample per mask kind of :func:`make_mask` (e.g. "holes")."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(rng.integers(5, 10 if ndim == 3 else 26)) for _ in range(ndim))
    B, C = len(kinds), int(rng.integers(1, 3))
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    dst = (sum(rng.normal() * g for g in grids) + 0.3 * rng.standard_normal((B, C) + shape)).astype(dtype)
    src = (0.3 * rng.standard_normal((B, C) + shape) + rng.normal() * grids[-1]).astype(dtype)
    mask = np.stack([make_mask(k, shape, rng) for k in kinds])
    return dst, src, mask, rng.uniform(0.05, 0.95, B)


def smooth_images(rng: np.random.Generator, batch: int, channels: int, shape) -> np.ndarray:
    """Unit-range smooth images (a random low-order polynomial plus noise): realistic gradients."""
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    out = np.empty((batch, channels) + tuple(shape))
    for b in range(batch):
        for c in range(channels):
            f = sum(rng.normal() * g + rng.normal() * g * g for g in grids) + 0.2 * rng.standard_normal(shape)
            out[b, c] = (f - f.min()) / np.ptp(f)
    return out


def smooth_problem(seed: int, ndim: int, kinds, batch: int | None = None):
    """One channel of :func:`smooth_images`, masks of ``kinds`` in turn (float64)."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(rng.integers(6, 10 if ndim == 3 else 22)) for _ in range(ndim))
    B = batch or len(kinds)
    dst = smooth_images(rng, B, 1, shape)
    src = smooth_images(rng, B, 1, shape)
    mask = np.stack([make_mask(kinds[b % len(kinds)], shape, rng) for b in range(B)])
    alpha = rng.uniform(0.05, 0.95, B)
    return dst, src, mask, alpha
