"""Patch and alpha sampling: the only code of the library that draws random numbers.

:func:`sample_patches` draws every random quantity of a batch up front and returns a
:class:`PatchParams` of plain numpy arrays; :meth:`PatchParams.masks` turns them into masks
deterministically, so replaying the same parameters gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from .._validate import check_choice, check_int, check_pair, check_seed, check_shape, renamed_keyword
from . import _raster
from .regions import as_host_bool

__all__ = ["PatchParams", "sample_patches", "sample_source_indices", "SHAPES", "REGION_MODES", "MAX_PATCHES"]

SHAPES = ("square", "rectangle", "ellipse", "blob")
#: ``region_mode=`` values: ``"center"`` (patch centres inside the region) or ``"patch"`` (every
#: pixel of every patch inside it).
REGION_MODES = ("center", "patch")
#: The largest ``n_patches`` upper bound.
MAX_PATCHES = 64
_BLOB_BUMPS = 4
#: Centre draws tried per patch before ``region_mode="patch"`` computes the exact set of centres
#: that fit (an FFT erosion).
_TRIES = 32


def _rng(seed) -> np.random.Generator:
    """A generator for an already checked ``seed`` (see :func:`_check_seed`)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _check_seed(seed):
    return check_seed("seed", seed, generator=True)


