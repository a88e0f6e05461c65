"""The CUDA kernels on the CPU (``backend="cuda-emulated"``): the *same* sources compiled with
g++ behind ``kernels/cuda_emulation.h`` (CUDA qualifiers become plain C++; an ordinary kernel's
threads run one after another, a kernel declared ``PII_COOPERATIVE`` runs each block with one
fiber per thread that switch at ``__syncthreads()``, optionally in a shuffled order) into a
shared library cached on disk, and called through ctypes (which releases the GIL, so the batch
chunks of the driver run in parallel). Also :func:`compile_emulated_kernels` for test kernels.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import host_threads
from .cuda import CudaKernelBackend
from .signatures import check_launch, parse_signatures
from .sources import _INCLUDE_RE, _KERNEL_RE, CTYPES, _inline, cuda_source, kernel_names, kernel_signatures, kernels_dir

#: Flags of the g++ emulation build (no FMA contraction, for the same reason).
CXX_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-Wall")

# ------------------------------------------------------------------------------------------------


#: Environment variable read at every emulated launch: an integer seed (negative values wrap to
#: 64 bits) runs the threads of each block in a pseudo-random order drawn from the seed, the block
#: and, for cooperative kernels, the barrier phase; unset or empty, threads run in order (thread 0
#: first). A kernel whose result depends on the order of its threads (a race) then changes with
#: the seed.
SHUFFLE_ENV = "PII_AUGMENT_EMULATION_SHUFFLE"

#: Environment variable read at every emulated launch: the most dynamic shared memory (bytes) a
#: launch may ask for; default :data:`SHARED_LIMIT_DEFAULT`. Above it the launch fails, as on a GPU.
SHARED_LIMIT_ENV = "PII_AUGMENT_EMULATION_SMEM_LIMIT"

#: 227 KiB: the opt-in maximum of dynamic shared memory per block of sm_90 (H100, H200).
SHARED_LIMIT_DEFAULT = 227 * 1024


def cache_dir() -> Path:
    """Per-user cache of the emulation libraries: ``$PII_AUGMENT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/pii_augment``, else ``~/.cache/pii_augment``."""
    env = os.environ.get("PII_AUGMENT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pii_augment"


def _symbol(kernel: str, ctype: str) -> str:
    return f"pii_emu_{kernel}_{ctype}"


#: Parameters of every generated launcher (``int`` status, 0 = ok); see ``pii_emu::launch``.
_LAUNCHER_PARAMS = (
    "unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, void** args, "
    "unsigned long long shared_bytes, unsigned long long shared_limit, int shuffle, unsigned long long seed"
)
_LAUNCHER_ARGTYPES = (
    [ctypes.c_uint] * 6 + [ctypes.c_void_p, ctypes.c_ulonglong, ctypes.c_ulonglong, ctypes.c_int, ctypes.c_ulonglong]
)


def _inline_text(text: str, filename: str) -> str:
    """CUDA source text with its local ``#include "..."`` files (looked up in :func:`kernels_dir`)
    inlined once, ``#line``-marked as ``filename``."""
    d = kernels_dir()
    name = Path(filename).name.replace("\\", "_").replace('"', "_") or "source.cu"
    seen: set[str] = set()

    def sub(m: re.Match) -> str:
        inc = m.group(1)
        line = text.count("\n", 0, m.start()) + 2
        if inc in seen:
            return f"// {inc}: already included"
        if not (d / inc).is_file():
            raise FileNotFoundError(f"{name} includes {inc!r}, which is not in {d}")
        seen.add(inc)
        return f'{_inline(inc, d, seen)}\n#line {line} "{name}"'

    return f'#line 1 "{name}"\n' + _INCLUDE_RE.sub(sub, text)


