"""Where a non-box sample's time goes on the CPU, and what that leaves for the multigrid.

The whole ``poisson_interpolate`` call on ``bench_shapes``' workload (the reference workload's
images, masks from ``sample_patches(shape=...)``, 64 x 256^2 float32 by default), on a fixed
number of host threads (default 1, where the figures add up), the median of ``--repeats`` calls,
in microseconds per sample:

* ``pass``: the same images with empty masks: what every sample pays in the preparation pass
  (the output copy, the clip range, the mask's box, the Python layer), box or not;
* ``box``: the same images with ``--shape square`` masks (the exact box solve), for the budget;
* the non-box call stopped after 1, 2 and 4 PCG iterations (``tol`` too small to reach,
  ``on_unconverged="ignore"``) and at the defaults: a straight line through the three gives the
  cost of one iteration (the V-cycle and the CG passes) and the fixed cost of a solve (its crop,
  right-hand side, hierarchy, first and last residual, scatter), so that

      default = pass + fixed + iterations x per iteration

  and the budget that "within 3x of the box path's cost per unknown" leaves, in iterations.

``--smoothing 1 2 3 4`` also solves every mask's crop alone (``solve_flat``, one thread, the best
of 3, the defaults' tolerance) with nu1 = nu2 = each value: mean PCG iterations and ns per
unknown, the trade between a stronger V-cycle and fewer iterations.

    python benchmarks/bench_mg_cost.py
    python benchmarks/bench_mg_cost.py --shape blob --threads 2
    python benchmarks/bench_mg_cost.py --smoothing 1 2 3 4
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workload import reference_workload  # noqa: E402


def per_sample_us(pa, dst, src, mask, alpha, repeats: int, **kw) -> float:
    """Median wall time of one call, microseconds per sample (after one warm-up call)."""
    pa.poisson_interpolate(dst, src, mask, alpha, **kw)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        pa.poisson_interpolate(dst, src, mask, alpha, **kw)
        times.append(time.perf_counter() - t0)
    return float(np.median(times)) * 1e6 / mask.shape[0]


def decompose(pa, shape: str, batch: int, size: int, seed: int, repeats: int) -> dict:
    """The figures of the module docstring, as a dict (microseconds per sample)."""
    wl = reference_workload(batch, size, seed=seed)
    dst, src = wl["dst"], wl["src"]
    patches = pa.sample_patches(batch, (size, size), shape=shape, seed=seed + 1)
    mask, alpha = patches.masks(), patches.alpha
    boxes = pa.sample_patches(batch, (size, size), shape="square", seed=seed + 1).masks()
    _, info = pa.poisson_interpolate(dst, src, mask, alpha, return_info=True)
    f = {"unknowns": float(mask.sum()) / batch, "box_unknowns": float(boxes.sum()) / batch,
         "iterations": int(info.iterations),
         "pass": per_sample_us(pa, dst, src, np.zeros_like(mask), alpha, repeats),
         "box": per_sample_us(pa, dst, src, boxes, alpha, repeats),
         "default": per_sample_us(pa, dst, src, mask, alpha, repeats)}
    stopped = {k: per_sample_us(pa, dst, src, mask, alpha, repeats, tol=1e-30, max_iter=k, on_unconverged="ignore")
               for k in (1, 2, 4)}
    ks = np.array(sorted(stopped), float)
    slope, intercept = np.polyfit(ks, [stopped[int(k)] for k in ks], 1)
    f.update({f"it{k}": v for k, v in stopped.items()})
    f["per_iteration"] = float(slope)
    f["fixed"] = float(intercept) - f["pass"]
    box_ns = f["box"] / f["box_unknowns"] * 1e3
    f["budget"] = 3 * box_ns * f["unknowns"] / 1e3  # us per sample at 3x the box path's ns per unknown
    f["budget_iterations"] = (f["budget"] - f["pass"] - f["fixed"]) / f["per_iteration"]
    return f


def smoothing_rows(pa, shape: str, batch: int, size: int, seed: int, nus) -> list[str]:
    """solve_flat on each mask's crop with nu1 = nu2 = nu: mean iterations, ns per unknown (one thread)."""
    from pii_augment.ops import _mg_system as mg

    wl = reference_workload(batch, size, seed=seed)
    patches = pa.sample_patches(batch, (size, size), shape=shape, seed=seed + 1)
    mask, alpha = patches.masks(), patches.alpha
    m8 = mask[:, None].view(np.uint8)
    crops = []
    for b in range(batch):
        ys, xs = np.nonzero(mask[b])
        y0, y1, x0, x1 = ys.min() - 1, ys.max() + 2, xs.min() - 1, xs.max() + 2
        H, W = int(y1 - y0), int(x1 - x0)
        kind = np.empty(H * W, np.uint8)
        mg._crop_kind(m8, b, 0, int(y0), int(x0), 1, H, W, kind)
        d = np.ascontiguousarray(wl["dst"][b, 0, y0:y1, x0:x1]).ravel()
        g = np.ascontiguousarray(wl["src"][b, 0, y0:y1, x0:x1]).ravel()
        rhs = np.zeros(H * W, np.float32)
        mg.guidance_rhs_flat(d, g, kind, 1, H, W, float(alpha[b]), mg.PII, rhs)
        crops.append((kind, rhs, H, W))
    _, _, coarsest, max_levels, stall = mg.MG_DEFAULTS
    tol = pa.ops.blend.DEFAULT_TOL
    rows = []
    for nu in nus:
        total, its = 0.0, []
        for kind, rhs, H, W in crops:
            x = np.zeros_like(rhs)
            best = np.inf
            for _ in range(4):  # the first call compiles or warms the caches
                x[:] = 0
                t0 = time.perf_counter()
                _, _, it = mg.solve_flat(kind, rhs, x, 1, H, W, tol, 100, nu, nu, coarsest, max_levels, stall)
                best = min(best, time.perf_counter() - t0)
            total += best
            its.append(it)
        rows.append(f"| {nu} | {np.mean(its):.2f} | {max(its)} | {total / mask.sum() * 1e9:.1f} |")
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", default="ellipse", choices=["ellipse", "blob"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="host threads (PII_AUGMENT_NUM_THREADS; default 1)")
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoothing", type=int, nargs="*", default=[], metavar="NU",
                    help="also the crops' solves alone with nu1 = nu2 = each NU")
    args = ap.parse_args(argv)
    os.environ["PII_AUGMENT_NUM_THREADS"] = str(args.threads)
    try:
        import pii_augment as pa
    except ImportError:
        sys.path.insert(0, str(HERE.parent))
        import pii_augment as pa
    import pii_augment.ops.blend  # noqa: F401  (DEFAULT_TOL)

    f = decompose(pa, args.shape, args.batch, args.size, args.seed, args.repeats)
    n = f["unknowns"]
    print(f"{args.shape}, {args.batch} x {args.size}^2, {args.threads} thread(s), median of {args.repeats}; "
          f"us per sample (ns per unknown):")
    print("| part | us per sample | ns per unknown |")
    print("|---|---|---|")
    print(f"| box path, squares (all of it; {f['box_unknowns']:.0f} unknowns a sample) | {f['box']:.1f} | "
          f"{f['box'] / f['box_unknowns'] * 1e3:.1f} |")
    print(f"| {args.shape}, default (up to {f['iterations']} PCG iterations; {n:.0f} unknowns a sample) | "
          f"{f['default']:.1f} | {f['default'] / n * 1e3:.1f} |")
    print(f"| - the preparation pass (empty masks) | {f['pass']:.1f} | {f['pass'] / n * 1e3:.1f} |")
    print(f"| - a solve's fixed cost | {f['fixed']:.1f} | {f['fixed'] / n * 1e3:.1f} |")
    print(f"| - one PCG iteration | {f['per_iteration']:.1f} | {f['per_iteration'] / n * 1e3:.1f} |")
    print(f"| stopped after 1 / 2 / 4 iterations | {f['it1']:.1f} / {f['it2']:.1f} / {f['it4']:.1f} | |")
    print(f"| 3x the box path's ns per unknown | {f['budget']:.1f} | {f['budget'] / n * 1e3:.1f} |")
    print(f"\nratio to the box path per unknown: {f['default'] / n / (f['box'] / f['box_unknowns']):.2f}x; "
          f"3x leaves {f['budget_iterations']:.2f} iterations after the pass and the fixed cost")
    if args.smoothing:
        print("\n| nu1 = nu2 | mean PCG iterations | max | ns per unknown (solves alone, one thread) |")
        print("|---|---|---|---|")
        for row in smoothing_rows(pa, args.shape, args.batch, args.size, args.seed, args.smoothing):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
