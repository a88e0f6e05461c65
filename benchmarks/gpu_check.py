"""One-shot GPU check of the device path: environment, compile, parity, torch, timings, Numba.

Made for ONE run inside a 15-minute window on an H200 machine with Python, cupy, numpy, numba,
scipy and torch (CUDA) and no network: it installs nothing, and the parts that need pie-torch are
skipped when it is absent. Run it from the repository root:

    PYTHONUNBUFFERED=1 python benchmarks/gpu_check.py --out $OUT          # $OUT: a folder

It writes ``$OUT/gpu_check.md`` (the report) and ``$OUT/gpu_check.json`` (its figures), both
rewritten after every section, so a run cut short keeps what it did. Every stage runs in its own
try/except (a failure is recorded with its traceback and the run goes on); ``--budget`` seconds
(default 420, counted from the start, NVRTC and Numba JIT compile time included) bound the run:
stages, and timing rows, that would start after it are listed as skipped.

Stages:

1. Environment: GPU, driver / runtime / NVRTC versions, cupy, numba, torch, the device's opt-in
   shared memory per block.
2. Compile: NVRTC compile and load time of the kernel modules (float, double) on this device.
3. Parity. (a) Every row-mapped primitive on the device against its Numba twin, on seeded random
   crops (2D and 3D, float32 and float64; per-sample ``w`` and ``flags``, ``guidance_rhs``
   modes 0-4): bit-identical expected (NVRTC compiles with ``--fmad=false``), ``dot_unknowns``
   to float64 rounding. (b) The device path through the public API: ``poisson_interpolate`` on
   the device vs Numba vs an exact sparse solve (scipy, float64) on boxes (the exact DST solve,
   2D and 3D, both dtypes) and on ellipses (the multigrid path); ``anomaly_label`` and
   ``foreign_patch_interpolate`` device vs Numba (bitwise); ``pii_augment.ops.patch_masks`` on
   the device vs ``PatchParams.masks()`` (bitwise).
4. Torch: CUDA tensors in and out without a copy (the input's memory is what the kernels read,
   the result's ``data_ptr`` is the cupy result's), the call runs on torch's current stream (a
   non-default ``torch.cuda.Stream`` whose input is still being produced when the call is made:
   the result is right without a synchronisation in between), and the modules
   (``PoissonImageInterpolation``, ``ForeignPatchInterpolation``) on CUDA tensors against the same
   modules on CPU tensors with the same seed.
5. Timings (CUDA events, median of >= 3 calls after a warm-up) of ``poisson_interpolate`` on the
   reference workload at 256^2 and 512^2 x 64, 1024, 4096 and 64^3 x 64, 512; the PII module at
   256^2 x 64 and 4096; ellipses at 256^2 x 64 and 1024: samples/s, the call's launches, syncs
   and host-to-device bytes, the backend's device-bytes model against the H200's 4.8 TB/s, and the
   ratio of the measured time to ``benchmarks/gpu_model.py``'s model computed from the counts
   this run's cupy backend reported (flops counted from the same call's launches). Optional: the
   pie-torch GPU blend for comparison, when pie-torch is installed.
6. Numba on this machine's CPU cores for the 256^2 x 64, 512^2 x 64 and 64^3 x 64 rows, and the
   cupy / Numba ratio.

The device workloads are built on the GPU: textures from ``workload.random_images`` with the
workload's seed (a pool of 32 pairs, drawn per sample), one square / cube per sample drawn from
``workload.draw_regions``' distribution, alpha ~ U(0.05, 0.95): the reference workload's
distribution, not its exact samples, so the host is not the bottleneck. Ellipse masks are made on
the device from ``sample_patches(shape="ellipse", seed=0)``.

Without a GPU the script says so and exits with status 2. ``--emulate`` runs stages 3, 5 and 6 on
the emulated CUDA backend (numpy arrays, ``backend="cuda-emulated"``) in place of cupy: a check
of this script itself, not of a GPU (its timings are the CPU's). ``--quick`` uses tiny cases.
Exit status: 0 all parity checks passed and no stage failed, 1 otherwise, 2 no GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _checkout  # noqa: E402,F401  (pii_augment: the installed one, else this checkout)

from workload import random_images  # noqa: E402

H200_BANDWIDTH = 4.8e12  #: bytes/s, HBM3e peak
TARGET_SAMPLES_PER_S = 2e6  #: the issue's modelled target, boxes at 256^2 x 4096
TARGET_RATIO = 20.0  #: cupy / Numba, the previous gpu_check's target


# ------------------------------------------------------------------------------------------------
# report
# ------------------------------------------------------------------------------------------------


def _clean(x: Any) -> Any:
    """JSON-safe copy: numpy scalars to Python, NaN/Inf to None, tuples to lists, keys to str."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    return str(x)


class Report:
    """Markdown sections (printed as they come) and a dict of figures, both rewritten to
    ``folder/gpu_check.md`` and ``folder/gpu_check.json`` after every addition."""

    def __init__(self, folder: str | None, echo: bool = True) -> None:
        self.dir = Path(folder) if folder else None
        self.echo = echo
        self.parts: list[str] = []
        self.data: dict[str, Any] = {"stages": {}, "errors": {}}

    def section(self, title: str) -> None:
        self.add(f"\n## {title}\n")

    def add(self, text: str) -> None:
        if self.echo:
            print(text, flush=True)
        self.parts.append(text)
        self.flush()

    def table(self, header: list[str], rows: list[list]) -> None:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(str(c).replace("|", "/").replace("\n", " ") for c in r) + " |" for r in rows]
        self.add("\n".join(lines) + "\n")

    def record(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.flush()

    @property
    def markdown(self) -> str:
        return "\n".join(self.parts) + "\n"

    def flush(self) -> None:
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "gpu_check.md").write_text(self.markdown)
        (self.dir / "gpu_check.json").write_text(json.dumps(_clean(self.data), indent=1) + "\n")


def fmt(x: Any, digits: int = 3) -> str:
    """gpu_model's number format, with None as n/a (and 1e-2 .. 1e-3 in scientific notation)."""
    import gpu_model

    if x is None:
        return "n/a"
    x = float(x)
    return f"{x:.{digits - 1}e}" if 0 < abs(x) < 1e-2 else gpu_model.fmt(x, digits)


