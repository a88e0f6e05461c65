"""CPU benchmark: pii_augment's Poisson Image Interpolation next to its peers, in one run.

Times, on the DESIGN.md reference workload (see ``workload.py``):

* ``pii_augment.poisson_interpolate`` on the whole batch (numba backend by default), after one
  warm-up call whose extra time is reported as JIT compile time; and the plain-Jacobi solver
  (``method="jacobi"``) if the library has that keyword ("n/a" otherwise);
* the peers of ``peers.py``, one sample at a time (that is how they are called): PIE-torch's DST
  blend, OpenCV's seamlessClone, and the original PII's whole-image sparse LU. The sparse solve is
  slow, so it is timed on an evenly spaced subset of the batch and its per-sample rate is
  extrapolated (the output says so);
* the latency of one call at batch 1, 2 and 4 (``--no-latency`` to skip): a box, an ellipse,
  and the PII module;
* with ``--sizes``, a scaling sweep of pii_augment alone: seconds and ns per unknown from 64x64 to
  1024x1024 (or cubes with ``--3d``); a multigrid solver should show a flat ns per unknown.

Correctness column: max |out - exact| / (range of dst) per sample, maximised over the sparse
subset, where "exact" is ``original_sparse`` (the exact PII answer). The peers solve the same
unknowns but not the same equation (no alpha weighting, different guidance), so their error is
large by design; it is shown so nobody mistakes them for drop-in replacements.

Examples::

    python benchmarks/bench_cpu.py                      # batch 64 of 256x256, with peers
    python benchmarks/bench_cpu.py --no-peers --sizes 64 128 256 512 1024
    python benchmarks/bench_cpu.py --3d --sizes 32 48 64 96 128
    python benchmarks/bench_cpu.py --markdown results_cpu.md
    python benchmarks/bench_cpu.py --keep-freed-memory   # glibc keeps freed batches (see host_memory)
    python benchmarks/bench_cpu.py --interleave          # the table's methods timed in rounds
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import opencv_seamless, original_sparse, pietorch_dst  # noqa: E402
from workload import reference_workload  # noqa: E402


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def import_pii_augment():
    """Import ``pii_augment``: the installed one, else the checkout this script lives in."""
    try:
        import pii_augment
    except ImportError:
        sys.path.insert(0, str(HERE.parent))
        import pii_augment
    return pii_augment


def best_of(fn: Callable[[], object], repeats: int) -> tuple[float, object]:
    """Run ``fn`` ``repeats`` times; return (best wall time in s, result of the last run)."""
    best, result = float("inf"), None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def rel_err(out: np.ndarray, exact: np.ndarray, dst: np.ndarray) -> float:
    """max |out - exact| / (max dst - min dst), for one sample."""
    rng = float(np.ptp(dst))
    return float(np.abs(np.asarray(out, np.float64) - exact).max() / (rng if rng > 0 else 1.0))


class Table:
    """A tiny table that prints as aligned text and as markdown."""

    def __init__(self, title: str, columns: list[str]):
        self.title, self.columns, self.rows = title, columns, []

    def add(self, *cells: object) -> None:
        self.rows.append([str(c) for c in cells])

    def text(self) -> str:
        widths = [max(len(c), *(len(r[i]) for r in self.rows)) if self.rows else len(c)
                  for i, c in enumerate(self.columns)]
        last = len(self.columns) - 1  # first and last columns are text: left-aligned
        line = lambda cells: "  ".join(c.ljust(w) if i in (0, last) else c.rjust(w)
                                       for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
        out = [self.title, line(self.columns), line(["-" * w for w in widths])]
        out += [line(r) for r in self.rows]
        return "\n".join(out)

    def markdown(self) -> str:
        out = [f"### {self.title}", "", "| " + " | ".join(self.columns) + " |",
               "|" + "|".join("---" for _ in self.columns) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(out)


def fmt_rate(r: float | None) -> str:
    if r is None:
        return "n/a"
    return f"{r:,.0f}" if r >= 100 else f"{r:.3g}"


def fmt_err(e: float | None) -> str:
    return "n/a" if e is None else f"{e:.1e}"


def environment(pii) -> list[str]:
    """One-line facts about the machine and the library versions."""
    import numba
    import scipy

    lines = [
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} logical CPUs,"
        f" numba {numba.__version__} ({numba.config.NUMBA_NUM_THREADS} threads),"
        f" numpy {np.__version__}, scipy {scipy.__version__}",
    ]
    if hasattr(os, "getloadavg"):  # other work on the same cores skews every number below
        lines.append("load average at start: " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    try:
        import cv2
        import pietorch  # noqa: F401
        from importlib.metadata import version

        lines.append(f"opencv {cv2.__version__}, pie-torch {version('pie-torch')}")
    except Exception as exc:  # peers are optional for --no-peers runs
        lines.append(f"peers not importable: {exc}")
    if pii is not None:
        lines.append(f"pii_augment {getattr(pii, '__version__', '?')} from {Path(pii.__file__).parent}")
    return lines


# --------------------------------------------------------------------------------------------
# the runs
# --------------------------------------------------------------------------------------------


def ours_call(pii, wl: dict, args, **kwargs) -> Callable[[], np.ndarray]:
    """One ``poisson_interpolate`` call on the whole batch."""
    return lambda: np.asarray(pii.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"],
                                                      backend=args.backend, **kwargs))


def peer_call(fn: Callable, wl: dict, idx: np.ndarray) -> Callable[[], list]:
    """``fn`` looped over samples ``idx``, one sample at a time (how the peers are called)."""
    dst, src, mask, alpha = wl["dst"][:, 0], wl["src"][:, 0], wl["mask"], wl["alpha"]
    return lambda: [fn(dst[i], src[i], mask[i], float(alpha[i])) for i in idx]


def time_rounds(calls: dict[str, Callable[[], object]], repeats: int, interleave: bool = False) -> dict:
    """Time every call of ``calls`` after one warm-up call each: ``{name: {"first", "best", "out"}}``
    (seconds of the warm-up, the best of ``repeats`` timed calls, the last output).

    Without ``interleave``, each call's repeats run back to back (the table's history is timed so);
    with it, the timed calls go in rounds, one call of each per round, so that every row's best
    comes from the same stretch of time: on a shared VM, whose speed drifts by 30 % or more over
    seconds, timing one method after another puts that drift into their ratios.
    """
    res = {}

    def timed(name: str, warm_up: bool = False) -> None:
        t0 = time.perf_counter()
        out = calls[name]()
        t = time.perf_counter() - t0
        if warm_up:
            res[name] = {"first": t, "best": float("inf"), "out": out}
        else:
            res[name]["best"] = min(res[name]["best"], t)
            res[name]["out"] = out

    if interleave:  # every warm-up, then the rounds
        for name in calls:
            timed(name, warm_up=True)
        for _ in range(max(1, repeats)):
            for name in calls:
                timed(name)
    else:  # each call's warm-up and repeats, one call after another
        for name in calls:
            timed(name, warm_up=True)
            for _ in range(max(1, repeats)):
                timed(name)
    return res


def time_jacobi(pii, wl: dict, args) -> dict | None:
    """Time the plain-Jacobi solve, if the library offers ``method="jacobi"`` (else None).

    Warm-up on one sample (compile), then ONE timed run on the whole batch: Jacobi is slow.
    """
    one = {k: v[:1] for k, v in wl.items()}
    try:
        pii.poisson_interpolate(one["dst"], one["src"], one["mask"], one["alpha"],
                                backend=args.backend, method="jacobi")
    except (TypeError, ValueError) as exc:  # keyword or value unknown to this version
        print(f"  jacobi: n/a ({exc})")
        return None
    try:
        best, out = best_of(lambda: np.asarray(pii.poisson_interpolate(
            wl["dst"], wl["src"], wl["mask"], wl["alpha"], backend=args.backend, method="jacobi")), 1)
    except Exception as exc:  # e.g. the library's ConvergenceError: report it, keep benchmarking
        return {"error": f"{type(exc).__name__}: {str(exc)[:120]}"}
    return {"best": best, "out": out}


def time_peer(fn: Callable, wl: dict, idx: np.ndarray, repeats: int) -> tuple[float, list]:
    """Time ``fn`` looped over samples ``idx`` (one warm-up call first); best of ``repeats``."""
    dst, src, mask, alpha = wl["dst"][:, 0], wl["src"][:, 0], wl["mask"], wl["alpha"]
    fn(dst[idx[0]], src[idx[0]], mask[idx[0]], float(alpha[idx[0]]))  # imports, caches
    run = lambda: [fn(dst[i], src[i], mask[i], float(alpha[i])) for i in idx]
    best, outs = best_of(run, repeats)
    return best, outs


def _main_calls(pii, wl: dict, args, ndim: int) -> dict[str, tuple[Callable, str]]:
    """The rows of the side-by-side table that :func:`time_rounds` times together: name ->
    (call, note)."""
    B = args.batch
    calls = {}
    if pii is not None:
        calls[f"pii_augment ({args.backend}, method='auto')"] = (ours_call(pii, wl, args), "boxes: exact DST-I")
        calls[f"pii_augment ({args.backend}, method='multigrid')"] = (
            ours_call(pii, wl, args, method="multigrid"), "multigrid-preconditioned CG for every sample")
    if args.peers:
        idx = np.arange(B)
        calls["pie-torch blend_dst_numpy (source grad)"] = (peer_call(pietorch_dst, wl, idx), "per-sample loop")
        calls["pie-torch blend_dst_numpy (mixed grad)"] = (
            peer_call(lambda d, s, m, a: pietorch_dst(d, s, m, a, mix_gradients=True), wl, idx), "per-sample loop")
        if ndim == 2:
            calls["OpenCV seamlessClone NORMAL_CLONE"] = (peer_call(opencv_seamless, wl, idx),
                                                          "per-sample loop, incl. 8-bit conversions")
    return calls


def run_main(pii, args, ndim: int, size: int, report: list) -> None:
    """The side-by-side table at one size."""
    print(f"\nbuilding reference workload: batch {args.batch}, {size}^{ndim}, seed {args.seed} ...")
    wl = reference_workload(batch=args.batch, size=size, seed=args.seed, ndim=ndim)
    B = args.batch
    unknowns = int(wl["mask"].sum())
    k = min(args.sparse_samples, B)
    subset = np.unique(np.linspace(0, B - 1, k).round().astype(int))
    dst0 = wl["dst"][:, 0]

    rows = []  # (name, samples/s, err, note)
    ours_rate = None
    exact = None
    if args.peers or pii is not None:
        # The exact answer on the subset: also the "original" timing.
        print(f"  original_sparse on {len(subset)} of {B} samples ...")
        t_sparse, exact_list = time_peer(original_sparse, wl, subset, args.repeats)
        exact = {int(i): e.astype(np.float64) for i, e in zip(subset, exact_list)}

    def err_on_subset(out_of: Callable[[int], np.ndarray]) -> float:
        return max(rel_err(out_of(int(i)), exact[int(i)], dst0[i]) for i in subset)

    calls = _main_calls(pii, wl, args, ndim)
    how = "interleaved rounds" if args.interleave else "one method after another"
    print(f"  {', '.join(calls)}: best of {args.repeats} ({how}) ...")
    timed = time_rounds({n: c for n, (c, _) in calls.items()}, args.repeats, args.interleave)
    for name, (_, note) in calls.items():
        r = timed[name]
        if name.startswith("pii_augment") and name.endswith("'auto')"):
            ours_rate = B / r["best"]
            note = (f"whole batch, best of {args.repeats}; first call {r['first']:.2f} s (~"
                    f"{max(0.0, r['first'] - r['best']):.2f} s JIT compile or numba cache load); {note}")
        elif name.startswith("pii_augment"):
            note = f"whole batch, best of {args.repeats}; {note}"
        out = r["out"]
        err = err_on_subset((lambda i, o=out: o[i, 0]) if name.startswith("pii_augment") else (lambda i, o=out: o[i]))
        rows.append((name, B / r["best"], err, note))
        if name.endswith("'multigrid')") and args.jacobi:
            print("  pii_augment method='jacobi' ...")
            j = time_jacobi(pii, wl, args)
            if j is None:
                rows.append(("pii_augment (jacobi)", None, None, "n/a: no method='jacobi'"))
            elif "error" in j:
                rows.append(("pii_augment (jacobi)", None, None, f"failed: {j['error']}"))
            else:
                rows.append(("pii_augment (jacobi)", B / j["best"], err_on_subset(lambda i: j["out"][i, 0]),
                             "whole batch, 1 timed run"))
    if args.peers:
        rows.insert(sum(1 for r in rows if r[0].startswith("pii_augment")),
                    ("original PII: whole-image sparse LU", len(subset) / t_sparse, 0.0,
                     f"timed on {len(subset)} of {B} samples, rate extrapolated; is the exact reference"))
        if ndim == 3:
            rows.append(("OpenCV seamlessClone NORMAL_CLONE", None, None, "n/a: 2D only"))

    title = (f"CPU, batch {B} of {'x'.join([str(size)] * ndim)}, {unknowns:,} unknowns"
             f" ({unknowns / B:,.0f} per sample)")
    table = Table(title, ["method", "samples/s", "pii_augment speed-up",
                          f"max err/range vs exact ({len(subset)} samples)", "notes"])
    for name, rate, err, note in rows:
        speedup = "n/a" if (ours_rate is None or rate is None) else f"{ours_rate / rate:.3g}x"
        table.add(name, fmt_rate(rate), speedup, fmt_err(err), note)
    print()
    print(table.text())
    report.append(table)


def run_sweep(pii, args, ndim: int, report: list) -> None:
    """Scaling sweep of pii_augment alone over ``args.sizes``."""
    ref_pixels = args.batch * args.size ** ndim
    table = Table(f"Scaling sweep, pii_augment ({args.backend}, method={args.method!r}), {ndim}D, "
                  f"best of {args.repeats}",
                  ["size", "batch", "unknowns per batch", "seconds", "samples/s", "ns per unknown"])
    for size in args.sizes:
        batch = args.sweep_batch or max(1, round(ref_pixels / size ** ndim))
        print(f"\nsweep: batch {batch} of {size}^{ndim} ...")
        wl = reference_workload(batch=batch, size=size, seed=args.seed, ndim=ndim)
        pii.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"], backend=args.backend,
                                method=args.method)  # warm-up
        best, _ = best_of(lambda: pii.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"],
                                                          backend=args.backend, method=args.method),
                          args.repeats)
        unknowns = int(wl["mask"].sum())
        table.add(size, batch, f"{unknowns:,}", f"{best:.4f}", fmt_rate(batch / best),
                  f"{best / unknowns * 1e9:.1f}")
        print(table.text().splitlines()[-1])
    print()
    print(table.text())
    report.append(table)


def _latency(fn: Callable[[], object], calls: int) -> tuple[float, float]:
    """(median, best) microseconds of ``calls`` calls of ``fn`` after two warm-ups."""
    fn()
    fn()
    ts = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts)) * 1e6, float(min(ts)) * 1e6


def run_latency(pii, args, ndim: int, report: list) -> None:
    """Per-call latency at batches of 1 to 4 (the per-sample pipelines): the functional call on a
    box and on an ellipse of the reference workload's patch sizes, and the PII module."""
    import torch

    size = args.size
    wl = reference_workload(batch=4, size=size, seed=args.seed, ndim=ndim)
    spatial = wl["dst"].shape[2:]
    ell = pii.sample_patches(4, spatial, shape="ellipse", seed=args.seed).masks()
    table = Table(f"Latency per call, {ndim}D {'x'.join([str(size)] * ndim)} float32, {args.latency_calls} calls "
                  f"(median / best microseconds)",
                  ["call", "B = 1", "B = 2", "B = 4", "unknowns (B = 1)"])
    rows = (
        ("poisson_interpolate, box (the original's square)", wl["mask"]),
        ("poisson_interpolate, ellipse", ell),
    )
    for name, mask in rows:
        cells = []
        for B in (1, 2, 4):
            d, s, m, a = wl["dst"][:B].copy(), wl["src"][:B].copy(), mask[:B].copy(), wl["alpha"][:B].copy()
            med, best = _latency(lambda: pii.poisson_interpolate(d, s, m, a, backend=args.backend), args.latency_calls)
            cells.append(f"{med:,.0f} / {best:,.0f}")
        table.add(name, *cells, f"{int(mask[0].sum()):,}")
    aug = pii.PoissonImageInterpolation(seed=args.seed)
    cells = []
    for B in (1, 2, 4):
        x = torch.from_numpy(wl["dst"][:B].copy())
        src = torch.from_numpy(wl["src"][:B].copy()) if B == 1 else None  # one image: an explicit source
        med, best = _latency(lambda: aug(x, src), args.latency_calls)
        cells.append(f"{med:,.0f} / {best:,.0f}")
    table.add("PoissonImageInterpolation module, new draws (B = 1: explicit source)", *cells, "(varies)")
    print()
    print(table.text())
    report.append(table)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time pii_augment's CPU Poisson Image Interpolation next to its peers "
                    "(PIE-torch, OpenCV seamlessClone, the original whole-image sparse solve).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--batch", type=int, default=64, help="samples per batch")
    p.add_argument("--size", type=int, default=None,
                   help="image side (default 256 in 2D, 64 with --3d)")
    p.add_argument("--3d", dest="three_d", action="store_true", help="cubes (B, 1, N, N, N) instead of images")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats; the best is reported")
    p.add_argument("--interleave", action="store_true",
                   help="time the side-by-side table's methods in rounds, one call of each per round, "
                        "instead of one method's repeats after another's (each row's best then comes "
                        "from the same stretch of time; pii_augment's calls then follow the peers' loops, "
                        "whose frees hand memory back to the system)")
    p.add_argument("--seed", type=int, default=0, help="workload seed")
    p.add_argument("--backend", default="numba", help="pii_augment backend")
    p.add_argument("--method", default="auto",
                   help="pii_augment method of the scaling sweep: 'auto' (boxes: exact DST-I) or 'multigrid'")
    p.add_argument("--peers", action=argparse.BooleanOptionalAction, default=True,
                   help="time the peer solvers")
    p.add_argument("--ours", action=argparse.BooleanOptionalAction, default=True,
                   help="time pii_augment (--no-ours: peers only, e.g. before the library exists)")
    p.add_argument("--jacobi", action=argparse.BooleanOptionalAction, default=True,
                   help="also time method='jacobi' (if the library has it)")
    p.add_argument("--sparse-samples", type=int, default=8,
                   help="samples on which the slow original sparse solve is timed (rate extrapolated)")
    p.add_argument("--sizes", type=int, nargs="+", default=None,
                   help="scaling sweep of pii_augment over these sizes, e.g. 64 128 256 512 1024")
    p.add_argument("--sweep-batch", type=int, default=None,
                   help="batch for the sweep (default: keep batch*size^ndim equal to the main run's)")
    p.add_argument("--main", action=argparse.BooleanOptionalAction, default=True,
                   help="the side-by-side table (--no-main: sweep only)")
    p.add_argument("--latency", action=argparse.BooleanOptionalAction, default=True,
                   help="the per-call latency table at batch 1, 2 and 4")
    p.add_argument("--latency-calls", type=int, default=200, help="calls per latency figure")
    p.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")
    p.add_argument("--keep-freed-memory", action="store_true",
                   help="call pii_augment.host_memory.keep_freed_memory() first (process-wide: the peers run "
                        "under it too)")
    args = p.parse_args(argv)
    if args.size is None:
        args.size = 64 if args.three_d else 256
    if args.sizes and not args.ours:
        p.error("--sizes times pii_augment only; it cannot be combined with --no-ours")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    ndim = 3 if args.three_d else 2
    pii = None
    if args.ours:
        try:
            pii = import_pii_augment()
            pii.poisson_interpolate  # noqa: B018  (fail early if the API is missing)
        except (ImportError, AttributeError) as exc:
            print(f"error: cannot use pii_augment.poisson_interpolate ({exc}); "
                  "run with --no-ours to time the peers only", file=sys.stderr)
            return 2
    env = environment(pii)
    if args.keep_freed_memory:
        from pii_augment.host_memory import keep_freed_memory

        env.append("allocator: " + ("keep_freed_memory()" if keep_freed_memory() else "not glibc: unchanged"))
    else:
        env.append("allocator: glibc defaults")
    print("\n".join(env))

    report: list = []
    if args.main:
        run_main(pii, args, ndim, args.size, report)
    if args.sizes:
        run_sweep(pii, args, ndim, report)
    if args.latency and pii is not None:
        run_latency(pii, args, ndim, report)

    if args.markdown:
        text = ["# pii_augment CPU benchmark", "", *[f"- {line}" for line in env],
                f"- command: `python benchmarks/bench_cpu.py {' '.join(sys.argv[1:] if argv is None else argv)}`",
                ""]
        for t in report:
            text += [t.markdown(), ""]
        args.markdown.write_text("\n".join(text))
        print(f"\nwrote {args.markdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