@dataclass
class PatchParams:
    """Everything random about one batch of patches: one row per patch.

    With one patch per sample (the default) row b is sample b. With several (``n_patches=``),
    rows are grouped by sample in order and ``sample`` tells which sample each row belongs to.

    Attributes:
        spatial_shape: (H, W) or (D, H, W) of the images.
        shape: one of ``SHAPES`` or ``"bank"``; or a tuple of them (each row's shape is then
            ``shape[kinds[r]]``).
        centers: (N, ndim) int64 patch centres.
        half_widths: (N, ndim) int64 half-sizes in pixels (drawn from the fractions
            ``half_width_frac`` of :func:`sample_patches`); the box is ``[c - w, c + w)`` on each axis
            (for a bank row, ``ceil(s / 2)`` of its mask's shape s).
        alpha: (N,) float64 interpolation factors, one per patch.
        border: pixels removed from the image edge (1 reproduces the original).
        blob_centers: (N, K, ndim) float64 bump centres relative to the box centre, in units
            of the half-width (blob rows only).
        blob_radii: (N, K) float64 bump radii in the same units.
        sample: None (row b is sample b) or (N,) int64, non-decreasing: the sample of each row.
        n_samples: B when ``sample`` is given (samples may have no row).
        kinds: None or (N,) int64 indices into ``shape`` when it is a tuple.
        rotation: None or (N, 1) (2D) / (N, 3) (3D) float64 angles in degrees, in the planes
            (y, x) [, (z, x), (z, y)].
        shear: None or (N, 1) / (N, 3) float64 shear angles in degrees (x by y [, x by z, y by z]).
        bank: None or a tuple of bool masks (cropped to their bounding boxes), the user shapes.
        bank_index: None or (N,) int64, the bank mask of each bank row.
    """

    spatial_shape: tuple[int, ...]
    shape: str | tuple[str, ...]
    centers: np.ndarray
    half_widths: np.ndarray
    alpha: np.ndarray
    border: int = 1
    blob_centers: np.ndarray | None = field(default=None, repr=False)
    blob_radii: np.ndarray | None = field(default=None, repr=False)
    sample: np.ndarray | None = None
    n_samples: int | None = None
    kinds: np.ndarray | None = field(default=None, repr=False)
    rotation: np.ndarray | None = field(default=None, repr=False)
    shear: np.ndarray | None = field(default=None, repr=False)
    bank: tuple[np.ndarray, ...] | None = field(default=None, repr=False)
    bank_index: np.ndarray | None = field(default=None, repr=False)

    # ------------------------------------------------------------------------------ rows
    @property
    def rows(self) -> int:
        """N, the number of patches."""
        return int(self.centers.shape[0])

    @property
    def batch_size(self) -> int:
        return self.rows if self.sample is None else int(self.n_samples)

    @property
    def patch_sample(self) -> np.ndarray:
        """(N,) int64: the sample of every patch."""
        return np.arange(self.rows, dtype=np.int64) if self.sample is None else np.asarray(self.sample, np.int64)

    @property
    def counts(self) -> np.ndarray:
        """(B,) int64: patches per sample."""
        if self.sample is None:  # one per sample
            return np.ones(self.rows, np.int64)
        return np.bincount(self.patch_sample, minlength=self.batch_size).astype(np.int64)

    @property
    def first(self) -> np.ndarray:
        """(B + 1,) int64 offsets: the rows of sample b are ``first[b]:first[b + 1]``."""
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)

    @property
    def n_layers(self) -> int:
        """The most patches any sample has (the number of sequential blends of a batch)."""
        if self.sample is None:  # one per sample
            return 1 if self.rows else 0
        c = self.counts
        return int(c.max()) if c.size else 0

    @property
    def deformed(self) -> bool:
        """True when the patches are rotated or sheared (the matrix rasteriser is used)."""
        return self.rotation is not None or self.shear is not None

    def row_shapes(self) -> list[str]:
        """The shape name of every row."""
        if isinstance(self.shape, str):
            return [self.shape] * self.rows
        return [self.shape[int(k)] for k in self.kinds]

    def _half_sizes(self) -> np.ndarray:
        """(N, ndim) float64 canonical half-sizes: ``max(half_width, 1)``, or s / 2 for bank rows."""
        w = np.maximum(self.half_widths, 1).astype(np.float64)
        for r, name in enumerate(self.row_shapes()):
            if name == "bank":
                w[r] = np.asarray(self.bank[int(self.bank_index[r])].shape, np.float64) / 2.0
        return w

    def matrices(self) -> np.ndarray | None:
        """(N, ndim, ndim) float64 inverse matrices ``A`` of the deformed rows (None if not deformed):
        canonical ``u = A ((g + 0.5) - c)``; see :mod:`pii_augment.sampling._raster`."""
        if not self.deformed:
            return None
        scale = np.maximum(self.half_widths, 1).astype(np.float64)
        for r, name in enumerate(self.row_shapes()):
            if name == "bank":
                scale[r] = 1.0
        return _raster.inverse_matrices(self.rotation, self.shear, scale)

    def _raw_boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) int64 (N, ndim): each patch's bounding box, not clipped to the image."""
        N, nd = self.centers.shape
        c = self.centers.astype(np.int64)
        if self.deformed:
            m = _raster.forward_matrices(self.rotation, self.shear, nd, N)
            h = self._half_sizes()
            ext = np.zeros((N, nd))
            for i in range(nd):
                for j in range(nd):
                    ext[:, i] += np.abs(m[i][j]) * h[:, j]
            # a margin of one pixel: every pixel the shape test accepts lies inside
            return np.floor(c - ext - 1).astype(np.int64), np.ceil(c + ext + 1).astype(np.int64)
        lo = c - self.half_widths
        hi = c + self.half_widths
        for r, name in enumerate(self.row_shapes()):
            if name == "bank":
                s = np.asarray(self.bank[int(self.bank_index[r])].shape, np.int64)
                lo[r] = c[r] - (s + 1) // 2
                hi[r] = c[r] + s // 2
        return lo, hi

    def boxes(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) int64 (N, ndim): each patch's bounding box clipped to the image minus the border."""
        n = np.asarray(self.spatial_shape, np.int64)
        lo, hi = self._raw_boxes()
        top = n - self.border
        lo = np.minimum(np.maximum(lo, self.border), top)  # np.clip, at a fraction of its call cost
        hi = np.minimum(np.maximum(hi, self.border), top)
        return lo, np.maximum(hi, lo)

    def sample_boxes(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``(lo, hi)``, (B, ndim) int64, when every sample has one patch and every patch is an
        axis-aligned box (``"square"``/``"rectangle"``, not rotated nor sheared): sample b's mask
        in :meth:`masks` is then the box ``lo[b] <= p < hi[b]`` (empty where some ``hi <= lo``);
        else None.

        Example:
            >>> import numpy as np
            >>> from pii_augment import sample_patches
            >>> p = sample_patches(3, (32, 32), seed=0)
            >>> lo, hi = p.sample_boxes()
            >>> m = np.zeros((3, 32, 32), bool)
            >>> for b in range(3): m[b, lo[b, 0]:hi[b, 0], lo[b, 1]:hi[b, 1]] = True
            >>> bool((m == p.masks()).all())
            True
            >>> sample_patches(3, (32, 32), shape="ellipse", seed=0).sample_boxes() is None
            True
        """
        if self.sample is not None or self.deformed:
            return None
        if any(name not in ("square", "rectangle") for name in set(self.row_shapes())):
            return None
        return self.boxes()

    def _row_mask(self, r: int, lo, hi, names, mats, width) -> np.ndarray:
        name = names[r]
        blob = None
        if name == "blob":
            blob = (self.blob_centers[r], self.blob_radii[r])
        bank = self.bank[int(self.bank_index[r])] if name == "bank" else None
        return _raster.row_mask(name, lo, hi, self.centers[r], width[r], None if mats is None else mats[r],
                                blob, bank)

    def masks(self) -> np.ndarray:
        """The (B, *spatial_shape) bool masks these parameters describe (the union of each
        sample's patches)."""
        out = np.zeros((self.batch_size,) + tuple(self.spatial_shape), bool)
        if not self.rows:
            return out
        lo, hi = self.boxes()
        names = self.row_shapes()
        mats = self.matrices()
        width = np.maximum(self.half_widths, 1).astype(np.float64)
        owner = self.patch_sample.tolist()
        lo_rows, hi_rows = lo.tolist(), hi.tolist()  # Python ints: no numpy call per patch
        for r in range(self.rows):  # each patch inside its own box: cheaper than B full grids
            if any(b <= a for a, b in zip(lo_rows[r], hi_rows[r])):
                continue
            view = out[(owner[r],) + tuple(map(slice, lo_rows[r], hi_rows[r]))]
            if mats is None and names[r] in ("square", "rectangle"):  # the whole box (as row_mask)
                view[...] = True
                continue
            view |= self._row_mask(r, lo[r], hi[r], names, mats, width)
        return out

    def footprint(self, r: int) -> np.ndarray:
        """(P, ndim) int64 offsets from its centre of the pixels of patch ``r``, not clipped to the
        image (a rasterisation is translation invariant: the mask at centre c is these offsets + c,
        bit for bit, wherever it does not touch the border)."""
        one = self._take_rows(np.array([r], np.int64))
        one.centers = np.zeros_like(one.centers)
        lo, hi = one._raw_boxes()
        m = one._row_mask(0, lo[0], hi[0], one.row_shapes(), one.matrices(),
                          np.maximum(one.half_widths, 1).astype(np.float64))
        return np.argwhere(m).astype(np.int64) + lo[0][None, :]

    # ------------------------------------------------------------------------------ records
    def to_dict(self) -> dict:
        """A JSON-able record of these parameters (floats as Python floats, which round-trip
        exactly through ``json``); :meth:`from_dict` rebuilds them bit for bit."""
        def arr(x):
            return None if x is None else np.asarray(x).tolist()

        return {
            "spatial_shape": list(self.spatial_shape),
            "shape": self.shape if isinstance(self.shape, str) else list(self.shape),
            "centers": arr(self.centers), "half_widths": arr(self.half_widths), "alpha": arr(self.alpha),
            "border": int(self.border), "blob_centers": arr(self.blob_centers), "blob_radii": arr(self.blob_radii),
            "sample": arr(self.sample), "n_samples": None if self.n_samples is None else int(self.n_samples),
            "kinds": arr(self.kinds), "rotation": arr(self.rotation), "shear": arr(self.shear),
            "bank": None if self.bank is None else [np.asarray(m).tolist() for m in self.bank],
            "bank_index": arr(self.bank_index),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PatchParams":
        """The parameters of a :meth:`to_dict` record.

        Example:
            >>> import json
            >>> from pii_augment import PatchParams, sample_patches
            >>> p = sample_patches(3, (32, 32), shape="ellipse", n_patches=(1, 3), rotation=(0, 90), seed=1)
            >>> q = PatchParams.from_dict(json.loads(json.dumps(p.to_dict())))
            >>> bool((q.masks() == p.masks()).all() and (q.alpha == p.alpha).all())
            True
        """
        nd = len(d["spatial_shape"])

        def arr(key, dtype, shape):
            v = d.get(key)
            return None if v is None else np.asarray(v, dtype).reshape(shape)

        n = len(d["alpha"])
        shape = d["shape"] if isinstance(d["shape"], str) else tuple(d["shape"])
        k = _raster.n_angles(nd)
        return cls(
            tuple(int(v) for v in d["spatial_shape"]), shape, arr("centers", np.int64, (n, nd)),
            arr("half_widths", np.int64, (n, nd)), arr("alpha", np.float64, (n,)), int(d["border"]),
            arr("blob_centers", np.float64, (n, _BLOB_BUMPS, nd)), arr("blob_radii", np.float64, (n, _BLOB_BUMPS)),
            sample=arr("sample", np.int64, (n,)), n_samples=d.get("n_samples"), kinds=arr("kinds", np.int64, (n,)),
            rotation=arr("rotation", np.float64, (n, k)), shear=arr("shear", np.float64, (n, k)),
            bank=None if d.get("bank") is None else tuple(np.asarray(m, bool) for m in d["bank"]),
            bank_index=arr("bank_index", np.int64, (n,)),
        )

    # ------------------------------------------------------------------------------ re-indexing
    def _take_rows(self, rows: np.ndarray, sample: np.ndarray | None = None,
                   n_samples: int | None = None) -> "PatchParams":
        """The rows ``rows`` (a re-indexing, no randomness)."""
        def take(x):
            return None if x is None else x[rows]

        return replace(
            self, centers=self.centers[rows], half_widths=self.half_widths[rows], alpha=self.alpha[rows],
            blob_centers=take(self.blob_centers), blob_radii=take(self.blob_radii), kinds=take(self.kinds),
            rotation=take(self.rotation), shear=take(self.shear), bank_index=take(self.bank_index),
            sample=sample, n_samples=None if sample is None else n_samples,
        )

    def select(self, index: np.ndarray) -> "PatchParams":
        """The patches of the samples ``index`` ((B',) ints): sample j of the result has the
        patches of sample ``index[j]`` (a re-indexing, no randomness)."""
        index = np.asarray(index, np.int64).reshape(-1)
        if self.sample is None:
            return self._take_rows(index)
        first = self.first
        rows = [np.arange(first[i], first[i + 1]) for i in index]
        rows = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
        counts = first[index + 1] - first[index]
        sample = np.repeat(np.arange(index.size, dtype=np.int64), counts)
        return self._take_rows(rows, sample, int(index.size))

    def layer(self, k: int) -> tuple["PatchParams", np.ndarray]:
        """The k-th patch of every sample as one-patch-per-sample parameters, and (B,) bool: which
        samples have a k-th patch (the others' rows are placeholders, to be masked out)."""
        B = self.batch_size
        if self.sample is None:
            if k != 0:
                raise IndexError(f"layer {k} of one-patch-per-sample parameters")
            return self, np.ones(B, bool)
        counts, first = self.counts, self.first
        present = counts > k
        rows = np.where(present, first[:-1] + k, 0)
        if not self.rows:
            raise IndexError("these parameters hold no patch")
        return self._take_rows(rows), present


def _int_range(frac: tuple[float, float], n: int, how) -> tuple[int, int]:
    lo, hi = how(frac[0] * n), how(frac[1] * n)
    return int(lo), int(max(hi, lo + 1))


def _check_count_pair(name: str, value: Any) -> tuple[int, int]:
    try:
        ok = not isinstance(value, (str, bytes, dict, set)) and len(value) == 2
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"{name} must be a (low, high) pair of ints; got {value!r}")
    low = check_int(f"{name}[0]", value[0])
    high = check_int(f"{name}[1]", value[1])
    if not 0 <= low <= high <= MAX_PATCHES:
        raise ValueError(f"{name} must satisfy 0 <= low <= high <= {MAX_PATCHES}; got {tuple(value)!r}")
    return low, high


def _check_shapes(shape: Any) -> tuple[str, ...]:
    names = SHAPES + ("bank",)
    if isinstance(shape, str) or not isinstance(shape, (tuple, list)):
        return (check_choice("shape", shape, names),)
    if not shape:
        raise ValueError("shape must be a shape name or a non-empty tuple of them; got ()")
    return tuple(check_choice(f"shape[{i}]", v, names) for i, v in enumerate(shape))


def _check_bank(bank: Any, nd: int, spatial: tuple[int, ...], border: int) -> tuple[np.ndarray, ...]:
    if isinstance(bank, np.ndarray) and bank.dtype == np.bool_ and bank.ndim == nd + 1:
        bank = list(bank)
    if isinstance(bank, (str, bytes)) or not isinstance(bank, Sequence) or not len(bank):
        raise TypeError(f"bank must be a non-empty sequence of bool masks; got {type(bank).__name__}")
    out = []
    room = tuple(n - 2 * border for n in spatial)
    for i, m in enumerate(bank):
        m = as_host_bool(m, f"bank[{i}]")
        if m.ndim != nd:
            raise ValueError(f"bank[{i}] must have {nd} dimensions like spatial_shape {spatial}; got shape {m.shape}")
        idx = np.argwhere(m)
        if not idx.size:
            raise ValueError(f"bank[{i}] is empty (no True pixel)")
        lo, hi = idx.min(0), idx.max(0) + 1
        crop = np.ascontiguousarray(m[tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))])
        if any(s > r for s, r in zip(crop.shape, room)):
            raise ValueError(
                f"bank[{i}] spans {crop.shape} pixels, more than the image leaves inside its border "
                f"({room} for spatial_shape {spatial}, border={border})"
            )
        out.append(crop)
    return tuple(out)