class Budget:
    """Seconds from the start of the run; ``over()`` once they are spent."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.seconds = float(seconds)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def left(self) -> float:
        return self.seconds - self.elapsed()

    def over(self) -> bool:
        return self.left() <= 0


def run_stage(rep: Report, budget: Budget, key: str, title: str, fn: Callable[[], Any], optional: bool = False):
    """Run one stage in its own try/except: its section, its time, its traceback on failure.
    Returns the stage's result, or None when it failed or was skipped."""
    if budget.over():
        rep.data["stages"][key] = {"status": "skipped", "reason": "time budget"}
        rep.section(title)
        rep.add(f"skipped: the time budget ({budget.seconds:.0f} s) is spent\n")
        return None
    rep.section(title)
    t0 = time.perf_counter()
    try:
        out = fn()
        rep.data["stages"][key] = {"status": "ok", "seconds": time.perf_counter() - t0}
        rep.flush()
        return out
    except Exception as e:
        tb = traceback.format_exc()
        print(tb, file=sys.stderr, flush=True)
        rep.data["stages"][key] = {"status": "error" if not optional else "optional error",
                                   "seconds": time.perf_counter() - t0, "error": f"{type(e).__name__}: {e}"}
        rep.data["errors"][key] = tb
        rep.add(f"**error** ({'optional part' if optional else 'stage failed'}): `{type(e).__name__}: {e}`\n\n"
                f"```\n{tb.rstrip()}\n```\n")
        return None


def skip_stage(rep: Report, key: str, title: str, reason: str) -> None:
    rep.data["stages"][key] = {"status": "skipped", "reason": reason}
    rep.section(title)
    rep.add(f"skipped: {reason}\n")


def _row_error(e: Exception) -> str:
    traceback.print_exc()
    return f"error: {type(e).__name__}: {e}"


# ------------------------------------------------------------------------------------------------
# where the kernels run
# ------------------------------------------------------------------------------------------------


class Device:
    """The device path under check: ``"cupy"`` (cupy arrays on the GPU) or, to check this script
    without a GPU, ``"cuda-emulated"`` (numpy arrays; the same kernels compiled with g++)."""

    def __init__(self, name: str) -> None:
        from pii_augment.ops.backends import get_backend

        self.name = name
        if name == "cupy":
            import cupy

            self.xp = cupy
            self.bk = get_backend("cupy", cupy.zeros(1))
        elif name == "cuda-emulated":
            self.xp = np
            self.bk = get_backend("cuda-emulated", np.zeros(1))
        else:
            raise ValueError(f"unknown device {name!r}")

    @property
    def on_gpu(self) -> bool:
        return self.name == "cupy"

    def asarray(self, a):
        """A device copy of a host array (a private copy on the emulated device too)."""
        return self.xp.asarray(a) if self.on_gpu else np.array(a, copy=True)

    def asnumpy(self, a) -> np.ndarray:
        return self.xp.asnumpy(a) if self.on_gpu else np.asarray(a)

    def synchronize(self) -> None:
        if self.on_gpu:
            self.xp.cuda.Device().synchronize()

    def free(self) -> None:
        if self.on_gpu:
            self.xp.get_default_memory_pool().free_all_blocks()

    def time_calls(self, fn: Callable[[], Any], reps: int = 3, min_time: float = 1.0, max_reps: int = 20) -> list:
        """Seconds of each of at least ``reps`` calls of ``fn`` (CUDA events on the GPU, recorded
        on the current stream before and after the whole call), more while under ``min_time``."""
        times: list[float] = []
        t_all = time.perf_counter()
        if self.on_gpu:
            cp = self.xp
            start, end = cp.cuda.Event(), cp.cuda.Event()
            self.synchronize()
            while len(times) < max_reps and (len(times) < reps or time.perf_counter() - t_all < min_time):
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(cp.cuda.get_elapsed_time(start, end) / 1e3)
        else:
            while len(times) < max_reps and (len(times) < reps or time.perf_counter() - t_all < min_time):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
        return times


def device_workload(dev: Device, batch: int, size: int, ndim: int, seed: int = 0, pool: int = 32,
                    dtype=np.float32) -> dict:
    """The reference workload's distribution, built on the device: images drawn per sample from a
    pool of ``pool`` destination and ``pool`` source textures of ``workload.random_images`` (seeded
    with ``seed``; the solve's cost does not depend on which texture), one square (cube) region per
    sample with ``workload.draw_regions``' distribution (half-width ``randint(round(0.05 N),
    round(0.2 N))``, centre ``randint(int(0.1 N), int(0.9 N))`` per axis, ``[c - w, c + w)``
    clipped to the image minus its outer ring), alpha ~ U(0.05, 0.95) (a host array)."""
    xp = dev.xp
    rng = np.random.default_rng(seed)
    p = max(1, min(pool, batch))
    imgs = dev.asarray(random_images(rng, 2 * p, size, ndim).astype(dtype))
    dst = imgs[dev.asarray(rng.integers(0, p, batch))]
    src = imgs[dev.asarray(rng.integers(p, 2 * p, batch))]
    n = size
    w = rng.integers(round(0.05 * n), round(0.2 * n), batch)
    c = rng.integers(int(0.1 * n), int(0.9 * n), (batch, ndim))
    lo = np.maximum(c - w[:, None], 1)
    hi = np.minimum(c + w[:, None], n - 1)
    mask = xp.ones((batch,) + (n,) * ndim, dtype=bool)
    for a in range(ndim):
        shape = [1] * (ndim + 1)
        shape[a + 1] = n
        coord = xp.arange(n).reshape(shape)
        lo_a = dev.asarray(lo[:, a]).reshape((batch,) + (1,) * ndim)
        hi_a = dev.asarray(hi[:, a]).reshape((batch,) + (1,) * ndim)
        mask &= (coord >= lo_a) & (coord < hi_a)
    alpha = rng.uniform(0.05, 0.95, batch).astype(np.float32)
    return {"dst": xp.ascontiguousarray(dst), "src": xp.ascontiguousarray(src), "mask": mask, "alpha": alpha}


def ellipse_workload(dev: Device, batch: int, size: int, ndim: int = 2, seed: int = 0, dtype=np.float32) -> dict:
    """The device workload's images with ellipse masks made on the device from
    ``sample_patches(batch, spatial, shape="ellipse", seed=seed)`` (alpha: the patches')."""
    from pii_augment import sample_patches
    from pii_augment.ops import patch_masks

    wl = device_workload(dev, batch, size, ndim, seed=seed, dtype=dtype)
    p = sample_patches(batch, (size,) * ndim, shape="ellipse", seed=seed)
    wl["mask"] = patch_masks(p, like=wl["dst"], backend=dev.name)
    wl["alpha"] = p.alpha
    return wl


# ------------------------------------------------------------------------------------------------
# exact reference
# ------------------------------------------------------------------------------------------------


