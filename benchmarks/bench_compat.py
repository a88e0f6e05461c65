"""compat.pietorch batched vs pie-torch's per-sample loop, on the same inputs, in one run.

    python benchmarks/bench_compat.py [--batch 64] [--size 256] [--repeats 5] [--mix 1] [--mask box|ellipse]

Workload: B grayscale float32 images of size N x N; per sample a patch of the original PII's
sizes (half-width in [0.05 N, 0.2 N), so the box is 2 w on a side) taken from another image of
the batch, blended at a random corner with ``mix_gradients``; the mask is the whole box
(``box``, nnOOD's use) or the ellipse inscribed in it (``ellipse``). Rows:

- ``pietorch.blend_dst_numpy``, one sample at a time (what nnOOD / Many Tasks do);
- ``compat.blend_dst_numpy``, the drop-in, one sample at a time;
- ``compat.blend_dst_batch``, the whole batch in one call (CPU: Numba, the batch split over
  the threads; GPU: cupy, when a GPU and cupy are there).

Samples/s are the median of ``--repeats`` timed runs after one warm-up; the ratio is against
pie-torch's loop; max |diff| against pie-torch's output, in units of the images' range.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from pii_augment.compat.pietorch import blend_dst_batch, blend_dst_numpy  # noqa: E402


def workload(B: int, N: int, mask_kind: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(np.linspace(-1, 1, N), np.linspace(-1, 1, N), indexing="ij")
    images = (sum(rng.normal() * g for g in grids) + rng.standard_normal((B, N, N)).cumsum(-1) / 16).astype(np.float32)
    half = rng.integers(round(0.05 * N), round(0.2 * N), size=B)
    sources, masks, corners = [], [], []
    for b in range(B):
        s = 2 * int(half[b])
        y, x = rng.integers(0, N - s, size=2)
        sources.append(np.ascontiguousarray(images[(b + 1) % B, y:y + s, x:x + s]))
        if mask_kind == "box":
            masks.append(np.ones((s, s)))
        else:
            g = (np.arange(s) + 0.5 - s / 2) / (s / 2)
            masks.append((g[:, None] ** 2 + g[None, :] ** 2 <= 1).astype(np.float64))
        corners.append(rng.integers(0, N - s, size=2))
    return images, sources, masks, np.asarray(corners)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (JIT, plans, caches)
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--mix", type=int, default=1, help="mix_gradients (1 or 0)")
    ap.add_argument("--mask", choices=("box", "ellipse"), default="box")
    args = ap.parse_args(argv)
    import pietorch

    B, N, mix = args.batch, args.size, bool(args.mix)
    images, sources, masks, corners = workload(B, N, args.mask)
    span = float(np.ptp(images))

    def pie_loop():
        return [pietorch.blend_dst_numpy(images[b], sources[b], masks[b].copy(), corners[b], mix) for b in range(B)]

    def compat_loop():
        return [blend_dst_numpy(images[b], sources[b], masks[b], corners[b], mix) for b in range(B)]

    def compat_batch():
        return blend_dst_batch(images, sources, masks, corners, mix)

    ref = np.stack(pie_loop())
    rows = [("pietorch.blend_dst_numpy, per-sample loop", pie_loop, ref)]
    rows.append(("compat.blend_dst_numpy, per-sample loop", compat_loop, np.stack(compat_loop())))
    rows.append(("compat.blend_dst_batch, one call (CPU)", compat_batch, compat_batch()))
    try:
        import cupy as cp

        if cp.cuda.runtime.getDeviceCount() > 0:
            gi = cp.asarray(images)
            gs = [cp.asarray(s) for s in sources]
            gm = [cp.asarray(m) for m in masks]

            def gpu_batch():
                out = blend_dst_batch(gi, gs, gm, corners, mix)
                cp.cuda.Stream.null.synchronize()
                return out

            rows.append(("compat.blend_dst_batch, one call (GPU, cupy)", gpu_batch, cp.asnumpy(gpu_batch())))
    except Exception as e:  # no cupy or no GPU: CPU rows only
        print(f"(no GPU row: {type(e).__name__}: {e})".splitlines()[0], file=sys.stderr)

    threads = os.environ.get("PII_AUGMENT_NUM_THREADS") or os.environ.get("NUMBA_NUM_THREADS") or str(os.cpu_count())
    print(f"B={B}, {N}x{N} float32, mask={args.mask}, mix_gradients={mix}, repeats={args.repeats} (median); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, threads={threads}")
    print()
    print("| method | samples/s | vs pie-torch loop | max abs diff / range |")
    print("| --- | ---: | ---: | ---: |")
    base = None
    for name, fn, out in rows:
        t = timed(fn, args.repeats)
        rate = B / t
        base = base or rate
        diff = float(np.abs(np.asarray(out, np.float64) - ref).max()) / span
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
