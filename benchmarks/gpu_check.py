"""One-shot GPU check: environment, cupy-vs-Numba parity, and timings of the cupy path.

Run it once when a GPU is lent; the whole run stays under ~5 minutes (``--budget`` seconds for the
timed part, default 240; cases beyond the budget are listed as skipped). It installs nothing:

    pip install "cupy-cuda12x"          # plus torch (CUDA) / pie-torch for the optional rows
    python benchmarks/gpu_check.py --out gpu.md

Sections (printed, and written as markdown to ``--out`` after each section, so a run cut short
still leaves its results):

1. Environment: GPU, driver / runtime / NVRTC versions, cupy, numba, torch.
2. Compile: NVRTC time of the kernel modules (float, double) on this device.
3. Kernel parity: every primitive, cupy vs Numba, on seeded random crops (2D and 3D, both
   dtypes): max relative difference and whether the results are bit-identical.
4. Solve parity: ``poisson_interpolate`` cupy vs Numba vs the exact sparse solve (the original
   method, ``peers.original_sparse``) on the reference workload, 2D and 3D.
5. Timing (CUDA events): the reference workload (DESIGN.md) at 256^2 and 512^2, batch 64, 1024,
   4096, and 3D 64^3; samples/s, V-cycle/CG iterations, kernel launches per call, and an estimate
   of the bytes the kernels must move (each active cell of each array touched once: a lower bound)
   against the H200's 4.8 TB/s.
6. The Numba path on smaller batches of the same workload (its throughput is per sample flat),
   for the GPU/CPU ratio; and pie-torch's GPU path (``pietorch.blend``, one sample per call) if
   torch with CUDA and pie-torch are installed.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from workload import random_images  # noqa: E402

H200_BANDWIDTH = 4.8e12  # bytes/s, HBM3e peak
TARGET_SAMPLES_PER_S = 1e6  # at 256x256, batch 4096
TARGET_RATIO = 20.0


# ------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------


class Report:
    """Sections of markdown, printed as they come and rewritten to ``path`` after each."""

    def __init__(self, path: str | None):
        self.path = Path(path) if path else None
        self.parts: list[str] = []

    def section(self, title: str) -> None:
        self.add(f"\n## {title}\n")

    def add(self, text: str) -> None:
        print(text, flush=True)
        self.parts.append(text)
        self.flush()

    def table(self, header: list[str], rows: list[list]) -> None:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        self.add("\n".join(lines) + "\n")

    def flush(self) -> None:
        if self.path:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("\n".join(self.parts) + "\n")


def fmt(x: float, digits: int = 3) -> str:
    if x != x:  # nan
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-2:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


# ------------------------------------------------------------------------------------------------
# workload on the device
# ------------------------------------------------------------------------------------------------


def device_workload(cp, batch: int, size: int, ndim: int, seed: int = 0, pool: int = 32) -> dict:
    """The reference workload built on the GPU: images drawn from a pool of ``pool`` textures of
    ``workload.random_images`` (the solve cost does not depend on which texture), one square
    (cube) region per sample drawn exactly as ``workload.draw_regions`` draws it, alpha U(0.05, 0.95).
    """
    rng = np.random.default_rng(seed)
    p = min(pool, batch)
    imgs = cp.asarray(random_images(rng, 2 * p, size, ndim))
    dst = imgs[cp.asarray(rng.integers(0, p, batch))]
    src = imgs[cp.asarray(rng.integers(p, 2 * p, batch))]
    n = size
    w = rng.integers(round(0.05 * n), round(0.2 * n), batch)
    c = rng.integers(int(0.1 * n), int(0.9 * n), (batch, ndim))
    lo = np.maximum(c - w[:, None], 1)
    hi = np.minimum(c + w[:, None], n - 1)
    mask = cp.ones((batch,) + (n,) * ndim, dtype=bool)
    for a in range(ndim):
        shape = [1] * (ndim + 1)
        shape[a + 1] = n
        coord = cp.arange(n).reshape(shape)
        l = cp.asarray(lo[:, a]).reshape((batch,) + (1,) * ndim)
        h = cp.asarray(hi[:, a]).reshape((batch,) + (1,) * ndim)
        mask &= (coord >= l) & (coord < h)
    alpha = rng.uniform(0.05, 0.95, batch).astype(np.float32)
    return {"dst": cp.ascontiguousarray(dst), "src": cp.ascontiguousarray(src), "mask": mask, "alpha": alpha}


# ------------------------------------------------------------------------------------------------
# bytes and launches
# ------------------------------------------------------------------------------------------------

# primitive -> [(index of an ext argument, field passes, label passes)]: each active cell (inside
# that ext) of a field array is read or written ``field passes`` times, of a label array
# ``label passes`` times. A lower bound on DRAM traffic (stencil neighbours assumed cached).
BYTES_MODEL = {
    "build_kind": [(2, 0, 2)],
    "gather_crop": [(2, 2, 0)],
    "guidance_rhs": [(3, 3, 1)],
    "rbgs_sweep": [(3, 1.25, 0.5)],  # one colour: half the cells, but whole cache lines of u/rhs
    "jacobi_sweep": [(3, 3, 1)],
    "residual": [(3, 3, 1)],
    "coarsen_kind": [(1, 0, 1), (4, 0, 1)],
    "restrict": [(1, 1, 0), (3, 1, 1)],
    "prolong_add": [(2, 1, 0), (4, 2, 1)],
    "dot_unknowns": [(3, 2, 1)],
    "axpy_unknowns": [(4, 3, 1)],
    "xpby_unknowns": [(4, 3, 1)],
    "scatter_crop": [(3, 2, 1)],
}


class Counter:
    """Wrap a backend instance's primitives to count launches and estimate bytes (untimed runs)."""

    def __init__(self, bk, cp):
        self.bk, self.cp = bk, cp
        self.launches = 0
        self.bytes = 0.0

    def __enter__(self):
        bk, cp = self.bk, self.cp
        orig_launch = bk._launch

        def launch(*a, **k):
            self.launches += 1
            return orig_launch(*a, **k)

        bk._launch = launch
        for name, model in BYTES_MODEL.items():
            orig = getattr(bk, name)

            def wrapped(*args, _orig=orig, _model=model):
                per_cell = next(
                    (a.shape[1] * a.dtype.itemsize for a in args if hasattr(a, "ndim") and a.ndim == 5), 0
                )
                for i, fields, labels in _model:
                    active = float(cp.asnumpy(args[i]).prod(axis=1).sum())
                    self.bytes += active * (fields * per_cell + labels)
                return _orig(*args)

            setattr(bk, name, wrapped)
        return self

    def __exit__(self, *exc):
        for name in ["_launch", *BYTES_MODEL]:
            self.bk.__dict__.pop(name, None)


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------


