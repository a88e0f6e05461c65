"""Patch and alpha sampling: the only code of the library that draws random numbers.

:func:`sample_patches` draws every random quantity of a batch up front and returns a
:class:`PatchParams` of plain numpy arrays; :meth:`PatchParams.masks` turns them into masks
deterministically, so replaying the same parameters gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .._validate import check_choice, check_int, check_pair, check_seed, check_shape

__all__ = ["PatchParams", "sample_patches", "sample_source_indices", "SHAPES"]

SHAPES = ("square", "rectangle", "ellipse", "blob")
_BLOB_BUMPS = 4


def _rng(seed) -> np.random.Generator:
    """A generator for an already checked ``seed`` (see :func:`_check_seed`)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_seed(seed):
    return check_seed("seed", seed, generator=True)


@dataclass
class PatchParams:
    """Everything random about one batch of patches.

    Attributes:
        spatial_shape: (H, W) or (D, H, W) of the images.
        shape: one of ``SHAPES``.
        centers: (B, ndim) int64 patch centres.
        half_widths: (B, ndim) int64 half-sizes; the box is ``[c - w, c + w)`` on each axis.
        alpha: (B,) float64 interpolation factors.
        border: pixels removed from the image edge (1 reproduces the original).
        blob_centers: (B, K, ndim) float64 bump centres relative to the box centre, in units
            of the half-width (``shape == "blob"`` only).
        blob_radii: (B, K) float64 bump radii in the same units.
    """

    spatial_shape: tuple[int, ...]
    shape: str
    centers: np.ndarray
    half_widths: np.ndarray
    alpha: np.ndarray
    border: int = 1
    blob_centers: np.ndarray | None = field(default=None, repr=False)
    blob_radii: np.ndarray | None = field(default=None, repr=False)

    @property
    def batch_size(self) -> int:
        return int(self.centers.shape[0])

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) int64 (B, ndim): the patch boxes clipped to the image minus the border."""
        n = np.asarray(self.spatial_shape, np.int64)
        lo = np.clip(self.centers - self.half_widths, self.border, n - self.border)
        hi = np.clip(self.centers + self.half_widths, self.border, n - self.border)
        return lo, np.maximum(hi, lo)

    def masks(self) -> np.ndarray:
        """The (B, *spatial_shape) bool masks these parameters describe."""
        B, nd = self.centers.shape
        lo, hi = self.boxes()
        out = np.zeros((B,) + tuple(self.spatial_shape), bool)
        for b in range(B):  # writing B boxes is cheaper than comparing B full grids
            out[(b,) + tuple(slice(int(lo[b, a]), int(hi[b, a])) for a in range(nd))] = True
        if self.shape in ("square", "rectangle"):
            return out
        grids = np.meshgrid(*[np.arange(s) for s in self.spatial_shape], indexing="ij")
        sl = (slice(None),) + (None,) * nd
        # Normalised coordinates relative to the (unclipped) box: the box is [-1, 1) per axis.
        w = np.maximum(self.half_widths, 1).astype(np.float64)
        rel = [(grids[a][None] + 0.5 - self.centers[:, a][sl]) / w[:, a][sl] for a in range(nd)]
        if self.shape == "ellipse":
            r2 = sum(x * x for x in rel)
            return out & (r2 <= 1.0)
        field_ = np.zeros(out.shape)
        for k in range(self.blob_centers.shape[1]):
            d2 = sum((rel[a] - self.blob_centers[:, k, a][sl]) ** 2 for a in range(nd))
            field_ += np.exp(-d2 / (2 * self.blob_radii[:, k][sl] ** 2))
        return out & (field_ > 0.5)


def _int_range(frac: tuple[float, float], n: int, how) -> tuple[int, int]:
    lo, hi = how(frac[0] * n), how(frac[1] * n)
    return int(lo), int(max(hi, lo + 1))


def sample_patches(
    batch_size: int,
    spatial_shape: Sequence[int],
    *,
    shape: str = "square",
    half_width: tuple[float, float] = (0.05, 0.2),
    center: tuple[float, float] = (0.1, 0.9),
    alpha: tuple[float, float] = (0.05, 0.95),
    border: int = 1,
    seed: int | np.random.Generator | None = None,
) -> PatchParams:
    """Draw patch boxes, shapes and alphas for a batch, as the original PII code does by default.

    Defaults reproduce the original (ORIGINAL_PII.md): centre ``randint(int(0.1 N), int(0.9 N))``
    per axis, one half-width ``randint(round(0.05 H), round(0.2 H))`` (from the first spatial
    axis) for all axes, box ``[c - w, c + w)`` clipped, the outer ``border`` ring removed, alpha
    ``~ U(0.05, 0.95)``.

    Args:
        batch_size: B, an int >= 0.
        spatial_shape: (H, W) or (D, H, W), positive ints.
        shape: ``"square"`` (the original; a cube in 3D), ``"rectangle"`` (one half-width per
            axis, each drawn from that axis' size), ``"ellipse"`` (ellipse/ellipsoid inscribed in
            a rectangle box) or ``"blob"`` (a random smooth blob inside a rectangle box).
        half_width: half-width range as fractions of the axis size (upper bound exclusive).
        center: centre range as fractions of the axis size (upper bound exclusive).
        alpha: (low, high) of the uniform alpha distribution.
        border: image-edge pixels that no patch may cover (1 as the original; 0 allows patches
            on the edge); ``2 * border`` must be smaller than every axis.
        seed: None, an int >= 0 or a ``numpy.random.Generator`` (drawn from in place).

    The three ranges are ``(low, high)`` pairs with ``0 <= low <= high <= 1``.

    Returns:
        A :class:`PatchParams`; call ``.masks()`` for the (B, *spatial_shape) bool masks.

    Raises:
        TypeError: an argument of the wrong kind (``batch_size=2.5``, ``spatial_shape=32``,
            ``seed="0"``), naming it; checked before anything is drawn.
        ValueError: a value out of range (a negative size, a reversed range, an unknown shape,
            a border leaving no room for a patch).

    Example:
        >>> from pii_augment import sample_patches
        >>> p = sample_patches(4, (256, 256), seed=0)
        >>> p.masks().shape, p.alpha.shape
        ((4, 256, 256), (4,))
        >>> bool((sample_patches(4, (256, 256), seed=0).masks() == p.masks()).all())
        True
    """
    B = check_int("batch_size", batch_size, low=0)
    spatial_shape = check_shape("spatial_shape", spatial_shape, (2, 3), what="(H, W) or (D, H, W)")
    check_choice("shape", shape, SHAPES)
    half_width = check_pair("half_width", half_width, 0.0, 1.0)
    center = check_pair("center", center, 0.0, 1.0)
    alpha = check_pair("alpha", alpha, 0.0, 1.0)
    border = check_int("border", border, low=0)
    if 2 * border >= min(spatial_shape):
        raise ValueError(
            f"border={border} leaves no room for a patch in spatial_shape {spatial_shape}: every "
            f"axis must be longer than 2 * border = {2 * border}"
        )
    seed = _check_seed(seed)
    rng = _rng(seed)
    nd = len(spatial_shape)
    centers = np.empty((B, nd), np.int64)
    for a, n in enumerate(spatial_shape):
        lo, hi = _int_range(center, n, int)
        centers[:, a] = rng.integers(lo, hi, size=B)
    if shape == "square":
        lo, hi = _int_range(half_width, spatial_shape[0], round)
        hw = rng.integers(lo, hi, size=B)
        half_widths = np.repeat(hw[:, None], nd, axis=1).astype(np.int64)
    else:
        half_widths = np.empty((B, nd), np.int64)
        for a, n in enumerate(spatial_shape):
            lo, hi = _int_range(half_width, n, round)
            half_widths[:, a] = rng.integers(lo, hi, size=B)
    alphas = rng.uniform(alpha[0], alpha[1], size=B)
    blob_c = blob_r = None
    if shape == "blob":
        blob_c = rng.uniform(-0.5, 0.5, size=(B, _BLOB_BUMPS, nd))
        blob_r = rng.uniform(0.25, 0.5, size=(B, _BLOB_BUMPS))
    return PatchParams(spatial_shape, shape, centers, half_widths, alphas, border, blob_c, blob_r)


def sample_source_indices(batch_size: int, *, seed=None, mode: str = "swap") -> np.ndarray:
    """Pick, for every sample, another sample of the batch as its patch source (never itself).

    ``mode="swap"`` pairs samples two by two and blends both ways, as the original does with its
    two batches (with an odd batch, the last three form a cycle); ``mode="random"`` draws any other
    index uniformly.

    Args:
        batch_size: B, an int >= 2.
        seed: None, an int >= 0 or a ``numpy.random.Generator``.
        mode: ``"swap"`` or ``"random"``.

    Returns:
        (B,) int64, the source sample of every sample.

    Example:
        >>> from pii_augment import sample_source_indices
        >>> idx = sample_source_indices(6, seed=0)
        >>> bool((idx != range(6)).all()) and bool((idx[idx] == range(6)).all())
        True
    """
    batch_size = check_int("batch_size", batch_size)
    if batch_size < 2:
        raise ValueError(f"a source from the same batch needs batch_size >= 2; got {batch_size}")
    check_choice("mode", mode, ("swap", "random"))
    rng = _rng(_check_seed(seed))
    if mode == "random":
        return (np.arange(batch_size) + rng.integers(1, batch_size, size=batch_size)) % batch_size
    perm = rng.permutation(batch_size)
    idx = np.empty(batch_size, np.int64)
    n_pairs = batch_size // 2
    if batch_size % 2:
        n_pairs -= 1
    for k in range(n_pairs):
        i, j = perm[2 * k], perm[2 * k + 1]
        idx[i], idx[j] = j, i
    if batch_size % 2:
        a, b, c = perm[-3:]
        idx[a], idx[b], idx[c] = b, c, a
    return idx