def _check_region(region: Any, B: int, spatial: tuple[int, ...]) -> np.ndarray:
    m = as_host_bool(region, "region")
    if m.shape != spatial and m.shape != (B,) + spatial:
        raise ValueError(
            f"region must have shape (B, *spatial) = {(B,) + spatial} or spatial_shape {spatial}; got {m.shape}"
        )
    return m


def _valid_centres_fft(ok: np.ndarray, off: np.ndarray) -> np.ndarray:
    """Bool (spatial): the centres c with ``ok[c + o]`` for every offset o (outside the image:
    not ok), from the count of offsets that land on a bad pixel, one FFT correlation (exact after
    rounding: the counts are integers)."""
    flo = off.min(0)
    pad = [int(f) for f in off.max(0) - flo + 1]
    L = tuple(int(n) + 2 * q for n, q in zip(ok.shape, pad))
    bad = np.ones(L)
    bad[tuple(slice(q, q + n) for q, n in zip(pad, ok.shape))] = ~ok
    ker = np.zeros(L)
    ker[tuple((off - flo).T)] = 1.0
    corr = np.fft.irfftn(np.fft.rfftn(bad) * np.conj(np.fft.rfftn(ker)), s=L, axes=tuple(range(ok.ndim)))
    # corr[m] = sum_k ker[k] bad[m + k]; centre c reads bad at c + flo + pad + k
    start = [q + int(f) for q, f in zip(pad, flo)]
    return corr[tuple(slice(s0, s0 + n) for s0, n in zip(start, ok.shape))] < 0.5


