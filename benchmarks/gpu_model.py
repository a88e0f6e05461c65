"""A model of the H200 for the device path, for when no GPU is at hand.

Every row runs its workload for real on the emulated CUDA backend (``backend="cuda-emulated"``:
the ``kernels/*.cu`` sources compiled with g++) and reads what the call did from the backend's
counters (``CudaKernelBackend.counts()``): kernel launches (RawModule kernels plus the memsets,
copies and gathers the backend routes), host synchronisations (reads of device memory),
host-to-device bytes, and ``bytes``, the backend's per-kernel model of device-memory traffic
(every array argument once per launch; the box solve 5 * itemsize * the cells of its boxes). The
emulation runs with ONE host thread (``PII_AUGMENT_NUM_THREADS=1``), so that the driver makes
exactly the launches and synchronisations of the GPU: with more threads it splits the multigrid
batch into chunks, each with its own launches.

The floating-point work is counted from the algorithm and the launches the call made (a
recorder wraps the backend's launch calls and its ``report``):

- box solve (``box_solve``), per system whose box it solved (read from the call's report):
  forward and inverse type-I sine transforms along every axis of the ``P x M x N`` box; the
  transform along an axis of ``n`` cells costs ``vol * n`` multiply-adds, so the ``2 * ndim``
  transforms cost ``2 * vol * (sum of the transformed sides)`` multiply-adds =
  ``4 * vol * sum(sides)`` flops; plus ``32 * ndim + 14`` flops per cell for the right-hand side
  (evaluated twice, 8 flops per neighbour pair and its accumulation), the division by the
  eigenvalues, the residual and the clipped write-out (78 per cell in 2D, 110 in 3D). The sine
  and eigenvalue tables (O(sides) ``sin`` calls) are not counted.
- ``prepare_systems``: 4 flops per pixel and channel (min, max, the finite tests of dst and
  guide); the integer bounding-box updates are not counted.
- the whole-system multigrid (``mg_solve``, ellipses and every other mask that is not a box), per
  system it solved (read from the call's report): crop cells x (the set-up, 16 * ndim + 3, plus
  the PCG iterations x the flops of one iteration, see :func:`mg_cell_flops`).
- the batched driver (``method="vcycle"``/``"jacobi"``, or ``solve_crop`` called directly), per
  launched thread of every kernel it launched (an upper bound: every thread is counted as taking
  the full path, also those that exit early):
  ``guidance_rhs`` 16 * ndim, ``rbgs_sweep`` 4 * ndim + 7, ``jacobi_sweep`` 6 * ndim + 5,
  ``residual`` 4 * ndim + 8, ``restrict`` 3 * 3^ndim + 8, ``prolong_add`` 22,
  ``axpy_unknowns`` / ``xpby_unknowns`` 2, ``dot_unknowns_rows`` 2 per cell of its row,
  ``dot_unknowns_total`` 1 per row summed, ``scatter_crop`` 3; the crop, label and coarsening
  kernels 0; memsets, copies, gathers and the step-size ``ratio`` 0.
- the other kernels of a module call: ``label_pixels`` 4 * C + 1 per pixel, ``fpi_systems`` 5
  per cell, ``patch_masks`` 5 * ndim + 1 per pixel for ellipses (0 for boxes).

The modelled time of a call (H200, figures of the issue):

    t = launches * 5 us + syncs * 15 us + max(bytes / 3.5e12 B/s, flops / 30e12 FLOP/s)

and, for the variant "as a captured CUDA graph", 1 us per launch instead of 5 (the rows are
labelled ``eager`` and ``graph``; a call that synchronises in the middle, as multigrid does every
second iteration, could only be captured in pieces between its synchronisations). The floor of a
call: read dst and src once and write out once, ``3 * N * itemsize`` bytes per sample (N = C *
pixels) at 3.5 TB/s, plus one launch and one synchronisation. The dominant term is the largest of
the launch, synchronisation, bytes and flops terms.

Which figures are measured and which are modelled: launches, syncs, host-to-device bytes and the
device-bytes model come from the backend during a real emulated call; flops are counted as above
from the boxes and launches of that call; the times, samples/s, floor and ratios are the model's.
A row too large for one emulated call on this machine (``--max-call-pixels``; by default the
boxes at 512^2 x 4096, 4 GiB per image array) is measured as several real calls of the reference
workload (seeds 0, 1, ...), combined as one call of the whole batch would count them: launches
and syncs those of one call (the largest of the parts: a call makes one pass per kernel, and a
second box pass when any sample needs one), host-to-device bytes, device bytes and flops summed;
such rows say so in the "measured" column (``tests/benchmarks/test_gpu_scripts.py`` checks the
rule against single calls).

Run:

    PII_AUGMENT_CACHE_DIR=/tmp/pii-cache python benchmarks/gpu_model.py --out gpu_model.md
    python benchmarks/gpu_model.py --quick --out /tmp/gpu_model_quick.md   # tiny rows, seconds

The default run takes about 10 minutes on 2 CPU cores (most of it building the workloads and
emulating the 512^2 and 4096-sample rows); each row prints its time as it goes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _checkout  # noqa: E402,F401  (pii_augment: the installed one, else this checkout)

# ------------------------------------------------------------------------------------------------
# the H200 and the model
# ------------------------------------------------------------------------------------------------

LAUNCH_S = 5e-6  #: one kernel launch from Python (eager)
GRAPH_LAUNCH_S = 1e-6  #: one launch inside a captured CUDA graph
SYNC_S = 15e-6  #: one host synchronisation (a read of device memory)
BANDWIDTH = 3.5e12  #: achievable device-memory bandwidth, B/s (the H200's peak is 4.8e12)
PEAK_BANDWIDTH = 4.8e12  #: the H200's HBM3e peak, B/s
FLOP_RATE = 30e12  #: FLOP/s
TARGET_SAMPLES_PER_S = 2e6  #: the issue's target: boxes, 256^2 x 4096


@dataclass
class Counts:
    """What one call did (measured on a backend) and the flops counted for it."""

    launches: int = 0
    syncs: int = 0
    h2d_bytes: int = 0
    bytes: int = 0
    flops: float = 0.0

    @classmethod
    def between(cls, before: dict, after: dict, flops: float = 0.0) -> "Counts":
        return cls(*(int(after[k] - before[k]) for k in ("launches", "syncs", "h2d_bytes", "bytes")), flops=flops)


def combine(parts: list[Counts]) -> Counts:
    """The counts of ONE call over the union of the batches of ``parts`` (box path only):
    launches and syncs of one call (the most of any part), the rest summed."""
    return Counts(max(p.launches for p in parts), max(p.syncs for p in parts), sum(p.h2d_bytes for p in parts),
                  sum(p.bytes for p in parts), float(sum(p.flops for p in parts)))


def model_time(c: Counts, *, launch_s: float = LAUNCH_S, sync_s: float = SYNC_S, bandwidth: float = BANDWIDTH,
               flop_rate: float = FLOP_RATE) -> dict:
    """The modelled time of a call: its terms, total (seconds) and the dominant term's name."""
    terms = {"launch": c.launches * launch_s, "sync": c.syncs * sync_s, "bytes": c.bytes / bandwidth,
             "flops": c.flops / flop_rate}
    total = terms["launch"] + terms["sync"] + max(terms["bytes"], terms["flops"])
    return {"terms": terms, "total": total, "dominant": max(terms, key=terms.get)}