def exact_pii(dst: np.ndarray, src: np.ndarray, mask: np.ndarray, alpha: float) -> np.ndarray:
    """The PII blend of one single-channel sample by a sparse direct solve in float64 (scipy),
    for any mask whose pixels have all their axis neighbours inside the image: ``2 d f_p - sum of
    the unknown neighbours = sum_q v_pq + sum of the known neighbours' dst`` (v: the PII guidance,
    ``(1 - alpha)(dst_p - dst_q)`` if larger in magnitude than ``alpha (src_p - src_q)``, else the
    latter), clipped to dst's range as the original. Returns float64."""
    import scipy.sparse as sp
    import scipy.sparse.linalg as spla

    d = np.asarray(dst, np.float64)
    s = np.asarray(src, np.float64)
    m = np.asarray(mask, bool)
    edge = np.zeros_like(m)
    for a in range(m.ndim):
        sl = [slice(None)] * m.ndim
        sl[a] = [0, -1]
        edge[tuple(sl)] = True
    if (m & edge).any():
        raise ValueError("exact_pii needs a mask off the image edge")
    n = int(m.sum())
    if n == 0:
        return d.copy()
    index = np.full(m.shape, -1, np.int64)
    index[m] = np.arange(n)
    rhs = np.zeros(n)
    rows, cols = [], []
    for axis in range(m.ndim):
        for step in (1, -1):
            dq = np.roll(d, -step, axis=axis)  # dq[p] = d[p + step e_axis]
            sq = np.roll(s, -step, axis=axis)
            a = (1.0 - alpha) * (d - dq)
            b = alpha * (s - sq)
            rhs += np.where(np.abs(a) > np.abs(b), a, b)[m]
            q = np.roll(index, -step, axis=axis)[m]
            unknown = q >= 0
            rows.append(np.flatnonzero(unknown))
            cols.append(q[unknown])
            rhs[~unknown] += dq[m][~unknown]
    r, c = np.concatenate(rows), np.concatenate(cols)
    A = sp.csc_matrix((np.full(r.size, -1.0), (r, c)), shape=(n, n)) + sp.identity(n, format="csc") * (2.0 * m.ndim)
    out = d.copy()
    out[m] = spla.spsolve(A.tocsc(), rhs)
    return np.clip(out, d.min(), d.max())


# ------------------------------------------------------------------------------------------------
# 1. environment
# ------------------------------------------------------------------------------------------------


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "installed"))
    except Exception as e:  # noqa: BLE001 - informational
        return f"not available ({type(e).__name__}: {e})"


def probe_gpu() -> dict:
    """Whether cupy sees a CUDA device, and what it is (no traceback when it does not)."""
    info: dict[str, Any] = {"gpu": False}
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import cupy
    except Exception as e:  # noqa: BLE001
        info["error"] = f"cupy is not importable: {type(e).__name__}: {e}"
        return info
    info["cupy"] = cupy.__version__
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # noqa: BLE001 - CUDARuntimeError without a driver / device
        info["error"] = f"no CUDA device visible to cupy: {type(e).__name__}: {e}"
        return info
    if n < 1:
        info["error"] = "no CUDA device visible to cupy (device count 0)"
        return info
    rt = cupy.cuda.runtime
    dev = rt.getDevice()
    props = rt.getDeviceProperties(dev)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    info.update(gpu=True, devices=n, name=name, sm=f"sm_{props['major']}{props['minor']}",
                multiprocessors=int(props["multiProcessorCount"]), memory_gib=props["totalGlobalMem"] / 2**30,
                driver=rt.driverGetVersion(), runtime=rt.runtimeGetVersion())
    try:
        info["nvrtc"] = ".".join(map(str, cupy.cuda.nvrtc.getVersion()))
    except Exception as e:  # noqa: BLE001
        info["nvrtc"] = f"n/a ({e})"
    try:
        attr = getattr(rt, "cudaDevAttrMaxSharedMemoryPerBlockOptin", 97)
        info["smem_optin_bytes"] = int(rt.deviceGetAttribute(attr, dev))
    except Exception as e:  # noqa: BLE001
        info["smem_optin_bytes"] = f"n/a ({e})"
    return info


def stage_environment(rep: Report, gpu: dict) -> dict:
    import numba

    rows = []
    if gpu.get("gpu"):
        rows += [
            ["GPU", f"{gpu['name']} ({gpu['sm']}, {gpu['multiprocessors']} SMs, {gpu['memory_gib']:.0f} GiB; "
                    f"{gpu['devices']} device(s) visible)"],
            ["CUDA driver / runtime", f"{gpu['driver']} / {gpu['runtime']}"],
            ["NVRTC", str(gpu["nvrtc"])],
            ["opt-in shared memory per block", f"{gpu['smem_optin_bytes']} bytes"
             + (f" ({gpu['smem_optin_bytes'] / 1024:.0f} KiB)" if isinstance(gpu["smem_optin_bytes"], int) else "")],
        ]
    else:
        rows.append(["GPU", f"**none**: {gpu.get('error')}"])
    torch_line = _version("torch")
    try:
        import torch

        torch_line = (f"{torch.__version__} (CUDA build {torch.version.cuda}, cuda available: "
                      f"{torch.cuda.is_available()})")
    except Exception:  # noqa: BLE001
        pass
    rows += [
        ["cupy", gpu.get("cupy", _version("cupy"))],
        ["numpy / scipy", f"{np.__version__} / {_version('scipy')}"],
        ["numba", f"{numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads)"],
        ["torch", torch_line],
        ["pie-torch (optional)", _version("pietorch")],
        ["python / host", f"{platform.python_version()} / {platform.machine()}, {os.cpu_count()} CPU cores"],
    ]
    rep.table(["item", "value"], rows)
    env = dict(gpu)
    env.update(numpy=np.__version__, numba=numba.__version__, numba_threads=numba.config.NUMBA_NUM_THREADS,
               torch=torch_line, python=platform.python_version(), cpu_count=os.cpu_count())
    rep.record("environment", env)
    return env


# ------------------------------------------------------------------------------------------------
# 2. compile
# ------------------------------------------------------------------------------------------------


def stage_compile(rep: Report, dev: Device) -> dict:
    from pii_augment.ops.backends.sources import kernel_names

    out = {}
    rows = []
    for ctype in ("float", "double"):
        t = time.perf_counter()
        dev.bk.module(ctype)
        out[ctype] = time.perf_counter() - t
        rows.append([ctype, f"{out[ctype]:.2f} s", str(len(kernel_names()))])
    rep.table(["module", "NVRTC compile + load", "kernels"], rows)
    rep.add("cupy keeps compiled binaries on disk (`~/.cupy/kernel_cache`): a second run on the same "
            "machine loads them instead.\n")
    rep.record("compile_s", out)
    return out


# ------------------------------------------------------------------------------------------------
# 3a. kernel parity
# ------------------------------------------------------------------------------------------------


def compare_outputs(h: list, d: list, dev: Device) -> tuple[float, bool]:
    """Max relative difference (to each array's largest magnitude) and bit-identity of the array
    arguments after a call on the host (``h``) and on the device (``d``)."""
    diff, same = 0.0, True
    for x, y in zip(h, d):
        if not isinstance(x, np.ndarray):
            continue
        y = dev.asnumpy(y)
        eq = bool(np.array_equal(x, y, equal_nan=x.dtype.kind == "f"))
        same &= eq
        if x.dtype.kind == "f":
            scale = max(float(np.abs(x).max()), 1e-300) if x.size else 1.0
            diff = max(diff, float(np.abs(x.astype(np.float64) - y).max()) / scale if x.size else 0.0)
        elif not eq:
            diff = float("inf")
    return diff, same


