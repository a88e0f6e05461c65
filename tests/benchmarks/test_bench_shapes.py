"""benchmarks/bench_shapes.py runs and prints a table row per shape and size (tiny sizes; needs
pie-torch, as the benchmark compares against it)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

pytest.importorskip("pietorch", reason="the benchmark's peer")
import bench_shapes  # noqa: E402


def test_scaling_rows_scale_the_batch(capsys):
    assert bench_shapes.main(["--sizes", "32", "64", "--batch", "4", "--repeats", "1", "--shapes", "ellipse"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ellipse")]
    assert [r.split("|")[2].strip() for r in rows] == ["32x32", "64x64"]
    assert [int(r.split("|")[3]) for r in rows] == [256, 64]  # 4 x 256^2 pixels at each size


def test_3d_row(capsys):
    assert bench_shapes.main(["--ndim", "3", "--size", "12", "--batch", "2", "--repeats", "1", "--shapes", "blob"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| blob")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == "12x12x12"


def test_rgb_row_has_three_distinct_channels(capsys):
    dst, src = bench_shapes.images(2, 16, 2, 0, 3)
    assert dst.shape == src.shape == (2, 3, 16, 16)
    assert not np.array_equal(dst[:, 0], dst[:, 1]) and not np.array_equal(dst[:, 1], dst[:, 2])
    assert bench_shapes.main(["--size", "32", "--batch", "2", "--repeats", "1", "--shapes", "ellipse",
                              "--channels", "3"]) == 0
    rows = [r for r in capsys.readouterr().out.splitlines() if r.startswith("| ellipse")]
    assert len(rows) == 1 and rows[0].split("|")[2].strip() == "32x32 x 3 ch"
