"""benchmarks/output_hash.py: one hash over the library's outputs, for "same bytes" claims."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import output_hash  # noqa: E402


def test_digest_tells_values_dtypes_and_shapes_apart():
    a = np.arange(6, dtype=np.float32)
    base = output_hash.digest([a])
    assert output_hash.digest([a.copy()]) == base  # the bytes, not the object
    b = a.copy()
    b[3] = np.nextafter(b[3], np.float32(np.inf))  # one ulp
    assert output_hash.digest([b]) != base
    assert output_hash.digest([a.astype(np.float64)]) != base
    assert output_hash.digest([a.reshape(2, 3)]) != base
    assert output_hash.digest([a[:3], a[3:]]) != base  # where the arrays split counts


@pytest.mark.slow
def test_the_groups_repeat(capsys):
    first = {k: output_hash.digest(v) for k, v in output_hash.groups().items()}
    assert {"2D float32 square auto", "3D float64 blob mg/vcycle", "modules"} <= set(first)
    again = {k: output_hash.digest(v) for k, v in output_hash.groups().items()}
    assert again == first  # seeded: the same bytes in one process
    output_hash.main()
    assert capsys.readouterr().out.splitlines()[-1].startswith("all ")
