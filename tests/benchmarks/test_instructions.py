"""benchmarks/instructions.py: the callgrind count of one kernel call (the real run needs
valgrind, a C compiler and valgrind/callgrind.h; skipped with the reason without them)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH))

import instructions  # noqa: E402


def test_parse_totals_reads_the_dump_summary():
    dump = "version: 1\ncreator: callgrind\npositions: line\nevents: Ir\nsummary: 1234\n\nfn=(1) x\n0 5\ntotals: 1234\n"
    assert instructions.parse_totals(dump) == 1234
    with pytest.raises(ValueError, match="totals"):
        instructions.parse_totals("events: Ir\n")


def test_missing_tools_is_a_reason_or_none():
    why = instructions.missing_tools()
    assert why is None or why.startswith("needs ")


@pytest.mark.slow
@pytest.mark.skipif(instructions.missing_tools() is not None, reason=str(instructions.missing_tools()))
def test_counts_grow_with_the_box_and_repeat(capsys):
    small = instructions.count(instructions.parse_args(["box", "--side", "16", "--calls", "2"]))
    large = instructions.count(instructions.parse_args(["box", "--side", "32", "--calls", "2"]))
    assert small[1:] == (256, "unknown") and large[1:] == (1024, "unknown")
    # a 16 x 16 solve is some tens of thousands of instructions (mostly its fixed costs); four
    # times the unknowns cost more, if less than four times as much
    assert 10_000 < small[0] < 2_000_000 and 1.5 * small[0] < large[0] < 8 * small[0]
    assert instructions.main(["box", "--side", "16", "--calls", "2"]) == 0
    again = int(capsys.readouterr().out.split(":")[1].split("instructions")[0].replace(",", ""))
    assert abs(again - small[0]) <= 0.02 * small[0]  # the same count again, to the allocator's noise


def test_counted_code_has_no_feature_valgrind_cannot_decode():
    """valgrind cannot decode AVX-512 (EVEX) or GFNI: on a host that has them, the counted code
    is compiled with them off (every count had died with SIGILL), the rest of the host's kept."""
    import llvmlite.binding as ll

    env = instructions.host_cpu_env()
    assert env["NUMBA_CPU_NAME"] == ll.get_host_cpu_name()
    on = {f[1:] for f in env["NUMBA_CPU_FEATURES"].split(",") if f.startswith("+")}
    assert not {f for f in on if f.startswith(instructions._NO_VALGRIND)}
    host_on = {f[1:] for f in ll.get_host_cpu_features().flatten().split(",") if f.startswith("+")}
    assert on == {f for f in host_on if not f.startswith(instructions._NO_VALGRIND)}


def test_demangle_names_numba_symbols():
    sym = ("_ZN11pii_augment3ops10_mg_system10solve_flatB4v279B56c8tJTIeFIjxB2IKSgI4CrvQCk0Z4yRYcWsBAK4JJIqUWsIgmAA"
           "_3d_3dE5ArrayIfLi1E1C7mutable7alignedE")
    assert instructions.demangle(sym) == "_mg_system.solve_flat"
    assert instructions.demangle("NRT_decref") == "NRT_decref"


def test_by_function_names_the_jit_code_by_the_nearest_start():
    annotate = """--------------------------------------------------------------------------------
Ir                   file:function
--------------------------------------------------------------------------------
54,815,989 (100.0%)  PROGRAM TOTALS
12,456,464 (22.72%)  ???:0x000000002831d8e0 [???]
 8,158,246 (14.88%)  ???:0x0000000028320360 [???]
 1,000,000 ( 1.82%)  ???:0x0000000028320400 [???]
 6,488,707 (11.84%)  ./string/../sysdeps/x86_64/multiarch/memset-vec-unaligned-erms.S:__memset_avx2 [libc]
"""
    fmap = "2831d8e0 _mg_system._half_sweep\n28320360 _mg_system._prolong_flat\n"
    table = instructions.by_function(annotate, fmap)
    assert table[0] == ("_mg_system._half_sweep", 12_456_464)
    assert dict(table)["_mg_system._prolong_flat"] == 9_158_246  # a later block of the same function
    assert dict(table)["__memset_avx2"] == 6_488_707