def sample_patches(
    batch_size: int,
    spatial_shape: Sequence[int],
    *,
    shape: str | Sequence[str] = "square",
    half_width_frac: tuple[float, float] = (0.05, 0.2),
    center: tuple[float, float] = (0.1, 0.9),
    alpha: tuple[float, float] = (0.05, 0.95),
    border: int = 1,
    n_patches: tuple[int, int] | None = None,
    rotation: tuple[float, float] | None = None,
    shear: tuple[float, float] | None = None,
    region: Any = None,
    region_mode: str = "center",
    bank: Sequence[Any] | None = None,
    seed: int | np.random.Generator | None = None,
    half_width: tuple[float, float] | None = None,
) -> PatchParams:
    """Draw patch boxes, shapes and alphas for a batch, as the original PII code does by default.

    Defaults reproduce the original (ORIGINAL_PII.md): centre ``randint(int(0.1 N), int(0.9 N))``
    per axis, one half-width ``randint(round(0.05 H), round(0.2 H))`` (from the first spatial
    axis) for all axes, box ``[c - w, c + w)`` clipped, the outer ``border`` ring removed, alpha
    ``~ U(0.05, 0.95)``. The options from ``n_patches`` on draw nothing when left at their
    defaults, so the defaults give the original's draws number for number.

    Args:
        batch_size: B, an int >= 0.
        spatial_shape: (H, W) or (D, H, W), positive ints.
        shape: ``"square"`` (the original; a cube in 3D), ``"rectangle"`` (one half-width per
            axis, each drawn from that axis' size), ``"ellipse"`` (ellipse/ellipsoid inscribed in
            a rectangle box), ``"blob"`` (a random smooth blob inside a rectangle box) or
            ``"bank"`` (one of the user's ``bank`` masks, at its own size); or a tuple of these,
            each patch then taking one of them uniformly (half-widths are then drawn per axis).
        half_width_frac: half-width range as fractions of the axis size (upper bound exclusive);
            the half-widths drawn from it, in pixels, are :attr:`PatchParams.half_widths`.
        center: centre range as fractions of the axis size (upper bound exclusive).
        alpha: (low, high) of the uniform alpha distribution, drawn per patch.
        border: image-edge pixels that no patch may cover (1 as the original; 0 allows patches
            on the edge); ``2 * border`` must be smaller than every axis.
        n_patches: None (one patch per sample) or ``(low, high)`` ints, ``0 <= low <= high <= 64``:
            each sample gets a count drawn uniformly from ``low..high`` *inclusive*. Patches may
            overlap; :func:`~pii_augment.ops.blend_patches` blends them one after the other,
            each with its own alpha, and labels a pixel with the largest alpha of the patches
            that changed it.
        rotation: None or ``(low, high)`` degrees in [-360, 360]: every patch is rotated by
            angles ~ U(low, high) (one in 2D; three in 3D, in the planes (y, x), (z, x), (z, y)).
        shear: None or ``(low, high)`` degrees in [-80, 80]: shear angles ~ U(low, high) (x by y
            in 2D; x by y, x by z, y by z in 3D), applied before the rotation.
        region: None, or a bool mask (numpy, cupy or torch), ``(B, *spatial_shape)`` per sample
            or ``spatial_shape`` shared, e.g. from :func:`~pii_augment.sampling.foreground`:
            patch centres are drawn uniformly from its pixels that also lie in the ``center``
            range. A patch that cannot be placed (no such pixel, or with
            ``region_mode="patch"`` no position where it fits) is left out, so that sample has
            fewer patches (none: label 0).
        region_mode: ``"center"`` (the centres lie in the region) or ``"patch"`` (every pixel of
            every patch lies in it and inside the border).
        bank: the user shapes of ``shape="bank"``: a sequence of bool masks with the images'
            number of axes (e.g. lesions from segmentation files), each cropped to its bounding
            box and placed with its box centre at the drawn centre (rotated and sheared like
            the others, by nearest pixel).
        seed: None, an int >= 0 or a ``numpy.random.Generator`` (drawn from in place).
        half_width: the old name of ``half_width_frac``, still accepted with a ``FutureWarning``.

    The three fraction ranges are ``(low, high)`` pairs with ``0 <= low <= high <= 1``.
    Rotated and sheared shapes are rasterised exactly from their parameters (pixel centres
    mapped through the inverse matrix in float64, see :mod:`pii_augment.sampling._raster`), on
    the host and, bit for bit the same, on the device (:func:`pii_augment.ops.patch_masks`).

    Returns:
        A :class:`PatchParams`; call ``.masks()`` for the (B, *spatial_shape) bool masks.

    Raises:
        TypeError: an argument of the wrong kind (``batch_size=2.5``, ``spatial_shape=32``,
            ``seed="0"``, a region that is not a bool array), naming it; checked before
            anything is drawn.
        ValueError: a value out of range (a negative size, a reversed range, an unknown shape,
            a border leaving no room for a patch, a region of the wrong shape).

    Example:
        >>> from pii_augment import sample_patches
        >>> p = sample_patches(4, (256, 256), seed=0)
        >>> p.masks().shape, p.alpha.shape
        ((4, 256, 256), (4,))
        >>> bool((sample_patches(4, (256, 256), seed=0).masks() == p.masks()).all())
        True
        >>> q = sample_patches(4, (64, 64), shape=("rectangle", "ellipse"), n_patches=(1, 4),
        ...                    rotation=(-180, 180), shear=(-20, 20), seed=0)
        >>> q.batch_size, int(q.counts.sum()) == q.rows, q.masks().shape
        (4, True, (4, 64, 64))
    """
    B = check_int("batch_size", batch_size, low=0)
    spatial_shape = check_shape("spatial_shape", spatial_shape, (2, 3), what="(H, W) or (D, H, W)")
    half_width_frac = renamed_keyword("half_width", "half_width_frac", half_width, half_width_frac, (0.05, 0.2))
    o = _check_options(B, spatial_shape, shape, half_width_frac, center, alpha, border, n_patches, rotation,
                       shear, region, region_mode, bank)
    rng = _rng(_check_seed(seed))
    counts = _draw_counts(rng, o["counts_range"], B)
    N, nd = int(counts.sum()), len(spatial_shape)
    # -- the original's draws, in its order, over the rows
    centers = np.zeros((N, nd), np.int64)
    if o["region"] is None:
        for a, n in enumerate(spatial_shape):
            lo, hi = _int_range(o["center"], n, int)
            centers[:, a] = rng.integers(lo, hi, size=N)
    shapes = o["shapes"]
    half_widths = _draw_half_widths(rng, N, spatial_shape, o["half_width_frac"], shapes == ("square",))
    alphas = rng.uniform(o["alpha"][0], o["alpha"][1], size=N)
    blob_c = blob_r = None
    if "blob" in shapes:
        blob_c = rng.uniform(-0.5, 0.5, size=(N, _BLOB_BUMPS, nd))
        blob_r = rng.uniform(0.25, 0.5, size=(N, _BLOB_BUMPS))
    # -- the options' draws, each only when asked for
    kinds, bank_index = _draw_kinds_and_bank(rng, N, shapes, half_widths, o["bank"])
    k_ang = _raster.n_angles(nd)
    rot = None if o["rotation"] is None else rng.uniform(o["rotation"][0], o["rotation"][1], size=(N, k_ang))
    shr = None if o["shear"] is None else rng.uniform(o["shear"][0], o["shear"][1], size=(N, k_ang))
    multi = o["counts_range"] is not None
    params = PatchParams(
        spatial_shape, shapes[0] if len(shapes) == 1 else shapes, centers, half_widths, alphas, o["border"],
        blob_c, blob_r, sample=np.repeat(np.arange(B, dtype=np.int64), counts) if multi else None,
        n_samples=B if multi else None, kinds=kinds, rotation=rot, shear=shr, bank=o["bank"],
        bank_index=bank_index,
    )
    if o["region"] is not None:
        params = _place_in_region(params, o["region"], o["center"], region_mode, rng)
    return params