def stage_kernel_parity(rep: Report, dev: Device, quick: bool = False) -> bool:
    from pii_augment.ops.backends.host import NumbaBackend
    from pii_augment.ops.backends.parity import primitive_calls

    nb = NumbaBackend()
    worst: dict[tuple[str, str], list] = {}
    seeds = range(1) if quick else range(3)
    for dtype in (np.float32, np.float64):
        for ndim in (2, 3):
            for seed in seeds:
                for name, args in primitive_calls(seed, ndim, dtype, max_side=26):  # the tests' calls
                    h = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
                    d = [dev.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
                    getattr(nb, name)(*h)
                    getattr(dev.bk, name)(*d)
                    diff, same = compare_outputs(h, d, dev)
                    acc = worst.setdefault((name, np.dtype(dtype).name), [0.0, True, 0])
                    acc[0] = max(acc[0], diff)
                    acc[1] &= same
                    acc[2] += 1
    rows, ok, figures = [], True, []
    for (name, dt), (diff, same, n) in worst.items():
        if same:
            verdict = "ok"
        elif name == "dot_unknowns" and diff <= 1e-12:
            verdict = "ok (float64 summation order)"
        else:
            verdict = "**FAIL**"
            ok = False
        rows.append([name, dt, str(n), fmt(diff), "yes" if same else "no", verdict])
        figures.append({"kernel": name, "dtype": dt, "calls": n, "max_rel_diff": diff, "bit_identical": same,
                        "ok": verdict != "**FAIL**"})
    rep.table(["kernel", "dtype", "calls", "max rel diff", "bit-identical", "verdict"], rows)
    rep.add(f"{dev.name} vs Numba on seeded random crops (2D and 3D, seeds {list(seeds)}); every kernel is "
            "expected bit-identical (the kernels compute in the Numba twins' order and NVRTC compiles "
            "with `--fmad=false`), `dot_unknowns` to float64 summation order (<= 1e-12).\n")
    rep.record("kernel_parity", {"ok": ok, "rows": figures})
    return ok


# ------------------------------------------------------------------------------------------------
# 3b. device path through the public API
# ------------------------------------------------------------------------------------------------


def _range(x: np.ndarray) -> np.ndarray:
    """Per-sample range of a (B, ...) array (at least a tiny positive number)."""
    r = np.ptp(x.reshape(x.shape[0], -1).astype(np.float64), axis=1)
    return np.maximum(r, 1e-30)


def solve_parity_case(dev: Device, shape: str, ndim: int, size: int, batch: int, dtype, n_exact: int) -> dict:
    """One poisson_interpolate parity case: device vs Numba vs the exact solve."""
    import pii_augment as pa

    import gpu_model

    if shape == "box":
        wl = device_workload(dev, batch, size, ndim, seed=1, pool=4, dtype=dtype)
    else:
        wl = ellipse_workload(dev, batch, size, ndim, seed=1, dtype=dtype)
    with gpu_model.one_host_thread():  # the emulation then launches as the GPU (no effect on cupy)
        out_d, info = pa.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"], backend=dev.name,
                                             return_info=True)
    dst, src, mask = (dev.asnumpy(wl[k]) for k in ("dst", "src", "mask"))
    out_n, info_n = pa.poisson_interpolate(dst, src, mask, wl["alpha"], backend="numba", return_info=True)
    g = dev.asnumpy(out_d)
    rng_ = _range(dst)
    d_nb = float(max(np.abs(g[b].astype(np.float64) - out_n[b]).max() / rng_[b] for b in range(batch)))
    d_ex = 0.0
    for b in range(min(n_exact, batch)):
        ex = exact_pii(dst[b, 0], src[b, 0], mask[b], float(wl["alpha"][b]))
        d_ex = max(d_ex, float(np.abs(g[b, 0].astype(np.float64) - ex).max() / rng_[b]))
    outside = ~np.broadcast_to(mask[:, None], dst.shape)
    kept = bool(np.array_equal(g[outside], dst[outside]))
    f64_box = shape == "box" and np.dtype(dtype) == np.float64
    tol_ex = 1e-10 if f64_box else 1e-4
    tol_nb = 1e-10 if f64_box else (1e-5 if shape == "box" else 2e-4)
    path_ok = info.spectral_samples == batch if shape == "box" else True  # a tiny ellipse can be a box
    ok = d_ex <= tol_ex and d_nb <= tol_nb and kept and bool(info.converged.all()) and path_ok
    return {"case": f"{shape} {size}^{ndim} x {batch} {np.dtype(dtype).name}", "path": (
        f"exact box solve ({info.spectral_samples}/{batch})" if shape == "box" else
        f"multigrid for {batch - info.spectral_samples}/{batch} ({info.iterations} / {info_n.iterations} "
        f"iterations)"),
        "launches": info.launches, "syncs": info.syncs, "diff_numba": d_nb, "diff_exact": d_ex,
        "n_exact": min(n_exact, batch), "outside_kept": kept, "tol_exact": tol_ex, "tol_numba": tol_nb, "ok": ok,
        "_wl": wl, "_out": out_d}


def stage_device_parity(rep: Report, dev: Device, quick: bool = False) -> bool:
    """The device path through the public API, each case in its own try."""
    figures: dict[str, Any] = {"solves": [], "label_fpi": [], "patch_masks": []}
    ok, kept_cases = _parity_solves(rep, dev, quick, figures["solves"])
    ok &= _parity_label_fpi(rep, dev, kept_cases, figures["label_fpi"])
    ok &= _parity_patch_masks(rep, dev, figures["patch_masks"])
    figures["ok"] = ok
    rep.record("device_parity", figures)
    return ok


def _parity_solves(rep: Report, dev: Device, quick: bool, figures: list) -> tuple[bool, list]:
    """``poisson_interpolate`` on the device vs Numba vs the exact solve; (ok, the box and ellipse
    cases kept for the label and FPI checks)."""
    ok = True
    cases = [("box", 2, 96, 8), ("box", 3, 24, 4), ("ellipse", 2, 96, 8), ("ellipse", 3, 24, 4)]
    if quick:
        cases = [("box", 2, 24, 3), ("box", 3, 12, 2), ("ellipse", 2, 24, 3)]
    rows, kept_cases = [], []
    for shape, ndim, size, batch in cases:
        for dtype in (np.float32, np.float64):
            label = f"{shape} {size}^{ndim} x {batch} {np.dtype(dtype).name}"
            try:
                r = solve_parity_case(dev, shape, ndim, size, batch, dtype, n_exact=4 if ndim == 2 else 2)
            except Exception as e:
                ok = False
                rows.append([label, _row_error(e), "", "", "", "", "**FAIL**"])
                figures.append({"case": label, "ok": False, "error": str(e)})
                continue
            ok &= r["ok"]
            kept_cases.append((shape, ndim, dtype, r.pop("_wl"), r.pop("_out")))
            rows.append([r["case"], r["path"], f"{r['launches']} / {r['syncs']}", fmt(r["diff_numba"]),
                         f"{fmt(r['diff_exact'])} ({r['n_exact']} samples)", "yes" if r["outside_kept"] else "**no**",
                         "ok" if r["ok"] else "**FAIL**"])
            figures.append(r)
    rep.add("`poisson_interpolate` on the device vs Numba vs the exact sparse solve (float64, clipped as "
            "the original), differences as max |a - b| / (range of the sample's dst); bounds: exact 1e-4 "
            "(1e-10 for float64 boxes), Numba 1e-5 for float32 boxes (1e-10 float64), 2e-4 for multigrid.\n")
    rep.table(["case", "path (device / numba)", "launches / syncs", "max|dev-numba|/range",
               "max|dev-exact|/range", "outside kept", "verdict"], rows)
    return ok, kept_cases