def floor_time(batch: int, sample_elems: int, itemsize: int, *, launch_s: float = LAUNCH_S,
               sync_s: float = SYNC_S, bandwidth: float = BANDWIDTH) -> float:
    """Read dst and src once, write out once (3 * N * itemsize bytes a sample), one launch, one sync."""
    return 3.0 * batch * sample_elems * itemsize / bandwidth + launch_s + sync_s


# ------------------------------------------------------------------------------------------------
# flops, counted from the launches a call makes
# ------------------------------------------------------------------------------------------------


def box_cell_flops(ndim: int) -> int:
    """Flops per cell of the box solve besides the transforms (rhs twice, eigenvalue division,
    residual, clipped write-out): 78 in 2D, 110 in 3D."""
    return 32 * ndim + 14


def box_flops(lo: np.ndarray, hi: np.ndarray, status: np.ndarray, ndim: int) -> float:
    """Flops of the box solves of a call: ``lo``, ``hi`` (B, 3) boxes, ``status`` (B, C) (1 where
    the box solve wrote the system). Per system ``4 * vol * sum(sides) + box_cell_flops * vol``."""
    sides = np.asarray(hi, np.int64) - np.asarray(lo, np.int64)
    if ndim == 2:
        sides = sides[:, 1:]
    vol = np.prod(sides, axis=1).astype(np.float64)
    per = 4.0 * vol * sides.sum(axis=1) + box_cell_flops(ndim) * vol
    systems = (np.asarray(status) == 1).sum(axis=1)
    return float((per * systems).sum())