def environment(rep: Report, cp) -> None:
    rep.section("Environment")
    rt = cp.cuda.runtime
    props = rt.getDeviceProperties(rt.getDevice())
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    rows = [
        ["GPU", f"{name} (sm_{props['major']}{props['minor']}, {props['multiProcessorCount']} SMs, "
                f"{props['totalGlobalMem'] / 2**30:.0f} GiB)"],
        ["CUDA driver / runtime", f"{rt.driverGetVersion()} / {rt.runtimeGetVersion()}"],
    ]
    try:
        rows.append(["NVRTC", ".".join(map(str, cp.cuda.nvrtc.getVersion()))])
    except Exception as e:  # pragma: no cover - informational
        rows.append(["NVRTC", f"n/a ({e})"])
    import numba

    rows += [
        ["cupy", cp.__version__],
        ["numpy / numba", f"{np.__version__} / {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads)"],
        ["python / host", f"{platform.python_version()} / {platform.processor() or platform.machine()}, "
                          f"{os.cpu_count()} cores"],
    ]
    try:
        import torch

        rows.append(["torch", f"{torch.__version__} (cuda available: {torch.cuda.is_available()})"])
    except ImportError:
        rows.append(["torch", "not installed"])
    rep.table(["item", "value"], rows)


def compile_modules(rep: Report, cp, bk) -> None:
    rep.section("Compile (NVRTC, per device and dtype; cupy caches binaries on disk)")
    rows = []
    for ctype in ("float", "double"):
        t = time.perf_counter()
        bk.module(ctype)
        rows.append([ctype, f"{time.perf_counter() - t:.2f} s"])
    rep.table(["module", "compile + load"], rows)


