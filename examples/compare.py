"""PII against FPI on the example's default data, over several training seeds, in one command.

Trains and evaluates ``examples/train.py`` once per (method, seed) -- the data seed fixed, the
training seed (initialisation, shuffling, augmentation) varied -- up to ``--jobs`` runs at a time,
each a separate process with ``--threads`` torch threads and ``--deterministic``. Then writes to OUT:

- ``results.md`` / ``results.json``: per method the mean, standard deviation (n-1) and 95 % t
  interval over seeds of AP, ROC AUC, AP of the top-5 % pooling, pixel AP and AP per anomaly kind,
  and every seed's row;
- ``versions.json``: python, torch, numpy, numba, scikit-image, scipy, the library's git commit and
  whether the work tree was dirty, the machine, the settings and the wall time;
- ``histogram.png``: the test scores of normal vs anomalous images per method (all seeds pooled);
- ``maps.png``: a few test images (normal and one of each anomaly kind) with each method's anomaly
  map (first seed);
- ``runs/<method>_s<seed>/``: each run's checkpoint, ``train.log`` and ``eval/``.

    python examples/compare.py --out runs/compare                 # the documented table
    python examples/compare.py --out /tmp/smoke --quick --jobs 1  # a smoke run (seconds)

With the same seeds, versions, ``--threads`` and machine, two runs write the same tables.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

if __package__ in (None, ""):  # run as a script: make `examples` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np

__all__ = ["METRICS", "aggregate", "collect_metrics", "format_table", "main", "versions"]

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("pii", "fpi")
KINDS = ("bright_blob", "dark_blob", "blur", "noise")
# (key in the flat per-run record, column title)
METRICS: tuple[tuple[str, str], ...] = (
    ("ap", "AP"), ("auc", "ROC AUC"), ("ap_topk", "AP (top-5 %)"), ("pixel_ap", "pixel AP"),
    *((f"ap_{k}", f"AP {k.replace('_', ' ')}") for k in KINDS),
    *((f"auc_{k}", f"AUC {k.replace('_', ' ')}") for k in KINDS),
)
# The settings of the documented CPU run (examples/README.md) and of the smoke run.
DEFAULT = dict(epochs=20, width=0.25, bn_momentum=0.1, batch_size=32, n_train=2048, n_test=256,
               image_size=64, steps_per_epoch=None)
QUICK = dict(epochs=1, width=0.125, bn_momentum=0.1, batch_size=8, n_train=32, n_test=8,
             image_size=32, steps_per_epoch=2)
# 97.5 % quantile of Student's t for n - 1 = 1..30 degrees of freedom (95 % two-sided interval).
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
         2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
         2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------

def flatten_metrics(m: dict) -> dict[str, float]:
    """One run's ``metrics.json`` -> the flat record of METRICS keys (missing ones left out)."""
    flat = {k: float(m[k]) for k in ("ap", "auc", "ap_topk", "pixel_ap") if k in m}
    for k, v in m.get("per_kind", {}).items():
        flat[f"ap_{k}"] = float(v["ap"])
        flat[f"auc_{k}"] = float(v["auc"])
    return flat


