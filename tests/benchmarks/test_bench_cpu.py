"""benchmarks/bench_cpu.py: the side-by-side table's timing rounds, and one tiny run of the table
(needs pie-torch and OpenCV, the benchmark's peers)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import bench_cpu  # noqa: E402


def _recording(log: list, name: str):
    def call():
        log.append(name)
        return name

    return call


@pytest.mark.parametrize("interleave", [True, False])
def test_rounds_time_every_call_repeats_times_after_one_warm_up(interleave):
    log: list = []
    res = bench_cpu.time_rounds({n: _recording(log, n) for n in "abc"}, 3, interleave)
    # interleaved: the warm-ups, then rounds; else each call's warm-up and repeats in turn
    assert log == (list("abc") * 4 if interleave else list("aaaabbbbcccc"))
    assert set(res) == set("abc")
    assert all(r["out"] == n and 0 <= r["best"] <= r["first"] + 1 for n, r in res.items())


def test_the_table_has_every_row_and_ratios_to_ours(capsys):
    pytest.importorskip("pietorch", reason="the benchmark's peer")
    pytest.importorskip("cv2", reason="the benchmark's peer")
    assert bench_cpu.main(["--batch", "2", "--size", "48", "--repeats", "2", "--no-jacobi", "--no-latency",
                           "--sparse-samples", "1", "--interleave"]) == 0
    out = capsys.readouterr().out
    names = ["method='auto'", "method='multigrid'", "whole-image sparse LU", "(source grad)", "(mixed grad)",
             "seamlessClone"]
    rows = {n: next(line for line in out.splitlines() if n in line and "  " in line and "..." not in line)
            for n in names}
    assert " 1x " in rows["method='auto'"]
    for n in names[1:]:
        assert "x " in rows[n].split(n)[1]  # a speed-up column
    assert "interleaved rounds" in out
