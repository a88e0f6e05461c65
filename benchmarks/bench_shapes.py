"""Masks that are not boxes, on the CPU: pii_augment's whole-system multigrid next to pie-torch.

The reference workload's images (``workload.py``), masks from ``sample_patches(shape=...)``
(ellipses and blobs, the shapes of the field's newer work), 64 x 256^2 float32 by default.
pii_augment solves the masked problem (``method="auto"``: these masks take the whole-system
multigrid); pie-torch's ``blend_dst_numpy`` is given each mask's bounding box (it solves a box, not
the masked problem, and changes pixels outside the mask), one sample at a time, as users call it.
Prints samples/s, ns per unknown (mask pixel) and the ratio, best of ``--repeats``:

    python benchmarks/bench_shapes.py
    python benchmarks/bench_shapes.py --shapes ellipse --batch 64 --size 256 --repeats 7

Scaling (cost per unknown from 64^2 to 1024^2, the batch chosen so that every size holds about as
many pixels as 64 x 256^2; ``--ndim 3`` for volumes, 64 x 64^3 by default):

    python benchmarks/bench_shapes.py --sizes 64 128 256 512 1024 --shapes ellipse
    python benchmarks/bench_shapes.py --ndim 3 --size 64 --shapes ellipse

RGB images (``--channels 3``: three independent channels, each unknown counted once per channel):

    python benchmarks/bench_shapes.py --channels 3 --shapes square ellipse blob
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import pietorch_dst  # noqa: E402
from workload import reference_workload  # noqa: E402


def best(fn, repeats: int) -> float:
    fn()  # warm-up (JIT, caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bounding_boxes(mask: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mask)
    for b in range(mask.shape[0]):
        idx = np.nonzero(mask[b])
        out[(b,) + tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)] = True
    return out


def images(batch: int, size: int, ndim: int, seed: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """dst, src (batch, channels, *spatial) float32: channel k the reference workload of seed + 100 k."""
    wls = [reference_workload(batch, size, seed=seed + 100 * k, ndim=ndim) for k in range(channels)]
    return (np.concatenate([w["dst"] for w in wls], axis=1), np.concatenate([w["src"] for w in wls], axis=1))


def row(pa, shape: str, batch: int, size: int, ndim: int, seed: int, repeats: int, channels: int = 1) -> str:
    """One table row: pii_augment and pie-torch on the same images and masks (pie-torch one call per
    sample and channel); ns per unknown counts each channel's unknowns."""
    dst, src = images(batch, size, ndim, seed, channels)
    p = pa.sample_patches(batch, (size,) * ndim, shape=shape, seed=seed + 1)
    mask, alpha = p.masks(), p.alpha
    _, info = pa.poisson_interpolate(dst, src, mask, alpha, return_info=True)
    t_ours = best(lambda: pa.poisson_interpolate(dst, src, mask, alpha), repeats)
    boxes = bounding_boxes(mask)
    t_peer = best(lambda: [pietorch_dst(dst[b, c], src[b, c], boxes[b], float(alpha[b])) for b in range(batch)
                           for c in range(channels)], max(1, repeats // 2))
    side = "x".join([str(size)] * ndim) + (f" x {channels} ch" if channels > 1 else "")
    return (f"| {shape} | {side} | {batch} | {batch / t_ours:,.0f} | "
            f"{t_ours / (mask.sum() * channels) * 1e9:.0f} | {batch / t_peer:,.0f} | {t_peer / t_ours:.2f}x | "
            f"{info.iterations} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=None, help="side (default 256 in 2D, 64 in 3D)")
    ap.add_argument("--sizes", type=int, nargs="+", default=None,
                    help="a scaling table: these sides, the batch holding about batch x 256^2 pixels")
    ap.add_argument("--ndim", type=int, choices=[2, 3], default=2)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--shapes", nargs="+", default=["ellipse", "blob"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--channels", type=int, default=1, help="channels per image (3: RGB; default 1)")
    args = ap.parse_args(argv)
    try:
        import pii_augment as pa
    except ImportError:
        sys.path.insert(0, str(HERE.parent))
        import pii_augment as pa

    base = 256 if args.ndim == 2 else 64
    sizes = args.sizes or [args.size or base]
    print("| shape | size | batch | pii_augment samples/s | ns per unknown | pie-torch (bounding boxes) samples/s "
          "| ratio | PCG iterations |")
    print("|---|---|---|---|---|---|---|---|")
    for size in sizes:
        batch = args.batch if args.sizes is None else max(1, round(args.batch * (base / size) ** args.ndim))
        for shape in args.shapes:
            print(row(pa, shape, batch, size, args.ndim, args.seed, args.repeats, args.channels), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
