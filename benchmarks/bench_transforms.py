"""CPU cost of the torch transforms next to the plain functional call they wrap.

Reference batch: 64 x 1 x 256 x 256 float32, default (original) patch distribution. For each of
PII and FPI it times, median of ``--repeat`` runs after a warm-up:

- ``blend``: ``poisson_interpolate`` / ``foreign_patch_interpolate`` alone on precomputed masks,
  gathered sources and alphas (the solve the module wraps);
- ``functional``: the same + ``anomaly_label`` (what a user of the functional API pays per batch);
- ``module``: ``aug(images, params=...)`` on the same parameters, which also builds the masks,
  reads the sources and makes the label (``module/blend``: the module's throughput over the
  blend's; the CPU fast-path issue asks for at least 0.75);
- ``params+masks``: ``forward_parameters`` + ``masks()`` alone;
- ``module, new draws``: ``aug(images)`` drawing new patches each call (other patch sizes, so
  another solve cost: not comparable one to one).

``--keep-freed-memory`` first calls :func:`pii_augment.host_memory.keep_freed_memory` (glibc keeps
freed batches for the next call instead of handing out new pages; process-wide, opt-in).

Run: ``PYTHONPATH=. python benchmarks/bench_transforms.py [--batch 64 --size 256 --repeat 5]
[--keep-freed-memory]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from pii_augment import (
    ForeignPatchInterpolation,
    PoissonImageInterpolation,
    anomaly_label,
    foreign_patch_interpolate,
    poisson_interpolate,
)


def _median_times(fns: dict, repeat: int) -> dict:
    """Median seconds of each function, runs interleaved so that machine load hits all alike."""
    for fn in fns.values():
        fn()  # warm-up (Numba compilation, thread pools)
    times = {k: [] for k in fns}
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="call pii_augment.host_memory.keep_freed_memory() first")
    args = ap.parse_args()
    allocator = "glibc defaults"
    if args.keep_freed_memory:
        from pii_augment.host_memory import keep_freed_memory

        allocator = "keep_freed_memory()" if keep_freed_memory() else "not glibc: unchanged"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(args.batch, 1, args.size, args.size, generator=g)
    print(f"batch {tuple(x.shape)} float32, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"allocator: {allocator}")
    print(f"{'':4} {'blend':>9} {'functional':>11} {'module':>9} {'module/blend':>13} {'params+masks':>13} "
          f"{'module, new draws':>18}")
    for name, cls, fn in (
        ("PII", PoissonImageInterpolation, poisson_interpolate),
        ("FPI", ForeignPatchInterpolation, foreign_patch_interpolate),
    ):
        aug = cls(seed=0)
        params = aug.forward_parameters(x.shape, seed=0)
        src = x[torch.from_numpy(params.source_index)]
        mask = torch.from_numpy(params.masks())
        alpha = params.alpha

        def functional():
            out = fn(x, src, mask, alpha)
            return anomaly_label(x, out, mask, alpha)

        t = _median_times(
            {
                "blend": lambda: fn(x, src, mask, alpha),
                "functional": functional,
                "module": lambda: aug(x, params=params),  # the same patches as `functional`
                "params": lambda: aug.forward_parameters(x.shape).masks(),
                "new": lambda: aug(x),  # fresh patches each call (other sizes: other solve cost)
            },
            args.repeat,
        )
        ms = {k: v * 1e3 for k, v in t.items()}
        print(
            f"{name:4} {ms['blend']:7.1f}ms {ms['functional']:9.1f}ms {ms['module']:7.1f}ms "
            f"{ms['blend'] / ms['module']:12.2f}x {ms['params']:11.1f}ms {ms['new']:16.1f}ms"
        )


if __name__ == "__main__":
    main()
