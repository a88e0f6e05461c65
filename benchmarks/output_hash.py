"""One hash over the library's outputs, to show that a change keeps the bytes (or which part moved).

Runs the public functions on seeded inputs (2D and 3D, float32 and float64; boxes, ellipses and
blobs; ``method`` auto / multigrid / vcycle; the three gradients; ``anomaly_label``,
``foreign_patch_interpolate``, ``blend_with_label`` with and without a source index, both torch
modules) and prints one sha256 per group and one over all of them (first 16 hex digits)::

    python benchmarks/output_hash.py
    # another checkout (e.g. ``git worktree add /tmp/old HEAD~1``):
    PYTHONPATH=/tmp/old python benchmarks/output_hash.py

Two states with the same line for a group computed the same bytes there. A group that differs
says where to look; the accuracy tests say whether the new bytes are still right.
"""

from __future__ import annotations

import hashlib
import sys

import numpy as np

import pii_augment as pa
from pii_augment.ops import blend_with_label


def _inputs(ndim: int, dtype, shape: str, seed: int):
    side = 96 if ndim == 2 else 32
    spatial = (side,) * ndim
    rng = np.random.default_rng(seed)
    dst = rng.standard_normal((4, 2) + spatial).astype(dtype)
    src = rng.standard_normal((4, 2) + spatial).astype(dtype)
    p = pa.sample_patches(4, spatial, shape=shape, seed=seed)
    return dst, src, p.masks(), p.alpha.astype(np.float64)


def groups():
    """(name, list of arrays) per group of calls."""
    out = {}
    for ndim in (2, 3):
        for dtype in (np.float32, np.float64):
            for shape in ("square", "ellipse", "blob"):
                d, s, m, a = _inputs(ndim, dtype, shape, seed=ndim * 10 + len(shape))
                key = f"{ndim}D {np.dtype(dtype).name} {shape}"
                # the default path (auto: the box solve, or the whole-system multigrid for other
                # masks), its labels, FPI and blend_with_label
                arrays = [pa.poisson_interpolate(d, s, m, a, gradient=g) for g in ("pii", "mixed", "source")]
                arrays.append(pa.anomaly_label(d, arrays[0], m, a))
                arrays.append(pa.anomaly_label(d, arrays[0], m, a, tolerance=None))
                arrays.append(pa.foreign_patch_interpolate(d, s, m, a))
                for blend in ("pii", "fpi"):
                    for index in (None, np.roll(np.arange(4), 1), np.zeros(4, np.int64)):
                        arrays.extend(blend_with_label(d, s, m, a, blend=blend, src_index=index))
                out[f"{key} auto"] = arrays
                # the iterative methods on every mask (squares included)
                out[f"{key} mg/vcycle"] = [pa.poisson_interpolate(d, s, m, a, gradient=g, method="multigrid")
                                           for g in ("pii", "mixed", "source")] + [
                    pa.poisson_interpolate(d, s, m, a, method="vcycle")]
    try:
        import torch
    except ImportError:  # the modules need torch
        return out
    arrays = []
    for ndim in (2, 3):
        for dtype in (torch.float32, torch.float64):
            side = 64 if ndim == 2 else 24
            x = torch.randn((4, 1) + (side,) * ndim, generator=torch.Generator().manual_seed(ndim), dtype=dtype)
            for cls in (pa.PoissonImageInterpolation, pa.ForeignPatchInterpolation):
                for kw in ({}, {"shape": "ellipse", "n_patches": (1, 3)}):
                    aug = cls(seed=ndim, **kw)
                    blended, label = aug(x)
                    arrays += [blended.numpy(), label.numpy()]
    out["modules"] = arrays
    return out


def digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(np.asarray(a))
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def main() -> None:
    total = hashlib.sha256()
    for name, arrays in groups().items():
        d = digest(arrays)
        total.update(d.encode())
        print(f"{name:34} {d}")
    print(f"{'all':34} {total.hexdigest()[:16]}  (pii_augment from {pa.__file__})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