def _parity_label_fpi(rep: Report, dev: Device, kept_cases: list, figures: list) -> bool:
    """``anomaly_label`` and ``foreign_patch_interpolate`` on the box cases: bitwise vs Numba."""
    import pii_augment as pa

    ok, rows = True, []
    for shape, ndim, dtype, wl, out_d in kept_cases:
        if shape != "box":
            continue
        label = f"{ndim}D {np.dtype(dtype).name}"
        try:
            dst, src, mask = (dev.asnumpy(wl[k]) for k in ("dst", "src", "mask"))
            out_h = dev.asnumpy(out_d)
            checks = {}
            for tol in (1e-3, None):
                a = pa.anomaly_label(wl["dst"], out_d, wl["mask"], wl["alpha"], tolerance=tol, backend=dev.name)
                b = pa.anomaly_label(dst, out_h, mask, wl["alpha"], tolerance=tol, backend="numba")
                checks[f"anomaly_label(tolerance={tol})"] = bool(np.array_equal(dev.asnumpy(a), b))
            a = pa.foreign_patch_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"], backend=dev.name)
            b = pa.foreign_patch_interpolate(dst, src, mask, wl["alpha"], backend="numba")
            checks["foreign_patch_interpolate"] = bool(np.array_equal(dev.asnumpy(a), b))
        except Exception as e:
            ok = False
            rows.append([label, "", _row_error(e), "**FAIL**"])
            continue
        for what, same in checks.items():
            ok &= same
            rows.append([label, what, "yes" if same else "**no**", "ok" if same else "**FAIL**"])
            figures.append({"case": label, "what": what, "bitwise": same})
    rep.add(f"`anomaly_label` and `foreign_patch_interpolate`, {dev.name} vs Numba (bitwise expected):\n")
    rep.table(["case", "function", "bitwise equal", "verdict"], rows)
    return ok


def _parity_patch_masks(rep: Report, dev: Device, figures: list) -> bool:
    """``patch_masks`` on the device vs ``PatchParams.masks()``, every shape: bitwise."""
    import pii_augment as pa
    from pii_augment.ops import patch_masks

    ok, rows = True, []
    for spatial in ((31, 40), (9, 12, 14)):
        for shape in pa.SHAPES:
            label = f"{shape} {spatial}"
            try:
                p = pa.sample_patches(16, spatial, shape=shape, seed=4, border=1 if shape != "rectangle" else 0)
                apply = np.random.default_rng(0).random(16) < 0.7
                host = p.masks()
                host[~apply] = False
                got = patch_masks(p, like=dev.asarray(np.zeros(1, np.float32)), apply=apply, backend=dev.name)
                same = bool(np.array_equal(dev.asnumpy(got), host))
            except Exception as e:
                ok = False
                rows.append([label, _row_error(e), "**FAIL**"])
                continue
            ok &= same
            rows.append([label, "yes" if same else "**no**", "ok" if same else "**FAIL**"])
            figures.append({"case": label, "bitwise": same})
    rep.add(f"`pii_augment.ops.patch_masks` on {dev.name} vs `PatchParams.masks()` (bitwise expected; blobs "
            "are made on the host and copied):\n")
    rep.table(["shape, spatial", "bitwise equal", "verdict"], rows)
    return ok


# ------------------------------------------------------------------------------------------------
# 4. torch
# ------------------------------------------------------------------------------------------------


@dataclass
class _TorchCase:
    """What the torch checks share: cupy, the workload on the device, torch's device, CUDA tensor
    copies of dst, src and mask, the Numba result and the error bound."""

    cp: Any
    wl: dict
    tdev: Any
    td: Any
    ts: Any
    tm: Any
    ref: np.ndarray
    bound: float


def _torch_case(dev: Device, quick: bool) -> _TorchCase:
    import torch

    import pii_augment as pa

    size, batch = (32, 4) if quick else (128, 16)
    wl = device_workload(dev, batch, size, 2, seed=3, pool=4)
    tdev = torch.device("cuda", dev.xp.cuda.runtime.getDevice())
    td, ts, tm = (torch.from_dlpack(wl[k]).clone() for k in ("dst", "src", "mask"))
    host = {k: dev.asnumpy(wl[k]) for k in ("dst", "src", "mask")}
    ref = pa.poisson_interpolate(host["dst"], host["src"], host["mask"], wl["alpha"], backend="numba")
    return _TorchCase(dev.xp, wl, tdev, td, ts, tm, ref, 2e-4 * float(_range(host["dst"]).min()))


def _torch_zero_copy(c: _TorchCase) -> tuple[bool, str]:
    """CUDA tensors in and out of ``poisson_interpolate`` without a copy, inputs untouched."""
    import torch

    import pii_augment as pa
    from pii_augment import _arrays
    from pii_augment.ops import blend

    seen: dict[str, Any] = {}
    real = blend.from_backend_array

    def spy(x, kind):
        seen["x"] = x
        seen["stream"] = c.cp.cuda.get_current_stream().ptr
        return real(x, kind)

    inner = _arrays.to_backend_array(c.td, "dst")
    in_ok = int(inner.data.ptr) == c.td.data_ptr()
    keep = c.td.clone(), c.ts.clone(), c.tm.clone()
    blend.from_backend_array = spy
    try:
        out = pa.poisson_interpolate(c.td, c.ts, c.tm, torch.from_numpy(c.wl["alpha"]))
    finally:
        blend.from_backend_array = real
    out_ok = isinstance(out, torch.Tensor) and out.device == c.tdev and out.dtype == torch.float32 \
        and int(seen["x"].data.ptr) == out.data_ptr()
    untouched = all(torch.equal(a, b) for a, b in zip((c.td, c.ts, c.tm), keep))
    err = float(np.abs(out.cpu().numpy() - c.ref).max())
    good = in_ok and out_ok and untouched and err <= c.bound
    return good, (f"input shares memory: {in_ok}; result's data_ptr is the cupy result's: {out_ok}; inputs "
                  f"untouched: {untouched}; max|out - numba| = {fmt(err)} (bound {fmt(c.bound)})")