def aggregate(per_seed: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean, sample standard deviation (n-1; 0 for one seed), 95 % t half-width, min and max of
    each metric over the seeds' flat records."""
    out: dict[str, dict[str, float]] = {}
    keys = [k for k, _ in METRICS if all(k in r for r in per_seed)] if per_seed else []
    for k in keys:
        v = np.array([r[k] for r in per_seed], dtype=np.float64)
        n = v.size
        std = float(v.std(ddof=1)) if n > 1 else 0.0
        t = _T975[min(n - 1, len(_T975)) - 1] if n > 1 else math.nan
        out[k] = dict(mean=float(v.mean()), std=std, ci95=t * std / math.sqrt(n) if n > 1 else math.nan,
                      min=float(v.min()), max=float(v.max()), n=n)
    return out


def collect_metrics(run_dirs: dict[tuple[str, int], Path]) -> dict[str, dict[int, dict[str, float]]]:
    """{method: {seed: flat record}} from each run's ``eval/metrics.json``."""
    res: dict[str, dict[int, dict[str, float]]] = {}
    order = sorted(run_dirs, key=lambda k: (METHODS.index(k[0]), k[1]))
    for method, seed in order:
        d = run_dirs[(method, seed)]
        m = json.loads((d / "eval" / "metrics.json").read_text())
        res.setdefault(method, {})[seed] = flatten_metrics(m)
    return res


def _cols(summary: dict) -> list[tuple[str, str]]:
    return [(k, t) for k, t in METRICS if all(k in s for s in summary.values())]


def format_table(summary: dict[str, dict[str, dict[str, float]]],
                 per_seed: dict[str, dict[int, dict[str, float]]]) -> str:
    """Markdown: mean ± std (n seeds) per method, then one row per (method, seed)."""
    cols = _cols(summary)
    head = "| training | seeds | " + " | ".join(t for _, t in cols) + " |\n"
    rule = "|---|---|" + "---|" * len(cols) + "\n"
    lines = ["Mean ± standard deviation over seeds (95 % t interval half-width below):\n", head, rule]
    for m, s in summary.items():
        n = next(iter(s.values()))["n"]
        lines.append(f"| {m.upper()} | {n} | " + " | ".join(f"{s[k]['mean']:.3f} ± {s[k]['std']:.3f}"
                                                             for k, _ in cols) + " |\n")
    for m, s in summary.items():
        lines.append(f"| {m.upper()} 95 % ± | | " + " | ".join(
            "–" if math.isnan(s[k]["ci95"]) else f"{s[k]['ci95']:.3f}" for k, _ in cols) + " |\n")
    if len(summary) == 2 and all(m in summary for m in METHODS):
        a, b = summary["pii"], summary["fpi"]
        lines.append("| PII − FPI (means) | | " + " | ".join(
            f"{a[k]['mean'] - b[k]['mean']:+.3f}" for k, _ in cols) + " |\n")
    lines += ["\nPer seed:\n\n", "| training | seed | " + " | ".join(t for _, t in cols) + " |\n", rule]
    for m, seeds in per_seed.items():
        for seed, r in sorted(seeds.items()):
            lines.append(f"| {m.upper()} | {seed} | " + " | ".join(f"{r[k]:.3f}" for k, _ in cols) + " |\n")
    return "".join(lines)


def verdicts(summary: dict[str, dict[str, dict[str, float]]]) -> list[str]:
    """Plain statements per metric: does PII's mean beat FPI's, and by more than the spread?"""
    if not all(m in summary for m in METHODS):
        return []
    a, b = summary["pii"], summary["fpi"]
    out = []
    for k, t in _cols(summary):
        d = a[k]["mean"] - b[k]["mean"]
        # "clear" when the difference of means exceeds the 95 % half-widths combined.
        hw = math.hypot(a[k]["ci95"], b[k]["ci95"])
        if math.isnan(hw):
            word = "ahead" if d > 0 else "behind" if d < 0 else "level"
            out.append(f"{t}: PII {word} of FPI by {d:+.3f} (one seed: no spread)")
        elif abs(d) > hw:
            out.append(f"{t}: PII {'beats' if d > 0 else 'is beaten by'} FPI by {d:+.3f} "
                       f"(more than the combined 95 % half-width {hw:.3f})")
        else:
            out.append(f"{t}: no clear difference, PII − FPI = {d:+.3f} within ± {hw:.3f}")
    return out


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------

def _git(*a: str) -> str | None:
    try:
        return subprocess.run(["git", "-C", str(ROOT), *a], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def versions() -> dict[str, Any]:
    """Versions of the software that decides the numbers, and the library's commit."""
    import importlib.metadata as md

    v: dict[str, Any] = dict(python=platform.python_version())
    for name, dist in (("torch", "torch"), ("numpy", "numpy"), ("numba", "numba"),
                       ("scikit-image", "scikit-image"), ("scipy", "scipy"),
                       ("matplotlib", "matplotlib")):
        try:
            v[name] = md.version(dist)
        except md.PackageNotFoundError:
            v[name] = None
    import torch

    v["torch_num_threads_default"] = torch.get_num_threads()
    v["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()  # the kernels' ISA
    v["commit"] = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    v["dirty"] = None if status is None else bool(status)
    model = None
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    except OSError:
        pass
    v["machine"] = dict(platform=platform.platform(), processor=model or platform.processor() or
                        platform.machine(), cpus=os.cpu_count())
    return v


# --------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------

def train_command(method: str, seed: int, out: Path, cfg: dict, a: argparse.Namespace) -> list[str]:
    cmd = [sys.executable, str(ROOT / "examples" / "train.py"), "--method", method, "--seed", str(seed),
           "--data-seed", str(a.data_seed), "--out", str(out), "--epochs", str(cfg["epochs"]),
           "--width", str(cfg["width"]), "--bn-momentum", str(cfg["bn_momentum"]),
           "--batch-size", str(cfg["batch_size"]), "--n-train", str(cfg["n_train"]),
           "--n-test", str(cfg["n_test"]), "--image-size", str(cfg["image_size"]),
           "--threads", str(a.threads), "--save-every", "0", "--no-progress", "--eval",
           "--device", "cpu"]
    if cfg["steps_per_epoch"]:
        cmd += ["--steps-per-epoch", str(cfg["steps_per_epoch"])]
    if a.deterministic:
        cmd.append("--deterministic")
    return cmd + list(a.train_args)


def run_all(jobs: list[tuple[str, int, Path, list[str]]], n_parallel: int, log=print) -> dict:
    """Run the commands, at most ``n_parallel`` at once; -> {(method, seed): seconds}. A failed run
    stops the others and raises with the path of its log."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    # One thread per process in every pool a run could open (numba, BLAS, OpenMP) too.
    env.setdefault("NUMBA_NUM_THREADS", "1")
    env.setdefault("OMP_NUM_THREADS", "1")
    env.setdefault("MKL_NUM_THREADS", "1")
    pending = list(jobs)
    running: dict[subprocess.Popen, tuple[str, int, Path, float, Any]] = {}
    seconds: dict[tuple[str, int], float] = {}
    t_all = time.perf_counter()
    try:
        while pending or running:
            while pending and len(running) < n_parallel:
                method, seed, out, cmd = pending.pop(0)
                out.mkdir(parents=True, exist_ok=True)
                f = open(out / "train.log", "w")
                f.write(" ".join(cmd) + "\n")
                f.flush()
                p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
                running[p] = (method, seed, out, time.perf_counter(), f)
                log(f"[{time.perf_counter() - t_all:7.0f} s] started {method} seed {seed} -> {out}/train.log")
            time.sleep(0.2)
            for p in [p for p in running if p.poll() is not None]:
                method, seed, out, t0, f = running.pop(p)
                f.close()
                if p.returncode != 0:
                    raise RuntimeError(f"{method} seed {seed} failed (exit {p.returncode}); "
                                       f"see {out / 'train.log'}")
                seconds[(method, seed)] = round(time.perf_counter() - t0, 1)
                log(f"[{time.perf_counter() - t_all:7.0f} s] finished {method} seed {seed} in "
                    f"{seconds[(method, seed)]:.0f} s ({len(seconds)}/{len(jobs)} done)")
    finally:
        for p, (*_, f) in running.items():
            p.kill()
            p.wait()
            f.close()
    return seconds


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------

def _read_scores(d: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with open(d / "eval" / "scores.csv") as f:
        rows = list(csv.DictReader(f))
    return (np.array([int(r["anomalous"]) for r in rows]), np.array([r["kind"] for r in rows]),
            np.array([float(r["score_mean"]) for r in rows]))


def figure_histograms(run_dirs: dict, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = [m for m in METHODS if any(k[0] == m for k in run_dirs)]
    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 3.6), squeeze=False)
    for a, m in zip(axes[0], methods):
        ys, ss = [], []
        for (mm, _), d in sorted(run_dirs.items()):
            if mm == m:
                y, _, s = _read_scores(d)
                ys.append(y)
                ss.append(s)
        y, s = np.concatenate(ys), np.concatenate(ss)
        bins = np.linspace(s.min(), s.max(), 40)
        a.hist(s[y == 0], bins, alpha=0.6, label=f"normal (n={int((y == 0).sum())})")
        a.hist(s[y == 1], bins, alpha=0.6, label=f"anomalous (n={int((y == 1).sum())})")
        st = summary[m]
        a.set_title(f"{m.upper()}, {len(ys)} seeds pooled: AP {st['ap']['mean']:.3f} ± {st['ap']['std']:.3f}, "
                    f"AUC {st['auc']['mean']:.3f} ± {st['auc']['std']:.3f}", fontsize=9)
        a.set_xlabel("image score (mean of the anomaly map)")
        a.set_ylabel("test images")
        a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def figure_maps(run_dirs: dict, seed: int, path: Path) -> None:
    """Rows: test image, then each method's map (seed ``seed``); columns: two normal images and
    one of each anomaly kind."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from examples.data import build_datasets
    from examples.evaluate import load_model
    from examples.train import build_parser

    methods = [m for m in METHODS if (m, seed) in run_dirs]
    models, test = {}, None
    for m in methods:
        model, ck = load_model(run_dirs[(m, seed)] / "checkpoint.pt")
        models[m] = model
        if test is None:
            args = build_parser().parse_args([])
            for k, v in ck["args"].items():
                setattr(args, k, v)
            _, test = build_datasets(args, train=False, test=True)
    idx = [0, 1]
    for k in KINDS:
        hit = [i for i in range(len(test)) if test.kind_of(i) == k]
        if hit:
            idx.append(hit[0])
    items = [test[i] for i in idx]
    x = torch.stack([it[0] for it in items])
    with torch.no_grad():
        maps = {m: models[m](x).float().numpy() for m in methods}
    fig, ax = plt.subplots(1 + len(methods), len(idx), figsize=(1.9 * len(idx), 2.0 * (1 + len(methods))),
                           squeeze=False)
    for j, i in enumerate(idx):
        img, _, mask, _ = items[j]
        ax[0, j].imshow(img[0].numpy(), cmap="gray")
        ax[0, j].set_title(test.kind_of(i).replace("_", " "), fontsize=8)
        for r, m in enumerate(methods, 1):
            mp = maps[m][j, 0]
            ax[r, j].imshow(mp, cmap="inferno", vmin=0, vmax=1)
            ax[r, j].set_title(f"{m.upper()} map, mean {mp.mean():.3f}", fontsize=7)
        for r in range(1 + len(methods)):
            ax[r, j].axis("off")
            if mask.any():
                ax[r, j].contour(mask[0].numpy(), [0.5], colors="c", linewidths=0.7)
    fig.suptitle(f"test images and anomaly maps (training seed {seed}); cyan: true anomaly", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/compare", help="output folder")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (at least 1)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    p.add_argument("--data-seed", type=int, default=0, help="seed of the default data (fixed over runs)")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one per core)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 epoch of 2 steps at 32x32, tiny data (checks that it runs)")
    p.add_argument("--epochs", type=int, default=None, help=f"override (default {DEFAULT['epochs']})")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="override (default: full epochs)")
    p.add_argument("--no-deterministic", dest="deterministic", action="store_false",
                   help="do not pass --deterministic to train.py")
    p.add_argument("--reuse", action="store_true",
                   help="keep runs whose eval/metrics.json exists (e.g. after an interruption)")
    p.add_argument("--same-as", metavar="RESULTS_JSON",
                   help="an earlier run's results.json: say whether every per-seed metric is the same "
                        "bit for bit, and exit with status 1 if not")
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                   help="further train.py options, all after this one (e.g. --train-args --lr 5e-4)")
    return p


def main(argv: Sequence[str] | None = None) -> dict:
    a = build_parser().parse_args(argv)
    cfg = _settings(a)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    ver = versions()  # at the start: the commit the runs are made with
    t0 = time.perf_counter()
    run_dirs, jobs = _plan(a, cfg, out)
    print(f"{len(jobs)} runs ({', '.join(a.methods)} x seeds {a.seeds}), {a.jobs} at a time, "
          f"{a.threads} thread(s) each, settings {cfg}", file=sys.stderr)
    seconds = run_all(jobs, max(1, a.jobs), log=lambda s: print(s, file=sys.stderr, flush=True))
    per_seed = collect_metrics(run_dirs)
    summary = {m: aggregate(list(per_seed[m].values())) for m in a.methods}
    wall = round(time.perf_counter() - t0, 1)

    figure_histograms(run_dirs, summary, out / "histogram.png")
    figure_maps(run_dirs, a.seeds[0], out / "maps.png")
    wall_total = round(time.perf_counter() - t0, 1)

    setting = dict(cfg, seeds=a.seeds, data_seed=a.data_seed, jobs=a.jobs, threads=a.threads,
                   deterministic=a.deterministic, quick=a.quick, train_args=a.train_args)
    cmdline = "python examples/compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    results = dict(settings=setting, command=cmdline, summary=summary,
                   per_seed={m: {str(s): r for s, r in v.items()} for m, v in per_seed.items()},
                   verdicts=verdicts(summary))
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    timing = dict(wall_s=wall_total, training_wall_s=wall,
                  run_s={f"{m}_s{s}": v for (m, s), v in sorted(seconds.items())})
    (out / "versions.json").write_text(json.dumps(dict(ver, settings=setting, command=cmdline, **timing),
                                                  indent=1) + "\n")
    table = format_table(summary, per_seed)
    v = ", ".join(f"{k} {ver[k]}" for k in ("python", "torch", "numpy", "numba", "scikit-image"))
    md = (f"# PII vs FPI on the example's default data\n\n`{cmdline}`\n\n"
          f"Settings: {json.dumps(setting)}\n\nVersions: {v}; commit {ver['commit']}"
          f"{' (dirty)' if ver['dirty'] else ''}; {ver['machine']['cpus']} CPUs.\n\n"
          f"Wall time: {wall_total:.0f} s ({wall_total / 60:.1f} min).\n\n{table}\n"
          + "".join(f"- {s}\n" for s in results["verdicts"]))
    (out / "results.md").write_text(md)
    print(md)
    print(f"wrote {out}/results.md, results.json, versions.json, histogram.png, maps.png", file=sys.stderr)
    if a.same_as:
        _check_same_as(a.same_as, results)
    return results