def _check_options(B: int, spatial_shape: tuple[int, ...], shape, half_width_frac, center, alpha, border,
                   n_patches, rotation, shear, region, region_mode, bank) -> dict:
    """The options of :func:`sample_patches` checked (a ``TypeError`` or ``ValueError`` naming
    the first bad one), as a dict of their checked values: ``shapes`` (a tuple of names),
    ``half_width_frac``, ``center``, ``alpha``, ``border``, ``counts_range`` (None or a pair),
    ``rotation``, ``shear``, ``region`` (None or a host bool mask) and ``bank`` (None or the
    cropped masks). Draws nothing."""
    shapes = _check_shapes(shape)
    out = dict(
        shapes=shapes, half_width_frac=check_pair("half_width_frac", half_width_frac, 0.0, 1.0),
        center=check_pair("center", center, 0.0, 1.0), alpha=check_pair("alpha", alpha, 0.0, 1.0),
        border=check_int("border", border, low=0),
    )
    border = out["border"]
    if 2 * border >= min(spatial_shape):
        raise ValueError(
            f"border={border} leaves no room for a patch in spatial_shape {spatial_shape}: every "
            f"axis must be longer than 2 * border = {2 * border}"
        )
    out["counts_range"] = None if n_patches is None else _check_count_pair("n_patches", n_patches)
    out["rotation"] = None if rotation is None else check_pair("rotation", rotation, -360.0, 360.0)
    out["shear"] = None if shear is None else check_pair("shear", shear, -80.0, 80.0)
    check_choice("region_mode", region_mode, REGION_MODES)
    out["region"] = None if region is None else _check_region(region, B, spatial_shape)
    out["bank"] = None
    if "bank" in shapes:
        if bank is None:
            raise ValueError("shape='bank' needs bank=, a sequence of bool masks (the user shapes)")
        out["bank"] = _check_bank(bank, len(spatial_shape), spatial_shape, border)
    elif bank is not None:
        raise ValueError(f"bank= is only used with shape='bank' (or a tuple holding it); got shape={shape!r}")
    return out


