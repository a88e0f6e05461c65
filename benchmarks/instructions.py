"""Instructions executed by one CPU kernel call, counted by valgrind's callgrind: a figure that
repeats to about 0.01 % between runs (a 90 x 90 box solve over 20 calls: 966,195 and 966,238;
a 16 x 16 one over 2 calls within about 1 %, the allocator's share), where this VM's wall clock
moves by 30 % or more, so that two versions of a kernel can be compared.

Counting is switched on only around the calls (a tiny C library of callgrind client requests,
built here with the system's C compiler, called through ctypes), so the interpreter's start, the
imports and Numba's cache load are not counted. Numba is given the host's CPU name and features
(``NUMBA_CPU_NAME``, ``NUMBA_CPU_FEATURES``, less AVX-512, GFNI and the other extensions
valgrind cannot decode: see :func:`host_cpu_env`) both in a warm-up run outside valgrind and under
it, so that under valgrind (which reports another CPU) it loads the code the warm-up cached
instead of compiling for minutes. Workloads (float32, the reference workload's images, seed 0):

* ``box``: one exact box solve (``solve_box``) of a side x side box, the original's square, PII
  guidance at alpha = 0.5;
* ``ellipse`` / ``blob``: the whole-system multigrid of every sample of a batch of 64 such masks
  at 256^2 (``mg_solve_samples`` on one thread; ``--samples 1`` for the first sample alone);
* ``call``: the whole ``poisson_interpolate`` call on a batch of the reference workload (the
  Python layer included), one host thread.

``--functions N`` also says where the instructions go: the N functions that execute the most,
by name. The kernels are then compiled under valgrind into a fresh Numba cache (code loaded from
the cache has no symbols to read; several minutes), and callgrind's counts for the anonymous
JIT code are mapped to the functions Numba compiled (``memset`` and ``memmove`` count the bytes
of ``rep stos``/``rep movs``, one per iteration: far more than their share of the time).

Needs valgrind, a C compiler and ``valgrind/callgrind.h`` (Debian: ``valgrind``, ``gcc``).
Examples::

    python benchmarks/instructions.py box --side 90
    python benchmarks/instructions.py ellipse --calls 2
    python benchmarks/instructions.py call --batch 1
    python benchmarks/instructions.py ellipse --samples 8 --calls 2 --functions 15   # where they go
    # the same count for another checkout (e.g. ``git worktree add /tmp/old HEAD~1``):
    python benchmarks/instructions.py box --side 90 --pythonpath /tmp/old
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKLOADS = ("box", "ellipse", "blob", "call")

_CLIENT = """#include <valgrind/callgrind.h>
void cg_start(void) { CALLGRIND_ZERO_STATS; CALLGRIND_START_INSTRUMENTATION; CALLGRIND_TOGGLE_COLLECT; }
void cg_stop(void) { CALLGRIND_TOGGLE_COLLECT; CALLGRIND_DUMP_STATS; CALLGRIND_STOP_INSTRUMENTATION; }
"""


def missing_tools() -> str | None:
    """Why this machine cannot count (None when it can): valgrind, a C compiler, callgrind.h."""
    if shutil.which("valgrind") is None:
        return "needs valgrind (Debian: apt install valgrind)"
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        return "needs a C compiler (cc or gcc)"
    if not any(Path(d, "valgrind", "callgrind.h").is_file() for d in ("/usr/include", "/usr/local/include")):
        return "needs valgrind/callgrind.h (Debian: the valgrind package)"
    return None


def build_client(directory: Path) -> Path:
    """Compile the callgrind client-request library into ``directory``; returns its path."""
    src = directory / "cgclient.c"
    lib = directory / "libcgclient.so"
    src.write_text(_CLIENT)
    cc = shutil.which("cc") or shutil.which("gcc")
    subprocess.run([cc, "-O1", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True)
    return lib


#: Feature families valgrind (3.19 at least) cannot decode: the EVEX-encoded AVX-512 and AVX10
#: instructions, AMX, and VEX extensions beyond AVX2 (GFNI, which LLVM picks for byte shifts,
#: the VEX forms of VNNI, VAES, VPCLMULQDQ). A host that has them is counted with them off.
_NO_VALGRIND = ("avx512", "avx10", "evex512", "amx", "gfni", "avxvnni", "avxifma", "avxneconvert", "vaes",
                "vpclmulqdq", "sha512", "sm3", "sm4")


def host_cpu_env() -> dict[str, str]:
    """``NUMBA_CPU_NAME`` / ``NUMBA_CPU_FEATURES`` for the counted code: this host's CPU name and
    features (its scheduling model and vector width choices), less the features valgrind cannot
    decode (:data:`_NO_VALGRIND`): on an AVX-512 host the count is of the AVX2 code Numba would
    compile there, not of what the host runs by default (the same for every version compared)."""
    import llvmlite.binding as ll

    features = []
    for f in ll.get_host_cpu_features().flatten().split(","):
        if f[:1] == "+" and f[1:].startswith(_NO_VALGRIND):
            f = "-" + f[1:]
        features.append(f)
    return {"NUMBA_CPU_NAME": ll.get_host_cpu_name(), "NUMBA_CPU_FEATURES": ",".join(features)}


def parse_totals(text: str) -> int:
    """The instruction count of a callgrind dump (its ``totals:`` or ``summary:`` line)."""
    m = re.search(r"^(?:totals|summary):\s+(\d+)", text, re.M)
    if m is None:
        raise ValueError("no totals: line in the callgrind output")
    return int(m.group(1))


# ------------------------------------------------------------------------------------ worker
def _prepare(args) -> tuple:
    """(function to count, units, unit name) of the workload, after one call (warm caches)."""
    import numpy as np

    sys.path.insert(0, str(HERE))
    from workload import reference_workload

    import pii_augment as pa

    if args.workload == "box":
        from pii_augment.ops import _spectral as sp
        from pii_augment.ops._numba_kernels import PII

        wl = reference_workload(1, 256, seed=0)
        d5, g5 = wl["dst"][:, :, None].copy(), wl["src"][:, :, None].copy()
        n = args.side
        lo = np.array([0, 128 - n // 2, 128 - n // 2], np.int64)
        hi = lo + np.array([1, n, n], np.int64)
        out, res = d5.copy(), np.zeros((1, 1))
        clip_lo, clip_hi = np.full((1, 1), -1e9, np.float32), np.full((1, 1), 1e9, np.float32)
        store, offs = sp.sine_store(d5.dtype)

        def fn():
            sp.solve_box(d5, g5, 0, 0.5, PII, 0, lo, hi, 2, clip_lo, clip_hi, True, out, res, store, offs)

        fn()
        return fn, n * n, "unknown"
    if args.workload in ("ellipse", "blob"):
        from pii_augment.ops import _mg_system as mg

        wl = reference_workload(args.batch, 256, seed=0)
        p = pa.sample_patches(args.batch, (256, 256), shape=args.workload, seed=1)
        m, a = p.masks(), p.alpha
        captured = {}
        original = mg.mg_solve_samples

        def spy(*call_args):
            captured["args"] = call_args
            return original(*call_args)

        mg.mg_solve_samples = spy
        try:
            # method="multigrid": the call that hands the samples to mg_solve_samples (with "auto",
            # the preparation pass solves them itself, through the same per-sample solve)
            pa.poisson_interpolate(wl["dst"], wl["src"], m, a, method="multigrid")
        finally:
            mg.mg_solve_samples = original
        call = list(captured["args"])
        nonempty = np.flatnonzero(m.reshape(args.batch, -1).any(axis=1)).astype(np.int64)
        call[6] = nonempty[: args.samples] if args.samples else nonempty  # the samples to solve
        unknowns = int(m[call[6]].sum())

        def fn():
            original(*call)

        fn()
        return fn, unknowns, "unknown"
    wl = reference_workload(args.batch, 256, seed=0)

    def fn():
        pa.poisson_interpolate(wl["dst"], wl["src"], wl["mask"], wl["alpha"])

    fn()
    return fn, args.batch, "sample"


#: The modules whose compiled functions ``--functions`` names.
_KERNEL_MODULES = ("_mg_system", "_numba_kernels", "_host_kernels", "_spectral")


def demangle(symbol: str) -> str:
    """``module.function`` of a Numba symbol (``_ZN11pii_augment3ops10_mg_system10solve_flatB...``:
    length-prefixed names up to the first non-name part); other symbols unchanged."""
    if not symbol.startswith("_ZN"):
        return symbol
    parts, i = [], 3
    while i < len(symbol) and symbol[i].isdigit():
        j = i
        while symbol[j].isdigit():
            j += 1
        n = int(symbol[i:j])
        parts.append(symbol[j:j + n])
        i = j + n
    return ".".join(parts[-2:]) if parts else symbol


def write_function_map(path: str) -> None:
    """Write ``address name`` of every function Numba compiled for the kernel modules (fresh
    compiles only: code loaded from Numba's cache has no symbol table to read)."""
    import importlib

    with open(path, "w") as f:
        for name in _KERNEL_MODULES:
            mod = importlib.import_module(f"pii_augment.ops.{name}")
            for attr in dir(mod):
                for cres in getattr(getattr(mod, attr), "overloads", {}).values():
                    module = getattr(cres.library, "_final_module", None)
                    for fn in module.functions if module is not None else ():
                        if not fn.is_declaration:
                            addr = cres.library.get_pointer_to_function(fn.name)
                            if addr:
                                f.write(f"{addr:x} {demangle(fn.name)}\n")


def by_function(annotate: str, function_map: str) -> list[tuple[str, int]]:
    """(name, instructions) per function, largest first, from ``callgrind_annotate`` output: the
    anonymous JIT code (``???:0x...``) named by the nearest function start at or below it in
    ``function_map`` (:func:`write_function_map`), the rest by callgrind's own names."""
    import bisect

    starts = sorted({(int(a, 16), n) for a, n in (line.split(None, 1) for line in function_map.splitlines() if line)})
    addrs = [a for a, _ in starts]
    totals: dict[str, int] = {}
    for line in annotate.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S+)", line)
        if not m or m.group(2) == "PROGRAM":
            continue
        count, where = int(m.group(1).replace(",", "")), m.group(2)
        name = where.split(":", 1)[-1]
        hit = re.match(r"\?\?\?:0x([0-9a-f]+)", where)
        if hit:
            i = bisect.bisect_right(addrs, int(hit.group(1), 16)) - 1
            name = starts[i][1].strip() if i >= 0 else where
        totals[name] = totals.get(name, 0) + count
    return sorted(totals.items(), key=lambda kv: -kv[1])


