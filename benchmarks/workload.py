"""The reference workload of DESIGN.md, built deterministically from a seed.

``reference_workload(batch=64, size=256)`` gives a batch of z-scored float32 "normal" images, a
second batch as sources, one square (cube) region per pair drawn the way the original PII code
draws it, and one alpha per pair:

    >>> wl = reference_workload(batch=2, size=64, seed=0)
    >>> wl["dst"].shape, wl["mask"].shape, wl["alpha"].shape
    ((2, 1, 64, 64), (2, 64, 64), (2,))

Images are smooth random textures with some structure: a sum of random anisotropic-free gaussian
blobs of many scales, a few sharp-edged boxes (so that the PII guidance has real choices to make
between the two images' gradients), a linear ramp and a little white noise, z-scored per image.
"""

from __future__ import annotations

import numpy as np

__all__ = ["reference_workload", "draw_regions", "random_images"]


def random_images(rng: np.random.Generator, batch: int, size: int, ndim: int = 2) -> np.ndarray:
    """``(batch, 1, *[size]*ndim)`` float32 textures, z-scored per image (mean 0, std 1)."""
    axes = [np.linspace(0.0, 1.0, size) for _ in range(ndim)]
    images = np.empty((batch,) + (size,) * ndim, dtype=np.float32)
    n_blobs, n_boxes = 24, 3
    for b in range(batch):
        img = np.zeros((size,) * ndim)
        # Gaussian blobs: separable, so each costs one outer product.
        centres = rng.uniform(0.0, 1.0, (n_blobs, ndim))
        sigmas = np.exp(rng.uniform(np.log(0.02), np.log(0.3), n_blobs))
        amps = rng.normal(0.0, 1.0, n_blobs)
        for k in range(n_blobs):
            factors = [np.exp(-0.5 * ((x - centres[k, i]) / sigmas[k]) ** 2) for i, x in enumerate(axes)]
            blob = factors[0]
            for f in factors[1:]:
                blob = np.multiply.outer(blob, f)
            img += amps[k] * blob
        # A few boxes with sharp edges.
        for _ in range(n_boxes):
            lo = rng.integers(0, size - 2, ndim)
            hi = np.minimum(lo + rng.integers(2, max(3, size // 3), ndim), size)
            img[tuple(slice(a, z) for a, z in zip(lo, hi))] += rng.normal(0.0, 0.7)
        # A gentle ramp and a little noise.
        ramp = sum(rng.normal(0.0, 0.5) * np.reshape(x, [-1 if j == i else 1 for j in range(ndim)])
                   for i, x in enumerate(axes))
        img += ramp + rng.normal(0.0, 0.03, img.shape)
        img -= img.mean()
        img /= img.std()
        images[b] = img
    return images[:, None]


def draw_regions(rng: np.random.Generator, batch: int, size: int, ndim: int = 2) -> np.ndarray:
    """``(batch, *[size]*ndim)`` bool masks, one square / cube per sample, as the original draws them.

    Half-width ``w = randint(round(0.05 N), round(0.2 N))`` (one per sample, used on every axis),
    centre per axis ``c = randint(int(0.1 N), int(0.9 N))`` (upper bounds exclusive); the region is
    ``[c - w, c + w)`` on each axis, clipped to the image, minus the image's outer 1-px ring.
    """
    n = size
    masks = np.zeros((batch,) + (n,) * ndim, dtype=bool)
    for b in range(batch):
        w = int(rng.integers(round(0.05 * n), round(0.2 * n)))
        centres = rng.integers(int(0.1 * n), int(0.9 * n), ndim)
        box = tuple(slice(max(int(c) - w, 1), min(int(c) + w, n - 1)) for c in centres)
        masks[(b,) + box] = True
    return masks


def reference_workload(batch: int = 64, size: int = 256, seed: int = 0, ndim: int = 2) -> dict:
    """Build the DESIGN.md reference workload.

    Returns a dict of numpy arrays:
    ``dst`` (B, 1, *S) float32, ``src`` (B, 1, *S) float32, ``mask`` (B, *S) bool,
    ``alpha`` (B,) float32 in [0.05, 0.95), where ``S = (size,) * ndim`` and ndim is 2 or 3.
    Deterministic in ``seed``.
    """
    if ndim not in (2, 3):
        raise ValueError(f"ndim must be 2 or 3, got {ndim}")
    rng = np.random.default_rng(seed)
    dst = random_images(rng, batch, size, ndim)
    src = random_images(rng, batch, size, ndim)
    mask = draw_regions(rng, batch, size, ndim)
    alpha = rng.uniform(0.05, 0.95, batch).astype(np.float32)
    return {"dst": dst, "src": src, "mask": mask, "alpha": alpha}