def _emulation_unit(source: str | None, filename: str) -> tuple[str, tuple[str, ...], dict]:
    """(translation unit, kernel names, kernel signatures) of the emulation of ``source``."""
    d = kernels_dir()
    shim = _inline("cuda_emulation.h", d, {"cuda_emulation.h"})
    if source is None:
        code, names = cuda_source(), kernel_names()
    else:
        code = _inline_text(source, filename)
        names = tuple(dict.fromkeys(_KERNEL_RE.findall(code)))
        if not names:
            raise ValueError(f"{filename} defines no `template <typename T> __global__ void name(...)` kernel")
    lines = [shim, code, '#line 1 "pii_augment_emulation_launchers"', 'extern "C" {']
    for ctype in CTYPES.values():
        for k in names:
            lines.append(
                f"int {_symbol(k, ctype)}({_LAUNCHER_PARAMS}) {{ return pii_emu::launch<&{k}<{ctype}>>"
                f"(gx, gy, gz, bx, by, bz, args, shared_bytes, shared_limit, shuffle, seed); }}"
            )
    lines.append("}")
    return "\n".join(lines) + "\n", names, parse_signatures(code, _KERNEL_RE)


def emulation_source(source: str | None = None, filename: str = "extra.cu") -> str:
    """The C++ translation unit of the emulation: shim header, kernels, extern "C" launchers.

    Without ``source``, the kernels are all of ``kernels/*.cu`` (the library of
    ``backend="cuda-emulated"``). With it, they are that CUDA source text alone (test kernels,
    say: see :func:`compile_emulated_kernels`), its local includes (``common.cuh``) looked up in
    :func:`kernels_dir`, its lines marked as ``filename``.

    For every kernel ``name`` and field type ``T`` (float, double) there is one launcher
    ``int pii_emu_<name>_<T>(gx, gy, gz, bx, by, bz, args, shared_bytes, shared_limit, shuffle,
    seed)`` (``args``: an array of pointers to the argument values, as for cudaLaunchKernel)
    returning 0, or 1 with the reason in ``const char* pii_emu_last_error()`` (per host thread).
    """
    return _emulation_unit(source, filename)[0]


def _compiler() -> str:
    cxx = os.environ.get("CXX") or shutil.which("g++")
    if not cxx or not shutil.which(cxx):
        raise RuntimeError(
            "backend='cuda-emulated' compiles kernels/*.cu with a C++17 compiler, but g++ was not "
            "found on PATH (install g++ or set CXX)"
        )
    return cxx


_EMU_LOCK = threading.Lock()