def _draw_counts(rng: np.random.Generator, counts_range: tuple[int, int] | None, B: int) -> np.ndarray:
    """(B,) int64 patches per sample: 1 each without ``n_patches``, else uniform in ``low..high``
    inclusive (no draw when ``low == high``)."""
    if counts_range is None:
        return np.ones(B, np.int64)
    if counts_range[0] < counts_range[1]:
        return rng.integers(counts_range[0], counts_range[1] + 1, size=B).astype(np.int64)
    return np.full(B, counts_range[0], np.int64)


def _draw_half_widths(rng: np.random.Generator, N: int, spatial_shape: tuple[int, ...],
                      half_width_frac: tuple[float, float], square: bool) -> np.ndarray:
    """(N, ndim) int64 half-widths in pixels: squares (the original) one per row from the first
    axis' size, every other shape one per axis from that axis' size."""
    nd = len(spatial_shape)
    if square:
        lo, hi = _int_range(half_width_frac, spatial_shape[0], round)
        hw = rng.integers(lo, hi, size=N)
        return np.repeat(hw[:, None], nd, axis=1).astype(np.int64)
    half_widths = np.empty((N, nd), np.int64)
    for a, n in enumerate(spatial_shape):
        lo, hi = _int_range(half_width_frac, n, round)
        half_widths[:, a] = rng.integers(lo, hi, size=N)
    return half_widths