def _worker(args) -> int:
    fn, units, unit = _prepare(args)
    if args.map:
        write_function_map(args.map)
    if args.lib:
        cg = ctypes.CDLL(args.lib)
        cg.cg_start()
        for _ in range(args.calls):
            fn()
        cg.cg_stop()
    print(f"units {units} {unit}")
    return 0


# ------------------------------------------------------------------------------------ driver
def count(args) -> tuple[int, int, str]:
    """Run the workload under callgrind; returns (instructions per call, units, unit name)."""
    why = missing_tools()
    if why:
        raise RuntimeError(why)
    env = dict(os.environ)
    env.update(host_cpu_env())
    env["PII_AUGMENT_NUM_THREADS"] = "1"
    if args.pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([args.pythonpath, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    worker = [sys.executable, str(Path(__file__).resolve()), "--worker", args.workload, "--side", str(args.side),
              "--batch", str(args.batch), "--samples", str(args.samples), "--calls", str(args.calls)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lib = build_client(tmp)
        if args.functions:
            # a fresh cache: the code is compiled under valgrind (minutes), so its symbols can be read
            env["NUMBA_CACHE_DIR"] = str(tmp / "numba")
            worker += ["--map", str(tmp / "functions.txt")]
        else:
            # the warm-up outside valgrind compiles (or loads) the host's code into Numba's cache
            subprocess.run(worker, env=env, check=True, stdout=subprocess.DEVNULL)
        out = tmp / "callgrind.out"
        run = subprocess.run(
            ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--collect-atstart=no",
             f"--callgrind-out-file={out}"] + worker + ["--lib", str(lib)],
            env=env, capture_output=True, text=True,
        )
        if run.returncode != 0:
            raise RuntimeError(f"valgrind run failed ({run.returncode}):\n{run.stderr[-2000:]}")
        dumps = sorted(tmp.glob("callgrind.out.*"))
        if not dumps:
            raise RuntimeError("callgrind wrote no dump (was the client library called?)")
        total = parse_totals(dumps[-1].read_text())
        m = re.search(r"^units (\d+) (\w+)", run.stdout, re.M)
        units, unit = (int(m.group(1)), m.group(2)) if m else (1, "call")
        if args.functions:
            annotate = subprocess.run([shutil.which("callgrind_annotate") or "callgrind_annotate", "--threshold=100",
                                       str(dumps[-1])], capture_output=True, text=True, check=True).stdout
            args.function_table = by_function(annotate, (tmp / "functions.txt").read_text())
    return total // args.calls, units, unit


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workload", choices=WORKLOADS)
    ap.add_argument("--side", type=int, default=90, help="box: the box's side (default 90)")
    ap.add_argument("--batch", type=int, default=64, help="ellipse, blob, call: the batch (default 64)")
    ap.add_argument("--samples", type=int, default=0, help="ellipse, blob: solve only the first N samples (0: all)")
    ap.add_argument("--calls", type=int, default=5, help="calls counted (default 5); the figure is per call")
    ap.add_argument("--pythonpath", default=None, help="count the pii_augment of this checkout instead")
    ap.add_argument("--functions", type=int, default=0, metavar="N",
                    help="also print the N functions that execute the most instructions (compiles the "
                         "kernels under valgrind: minutes)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--lib", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--map", default=None, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return _worker(args)
    why = missing_tools()
    if why:
        print(f"cannot count instructions here: {why}", file=sys.stderr)
        return 2
    per_call, units, unit = count(args)
    what = {"box": f"box {args.side}x{args.side}", "call": f"poisson_interpolate, batch {args.batch}"}.get(
        args.workload, f"{args.workload} multigrid, {args.samples or args.batch} samples")
    print(f"{what}: {per_call:,} instructions per call, {per_call / max(units, 1):,.1f} per {unit} "
          f"({args.calls} calls counted)")
    for name, n in getattr(args, "function_table", [])[:args.functions]:
        print(f"  {n / args.calls:>14,.0f}  {100 * n / (per_call * args.calls):5.1f} %  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