def _settings(a: argparse.Namespace) -> dict:
    """The training settings: QUICK or DEFAULT, with ``--epochs`` and ``--steps-per-epoch`` applied."""
    cfg = dict(QUICK if a.quick else DEFAULT)
    if a.epochs is not None:
        cfg["epochs"] = a.epochs
    if a.steps_per_epoch is not None:
        cfg["steps_per_epoch"] = a.steps_per_epoch
    return cfg


def _plan(a: argparse.Namespace, cfg: dict, out: Path) -> tuple[dict[tuple[str, int], Path], list]:
    """Every (method, seed) run's folder, and the jobs to run (all but those ``--reuse`` finds done)."""
    run_dirs: dict[tuple[str, int], Path] = {}
    jobs = []
    # Interleave the methods so that PII and FPI share the machine alike.
    for seed in a.seeds:
        for m in a.methods:
            d = out / "runs" / f"{m}_s{seed}"
            run_dirs[(m, seed)] = d
            if a.reuse and (d / "eval" / "metrics.json").is_file():
                continue
            jobs.append((m, seed, d, train_command(m, seed, d, cfg, a)))
    return run_dirs, jobs


def _check_same_as(path: str, results: dict) -> None:
    """Print how ``results`` compare with the earlier results.json at ``path``; exit 1 if they differ."""
    earlier = json.loads(Path(path).read_text())
    diff, runs = compare_results(earlier, results), common_runs(earlier, results)
    print(f"against {path}, runs {', '.join(runs)}: " +
          ("identical (every metric equal bit for bit)" if not diff
           else f"{len(diff)} differences:\n  " + "\n  ".join(diff)))
    if diff:
        raise SystemExit(1)


def compare_results(old: dict, new: dict) -> list[str]:
    """Differences between two results.json contents: the settings (except which seeds and how
    many at a time) and every metric of each (method, seed) run that both hold, exactly."""
    diff = []
    for k in sorted(set(old["settings"]) | set(new["settings"])):
        if k not in ("jobs", "seeds") and old["settings"].get(k) != new["settings"].get(k):
            diff.append(f"setting {k}: {old['settings'].get(k)!r} vs {new['settings'].get(k)!r}")
    for m in sorted(set(old["per_seed"]) & set(new["per_seed"])):
        a, b = old["per_seed"][m], new["per_seed"][m]
        for s in sorted(set(a) & set(b)):
            ra, rb = a[s], b[s]
            for k in sorted(set(ra) | set(rb)):
                if ra.get(k) != rb.get(k):
                    diff.append(f"{m} seed {s} {k}: {ra.get(k)!r} vs {rb.get(k)!r}")
    return diff


def common_runs(old: dict, new: dict) -> list[str]:
    return [f"{m}_s{s}" for m in sorted(set(old["per_seed"]) & set(new["per_seed"]))
            for s in sorted(set(old["per_seed"][m]) & set(new["per_seed"][m]))]


if __name__ == "__main__":
    main()