def _draw_kinds_and_bank(rng: np.random.Generator, N: int, shapes: tuple[str, ...], half_widths: np.ndarray,
                         bank: tuple[np.ndarray, ...] | None) -> tuple[np.ndarray | None, np.ndarray | None]:
    """``(kinds, bank_index)``: each row's shape (with several shapes; None otherwise) and bank
    mask (with a bank; None otherwise). ``half_widths`` is updated in place: a square row keeps its
    first axis' half-width on every axis, a bank row gets ``ceil(s / 2)`` of its mask's shape."""
    kinds = None
    names = [shapes[0]] * N
    if len(shapes) > 1:
        kinds = rng.integers(len(shapes), size=N).astype(np.int64)
        names = [shapes[k] for k in kinds]
        square = np.asarray([n == "square" for n in names], bool)
        half_widths[square] = half_widths[square][:, :1]
    bank_index = None
    if bank is not None:
        bank_index = rng.integers(len(bank), size=N).astype(np.int64)
        for r in range(N):
            if names[r] == "bank":
                half_widths[r] = (np.asarray(bank[bank_index[r]].shape) + 1) // 2
    return kinds, bank_index


def _place_in_region(p: PatchParams, region: np.ndarray, center, mode: str, rng) -> PatchParams:
    """Draw every row's centre inside ``region``, row by row; rows that cannot be placed are
    dropped (the result then lists each row's sample)."""
    spatial = tuple(p.spatial_shape)
    nd = len(spatial)
    n = np.asarray(spatial, np.int64)
    box = np.zeros(spatial, bool)
    box[tuple(slice(*_int_range(center, s, int)) for s in spatial)] = True
    inner = np.zeros(spatial, bool)
    inner[tuple(slice(p.border, s - p.border) for s in spatial)] = True
    owner = p.patch_sample
    keep = np.ones(p.rows, bool)
    cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for r in range(p.rows):
        b = int(owner[r]) if region.ndim == nd + 1 else -1
        if b not in cache:
            reg = region[b] if b >= 0 else region
            cache[b] = (np.flatnonzero(reg & box), reg & inner)
        cands, ok = cache[b]
        if not cands.size:
            keep[r] = False
            continue
        off = p.footprint(r) if mode == "patch" else None
        if off is None or not off.shape[0]:  # centre mode (or an empty patch: it fits anywhere)
            p.centers[r] = np.unravel_index(cands[rng.integers(cands.size)], spatial)
            continue
        placed = False
        for _ in range(_TRIES):
            c = np.asarray(np.unravel_index(cands[rng.integers(cands.size)], spatial), np.int64)
            pix = off + c
            if (pix >= 0).all() and (pix < n).all() and ok[tuple(pix.T)].all():
                p.centers[r] = c
                placed = True
                break
        if placed:
            continue
        valid = np.flatnonzero(_valid_centres_fft(ok, off).ravel()[cands])
        if not valid.size:
            keep[r] = False
            continue
        p.centers[r] = np.unravel_index(cands[valid[rng.integers(valid.size)]], spatial)
    if keep.all():
        return p
    rows = np.flatnonzero(keep)
    return p._take_rows(rows, p.patch_sample[rows], p.batch_size)


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