def _build(tu: str, prefix: str, force: bool) -> Path:
    cxx = _compiler()
    try:
        version = subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise RuntimeError(f"backend='cuda-emulated': cannot run the C++ compiler {cxx!r}: {e}") from e
    key = hashlib.sha256("\0".join([tu, cxx, version, *CXX_FLAGS, sys.platform]).encode()).hexdigest()[:20]
    out_dir = cache_dir()
    target = out_dir / f"{prefix}-{key}.so"
    if target.is_file() and not force:
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".build-") as tmp:
        src = Path(tmp) / "pii_augment_emulation.cpp"
        lib = Path(tmp) / "lib.so"
        src.write_text(tu)
        proc = subprocess.run([cxx, *CXX_FLAGS, str(src), "-o", str(lib)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(
                f"backend='cuda-emulated': compiling the kernels with {cxx} failed "
                f"(exit {proc.returncode}):\n{proc.stderr[-8000:]}"
            )
        os.replace(lib, target)
    return target


def build_emulation_library(force: bool = False, source: str | None = None, filename: str = "extra.cu") -> Path:
    """Compile (or find in the cache) the emulation library; return its path.

    Without ``source``: all ``kernels/*.cu``. With it: that CUDA source text alone (see
    :func:`emulation_source`), into a library of its own (``cuda_emulated_extra-<hash>.so``).
    The file name holds a hash of the translation unit, the compiler (path and version) and the
    flags, so any change rebuilds. Concurrent builders each write a private temporary file and
    ``os.replace`` it into place, so a reader never sees a half-written library.
    """
    tu = emulation_source(source, filename)
    return _build(tu, "cuda_emulated" if source is None else "cuda_emulated_extra", force)


@lru_cache(maxsize=64)
def _shuffle_seed(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        return int(value.strip()) & 0xFFFF_FFFF_FFFF_FFFF
    except ValueError:
        raise ValueError(f"{SHUFFLE_ENV} must be an integer seed (or empty); got {value!r}") from None


@lru_cache(maxsize=64)
def _shared_limit(value: str | None) -> int:
    if value is None or not value.strip():
        return SHARED_LIMIT_DEFAULT
    try:
        limit = int(value.strip())
    except ValueError:
        limit = -1
    if not 0 <= limit < 2**64:
        raise ValueError(f"{SHARED_LIMIT_ENV} must be a number of bytes (an integer >= 0); got {value!r}")
    return limit


def _environment_reader(name: str):
    """A fast ``os.environ.get(name)`` (read at every launch: ``os.environ.get`` of a missing
    variable costs two exceptions, some microseconds). It reads CPython's ``os.environ._data``,
    which ``os.environ[...] = ...`` (and so ``monkeypatch.setenv``) updates, and falls back to
    ``os.environ.get`` where that is missing."""
    data = getattr(os.environ, "_data", None)
    try:
        key = os.environ.encodekey(name)  # type: ignore[attr-defined]
        decode = os.environ.decodevalue  # type: ignore[attr-defined]
    except AttributeError:
        data = None
    if not isinstance(data, dict):
        return lambda: os.environ.get(name)

    def read() -> str | None:
        v = data.get(key)
        return None if v is None else decode(v)

    return read


_shuffle_env = _environment_reader(SHUFFLE_ENV)
_shared_limit_env = _environment_reader(SHARED_LIMIT_ENV)


def emulation_shuffle_seed() -> int | None:
    """The thread-order seed of emulated launches (``$PII_AUGMENT_EMULATION_SHUFFLE``), None: in order."""
    return _shuffle_seed(_shuffle_env())


def emulation_shared_limit() -> int:
    """The most dynamic shared memory (bytes) an emulated launch may ask for now."""
    return _shared_limit(_shared_limit_env())


_SCALARS = {
    np.int32: ctypes.c_int32,
    np.int64: ctypes.c_int64,
    np.uint32: ctypes.c_uint32,
    np.uint64: ctypes.c_uint64,  # np.uint64(0): a null pointer
    np.float32: ctypes.c_float,
    np.float64: ctypes.c_double,
}


class EmulatedKernels:
    """A loaded emulation library (see :func:`emulation_source`): its kernels, launchable.

    ``launch(kernel, ctype, grid, block, args, shared_bytes=0)`` runs ``kernel<ctype>`` on the
    CPU with the semantics of a CUDA launch: ``grid`` and ``block`` are (x, y, z) triples;
    ``args`` are, in the kernel's parameter order, C-contiguous numpy arrays (passed as device
    pointers) and numpy scalars of the exact C types (``np.int32`` for ``int``, ``np.int64`` for
    ``long long``, ``np.float32``, ``np.float64``), checked against the kernel's signature (a wrong
    type raises ``TypeError`` naming the parameter, see
    :func:`~pii_augment.ops.backends.signatures.check_launch`); ``shared_bytes`` is the
    dynamic shared memory of each block. The thread order and the limit on ``shared_bytes``
    follow ``$PII_AUGMENT_EMULATION_SHUFFLE`` and ``$PII_AUGMENT_EMULATION_SMEM_LIMIT``, read at
    every launch. A failed launch (bad configuration, too much shared memory, a barrier in a
    kernel not declared cooperative, a divergent barrier) raises ``RuntimeError`` naming the
    kernel. Launches from several host threads may run concurrently (ctypes releases the GIL).
    """

    def __init__(self, path: Path, names: Sequence[str], signatures: dict) -> None:
        self.library_path = Path(path)
        self.kernel_names = tuple(names)
        self.signatures = signatures
        self._lib = ctypes.CDLL(str(path))
        self._last_error = self._lib.pii_emu_last_error
        self._last_error.restype = ctypes.c_char_p
        self._last_error.argtypes = []
        self._fns: dict[tuple[str, str], Any] = {}

    def _function(self, kernel: str, ctype: str):
        try:
            fn = getattr(self._lib, _symbol(kernel, ctype))
        except AttributeError:
            raise ValueError(
                f"no emulated kernel {kernel}<{ctype}> in {self.library_path.name} (kernels: "
                f"{', '.join(self.kernel_names)}; types: {', '.join(CTYPES.values())})"
            ) from None
        fn.restype = ctypes.c_int
        fn.argtypes = _LAUNCHER_ARGTYPES
        self._fns[(kernel, ctype)] = fn
        return fn

    def launch(self, kernel: str, ctype: str, grid, block, args: Sequence[Any], shared_bytes: int = 0) -> None:
        fn = self._fns.get((kernel, ctype))
        if fn is None:
            fn = self._function(kernel, ctype)
        check_launch(kernel, ctype, self.signatures[kernel], args)
        holders = []
        for a in args:
            if isinstance(a, np.ndarray):
                holders.append(ctypes.c_void_p(a.ctypes.data))
            elif isinstance(a, np.int32):
                holders.append(ctypes.c_int32(int(a)))
            elif isinstance(a, np.float64):
                holders.append(ctypes.c_double(float(a)))
            else:
                c = _SCALARS.get(type(a))
                if c is None:
                    raise TypeError(f"{kernel}: cannot pass {type(a).__name__} to the emulated kernel")
                holders.append(c(a.item()))
        ptrs = (ctypes.c_void_p * len(holders))(*[ctypes.addressof(h) for h in holders])
        if shared_bytes:
            if not isinstance(shared_bytes, (int, np.integer)) or shared_bytes < 0:
                raise ValueError(f"{kernel}: shared_bytes must be an integer >= 0; got {shared_bytes!r}")
            shared_bytes = int(shared_bytes)
            limit = _shared_limit(_shared_limit_env())
        else:
            limit = SHARED_LIMIT_DEFAULT  # no shared memory asked for: no limit to read
        seed = _shuffle_seed(_shuffle_env())
        if fn(*grid, *block, ptrs, shared_bytes, limit, seed is not None, seed or 0):
            message = (self._last_error() or b"unknown error").decode("utf-8", "replace")
            raise RuntimeError(f"{kernel}<{ctype}>: {message}")


_EXTRA_LIBRARIES: dict[Path, EmulatedKernels] = {}


def compile_emulated_kernels(source: str, filename: str = "extra.cu") -> EmulatedKernels:
    """Compile CUDA source text with the emulation (cached on disk by hash) and load it.

    For test kernels that must not ship in ``kernels/``: ``source`` is one CUDA file's text, with
    ``template <typename T> __global__ void name(...)`` kernels (launchers for ``float`` and
    ``double``) that may ``#include "common.cuh"`` (for PII_COOPERATIVE, PII_DYNAMIC_SHARED);
    ``filename`` names it in compiler messages and emulation errors. Returns the
    :class:`EmulatedKernels` of the library (one per library for the process). Raises
    ``RuntimeError`` when g++ is missing or the source does not compile.
    """
    with _EMU_LOCK:
        tu, names, signatures = _emulation_unit(source, filename)
        path = _build(tu, "cuda_emulated_extra", False)
        kernels = _EXTRA_LIBRARIES.get(path)
        if kernels is None:
            kernels = _EXTRA_LIBRARIES[path] = EmulatedKernels(path, names, signatures)
    return kernels


class EmulatedCudaBackend(CudaKernelBackend):
    """CPU backend running the CUDA kernels of ``kernels/*.cu`` compiled with g++ (numpy arrays).

    For testing the CUDA path without a GPU: same sources, same launch geometry and arguments as
    :class:`CupyBackend`; each launch runs the grid's blocks one after another, the threads of a
    block in a loop or, for kernels declared ``PII_COOPERATIVE``, as fibers that meet at every
    ``__syncthreads()`` (see ``kernels/cuda_emulation.h`` and :class:`EmulatedKernels`). The
    batch is split into ``threads`` chunks solved in parallel (ctypes releases the GIL). Raises
    ``RuntimeError`` when no C++ compiler is available, or when a launch fails.
    """

    name = "cuda-emulated"
    on_device = False
    xp = np

    def __init__(self) -> None:
        with _EMU_LOCK:
            self.library_path = build_emulation_library()
            self._kernels = EmulatedKernels(self.library_path, kernel_names(), kernel_signatures())

    @property
    def threads(self) -> int:
        """Host threads the driver splits the batch over (as :class:`NumbaBackend`)."""
        return host_threads()

    def _launch(self, kernel, ctype, grid, block, args, shared_bytes: int = 0):
        self._kernels.launch(kernel, ctype, grid, block, args, shared_bytes)
