"""What ``tol`` gives in practice: max |out - exact| / range against the relative-residual tolerance.

For each data kind (z-scored textures, CT in Hounsfield units, 16-bit X-ray counts, and z-scored
images at an offset of 1e6), each mask shape (the original's squares, ellipses, blobs), each dtype
and each ``tol``, blends a batch with ``poisson_interpolate`` and compares it with the exact sparse
solve of ``tests/reference_solvers.py`` (float64 LU, independent of the library), on the
float32-rounded inputs where the blend ran in float32. Prints a markdown table:

    python benchmarks/accuracy.py                     # 8 samples of 128x128 per row
    python benchmarks/accuracy.py --size 256 --batch 16 --markdown accuracy.md

Columns: the method that ran (squares take the exact box solve under ``method="auto"``; every
shape is also run with ``method="multigrid"``), the largest number of iterations of a sample, the
largest relative residual ``||r0 - A e|| / ||r0||``, and the error bound the tests hold (1e-4).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

from reference_solvers import exact_blend  # noqa: E402
from workload import random_images  # noqa: E402

import pii_augment as pa  # noqa: E402

DATA = {
    # name: (low, high) the z-scored textures are mapped to (None: leave z-scored), offset
    "z-scored": (None, 0.0),
    "CT (-1024..3000 HU)": ((-1024.0, 3000.0), 0.0),
    "16-bit (0..65535)": ((0.0, 65535.0), 0.0),
    "z-scored + 1e6": (None, 1e6),
}
SHAPES = ("square", "ellipse", "blob")
TOLS = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)


def make_data(kind: str, batch: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    span, offset = DATA[kind]
    dst = random_images(rng, batch, size).astype(np.float64)
    src = random_images(rng, batch, size).astype(np.float64)
    if span is not None:
        lo, hi = span
        for x in (dst, src):
            flat = x.reshape(batch, -1)
            mn, mx = flat.min(axis=1)[:, None], flat.max(axis=1)[:, None]
            flat[:] = lo + (hi - lo) * (flat - mn) / (mx - mn)
    return dst + offset, src + offset


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", type=str, default=None, help="also write the table to this file")
    args = ap.parse_args(argv)

    header = "| data | shape | dtype | method | tol | max err / range | iterations | max residual | converged |"
    lines = [header, "|---|---|---|---|---|---|---|---|---|"]
    print(header, flush=True)
    t0 = time.perf_counter()
    for kind in DATA:
        dst64, src64 = make_data(kind, args.batch, args.size, args.seed)
        for shape in SHAPES:
            params = pa.sample_patches(args.batch, (args.size, args.size), shape=shape, seed=args.seed + 1)
            mask, alpha = params.masks(), params.alpha
            for dtype in (np.float32, np.float64):
                if dtype == np.float32 and DATA[kind][1] >= 1e5:
                    continue  # float32 cannot hold a 1e6 offset to 1e-4 of a unit range
                d, s = dst64.astype(dtype), src64.astype(dtype)
                exact = exact_blend(d.astype(np.float64), s.astype(np.float64), mask, alpha)
                rng_ = np.ptp(d.astype(np.float64).reshape(args.batch, -1), axis=1)
                for method in (("auto", "multigrid") if shape == "square" else ("multigrid",)):
                    for tol in (TOLS if method == "multigrid" else (1e-5,)):
                        out, info = pa.poisson_interpolate(d, s, mask, alpha, method=method, tol=tol,
                                                           on_unconverged="ignore", return_info=True)
                        err = max(float(np.abs(out[b] - exact[b]).max() / rng_[b]) for b in range(args.batch))
                        its = "exact" if info.spectral_samples == args.batch else str(info.iterations)
                        ok = "yes" if info.converged.all() else (
                            "stalled (rounding floor)" if info.stalled[~info.converged].all() else "no")
                        row = (f"| {kind} | {shape} | {np.dtype(dtype).name} | {method} | {tol:g} | {err:.1e} | "
                               f"{its} | {info.max_residual:.1e} | {ok} |")
                        lines.append(row)
                        print(row, flush=True)
    print(f"\n{args.batch} samples of {args.size}x{args.size} per row; {time.perf_counter() - t0:.0f} s", flush=True)
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