#: Flops per level-0 crop cell of one PCG iteration of ``mg_solve`` (an estimate from its loops:
#: 4 red-black sweeps of ~(4 ndim + 7) flops, a residual and its restriction ~(3^ndim + 4 ndim +
#: 11), a prolongation ~22, the matvec ~(4 ndim + 8), three dots and two axpys ~12; the coarse
#: levels add a third in 2D, an eighth in 3D), and per cell of the set-up and the final write.
def mg_cell_flops(ndim: int) -> tuple[float, float]:
    it = 4 * (4 * ndim + 7) + (3**ndim + 4 * ndim + 11) + 22 + (4 * ndim + 8) + 12
    coarse = 4.0 / 3.0 if ndim == 2 else 8.0 / 7.0
    return it * coarse, 16.0 * ndim + 3.0


def mg_flops(lo: np.ndarray, hi: np.ndarray, status: np.ndarray, iters: np.ndarray, ndim: int) -> float:
    """Flops of the whole-system multigrid solves of a call (status > 10: ``mg_solve`` wrote the
    system): per system crop cells x (set-up + iterations x per-iteration flops)."""
    ext = np.asarray(hi, np.int64) - np.asarray(lo, np.int64) + 2
    if ndim == 2:
        ext = ext[:, 1:]
    n0 = np.prod(ext, axis=1).astype(np.float64)
    per_it, setup = mg_cell_flops(ndim)
    done = np.asarray(status) > 10
    return float((n0[:, None] * (setup + np.asarray(iters) * per_it) * done).sum())


def launch_flops(kernel: str, rows: int, width: int, scalars: list, ndim: int) -> float:
    """Flops of one launch of ``kernel`` (see the module docstring); ``rows`` x ``width`` threads
    for a row-mapped launch, blocks x threads per block otherwise; ``scalars``: the launch's
    integer/float arguments in order (for the shapes)."""
    threads = float(rows) * float(width)
    if kernel == "guidance_rhs":
        return threads * 16 * ndim
    if kernel == "rbgs_sweep":
        return threads * (4 * ndim + 7)
    if kernel == "jacobi_sweep":
        return threads * (6 * ndim + 5)
    if kernel == "residual":
        return threads * (4 * ndim + 8)
    if kernel == "restrict":
        return threads * (3 * 3**ndim + 8)
    if kernel == "prolong_add":
        return threads * 22
    if kernel in ("axpy_unknowns", "xpby_unknowns"):
        return threads * 2
    if kernel == "dot_unknowns_rows":  # width 1: each thread sums its row of Wp cells
        return threads * 2 * float(scalars[-1])
    if kernel == "dot_unknowns_total":  # each thread sums Dp * Hp row partials
        return threads * float(scalars[-2]) * float(scalars[-1])
    if kernel == "scatter_crop":
        return threads * 3
    if kernel == "prepare_systems":  # (..., B, C, D, H, W, has_guide)
        B, C, D, H, W = (float(s) for s in scalars[-6:-1])
        return B * C * D * H * W * 4
    if kernel == "fpi_systems":  # (..., B, C, N)
        B, C, N = (float(s) for s in scalars[-3:])
        return B * C * N * 5
    if kernel == "label_pixels":  # (..., tolerance, quantise, B, C, D, H, W)
        return threads * (4 * float(scalars[-4]) + 1)
    if kernel == "patch_masks":  # (shape, nd, B, D, H, W)
        return threads * (5 * ndim + 1) if int(scalars[0]) == 1 else 0.0
    return 0.0  # build_kind, gather_crop, coarsen_kind; box_solve: counted from its boxes