def _torch_on_stream(c: _TorchCase) -> tuple[bool, str]:
    """The call runs on torch's current (non-default) stream, ordered after late input."""
    import torch

    import pii_augment as pa
    from pii_augment.ops import blend
    from pii_augment.ops.backends.device import torch_stream

    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        with torch_stream() as cs:
            same_ptr = cs.ptr == s.cuda_stream
    seen: dict[str, Any] = {}
    real = blend.from_backend_array

    def spy(x, kind):
        seen["stream"] = c.cp.cuda.get_current_stream().ptr
        return real(x, kind)

    torch.cuda.synchronize()
    slept = hasattr(torch.cuda, "_sleep")
    blend.from_backend_array = spy
    try:
        with torch.cuda.stream(s):
            if slept:
                torch.cuda._sleep(200_000_000)  # keeps stream s busy ~0.1 s: the input is late
            else:  # a chain of kernels on s does the same, less surely
                x = torch.randn(2048, 2048, device=c.tdev)
                for _ in range(20):
                    x = x @ x / 2048
            d_late = c.td * 1.0  # produced on s, after the sleep
            out = pa.poisson_interpolate(d_late, c.ts, c.tm, torch.from_numpy(c.wl["alpha"]))
            res = out.clone()  # consumed on s
        host_res = res.cpu()  # the first synchronisation of the host with s
    finally:
        blend.from_backend_array = real
    err = float(np.abs(host_res.numpy() - c.ref).max())
    on_s = seen.get("stream") == s.cuda_stream
    good = same_ptr and on_s and err <= c.bound
    return good, (f"torch_stream() is torch's stream: {same_ptr}; the call ran on it: {on_s}; input late "
                  f"by {'torch.cuda._sleep' if slept else 'a matmul chain'}: max|out - numba| = {fmt(err)} "
                  f"(bound {fmt(c.bound)})")


def _torch_modules(c: _TorchCase, cls_name: str) -> tuple[bool, str]:
    """The torch module ``cls_name`` on CUDA against the same module on the CPU."""
    import torch

    import pii_augment as pa

    cls = getattr(pa, cls_name)
    x = torch.from_dlpack(c.wl["dst"]).clone()
    out_g, lab_g = cls(seed=0)(x)
    out_c, lab_c = cls(seed=0)(x.cpu())
    on_dev = out_g.device == c.tdev and lab_g.device == c.tdev
    out_g, lab_g = out_g.cpu(), lab_g.cpu()
    if cls_name == "ForeignPatchInterpolation":
        same = torch.equal(out_g, out_c) and torch.equal(lab_g, lab_c)
        return on_dev and same, f"on CUDA: {on_dev}; output and label bitwise equal to CPU: {same}"
    rng_ = float(x.max() - x.min())
    err = float((out_g - out_c).abs().max())
    flips = int(((lab_g > 0) != (lab_c > 0)).sum())
    good = on_dev and err <= 1e-5 * rng_ and flips <= lab_g.numel() * 1e-5
    return good, (f"on CUDA: {on_dev}; max|cuda - cpu| = {fmt(err)} ({fmt(err / rng_)} of the range, bound "
                  f"1e-5); label pixels differing: {flips} of {lab_g.numel()} (a pixel at a quantisation "
                  f"step can flip)")


def stage_torch(rep: Report, dev: Device, quick: bool = False) -> bool:
    """CUDA torch tensors through the functional API and the modules."""
    c = _torch_case(dev, quick)
    ok = True
    rows: list[list] = []
    figures: list[dict] = []
    checks = [
        ("zero-copy in and out (poisson_interpolate on CUDA tensors)", lambda: _torch_zero_copy(c)),
        ("runs on torch's current stream (non-default stream, no sync in between)", lambda: _torch_on_stream(c)),
        ("PoissonImageInterpolation(seed=0): CUDA vs CPU", lambda: _torch_modules(c, "PoissonImageInterpolation")),
        ("ForeignPatchInterpolation(seed=0): CUDA vs CPU", lambda: _torch_modules(c, "ForeignPatchInterpolation")),
    ]
    for name, fn in checks:
        try:
            good, detail = fn()
        except Exception as e:
            good, detail = False, _row_error(e)
        ok &= good
        rows.append([name, detail, "ok" if good else "**FAIL**"])
        figures.append({"check": name, "ok": good, "detail": detail})
    rep.table(["check", "detail", "verdict"], rows)
    rep.record("torch", {"ok": ok, "rows": figures})
    return ok


# ------------------------------------------------------------------------------------------------
# 5. timings
# ------------------------------------------------------------------------------------------------

TIMING_ROWS = [("boxes", 2, 256, 64), ("boxes", 2, 256, 1024), ("boxes", 2, 256, 4096),
               ("boxes", 2, 512, 64), ("boxes", 2, 512, 1024), ("boxes", 2, 512, 4096),
               ("boxes", 3, 64, 64), ("boxes", 3, 64, 512),
               ("module", 2, 256, 64), ("module", 2, 256, 4096),
               ("ellipse", 2, 256, 64), ("ellipse", 2, 256, 1024)]
QUICK_TIMING_ROWS = [("boxes", 2, 64, 16), ("boxes", 3, 16, 8), ("module", 2, 64, 8), ("ellipse", 2, 64, 8)]


def timing_call(dev: Device, kind: str, ndim: int, size: int, batch: int):
    """(fn, info_fn) of one timing row: ``fn()`` makes the call; workloads built on the device."""
    import pii_augment as pa

    if kind == "module":
        import torch

        wl = device_workload(dev, batch, size, ndim)
        x = torch.from_dlpack(wl["dst"]) if dev.on_gpu else torch.from_numpy(wl["dst"])
        aug = pa.PoissonImageInterpolation(seed=0, backend="auto" if dev.on_gpu else dev.name)
        return (lambda: aug(x)), wl
    wl = device_workload(dev, batch, size, ndim) if kind == "boxes" else ellipse_workload(dev, batch, size, ndim)
    args = (wl["dst"], wl["src"], wl["mask"], wl["alpha"])
    return (lambda: pa.poisson_interpolate(*args, backend=dev.name, return_info=True)), wl


def time_row(dev: Device, kind: str, ndim: int, size: int, batch: int) -> dict:
    import gpu_model

    fn, wl = timing_call(dev, kind, ndim, size, batch)
    # warm-up, counted: the backend's counters and the launches (for the flops) of one call
    res, counts, _, rec = gpu_model.measure(dev.bk, fn, ndim)
    info = res[1] if kind != "module" else None
    dev.synchronize()
    times = dev.time_calls(fn)
    t = float(np.median(times))
    model = gpu_model.model_time(counts)
    item = wl["dst"].dtype.itemsize
    elems = int(np.prod(wl["dst"].shape[1:]))
    floor = gpu_model.floor_time(batch, elems, item)
    del wl
    # the call's launches / syncs / H2D bytes: its SolveInfo (poisson_interpolate), else the counters
    src = info if info is not None else counts
    return {
        "kind": kind, "ndim": ndim, "size": size, "batch": batch, "t_s": t, "times_s": times,
        "samples_per_s": batch / t, "launches": src.launches, "syncs": src.syncs, "h2d_bytes": src.h2d_bytes,
        "counters": {"launches": counts.launches, "syncs": counts.syncs, "h2d_bytes": counts.h2d_bytes},
        "bytes": counts.bytes, "flops": counts.flops,
        "info": None if info is None else {"launches": info.launches, "syncs": info.syncs,
                                           "h2d_bytes": info.h2d_bytes, "iterations": info.iterations,
                                           "spectral_samples": info.spectral_samples},
        "bandwidth": counts.bytes / t, "model_s": model["total"], "model_dominant": model["dominant"],
        "ratio_to_model": t / model["total"], "floor_s": floor, "ratio_to_floor": t / floor,
        "kernels": rec.kernels(),
    }


