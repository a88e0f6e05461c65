"""Masks that are not boxes, on the CPU: pii_augment's whole-system multigrid next to pie-torch.

The reference workload's images (``workload.py``), masks from ``sample_patches(shape=...)``
(ellipses and blobs, the shapes of the field's newer work), 64 x 256^2 float32 by default.
pii_augment solves the masked problem (``method="auto"``: these masks take the whole-system
multigrid); pie-torch's ``blend_dst_numpy`` is given each mask's bounding box (it solves a box, not
the masked problem, and changes pixels outside the mask), one sample at a time, as users call it.
Prints samples/s, ns per unknown (mask pixel) and the ratio, best of ``--repeats``:

    python benchmarks/bench_shapes.py
    python benchmarks/bench_shapes.py --shapes ellipse --batch 64 --size 256 --repeats 7
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--shapes", nargs="+", default=["ellipse", "blob"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        import pii_augment as pa
    except ImportError:
        sys.path.insert(0, str(HERE.parent))
        import pii_augment as pa

    wl = reference_workload(args.batch, args.size, seed=args.seed)
    dst, src = wl["dst"], wl["src"]
    B = args.batch
    print("| shape | pii_augment samples/s | ns per unknown | pie-torch (bounding boxes) samples/s | ratio | PCG iterations |")
    print("|---|---|---|---|---|---|")
    for shape in args.shapes:
        p = pa.sample_patches(B, (args.size, args.size), shape=shape, seed=args.seed + 1)
        mask, alpha = p.masks(), p.alpha
        _, info = pa.poisson_interpolate(dst, src, mask, alpha, return_info=True)
        t_ours = best(lambda: pa.poisson_interpolate(dst, src, mask, alpha), args.repeats)
        boxes = bounding_boxes(mask)
        t_peer = best(lambda: [pietorch_dst(dst[b, 0], src[b, 0], boxes[b], float(alpha[b])) for b in range(B)],
                      max(1, args.repeats // 2))
        print(f"| {shape} | {B / t_ours:,.0f} | {t_ours / mask.sum() * 1e9:.0f} | {B / t_peer:,.0f} | "
              f"{t_peer / t_ours:.2f}x | {info.iterations} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