def random_crops(seed: int, ndim: int, dtype):
    """Seeded random crop set-up (as tests/ops/test_cuda_emulated.py draws them)."""
    rng = np.random.default_rng(seed)
    B, C = 3, 2
    img = (7 if ndim == 3 else 1, 21, 26)
    pad = (9 if ndim == 3 else 1, 23, 28)
    off = np.stack([rng.integers(-2, s, B) for s in img], axis=1).astype(np.int64)
    ext = np.stack([rng.integers(1, p + 1, B) for p in pad], axis=1).astype(np.int64)
    ext[0] = pad
    if ndim == 2:
        ext[:, 0] = 1
    mask = rng.random((B,) + img) < 0.6
    return rng, B, C, img, pad, off, ext, mask


def kernel_parity(rep: Report, cp, bk, nb) -> bool:
    rep.section("Kernel parity: cupy vs Numba (seeded random crops, 2D and 3D)")
    worst: dict[tuple[str, str], list] = {}
    for dtype in (np.float32, np.float64):
        for ndim in (2, 3):
            for seed in range(3):
                rng, B, C, img, pad, off, ext, mask = random_crops(seed, ndim, dtype)

                def f(shape=pad):
                    return rng.standard_normal((B, C) + shape).astype(dtype)

                kind = np.empty((B,) + pad, np.uint8)
                nb.build_kind(mask, off, ext, kind)
                # per-sample coarsening: the last sample is absent from the coarse level
                going = np.arange(B) < B - 1
                flags = (going[:, None] & (ext > 1)).astype(np.int64)
                cext = np.where(going[:, None], np.where(flags == 1, -(-ext // 2), ext), 0).astype(np.int64)
                cpad = tuple(int(max(1, v)) for v in -(-np.array(pad) // 2))
                kind_c = np.empty((B,) + cpad, np.uint8)
                nb.coarsen_kind(kind, ext, flags, kind_c, cext)
                w = 0.25 ** rng.integers(0, 4, (B, 3)).astype(np.float64)  # per-sample axis weights
                coef = rng.standard_normal((B, C))
                coef[0, 0] = 0.0  # a frozen system
                u, rhs, out, full = f(), f(), f(), f(img)
                lo, hi = np.full((B, C), -0.5, dtype), np.full((B, C), 0.5, dtype)
                alpha = rng.uniform(0, 1, B)
                calls = [
                    ("build_kind", mask, off, ext, np.zeros((B,) + pad, np.uint8)),
                    ("gather_crop", full, off, ext, out),
                    ("scatter_crop", u, kind, off, ext, lo, hi, True, full),
                    ("guidance_rhs", u, rhs, kind, ext, alpha, 0, out),
                    ("guidance_rhs", u, rhs, kind, ext, alpha, 1, out),
                    ("guidance_rhs", u, rhs, kind, ext, alpha, 2, out),
                    ("guidance_rhs", u, rhs, kind, ext, alpha, 3, out),
                    ("guidance_rhs", u, rhs, kind, ext, alpha, 4, out),
                    ("rbgs_sweep", u, rhs, kind, ext, w, 0),
                    ("smooth", u, rhs, kind, ext, w, 3, True),
                    ("jacobi_sweep", u, rhs, kind, ext, w, 0.8, out),
                    ("residual", u, rhs, kind, ext, w, out),
                    ("dot_unknowns", u, rhs, kind, ext, np.zeros((B, C))),
                    ("axpy_unknowns", coef, u, rhs, kind, ext),
                    ("xpby_unknowns", u, coef, rhs, kind, ext),
                    ("coarsen_kind", kind, ext, flags, np.zeros((B,) + cpad, np.uint8), cext),
                    ("restrict", u, ext, kind_c, cext, flags, f(cpad)),
                    ("prolong_add", f(cpad), kind_c, cext, kind, ext, flags, u),
                ]
                for name, *args in calls:
                    h = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
                    d = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
                    getattr(nb, name)(*h)
                    getattr(bk, name)(*d)
                    diff, same = 0.0, True
                    for x, y in zip(h, d):
                        if isinstance(x, np.ndarray):
                            y = cp.asnumpy(y)
                            same &= bool(np.array_equal(x, y))
                            if x.dtype.kind == "f":
                                scale = max(float(np.abs(x).max()), 1e-300)
                                diff = max(diff, float(np.abs(x.astype(np.float64) - y).max()) / scale)
                            elif not np.array_equal(x, y):
                                diff = float("inf")
                    key = (name, np.dtype(dtype).name)
                    acc = worst.setdefault(key, [0.0, True])
                    acc[0] = max(acc[0], diff)
                    acc[1] &= same
    rows, ok = [], True
    for (name, dt), (diff, same) in worst.items():
        tol = 1e-12 if name == "dot_unknowns" else (1e-6 if dt == "float32" else 1e-13)
        good = diff <= tol
        ok &= good
        rows.append([name, dt, fmt(diff), "yes" if same else "no", "ok" if good else "**FAIL**"])
    rep.table(["kernel", "dtype", "max rel diff", "bit-identical", "verdict"], rows)
    return ok


def solve_parity(rep: Report, cp, pa) -> bool:
    from peers import original_sparse

    rep.section("Solve parity: poisson_interpolate cupy vs Numba vs exact (reference workload)")
    rows, ok = [], True
    for ndim, size, batch in ((2, 128, 16), (2, 256, 8), (3, 32, 4)):
        wl = device_workload(cp, batch, size, ndim, seed=1, pool=8)
        g, info = pa.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"], return_info=True)
        dst, src, mask = (cp.asnumpy(wl[k]) for k in ("dst", "src", "mask"))
        c, info_c = pa.poisson_interpolate(dst, src, mask, wl["alpha"], backend="numba", return_info=True)
        g = cp.asnumpy(g)
        rng_ = np.ptp(dst.reshape(batch, -1), axis=1)
        d_nb = max(float(np.abs(g[b] - c[b]).max() / rng_[b]) for b in range(batch))
        n_exact = min(batch, 4 if ndim == 2 else 2)
        d_ex = max(
            float(np.abs(g[b, 0] - original_sparse(dst[b, 0], src[b, 0], mask[b], float(wl["alpha"][b]))).max()
                  / rng_[b])
            for b in range(n_exact)
        )
        good = d_ex <= 1e-4 and d_nb <= 2e-4
        ok &= good
        rows.append([f"{ndim}D {size}^{ndim} x {batch}", f"{info.iterations} / {info_c.iterations}",
                     fmt(d_nb), f"{fmt(d_ex)} ({n_exact} samples)", "ok" if good else "**FAIL**"])
    rep.table(["problem", "iterations gpu / cpu", "max|gpu-numba|/range", "max|gpu-exact|/range", "verdict"],
              rows)
    return ok


def time_gpu(cp, pa, bk, wl, min_time: float = 1.0, max_reps: int = 20) -> dict:
    args = (wl["dst"], wl["src"], wl["mask"], wl["alpha"])
    out, info = pa.poisson_interpolate(*args, return_info=True)  # warm-up
    with Counter(bk, cp) as cnt:
        pa.poisson_interpolate(*args)
    cp.cuda.Device().synchronize()
    start, end = cp.cuda.Event(), cp.cuda.Event()
    times, t_all = [], time.perf_counter()
    while len(times) < max_reps and (len(times) < 3 or time.perf_counter() - t_all < min_time):
        start.record()
        pa.poisson_interpolate(*args)
        end.record()
        end.synchronize()
        times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
    return {"t": float(np.median(times)), "info": info, "launches": cnt.launches, "bytes": cnt.bytes}


def time_cpu(pa, wl_host: dict, reps: int = 2) -> float:
    args = (wl_host["dst"], wl_host["src"], wl_host["mask"], wl_host["alpha"])
    pa.poisson_interpolate(*args, backend="numba")  # warm-up (JIT is cached after the first call)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        pa.poisson_interpolate(*args, backend="numba")
        best = min(best, time.perf_counter() - t)
    return best


def timings(rep: Report, cp, pa, bk, budget_end: float, quick: bool) -> dict:
    rep.section("Timing: cupy path (CUDA events, median of >= 3 calls, whole poisson_interpolate call)")
    cases = [(2, 256, 64), (2, 256, 1024), (2, 256, 4096), (2, 512, 64), (2, 512, 1024), (2, 512, 4096),
             (3, 64, 64), (3, 64, 512)]
    if quick:
        cases = [(2, 64, 16), (2, 64, 64), (3, 16, 8)]
    rows, results = [], {}
    for ndim, size, batch in cases:
        label = f"{size}^{ndim} x {batch}"
        if time.perf_counter() > budget_end:
            rows.append([label] + ["skipped (time budget)"] + [""] * 7)
            continue
        try:
            wl = device_workload(cp, batch, size, ndim)
            r = time_gpu(cp, pa, bk, wl)
        except Exception as e:
            traceback.print_exc()
            rows.append([label, f"error: {type(e).__name__}: {e}"] + [""] * 7)
            continue
        sps = batch / r["t"]
        bw = r["bytes"] / r["t"]
        results[(ndim, size, batch)] = sps
        rows.append([label, f"{r['t'] * 1e3:.2f}", fmt(sps), f"{r['info'].iterations}", f"{r['info'].levels}",
                     str(r["launches"]), f"{r['t'] / max(r['launches'], 1) * 1e6:.1f}",
                     f"{r['bytes'] / 1e9:.2f}", f"{bw / 1e12:.2f} ({100 * bw / H200_BANDWIDTH:.0f}%)"])
        del wl
        cp.get_default_memory_pool().free_all_blocks()
    rep.table(["workload", "ms / call", "samples/s", "iterations", "levels", "launches / call", "us / launch",
               "est. GB moved", "est. TB/s (% of 4.8)"], rows)
    rep.add("Bytes: each active cell (inside a sample's crop extent) of each array a kernel reads or "
            "writes, counted once per launch; whole-array copies and zero fills of the driver are not "
            "counted, so this is a lower bound. When `us / launch` approaches the ~5-10 us of a Python "
            "launch, the call is launch-bound, not bandwidth-bound.\n")
    return results


def numba_timings(rep: Report, cp, pa, gpu: dict, budget_end: float, quick: bool) -> dict:
    rep.section("Timing: Numba path (host, all cores) and the GPU/CPU ratio")
    cases = [(2, 256, 64), (2, 512, 16), (3, 64, 16)] if not quick else [(2, 64, 16)]
    rows, ratios = [], {}
    for ndim, size, batch in cases:
        label = f"{size}^{ndim} x {batch}"
        if time.perf_counter() > budget_end:
            rows.append([label, "skipped (time budget)", "", ""])
            continue
        wl = device_workload(cp, batch, size, ndim)
        host = {k: (cp.asnumpy(v) if hasattr(v, "get") else v) for k, v in wl.items()}
        t = time_cpu(pa, host)
        sps = batch / t
        best_gpu = max((v for (n, s, _), v in gpu.items() if n == ndim and s == size), default=float("nan"))
        ratio = best_gpu / sps
        ratios[(ndim, size)] = ratio
        rows.append([label, fmt(sps), fmt(best_gpu), fmt(ratio)])
    rep.table(["workload (numba)", "numba samples/s", "best cupy samples/s (same size)", "ratio"], rows)
    return ratios


def pietorch_gpu(rep: Report, cp, budget_end: float) -> None:
    rep.section("pie-torch GPU path (pietorch.blend, one sample per call, 256x256)")
    try:
        import pietorch
        import torch

        if not torch.cuda.is_available():
            rep.add("n/a: torch has no CUDA\n")
            return
    except ImportError as e:
        rep.add(f"n/a: {e}\n")
        return
    if time.perf_counter() > budget_end:
        rep.add("skipped (time budget)\n")
        return
    try:
        n = 32
        wl = device_workload(cp, n, 256, 2)
        dst = torch.from_dlpack(wl["dst"])
        src = torch.from_dlpack(wl["src"])
        masks = cp.asnumpy(wl["mask"])

        def one(b):
            ys, xs = np.nonzero(masks[b])
            y0, y1, x0, x1 = ys.min() - 1, ys.max() + 2, xs.min() - 1, xs.max() + 2
            source = src[b, 0, y0:y1, x0:x1]
            m = torch.ones_like(source)
            corner = torch.tensor([y0, x0], device=source.device)
            return pietorch.blend(dst[b, 0], source, m, corner, False)

        one(0)
        torch.cuda.synchronize()
        t = time.perf_counter()
        for b in range(n):
            one(b)
        torch.cuda.synchronize()
        dt = time.perf_counter() - t
        rep.add(f"{n} samples in {dt * 1e3:.1f} ms: {fmt(n / dt)} samples/s (not the same equation: no alpha)\n")
    except Exception as e:
        traceback.print_exc()
        rep.add(f"error: {type(e).__name__}: {e}\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="markdown file to write (rewritten after each section)")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds after which timing cases are skipped")
    ap.add_argument("--quick", action="store_true", help="tiny cases only (a smoke test of the script)")
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    budget_end = t0 + a.budget
    rep = Report(a.out)
    rep.add("# pii_augment GPU check\n")
    try:
        import cupy as cp
    except ImportError as e:
        rep.add(f"cupy is not importable ({e}); install cupy-cuda12x. Nothing else was run.")
        return 2
    import pii_augment as pa
    from pii_augment.ops._backends import NumbaBackend, get_backend

    environment(rep, cp)
    bk = get_backend("cupy", cp.zeros(1))
    nb = NumbaBackend()
    compile_modules(rep, cp, bk)
    ok = True
    for step in (lambda: kernel_parity(rep, cp, bk, nb), lambda: solve_parity(rep, cp, pa)):
        try:
            ok &= step()
        except Exception as e:
            traceback.print_exc()
            rep.add(f"**error**: {type(e).__name__}: {e}\n")
            ok = False
    gpu = timings(rep, cp, pa, bk, budget_end, a.quick)
    ratios = numba_timings(rep, cp, pa, gpu, budget_end, a.quick)
    pietorch_gpu(rep, cp, budget_end)

    rep.section("Summary")
    sps = gpu.get((2, 256, 4096), float("nan"))
    ratio = ratios.get((2, 256), float("nan"))
    rep.table(
        ["check", "result", "target", "verdict"],
        [
            ["parity (kernels and solves)", "ok" if ok else "FAIL", "all ok", "ok" if ok else "**FAIL**"],
            ["samples/s, 256^2 x 4096", fmt(sps), fmt(TARGET_SAMPLES_PER_S),
             "ok" if sps >= TARGET_SAMPLES_PER_S else "**below**"],
            ["cupy / numba, 256^2", fmt(ratio), f">= {TARGET_RATIO:g}", "ok" if ratio >= TARGET_RATIO else "**below**"],
        ],
    )
    rep.add(f"Total run time {time.perf_counter() - t0:.0f} s.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
