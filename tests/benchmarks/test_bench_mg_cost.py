"""benchmarks/bench_mg_cost.py runs, prints its table and the budget line (tiny sizes; no figure
is checked: timings are the benchmark's business)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_mg_cost  # noqa: E402


def test_decomposition_rows_and_smoothing_table(capsys, monkeypatch):
    monkeypatch.setenv("PII_AUGMENT_NUM_THREADS", "1")  # main() sets it: restored after the test
    assert bench_mg_cost.main(["--batch", "2", "--size", "48", "--repeats", "1", "--smoothing", "1", "2"]) == 0
    out = capsys.readouterr().out
    for part in ("the preparation pass", "a solve's fixed cost", "one PCG iteration", "3x the box path"):
        assert part in out
    assert "iterations after the pass and the fixed cost" in out
    rows = [r for r in out.splitlines() if r.startswith("| 1 |") or r.startswith("| 2 |")]
    assert len(rows) == 2
    assert all(float(r.split("|")[2]) >= 1 for r in rows)  # mean PCG iterations


def test_decompose_keys_are_finite():
    import pii_augment as pa

    f = bench_mg_cost.decompose(pa, "blob", 2, 48, 0, 1)
    for key in ("pass", "box", "default", "fixed", "per_iteration", "budget", "budget_iterations"):
        assert np.isfinite(f[key]), key
    assert f["unknowns"] > 0 and f["box_unknowns"] > 0 and f["iterations"] >= 1