class KernelRecorder:
    """Records the launches (kernel, rows, width, scalar arguments) and the box reports of a
    ``CudaKernelBackend`` instance while active (it wraps the instance's ``_run``, ``_go`` and
    ``report``; the counters are untouched). Works on the emulated and the cupy backend alike;
    adds a little host time per launch, so record an untimed call."""

    def __init__(self, bk) -> None:
        self.bk = bk
        self.launches: list[tuple[str, int, int, list]] = []
        self.reports: list[Any] = []
        self._geom: tuple[int, int] | None = None

    def __enter__(self) -> "KernelRecorder":
        bk = self.bk
        run, go, report = bk._run, bk._go, bk.report

        def _run(kernel, ctype, rows, width, args):
            self._geom = (int(rows), int(width))
            try:
                return run(kernel, ctype, rows, width, args)
            finally:
                self._geom = None

        def _go(kernel, ctype, grid, block, args, shared_bytes: int = 0):
            if self._geom is not None:
                rows, width = self._geom
            else:
                rows, width = int(np.prod(grid)), int(np.prod(block))
            scalars = [a.item() for a in args if isinstance(a, np.generic)]
            self.launches.append((kernel, rows, width, scalars))
            return go(kernel, ctype, grid, block, args, shared_bytes=shared_bytes)

        def _report(state):
            rep = report(state)
            self.reports.append(rep)
            return rep

        self._saved = {n: bk.__dict__[n] for n in ("_run", "_go", "report") if n in bk.__dict__}
        bk._run, bk._go, bk.report = _run, _go, _report
        return self

    def __exit__(self, *exc) -> None:
        for name in ("_run", "_go", "report"):
            self.bk.__dict__.pop(name, None)
        self.bk.__dict__.update(self._saved)  # an enclosing recorder's wrappers, if any

    def flops(self, ndim: int) -> float:
        total = sum(launch_flops(k, r, w, s, ndim) for k, r, w, s in self.launches)
        for rep in self.reports:
            total += box_flops(rep.box_lo, rep.box_hi, rep.status, ndim)
            total += mg_flops(rep.box_lo, rep.box_hi, rep.status, rep.iters, ndim)
        return float(total)

    def kernels(self) -> dict[str, int]:
        """Launches per kernel name (RawModule kernels only)."""
        out: dict[str, int] = {}
        for k, *_ in self.launches:
            out[k] = out.get(k, 0) + 1
        return out


