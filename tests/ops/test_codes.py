"""The codes of pii_augment/ops/codes.py: the CUDA constants and the Numba ints cannot drift from them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pii_augment.ops import _mg_system, _numba_kernels, solver
from pii_augment.ops.codes import MODES, Cell, Guidance, SolvedBy, Verdict

COMMON = Path(__file__).resolve().parents[2] / "kernels" / "common.cuh"

#: The C++ name (namespace pii, kernels/common.cuh) of every member of the enums.
CXX = {
    **{c.name: c for c in Cell},
    **{f"MODE_{m.name}": m for m in Guidance},
    **{v.name: v for v in Verdict},
    "SOLVED_NONE": SolvedBy.NONE,
    "SOLVED_BOX": SolvedBy.BOX,
    "BOX_PENDING": SolvedBy.BOX_PENDING,
    "MG_PENDING": SolvedBy.MG_PENDING,
    "SOLVED_MG": SolvedBy.MG,
}

#: Constants of common.cuh that are not codes.
NOT_CODES = {"BLOCK"}


def _constexprs() -> dict[str, int]:
    text = re.sub(r"//[^\n]*", "", COMMON.read_text())
    found = re.findall(r"\bconstexpr\s+[\w\s]+?\s(\w+)\s*=\s*(\d+)\s*;", text)
    names = [n for n, _ in found]
    assert len(names) == len(set(names)), "a constant of common.cuh is defined twice"
    return {n: int(v) for n, v in found}


def test_every_enum_member_has_its_cuda_constant():
    assert set(CXX.values()) >= set(Cell) | set(Guidance) | set(Verdict) | set(SolvedBy)
    consts = _constexprs()
    for name, member in CXX.items():
        assert name in consts, f"kernels/common.cuh lacks pii::{name} ({type(member).__name__}.{member.name})"
        assert consts[name] == member.value, f"pii::{name} = {consts[name]}, {member!r} = {member.value}"


def test_every_cuda_constant_is_an_enum_member():
    extra = set(_constexprs()) - set(CXX) - NOT_CODES
    assert not extra, f"constants of kernels/common.cuh with no enum in pii_augment/ops/codes.py: {sorted(extra)}"


def test_the_parser_reads_the_header():
    consts = _constexprs()
    assert consts["BLOCK"] == 256 and consts["UNKNOWN"] == 2


@pytest.mark.parametrize("module", [_numba_kernels, _mg_system])
def test_numba_constants_are_plain_ints_equal_to_the_enums(module):
    # plain ints (not enum members): Numba freezes them as compile-time constants
    names = {"ABSENT": Cell.ABSENT, "FIXED": Cell.FIXED, "UNKNOWN": Cell.UNKNOWN, "PII": Guidance.PII,
             "MIXED": Guidance.MIXED, "SOURCE": Guidance.SOURCE, "DIVERGENCE": Guidance.DIVERGENCE,
             "HARMONIC": Guidance.HARMONIC, "CONVERGED": Verdict.CONVERGED, "STALLED": Verdict.STALLED,
             "NONFINITE": Verdict.NONFINITE, "AT_MAX_ITER": Verdict.MAX_ITER}
    present = {n: m for n, m in names.items() if hasattr(module, n)}
    assert present
    for name, member in present.items():
        value = getattr(module, name)
        assert type(value) is int and value == member, name


def test_public_tables_follow_the_enums():
    assert MODES == {"pii": 0, "mixed": 1, "source": 2} and solver.MODES is MODES
    assert all(type(v) is int for v in MODES.values())
    assert (solver.DIVERGENCE, solver.HARMONIC) == (Guidance.DIVERGENCE, Guidance.HARMONIC)
    assert type(solver.DIVERGENCE) is int and type(solver.HARMONIC) is int
    assert _mg_system.STATUS == {"converged": 1, "stalled": 2, "nonfinite": 3, "max_iter": 4}