def stage_timings(rep: Report, dev: Device, budget: Budget, quick: bool = False) -> dict:
    rows_spec = QUICK_TIMING_ROWS if quick else TIMING_ROWS
    table, results = [], {}
    header = ["workload", "batch", "ms / call", "samples/s", "launches", "syncs", "H2D B", "device MB",
              "TB/s (% of 4.8)", "model ms", "measured / model", "x floor"]
    for kind, ndim, size, batch in rows_spec:
        label = f"{kind} {size}^{ndim}"
        if budget.over():
            table.append([label, str(batch), "skipped (time budget)"] + [""] * (len(header) - 3))
            results[f"{kind} {size}^{ndim} x {batch}"] = {"skipped": "time budget"}
            continue
        try:
            r = time_row(dev, kind, ndim, size, batch)
        except Exception as e:
            table.append([label, str(batch), _row_error(e)] + [""] * (len(header) - 3))
            results[f"{kind} {size}^{ndim} x {batch}"] = {"error": str(e)}
            dev.free()
            continue
        dev.free()
        results[f"{kind} {size}^{ndim} x {batch}"] = r
        bw = r["bandwidth"]
        table.append([label, str(batch), f"{r['t_s'] * 1e3:.3g}", fmt(r["samples_per_s"]), str(r["launches"]),
                      str(r["syncs"]), str(r["h2d_bytes"]), fmt(r["bytes"] / 1e6),
                      f"{bw / 1e12:.2f} ({100 * bw / H200_BANDWIDTH:.0f}%)", f"{r['model_s'] * 1e3:.3g}",
                      fmt(r["ratio_to_model"]), fmt(r["ratio_to_floor"])])
        rep.record("timings", results)
    rep.table(header, table)
    rep.add(f"{'CUDA events' if dev.on_gpu else 'wall clock (emulated: the CPU, not a GPU)'} around the whole "
            "call, median of >= 3 calls after a counted warm-up call. launches / syncs / H2D B: that call's, "
            "from the backend (`SolveInfo` of `poisson_interpolate`; the module rows: the backend's counters "
            "over the whole module call, which do not include the modules' own `torch.isfinite` check). "
            "device MB: the backend's traffic model (every array argument of a launch once, the box solve "
            "5 x itemsize x its cells); TB/s = device MB / time. model: `benchmarks/gpu_model.py` "
            "(launches x 5 us + syncs x 15 us + max(bytes / 3.5 TB/s, flops / 30 TFLOP/s)) from this run's "
            "counts; x floor: measured / (3 x N x itemsize a sample at 3.5 TB/s + 1 launch + 1 sync).\n")
    rep.record("timings", results)
    return results


def stage_pietorch(rep: Report, dev: Device, quick: bool = False) -> None:
    """Optional: pie-torch's GPU blend (one sample per call), when pie-torch is installed."""
    try:
        import pietorch
        import torch
    except ImportError as e:
        rep.add(f"not run: {e}\n")
        return
    if not torch.cuda.is_available():
        rep.add("not run: torch has no CUDA\n")
        return
    n, size = (4, 64) if quick else (32, 256)
    wl = device_workload(dev, n, size, 2)
    dst, src = torch.from_dlpack(wl["dst"]), torch.from_dlpack(wl["src"])
    masks = dev.asnumpy(wl["mask"])

    def one(b):
        ys, xs = np.nonzero(masks[b])
        y0, y1, x0, x1 = ys.min() - 1, ys.max() + 2, xs.min() - 1, xs.max() + 2
        source = src[b, 0, y0:y1, x0:x1]
        corner = torch.tensor([y0, x0], device=source.device)
        return pietorch.blend(dst[b, 0], source, torch.ones_like(source), corner, False)

    one(0)
    torch.cuda.synchronize()
    t = time.perf_counter()
    for b in range(n):
        one(b)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    rep.add(f"pie-torch `blend` (GPU), {n} samples of {size}^2 one per call: {dt * 1e3:.1f} ms, "
            f"{fmt(n / dt)} samples/s (not the PII equation: no alpha).\n")
    rep.record("pietorch", {"samples": n, "size": size, "seconds": dt, "samples_per_s": n / dt})


# ------------------------------------------------------------------------------------------------
# 6. Numba
# ------------------------------------------------------------------------------------------------

NUMBA_ROWS = [(2, 256, 64), (2, 512, 64), (3, 64, 64)]
QUICK_NUMBA_ROWS = [(2, 64, 16)]


def stage_numba(rep: Report, dev: Device, timings: dict, budget: Budget, quick: bool = False) -> dict:
    import numba

    import pii_augment as pa

    rows, ratios = [], {}
    for ndim, size, batch in (QUICK_NUMBA_ROWS if quick else NUMBA_ROWS):
        label = f"boxes {size}^{ndim} x {batch}"
        if budget.over():
            rows.append([label, "skipped (time budget)", "", "", ""])
            continue
        try:
            wl = device_workload(dev, batch, size, ndim)
            host = {k: (dev.asnumpy(v) if k != "alpha" else v) for k, v in wl.items()}
            del wl
            dev.free()
            args = (host["dst"], host["src"], host["mask"], host["alpha"])
            t0 = time.perf_counter()
            pa.poisson_interpolate(*args, backend="numba")  # warm-up (JIT on a fresh machine)
            first = time.perf_counter() - t0
            times = []
            for _ in range(3):
                t = time.perf_counter()
                pa.poisson_interpolate(*args, backend="numba")
                times.append(time.perf_counter() - t)
            t = float(np.median(times))
        except Exception as e:
            rows.append([label, _row_error(e), "", "", ""])
            continue
        sps = batch / t
        dev_row = timings.get(f"boxes {size}^{ndim} x {batch}", {}) if timings else {}
        dev_sps = dev_row.get("samples_per_s", float("nan"))
        ratio = dev_sps / sps
        ratios[label] = {"numba_samples_per_s": sps, "device_samples_per_s": dev_sps, "ratio": ratio,
                         "first_call_s": first, "times_s": times}
        rows.append([label, fmt(sps), f"{first:.1f} s", fmt(dev_sps), fmt(ratio)])
        rep.record("numba", ratios)
    rep.table(["workload", f"numba samples/s ({numba.config.NUMBA_NUM_THREADS} threads)", "first call (JIT)",
               f"{dev.name} samples/s (same row)", f"{dev.name} / numba"], rows)
    rep.add("Numba: median of 3 calls after a warm-up, on host copies of the same device workloads.\n")
    rep.record("numba", ratios)
    return ratios