@contextlib.contextmanager
def one_host_thread():
    """``PII_AUGMENT_NUM_THREADS=1`` for the duration (the emulation then launches as the GPU)."""
    old = os.environ.get("PII_AUGMENT_NUM_THREADS")
    os.environ["PII_AUGMENT_NUM_THREADS"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("PII_AUGMENT_NUM_THREADS", None)
        else:
            os.environ["PII_AUGMENT_NUM_THREADS"] = old


def measure(bk, fn: Callable[[], Any], ndim: int) -> tuple[Any, Counts, float, KernelRecorder]:
    """Run ``fn()`` once on backend ``bk``; return (its result, its counts with flops, seconds,
    the recorder of its launches)."""
    with one_host_thread():
        before = bk.counts()
        with KernelRecorder(bk) as rec:
            t0 = time.perf_counter()
            out = fn()
            wall = time.perf_counter() - t0
        after = bk.counts()
    return out, Counts.between(before, after, rec.flops(ndim)), wall, rec


# ------------------------------------------------------------------------------------------------
# rows
# ------------------------------------------------------------------------------------------------

KINDS = {
    "boxes": "reference workload (squares), `poisson_interpolate`",
    "module": "`PoissonImageInterpolation(seed=0)` module call (masks, source gather, blend, label)",
    "ellipse": "ellipse masks (`sample_patches(shape='ellipse')`), `poisson_interpolate` (multigrid)",
}


@dataclass
class Row:
    kind: str  # boxes, module, ellipse
    size: int
    batch: int
    ndim: int = 2
    order: int = 0  # execution order (workload reuse); the table keeps the listed order

    @property
    def label(self) -> str:
        return f"{self.kind} {self.size}^{self.ndim} x {self.batch}"


def default_rows() -> list[Row]:
    order = iter(range(100))
    rows = [Row("boxes", 256, 64), Row("boxes", 256, 1024), Row("boxes", 256, 4096),
            Row("boxes", 512, 64), Row("boxes", 512, 1024), Row("boxes", 512, 4096),
            Row("boxes", 64, 64, 3), Row("boxes", 64, 512, 3),
            Row("module", 256, 64), Row("module", 256, 4096),
            Row("ellipse", 256, 64), Row("ellipse", 256, 1024), Row("ellipse", 256, 4096)]
    # run each workload's rows together: 256^2 x 64 (boxes, module, ellipse), x 1024, x 4096, ...
    run_order = [0, 8, 10, 1, 11, 2, 9, 12, 3, 4, 5, 6, 7]
    for i in run_order:
        rows[i].order = next(order)
    return rows


def quick_rows() -> list[Row]:
    rows = [Row("boxes", 64, 16), Row("boxes", 64, 32), Row("boxes", 16, 8, 3), Row("module", 64, 8),
            Row("ellipse", 64, 8)]
    for i, r in enumerate(rows):
        r.order = i
    return rows


@dataclass
class Result:
    row: Row
    counts: Counts | None = None
    itemsize: int = 4
    sample_elems: int = 0
    workload_s: float = 0.0
    call_s: float = 0.0
    parts: int = 1
    part_batch: int = 0
    error: str | None = None
    kernels: dict = field(default_factory=dict)


class Workloads:
    """reference_workload(batch, size, seed, ndim), built once and kept while later rows need it."""

    def __init__(self) -> None:
        self.cache: dict[tuple, dict] = {}
        self.keep: set[tuple] = set()

    def get(self, batch: int, size: int, ndim: int, seed: int = 0) -> tuple[dict, float]:
        from workload import reference_workload

        key = (batch, size, ndim, seed)
        if key in self.cache:
            return self.cache[key], 0.0
        t0 = time.perf_counter()
        wl = reference_workload(batch, size, seed=seed, ndim=ndim)
        dt = time.perf_counter() - t0
        self.cache[key] = wl
        return wl, dt

    def release(self, needed: set[tuple]) -> None:
        for key in list(self.cache):
            if key not in needed:
                del self.cache[key]


def _needs(row: Row, max_pixels: int) -> list[tuple]:
    """Workload keys a row uses."""
    n = row.batch * row.size**row.ndim
    if row.kind == "boxes" and n > max_pixels:
        part = max(1, max_pixels // row.size**row.ndim)
        return [(part, row.size, row.ndim, s) for s in range(-(-row.batch // part))]
    return [(row.batch, row.size, row.ndim, 0)]


def run_row(row: Row, bk, wls: Workloads, max_pixels: int, log: Callable[[str], None] = print,
            later: set | None = None) -> Result:
    """Run one row for real on the emulated backend ``bk``; the counts of its call(s). Workloads
    not in ``later`` (the keys later rows need) are dropped as soon as their call is done."""
    import pii_augment as pa

    res = Result(row)
    backend = bk.name
    keys = _needs(row, max_pixels)
    parts: list[Counts] = []
    for key in keys:
        wl, dt = wls.get(*key)
        res.workload_s += dt
        dst, src, alpha = wl["dst"], wl["src"], wl["alpha"]
        res.itemsize = dst.dtype.itemsize
        res.sample_elems = int(np.prod(dst.shape[1:]))
        if row.kind == "boxes":
            fn = lambda: pa.poisson_interpolate(dst, src, wl["mask"], alpha, backend=backend)  # noqa: E731
        elif row.kind == "ellipse":
            p = pa.sample_patches(row.batch, (row.size,) * row.ndim, shape="ellipse", seed=0)
            t0 = time.perf_counter()
            mask = p.masks()
            res.workload_s += time.perf_counter() - t0
            fn = lambda: pa.poisson_interpolate(dst, src, mask, p.alpha, backend=backend)  # noqa: E731
        elif row.kind == "module":
            import torch

            x = torch.from_numpy(dst)
            aug = pa.PoissonImageInterpolation(seed=0, backend=backend)
            fn = lambda: aug(x)  # noqa: E731
        else:
            raise ValueError(f"unknown row kind {row.kind!r}")
        out, c, wall, rec = measure(bk, fn, row.ndim)
        res.call_s += wall
        parts.append(c)
        del out, fn, dst, src, alpha, wl  # a chunked row holds one part at a time
        if later is not None and key not in later:
            wls.cache.pop(key, None)
        for k, n in rec.kernels().items():
            res.kernels[k] = max(res.kernels.get(k, 0), n)
        if len(keys) > 1:
            log(f"    part {len(parts)}/{len(keys)} ({key[0]} samples, seed {key[3]}): workload {dt:.1f} s, "
                f"call {wall:.1f} s")
    res.parts = len(keys)
    res.part_batch = keys[0][0]
    res.counts = parts[0] if len(parts) == 1 else combine(parts)
    return res


# ------------------------------------------------------------------------------------------------
# the table
# ------------------------------------------------------------------------------------------------


def fmt(x: float, digits: int = 3) -> str:
    """Compact number: 3 significant digits, thousands separators for large values."""
    if x != x:
        return "n/a"
    if x == 0:
        return "0"
    if abs(x) >= 1e3:
        return f"{x:,.0f}"
    if abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


HEADER = ["workload", "batch", "variant", "launches", "syncs", "H2D KB", "device MB", "GFLOP", "modelled ms",
          "samples/s", "floor ms", "x floor", "dominant", "measured"]


def model_rows(res: Result) -> list[dict]:
    """The eager and graph rows of one result, as dicts (the table's and the JSON's figures)."""
    c, r = res.counts, res.row
    out = []
    for variant, launch_s in (("eager", LAUNCH_S), ("graph", GRAPH_LAUNCH_S)):
        m = model_time(c, launch_s=launch_s)
        fl = floor_time(r.batch, res.sample_elems, res.itemsize, launch_s=launch_s)
        out.append({
            "kind": r.kind, "size": r.size, "ndim": r.ndim, "batch": r.batch, "variant": variant,
            "launches": c.launches, "syncs": c.syncs, "h2d_bytes": c.h2d_bytes, "bytes": c.bytes,
            "flops": c.flops, "model_s": m["total"], "terms_s": m["terms"], "dominant": m["dominant"],
            "samples_per_s": r.batch / m["total"], "floor_s": fl, "ratio_to_floor": m["total"] / fl,
            "parts": res.parts, "part_batch": res.part_batch, "call_s": res.call_s, "workload_s": res.workload_s,
        })
    return out


def measured_note(res: Result) -> str:
    build = f" (+ {res.workload_s:.1f} s workload)" if res.workload_s >= 0.05 else ""
    if res.parts > 1:
        return f"{res.parts} calls of {res.part_batch}, combined; {res.call_s:.0f} s{build}"
    return f"1 call, {res.call_s:.1f} s{build}"


def markdown_table(results: list[Result]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "|".join("---" for _ in HEADER) + "|"]
    for res in results:
        r = res.row
        name = f"{r.kind} {r.size}^{r.ndim}"
        if res.counts is None:
            lines.append(f"| {name} | {r.batch} | | " + " | ".join([""] * (len(HEADER) - 4))
                         + f" | {res.error or 'not run'} |")
            continue
        for d in model_rows(res):
            lines.append("| " + " | ".join([
                name, str(r.batch), d["variant"], str(d["launches"]), str(d["syncs"]),
                fmt(d["h2d_bytes"] / 1e3), fmt(d["bytes"] / 1e6), fmt(d["flops"] / 1e9),
                fmt(d["model_s"] * 1e3), fmt(d["samples_per_s"]), fmt(d["floor_s"] * 1e3),
                fmt(d["ratio_to_floor"]), d["dominant"], measured_note(res) if d["variant"] == "eager" else "",
            ]) + " |")
    return "\n".join(lines) + "\n"


NOTES = f"""\
Notes.
- Measured (on the emulated CUDA backend, one real call per row, one host thread): launches,
  syncs, host-to-device bytes and device bytes (the backend's per-kernel traffic model: every
  array argument of a launch once, memsets, copies and gathers their arrays; the box solve 5 x
  itemsize x the cells of its boxes; the whole-system multigrid per crop cell the mask, dst and
  guide three times, out twice and its solution (global memory) twice per iteration).
  Counted from the algorithm and the call's launches (module docstring): GFLOP. The box solve:
  per system 4 x vol x (sum of the transformed sides) flops for its 2 x ndim sine transforms
  (a transform along an axis of n cells is vol x n multiply-adds) plus 32 x ndim + 14 flops per
  cell; the whole-system multigrid crop cells x (set-up + iterations x per-iteration flops);
  prepare 4 flops per pixel and channel. Modelled: everything else.
- Modelled time = launches x {LAUNCH_S * 1e6:g} us ("eager"; "graph": x {GRAPH_LAUNCH_S * 1e6:g} us, as a
  captured CUDA graph) + syncs x {SYNC_S * 1e6:g} us + max(bytes / {BANDWIDTH / 1e12:g} TB/s,
  flops / {FLOP_RATE / 1e12:g} TFLOP/s). Floor = 3 x N x itemsize bytes a sample (read dst and src, write
  out) at {BANDWIDTH / 1e12:g} TB/s + 1 launch (5 us eager, 1 us graph) + 1 sync; "x floor" = modelled / floor. "dominant": the
  largest of the launch, sync, bytes and flops terms.
- Not in the model: the latency of a block's barriers and the occupancy. The whole-system
  multigrid runs one block of 256 threads per system through about 90 barriers per PCG iteration
  (5 to 6 iterations), many on tiny coarse levels, and its first pass asks for the workspace of
  the largest crop the image allows (up to 227 KB: one block per SM); the box solve about a dozen
  barriers. Where blocks are latency-bound the real time is larger than this model's; the GPU
  check (benchmarks/gpu_check.py) measures it.
- The box solve accumulates its transforms in float64 and NVRTC compiles with `--fmad=false`, so
  the flops term (at {FLOP_RATE / 1e12:g} TFLOP/s) is optimistic for it (the H200's float64 rate is about
  34 TFLOP/s counting fused multiply-adds, half that without; each multiply-add also reads two
  shared-memory operands).
"""


def summary_line(results: list[Result]) -> str:
    for res in results:
        r = res.row
        if (r.kind, r.size, r.ndim, r.batch) == ("boxes", 256, 2, 4096) and res.counts is not None:
            d = model_rows(res)[0]
            verdict = "meets" if d["samples_per_s"] >= TARGET_SAMPLES_PER_S else "does NOT meet"
            return (f"Boxes at 256^2 x 4096 (eager): modelled {fmt(d['samples_per_s'])} samples/s, dominant term "
                    f"{d['dominant']} ({d['terms_s'][d['dominant']] * 1e3:.3g} ms of {d['model_s'] * 1e3:.3g} ms); "
                    f"this {verdict} the issue's {TARGET_SAMPLES_PER_S:,.0f} samples/s.\n")
    return "Boxes at 256^2 x 4096: not in this run.\n"


def render(results: list[Result], header: str) -> str:
    done = [r for r in results if r.counts is not None or r.error]
    return header + "\n" + markdown_table(done) + "\n" + summary_line(done) + "\n" + NOTES


# ------------------------------------------------------------------------------------------------
# main
# ------------------------------------------------------------------------------------------------


def run(rows: list[Row], out: str | None, max_pixels: int, json_path: str | None = None,
        log: Callable[[str], None] = print, command: str = "python benchmarks/gpu_model.py") -> list[Result]:
    from pii_augment.ops.backends import get_backend

    t_start = time.perf_counter()
    t0 = time.perf_counter()
    bk = get_backend("cuda-emulated", np.zeros(1))
    log(f"emulation library ready in {time.perf_counter() - t0:.1f} s ({bk.library_path.name})")
    results = [Result(r) for r in rows]
    by_order = sorted(range(len(rows)), key=lambda i: rows[i].order)
    wls = Workloads()

    def header() -> str:
        return (f"# H200 model of the device path (emulated counts)\n\n`{command}`; "
                f"{sum(r.counts is not None for r in results)} of {len(rows)} rows, "
                f"{time.perf_counter() - t_start:.0f} s so far on {os.cpu_count()} CPU cores.\n")

    for n, i in enumerate(by_order, 1):
        row = rows[i]
        log(f"[{n}/{len(rows)}] {row.label} ...")
        later = set()
        for j in by_order[n:]:
            later.update(_needs(rows[j], max_pixels))
        try:
            results[i] = run_row(row, bk, wls, max_pixels, log=log, later=later)
            c = results[i].counts
            log(f"    workload {results[i].workload_s:.1f} s, emulated call(s) {results[i].call_s:.1f} s: "
                f"{c.launches} launches, {c.syncs} syncs, {c.h2d_bytes} B to the device, {c.bytes / 1e6:.1f} MB, "
                f"{c.flops / 1e9:.3g} GFLOP")
        except Exception as e:  # one failing row does not end the run
            import traceback

            traceback.print_exc()
            results[i].error = f"error: {type(e).__name__}: {e}"
        wls.release(later)
        if out:
            Path(out).write_text(render(results, header()))
    text = render(results, header().replace(" so far", ""))
    if out:
        Path(out).write_text(text)
    if json_path:
        data = [{"row": asdict(r.row), "error": r.error, "kernels": r.kernels,
                 "model": model_rows(r) if r.counts else None} for r in results]
        Path(json_path).write_text(json.dumps(data, indent=1))
    log("\n" + text)
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="markdown file for the table (rewritten after each row)")
    ap.add_argument("--json", help="also write the figures as JSON to this file")
    ap.add_argument("--quick", action="store_true", help="tiny rows only (seconds): a smoke run")
    ap.add_argument("--rows", nargs="*", help="only rows whose label contains one of these strings, "
                                              "e.g. 'boxes 256^2' 'ellipse'")
    ap.add_argument("--max-call-pixels", type=int, default=2**28,
                    help="box rows with more pixels (batch x image) are measured as several calls of at most "
                         "this many (default 2^28: 4096 x 256^2 in one call, 512^2 x 4096 in 4)")
    a = ap.parse_args(argv)
    rows = quick_rows() if a.quick else default_rows()
    max_pixels = 16 * 64**2 if a.quick else a.max_call_pixels  # quick: the 32-sample row in 2 parts
    if a.rows:
        rows = [r for r in rows if any(s in r.label for s in a.rows)]
    if not rows:
        print("no rows selected", file=sys.stderr)
        return 2
    command = "python benchmarks/gpu_model.py " + " ".join(sys.argv[1:] if argv is None else argv)
    results = run(rows, a.out, max_pixels, a.json, log=lambda s: print(s, flush=True), command=command.strip())
    return 0 if all(r.counts is not None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
