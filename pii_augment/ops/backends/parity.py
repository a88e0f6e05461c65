"""The calls every backend's primitives are compared on: one list, for the tests and the GPU check.

:func:`primitive_calls` gives ``(name, args)`` for every primitive of
:data:`~pii_augment.ops.backends.base.PRIMITIVES` and composite of
:data:`~pii_augment.ops.backends.base.COMPOSITES` (each mode, colour, clip and direction) on one
seeded random crop set-up of :func:`random_setup`, as host arrays. The emulated backend is held to
the Numba twins bit for bit on them (``tests/ops/backends/test_emulated.py``), the cupy backend to
a tolerance (``tests/ops/backends/test_device.py``, ``benchmarks/gpu_check.py``).

Example:
    >>> import numpy as np
    >>> from pii_augment.ops.backends import COMPOSITES, PRIMITIVES
    >>> calls = primitive_calls(seed=0, ndim=2, dtype=np.float32)
    >>> sorted({name for name, _ in calls}) == sorted(PRIMITIVES + COMPOSITES)
    True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _numba_kernels as _k
from ..codes import Cell, Guidance


def random_setup(seed: int, ndim: int, dtype, channels: int = 2, max_side: int = 12) -> dict[str, Any]:
    """A batch of random crops: image, padded crop, offsets (possibly off-image), extents, labels.

    Returns a dict with ``rng``, ``B`` (1-3), ``C``, ``img`` and ``pad`` (D, H, W; D = 1 in 2D;
    sides up to ``max_side``), ``off`` and ``ext`` ((B, 3) int64; the first sample fills the
    crop, others may be empty), ``mask`` ((B, *img) bool), ``dtype`` and ``field(shape=pad)``,
    which draws a (B, C, *shape) array. Every field array is random everywhere (also beyond each
    sample's extent), so that a kernel touching cells it must not touch shows up as a difference.
    """
    rng = np.random.default_rng(seed)
    B = int(rng.integers(1, 4))
    img = (int(rng.integers(1, 6)) if ndim == 3 else 1, int(rng.integers(2, max_side + 1)),
           int(rng.integers(2, max_side + 1)))
    pad = tuple(int(rng.integers(1, s + 3)) if ndim == 3 or a > 0 else 1 for a, s in enumerate(img))
    off = np.stack([rng.integers(-2, s, B) for s in img], axis=1).astype(np.int64)
    ext = np.stack([rng.integers(0, p + 1, B) for p in pad], axis=1).astype(np.int64)
    if ndim == 2:
        ext[:, 0] = np.minimum(ext[:, 0], 1)
    ext[0] = pad  # at least one sample fills the crop
    mask = rng.random((B,) + img) < rng.uniform(0.2, 0.9)
    C = channels

    def field(shape=None):
        return rng.standard_normal((B, C) + (shape or pad)).astype(dtype)

    return dict(rng=rng, B=B, C=C, img=img, pad=pad, off=off, ext=ext, mask=mask, field=field, dtype=dtype)


def kind_setup(seed: int, ndim: int, dtype, channels: int = 2, max_side: int = 12) -> dict[str, Any]:
    """:func:`random_setup` with ``kind``, the (B, *pad) uint8 cell labels the Numba
    ``build_kind`` makes from the mask: the input of the stencil, Krylov and transfer kernels."""
    s = random_setup(seed, ndim, dtype, channels, max_side)
    s["kind"] = np.empty((s["B"],) + s["pad"], np.uint8)
    _k.build_kind(s["mask"], s["off"], s["ext"], s["kind"])
    return s


def coarse_of(pad, ext, rng) -> tuple[np.ndarray, tuple[int, int, int], np.ndarray]:
    """Per-sample coarsening ``flags`` (B, 3), the coarse padded shape and extents (B, 3); some
    samples (not the first) are absent from the coarse level (extent 0), as samples that stopped
    coarsening."""
    going = rng.random(ext.shape[0]) < 0.7
    going[0] = True
    flags = (going[:, None] & (ext > 1)).astype(np.int64)
    cext = np.where(going[:, None], np.where(flags == 1, -(-ext // 2), ext), 0).astype(np.int64)
    cpad = tuple(int(max(1, v)) for v in np.maximum(cext.max(axis=0), -(-np.array(pad) // 2)))
    return flags, cpad, cext


def weights(rng, B: int) -> np.ndarray:
    """(B, 3) per-sample axis weights, powers of 1/4 as the hierarchy makes them."""
    return 0.25 ** rng.integers(0, 4, (B, 3)).astype(np.float64)


def primitive_calls(seed: int, ndim: int, dtype, max_side: int = 12) -> list[tuple[str, tuple]]:
    """``[(name, args), ...]``: every primitive and composite, in each of its modes, on the crop
    set-up of ``seed`` (host arrays; a consumer copies them before each call, as the calls write
    into some of them). ``dot_unknowns`` agrees between backends up to the float64 summation
    order; everything else bit for bit on the emulation."""
    s = kind_setup(seed, ndim, dtype, max_side=max_side)
    rng, B, C, pad, off, ext, kind = s["rng"], s["B"], s["C"], s["pad"], s["off"], s["ext"], s["kind"]
    u, rhs, out, full = s["field"](), s["field"](), s["field"](), s["field"](s["img"])
    w = weights(rng, B)
    alpha = rng.uniform(0, 1, B)
    coef = rng.standard_normal((B, C))
    coef[rng.random((B, C)) < 0.3] = 0.0  # frozen systems
    lo = rng.uniform(-1, 0, (B, C)).astype(dtype)
    hi = rng.uniform(0, 1, (B, C)).astype(dtype)
    flags, cpad, cext = coarse_of(pad, ext, rng)
    kind_c = np.empty((B,) + cpad, np.uint8)
    _k.coarsen_kind(kind, ext, flags, kind_c, cext)
    calls = [
        ("build_kind", (s["mask"], off, ext, rng.integers(0, len(Cell), (B,) + pad).astype(np.uint8))),
        ("gather_crop", (full, off, ext, out)),
        *[("scatter_crop", (u, kind, off, ext, lo, hi, clip, full)) for clip in (True, False)],
        *[("guidance_rhs", (u, rhs, kind, ext, alpha, int(mode), out)) for mode in Guidance],
        *[("rbgs_sweep", (u, rhs, kind, ext, w, color)) for color in (0, 1)],
        *[("smooth", (u, rhs, kind, ext, w, 2, reverse)) for reverse in (False, True)],
        ("jacobi_sweep", (u, rhs, kind, ext, w, 0.8, out)),
        ("residual", (u, rhs, kind, ext, w, out)),
        ("dot_unknowns", (u, rhs, kind, ext, np.full((B, C), 7.0))),
        ("axpy_unknowns", (coef, u, rhs, kind, ext)),
        ("xpby_unknowns", (u, coef, rhs, kind, ext)),
        ("coarsen_kind", (kind, ext, flags, rng.integers(0, len(Cell), (B,) + cpad).astype(np.uint8), cext)),
        ("restrict", (s["field"](), ext, kind_c, cext, flags, s["field"](cpad))),
        ("prolong_add", (s["field"](cpad), kind_c, cext, kind, ext, flags, s["field"]())),
    ]
    return calls