# ------------------------------------------------------------------------------------------------
# summary and main
# ------------------------------------------------------------------------------------------------


def summary(rep: Report, parity: dict[str, bool | None], timings: dict | None, ratios: dict | None,
            device: str) -> bool:
    stages = rep.data["stages"]
    failed = [k for k, v in stages.items() if v.get("status") == "error"]
    parity_ok = all(v is True for v in parity.values()) and bool(parity)
    rows = []
    for name, v in parity.items():
        rows.append([f"parity: {name}", "ok" if v else ("**FAIL**" if v is False else "not run"), "ok",
                     "ok" if v else "**FAIL**"])
    sps = (timings or {}).get("boxes 256^2 x 4096", {}).get("samples_per_s")
    rows.append([f"samples/s, boxes 256^2 x 4096 ({device})", fmt(sps), f">= {TARGET_SAMPLES_PER_S:,.0f} (the "
                 "issue's modelled target)", "n/a" if sps is None else ("ok" if sps >= TARGET_SAMPLES_PER_S
                                                                        else "**below**")])
    r = (ratios or {}).get("boxes 256^2 x 64", {}).get("ratio")
    rows.append([f"{device} / numba, boxes 256^2 x 64", fmt(r), f">= {TARGET_RATIO:g}",
                 "n/a" if r is None or r != r else ("ok" if r >= TARGET_RATIO else "**below**")])
    numba_64 = (ratios or {}).get("boxes 256^2 x 64", {}).get("numba_samples_per_s")
    if sps is not None and numba_64:
        rows.append([f"{device} at 4096 / numba at 64, boxes 256^2", fmt(sps / numba_64), "(throughput ratio)", ""])
    rows.append(["stages failed", ", ".join(failed) or "none", "none", "ok" if not failed else "**FAIL**"])
    rep.table(["check", "result", "target", "verdict"], rows)
    ok = parity_ok and not failed
    rep.record("summary", {"parity": parity, "parity_ok": parity_ok, "samples_per_s_256x4096": sps,
                           "ratio_numba_256x64": r, "stages_failed": failed, "ok": ok})
    return ok


STAGES = [("environment", "1. Environment"), ("compile", "2. Compile (NVRTC)"),
          ("kernel_parity", "3a. Kernel parity: device vs Numba twins"),
          ("device_parity", "3b. Device path parity (public API)"), ("torch", "4. Torch (CUDA tensors)"),
          ("timings", "5. Timings"), ("pietorch", "5b. pie-torch GPU (optional)"),
          ("numba", "6. Numba on this machine's CPU cores"), ("summary", "Summary")]
TITLES = dict(STAGES)


def _arguments(argv) -> argparse.Namespace:
    """The command line of :func:`main`."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="gpu_check_out",
                    help="folder for gpu_check.md and gpu_check.json (rewritten after each section)")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="seconds from the start (compile and JIT included) after which stages and timing rows "
                         "are skipped (default 420)")
    ap.add_argument("--quick", action="store_true", help="tiny cases only (a smoke run)")
    ap.add_argument("--emulate", action="store_true",
                    help="no GPU: run the parity, timing and Numba stages on backend='cuda-emulated' (a check of "
                         "this script, not of a GPU; the timing and Numba stages then use the --quick rows)")
    return ap.parse_args(argv)


def _torch_cuda(dev: Device) -> bool:
    """A torch with CUDA next to the cupy backend (the torch stage needs both)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(dev.on_gpu and torch.cuda.is_available())


def main(argv=None) -> int:
    a = _arguments(argv)
    budget = Budget(a.budget)
    rep = Report(a.out)
    rep.add("# pii_augment GPU check\n")
    rep.add(f"`python benchmarks/gpu_check.py {' '.join(sys.argv[1:] if argv is None else argv)}`; started "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}, budget {a.budget:.0f} s.\n")
    rep.record("args", vars(a))
    gpu = probe_gpu()
    run_stage(rep, budget, "environment", TITLES["environment"], lambda: stage_environment(rep, gpu))
    if not gpu.get("gpu") and not a.emulate:
        rep.add(f"**No GPU is visible** ({gpu.get('error')}): nothing else was run. (`--emulate` checks this "
                "script on the emulated CUDA backend instead.)\n")
        for key, title in STAGES[1:-1]:
            rep.data["stages"][key] = {"status": "skipped", "reason": "no GPU"}
        rep.record("summary", {"ok": False, "reason": "no GPU visible", "error": gpu.get("error")})
        return 2
    name = "cupy" if gpu.get("gpu") and not a.emulate else "cuda-emulated"
    dev = run_stage(rep, budget, "device", f"Device path under check: {name}", lambda: Device(name))
    if dev is None:
        rep.record("summary", {"ok": False, "reason": "the device backend could not be created"})
        return 1
    rep.add(f"backend `{dev.bk.name}` ({type(dev.bk).__name__}), shared memory limit per block "
            f"{dev.bk.shared_limit()} bytes.\n")
    if dev.on_gpu:
        run_stage(rep, budget, "compile", TITLES["compile"], lambda: stage_compile(rep, dev))
    else:
        skip_stage(rep, "compile", TITLES["compile"], "emulated backend (g++, no NVRTC)")
    parity: dict[str, bool | None] = {}
    parity["kernels"] = run_stage(rep, budget, "kernel_parity", TITLES["kernel_parity"],
                                  lambda: stage_kernel_parity(rep, dev, a.quick))
    parity["device path"] = run_stage(rep, budget, "device_parity", TITLES["device_parity"],
                                      lambda: stage_device_parity(rep, dev, a.quick))
    if _torch_cuda(dev):
        parity["torch"] = run_stage(rep, budget, "torch", TITLES["torch"], lambda: stage_torch(rep, dev, a.quick))
    else:
        skip_stage(rep, "torch", TITLES["torch"], "needs torch with CUDA and the cupy backend")
    small = a.quick or not dev.on_gpu  # the emulation times the tiny rows only (full size takes hours)
    timings = run_stage(rep, budget, "timings", TITLES["timings"], lambda: stage_timings(rep, dev, budget, small))
    if dev.on_gpu:
        run_stage(rep, budget, "pietorch", TITLES["pietorch"], lambda: stage_pietorch(rep, dev, a.quick),
                  optional=True)
    ratios = run_stage(rep, budget, "numba", TITLES["numba"],
                       lambda: stage_numba(rep, dev, timings or {}, budget, small))
    rep.section(TITLES["summary"])
    ok = summary(rep, parity, timings, ratios, dev.name)
    rep.add(f"Total run time {budget.elapsed():.0f} s.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
