"""The CUDA kernels of ``kernels/*.cu`` behind the backend interface: cupy, or emulated with g++.

Two backends share one class, :class:`CudaKernelBackend`, which holds everything but memory and
launches: argument checks, launch geometry and argument marshalling for every primitive of
:data:`pii_augment.ops._backends.PRIMITIVES`, the ``smooth`` composite, the capabilities of
:class:`~pii_augment.ops._backends.Backend` (the device path of a call: ``prepare_systems``,
``box_solve``, one read of the result tables, ``label_pixels``, ``fpi_systems``,
``patch_masks``), and the counters of launches, synchronisations and copies. The subclasses
differ only in how arrays are allocated and how a launch is carried out:

- :class:`CupyBackend` (``backend="cupy"``): cupy arrays; the sources are compiled with NVRTC
  through ``cupy.RawModule`` once per device and field type, and launched on cupy's current stream.
- :class:`EmulatedCudaBackend` (``backend="cuda-emulated"``): numpy arrays; the *same* sources are
  compiled with g++ behind ``kernels/cuda_emulation.h`` (CUDA qualifiers become plain C++; an
  ordinary kernel's threads run one after another, a kernel declared ``PII_COOPERATIVE`` runs
  each block with one fiber per thread that switch at ``__syncthreads()``, optionally in a
  shuffled order) into a shared library cached on disk, and called through ctypes (which
  releases the GIL, so the batch chunks of the driver run in parallel). It takes the device path
  and counts exactly what the GPU would do.

Every kernel ``name`` is a template on the field type ``T``; the Python side asks for
``name<float>`` or ``name<double>``. Most kernels are launched "row-mapped" (see
``kernels/common.cuh``): one thread per cell of a ``(b, c, z, y)`` row, block ``(bx, by)``, grid
``(rows / by, width / bx)``; the block-per-system kernels (one block of 256 threads per sample
and channel) document their geometry where they are defined.

Nothing here imports cupy at module import time.
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

from ._backends import BOX, MG, Backend, BatchReport, host_threads

__all__ = [
    "compile_emulated_kernels",
    "nvrtc_compile",
    "CudaKernelBackend",
    "CupyBackend",
    "EmulatedCudaBackend",
    "kernels_dir",
    "kernel_names",
    "cuda_source",
    "name_expressions",
    "launch_geometry",
    "torch_stream",
]

#: C++ spelling of the field types the kernels are instantiated for.
CTYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

#: Options of the NVRTC build. ``--fmad=false`` keeps a*b+c as two roundings, as on the CPU, so
#: the GPU computes the same iterates as the Numba and emulated backends (the kernels are memory
#: bound; fused multiply-adds would buy nothing).
NVRTC_OPTIONS = ("-std=c++17", "--fmad=false")

#: Flags of the g++ emulation build (no FMA contraction, for the same reason).
CXX_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-ffp-contract=off", "-Wall")

#: Threads per block of a row-mapped launch.
BLOCK_THREADS = 256

_INCLUDE_RE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"[ \t]*$', re.M)
_KERNEL_RE = re.compile(r"template\s*<\s*typename\s+T\s*>\s*__global__\s+void\s+(\w+)\s*\(")


# ------------------------------------------------------------------------------------------------
# Sources
# ------------------------------------------------------------------------------------------------


def kernels_dir() -> Path:
    """Directory of the ``.cu`` sources: the checkout's ``kernels/`` when this module runs from a
    source tree (so a worktree always compiles its own sources), else the installed
    ``pii_augment.kernels``.

    Raises ``FileNotFoundError`` when neither holds ``common.cuh``.
    """
    d = Path(__file__).resolve().parents[2] / "kernels"
    if (d / "common.cuh").is_file():
        return d
    try:
        from importlib.resources import files

        installed = Path(str(files("pii_augment.kernels")))
        if (installed / "common.cuh").is_file():
            return installed
    except (ModuleNotFoundError, TypeError):
        pass
    raise FileNotFoundError(
        "pii_augment's CUDA sources (kernels/*.cu) are missing: neither the installed package "
        f"pii_augment.kernels nor {d} holds them; reinstall pii_augment"
    )


def _inline(name: str, directory: Path, seen: set[str]) -> str:
    """Text of ``name`` with its local ``#include "..."`` files inlined once, ``#line``-marked."""
    text = (directory / name).read_text()

    def sub(m: re.Match) -> str:
        inc = m.group(1)
        line = text.count("\n", 0, m.start()) + 2  # line number after the #include
        if inc in seen:
            return f"// {inc}: already included"
        if not (directory / inc).is_file():
            raise FileNotFoundError(f"{name} includes {inc!r}, which is not in {directory}")
        seen.add(inc)
        body = _inline(inc, directory, seen)
        return f'{body}\n#line {line} "{name}"'

    return f'#line 1 "{name}"\n' + _INCLUDE_RE.sub(sub, text)


@lru_cache(maxsize=None)
def _sources(directory: str) -> tuple[tuple[str, ...], str, tuple[str, ...]]:
    d = Path(directory)
    files = tuple(sorted(p.name for p in d.glob("*.cu")))
    if not files:
        raise FileNotFoundError(f"no .cu files in {d}")
    seen: set[str] = set()
    code = "\n".join(_inline(f, d, seen) for f in files) + "\n"
    names = tuple(_KERNEL_RE.findall(code))
    return files, code, names


def cuda_source() -> str:
    """All ``kernels/*.cu`` (sorted by name) as one translation unit, local includes inlined.

    One string, so cupy's compile cache (keyed on the code) sees any change to any file.
    """
    return _sources(str(kernels_dir()))[1]


def kernel_names() -> tuple[str, ...]:
    """Names of the ``template <typename T> __global__`` kernels in the sources, in source order."""
    return _sources(str(kernels_dir()))[2]


def name_expressions(ctype: str) -> list[str]:
    """``["build_kind<float>", ...]``: every kernel instantiated for the C++ type ``ctype``."""
    return [f"{n}<{ctype}>" for n in kernel_names()]


def _ctype(dtype: Any, what: str) -> str:
    try:
        return CTYPES[np.dtype(dtype)]
    except (KeyError, TypeError):
        raise TypeError(f"{what} must be float32 or float64; got dtype {dtype}") from None


# ------------------------------------------------------------------------------------------------
# Launch geometry and argument checks (shared by both backends)
# ------------------------------------------------------------------------------------------------

_MAX_ROWS = 2**31 - 1 - BLOCK_THREADS


@lru_cache(maxsize=4096)
def launch_geometry(rows: int, width: int) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """(grid, block) of a row-mapped launch over ``rows`` rows of ``width`` threads each.

    The block is ``(bx, by)`` with ``bx`` the power of two >= ``width`` capped at 32 (a warp spans
    one row where rows are long, several short rows otherwise) and ``bx * by`` = 256 threads.
    """
    if rows > _MAX_ROWS:
        raise ValueError(
            f"the problem has {rows} rows (batch x channels x depth x height of the crop); the "
            f"CUDA kernels handle at most {_MAX_ROWS}: split the batch"
        )
    bx = 1
    while bx < width and bx < 32:
        bx *= 2
    by = BLOCK_THREADS // bx
    grid = (max(1, -(-rows // by)), max(1, -(-width // bx)), 1)
    if grid[1] > 65535:
        raise ValueError(f"a row of {width} cells is too long for one launch (at most {65535 * bx})")
    return grid, (bx, by, 1)


_U8 = np.dtype(np.uint8)
_I64 = np.dtype(np.int64)
_F64 = np.dtype(np.float64)
_BOOL = np.dtype(bool)


def _check(kernel: str, arg: str, a: Any, dtype: Any, ndim: int) -> None:
    """Raise a clear error unless ``a`` is a C-contiguous ``dtype`` array of ``ndim`` dimensions."""
    try:
        ok = a.dtype == dtype and a.ndim == ndim and a.flags.c_contiguous
    except AttributeError:
        raise TypeError(f"{kernel}: {arg} must be an array; got {type(a).__name__}") from None
    if ok:
        return
    if a.dtype != dtype:
        raise TypeError(f"{kernel}: {arg} must have dtype {np.dtype(dtype)}; got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{kernel}: {arg} must have {ndim} dimensions; got shape {tuple(a.shape)}")
    raise ValueError(f"{kernel}: {arg} must be C-contiguous (shape {tuple(a.shape)})")


def _check_batch(kernel: str, B: int, **tables: Any) -> None:
    for arg, t in tables.items():
        _check(kernel, arg, t, _I64, 2)
        if tuple(t.shape) != (B, 3):
            raise ValueError(f"{kernel}: {arg} must have shape (B, 3) = ({B}, 3); got {tuple(t.shape)}")


def _check_field(kernel: str, arg: str, a: Any, shape: tuple | None = None, dtype: Any = None) -> None:
    _check(kernel, arg, a, a.dtype if dtype is None else dtype, 5)
    _ctype(a.dtype, f"{kernel}: {arg}")
    if shape is not None and tuple(a.shape) != tuple(shape):
        raise ValueError(f"{kernel}: {arg} must have shape {tuple(shape)}; got {tuple(a.shape)}")


def _check_kind(kernel: str, arg: str, kind: Any, shape: tuple) -> None:
    _check(kernel, arg, kind, _U8, 4)
    if tuple(kind.shape) != tuple(shape):
        raise ValueError(f"{kernel}: {arg} must have shape {tuple(shape)}; got {tuple(kind.shape)}")


@lru_cache(maxsize=65536)
def _i32(v: int) -> np.int32:
    return np.int32(v)


#: Threads per block of the block-per-system kernels (``pii::BLOCK`` in kernels/common.cuh).
_BLOCK = 256

#: A null pointer argument.
_NULL = np.uint64(0)


class _ReportTables:
    """The small per-call result tables of the device path, in ONE device buffer, so that the
    call reads them back with one copy (one synchronisation): boxes (B, 6) int64, count (B,)
    int64, residual (B, C) float64, flags (B, C) int32, status (B, C) int32, iters (B, C) int32."""

    def __init__(self, bk, B: int, C: int) -> None:
        self.bk = bk
        self.layout = [("boxes", np.int64, (B, 6)), ("count", np.int64, (B,)), ("residual", np.float64, (B, C)),
                       ("flags", np.int32, (B, C)), ("status", np.int32, (B, C)), ("iters", np.int32, (B, C))]
        nbytes = sum(int(np.prod(s)) * np.dtype(t).itemsize for _, t, s in self.layout)
        self.buf = bk.empty((nbytes,), np.uint8)
        for name, view in self._views(self.buf).items():
            setattr(self, name, view)

    def _views(self, buf) -> dict:
        out, off = {}, 0
        for name, dtype, shape in self.layout:
            n = int(np.prod(shape)) * np.dtype(dtype).itemsize
            out[name] = buf[off:off + n].view(dtype).reshape(shape)
            off += n
        return out

    def read(self) -> dict:
        """All tables on the host, with one device-to-host copy."""
        return self._views(self.bk.to_host(self.buf))


class _DeviceState:
    def __init__(self, out, lo, hi, rep: _ReportTables, shape5: tuple) -> None:
        self.out, self.lo, self.hi, self.rep, self.shape5 = out, lo, hi, rep, shape5
        self.shape_dtype = out.dtype
        self.box_args = None
        self.mg_args = None


def _crop_extent(box: np.ndarray, ndim: int) -> tuple[int, int, int]:
    from ._mg_system import crop_extent

    return crop_extent(box[:3], box[3:], ndim)


def _mg_workspace_bytes(extent: tuple, item: int) -> int:
    """Bytes of ``mg_solve``'s workspace for a crop (the kernel's mg_workspace_bytes): labels,
    then e, rhs and res of every level, then p."""
    from ._mg_system import MG_DEFAULTS, hierarchy

    coarsest, max_levels = MG_DEFAULTS[2], MG_DEFAULTS[3]
    exts, _, _ = hierarchy(np.asarray(extent, np.int64), coarsest, max_levels)
    n = np.prod(exts, axis=1)
    n_all, n0 = int(n.sum()), int(n[0])
    return -(-n_all // 16) * 16 + (3 * n_all + n0) * item


class CudaKernelBackend(Backend):
    """The CUDA kernels behind the backend interface; subclasses supply memory and launches.

    Each primitive checks its arguments, computes the launch geometry and calls
    ``self._launch(kernel, ctype, grid, block, args)`` with arrays of the backend's kind and numpy
    scalars of the exact C types (``np.int32`` for ``int``, ``np.int64`` for ``long long``,
    ``np.float32``/``np.float64`` for ``float``/``double``, ``np.uint64(0)`` for a null
    pointer), the array shapes appended after the Numba twin's arguments.

    Every launch, host synchronisation (a read of device memory) and host-to-device copy goes
    through this class, which counts them (:meth:`counts`): the emulated backend counts exactly
    what the GPU would do.
    """

    name = "cuda-kernels"
    xp: Any = np
    on_device = False
    #: Iterations between convergence checks (each check is one host synchronisation on the GPU);
    #: read by :func:`pii_augment.ops.solver.solve_crop` when its ``check_every`` is None. Shared
    #: by the emulation so that it performs exactly the iterations the GPU does.
    check_every = 2

    #: Dynamic shared memory a block of the first box-solve pass may use: boxes up to about
    #: 110 x 110 cells in float32 (75 x 75 in float64) are solved on chip in the call's first
    #: launch; larger ones in a second pass after the call's one synchronisation, with shared
    #: memory up to :meth:`shared_limit`, or in global memory beyond it.
    box_smem_budget = 100 * 1024

    # -- memory and launches: the only things subclasses change ---------------------------------
    def _launch(self, kernel: str, ctype: str, grid, block, args: Sequence[Any], shared_bytes: int = 0) -> None:
        raise NotImplementedError

    def shared_limit(self) -> int:
        """The most dynamic shared memory one block may use (bytes): the H100/H200 opt-in limit."""
        return 227 * 1024

    def _counters(self) -> dict[str, int]:
        c = self.__dict__.get("_count_table")
        if c is None:
            c = self.__dict__.setdefault("_count_table", {"launches": 0, "syncs": 0, "h2d_bytes": 0, "bytes": 0})
            self.__dict__.setdefault("_count_lock", threading.Lock())
        return c

    def _tick(self, key: str, n: int = 1) -> None:
        c = self._counters()
        with self._count_lock:
            c[key] += int(n)

    def counts(self) -> dict[str, int]:
        """Kernel launches (RawModule kernels, memsets, device copies), host synchronisations
        (reads of device memory), host-to-device bytes, and ``bytes``: the device memory the
        kernels read and write, by a model per kernel (every array argument once; the box solve
        its boxes and their rings, counted when the call reads its results), since the backend
        was created."""
        c = self._counters()
        with self._count_lock:
            return dict(c)

    def _go(self, kernel: str, ctype: str, grid, block, args: Sequence[Any], shared_bytes: int = 0) -> None:
        self._tick("launches")
        if kernel not in ("box_solve", "mg_solve"):  # their traffic depends on the masks: see report()
            self._tick("bytes", sum(int(a.nbytes) for a in args if hasattr(a, "nbytes") and getattr(a, "ndim", 0)))
        self._launch(kernel, ctype, grid, block, args, shared_bytes=shared_bytes)

    def empty(self, shape, dtype):
        """Uninitialised array of this backend's kind (no launch)."""
        return self.xp.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        """Zero-filled array of this backend's kind (one memset launch)."""
        z = self.xp.zeros(shape, dtype=dtype)
        self._tick("launches")
        self._tick("bytes", z.nbytes)
        return z

    def fill(self, x, value) -> None:
        """``x[...] = value`` (one launch)."""
        self._tick("launches")
        self._tick("bytes", x.nbytes * (2 if getattr(value, "ndim", 0) else 1))
        x[...] = value

    def copy(self, x):
        """A device copy of ``x`` (one launch)."""
        self._tick("launches")
        self._tick("bytes", 2 * x.nbytes)
        return x.copy()

    def ratio(self, num, den, active, sign: float):
        """The per-system step size of :meth:`Backend.ratio` (one launch)."""
        self._tick("launches")
        return self._ratio(num, den, active, sign)

    def _ratio(self, num, den, active, sign):
        return Backend.ratio(self, num, den, active, sign)

    def index_array(self, a):
        """A small host table as a C-contiguous array of this backend's kind (one host-to-device
        copy, counted)."""
        h = np.ascontiguousarray(a)
        self._tick("h2d_bytes", h.nbytes)
        return self.xp.ascontiguousarray(self.xp.asarray(h))

    def to_host(self, x) -> np.ndarray:
        """Copy to a numpy array (a device synchronisation point on the GPU; counted)."""
        self._tick("syncs")
        return np.asarray(x)

    def upload(self, *tables):
        """Several small host tables in ONE host-to-device copy: device views of each (same
        dtypes and shapes), each starting on an 8-byte boundary."""
        hosts = [np.ascontiguousarray(t) for t in tables]
        offsets, off = [], 0
        for h in hosts:
            offsets.append(off)
            off += -(-h.nbytes // 8) * 8
        packed = np.zeros(max(off, 8), np.uint8)
        for h, o in zip(hosts, offsets):
            packed[o:o + h.nbytes] = h.reshape(-1).view(np.uint8)
        dev = self.index_array(packed)
        return [dev[o:o + h.nbytes].view(h.dtype).reshape(h.shape) for h, o in zip(hosts, offsets)]

    def _run(self, kernel: str, ctype: str, rows: int, width: int, args: Sequence[Any]) -> None:
        if rows <= 0 or width <= 0:
            return
        grid, block = launch_geometry(rows, width)
        self._go(kernel, ctype, grid, block, args)

    # -- primitives (argument order of pii_augment.ops._numba_kernels) ---------------------------
    def build_kind(self, mask, off, ext, kind):
        """Label the padded crop cells from the full-image mask (see the Numba twin)."""
        k = "build_kind"
        _check(k, "kind", kind, _U8, 4)
        B, Dp, Hp, Wp = kind.shape
        if getattr(mask, "ndim", 0) != 4 or mask.shape[0] != B:
            raise ValueError(f"{k}: mask must have shape (B, D, H, W) with B = {B}; got {tuple(mask.shape)}")
        if mask.dtype not in (_BOOL, _U8):
            raise TypeError(f"{k}: mask must have dtype bool; got {mask.dtype}")
        _check(k, "mask", mask, mask.dtype, 4)
        _check_batch(k, B, off=off, ext=ext)
        _, D, H, W = mask.shape
        self._run(k, "float", B * Dp * Hp, Wp,
                  (mask, off, ext, kind, _i32(B), _i32(D), _i32(H), _i32(W), _i32(Dp), _i32(Hp), _i32(Wp)))

    def gather_crop(self, full, off, ext, out):
        """Copy each sample's crop of a full-size field into the padded crop array."""
        k = "gather_crop"
        _check_field(k, "out", out)
        B, C, Dp, Hp, Wp = out.shape
        _check_field(k, "full", full, dtype=out.dtype)
        if tuple(full.shape[:2]) != (B, C):
            raise ValueError(f"{k}: full must have shape ({B}, {C}, D, H, W); got {tuple(full.shape)}")
        _check_batch(k, B, off=off, ext=ext)
        _, _, D, H, W = full.shape
        self._run(k, CTYPES[out.dtype], B * C * Dp * Hp, Wp,
                  (full, off, ext, out, _i32(B), _i32(C), _i32(D), _i32(H), _i32(W),
                   _i32(Dp), _i32(Hp), _i32(Wp)))

    def guidance_rhs(self, dst, src, kind, ext, alpha, mode, rhs):
        """Right-hand side of the correction on unknown cells (mode 0 pii, 1 mixed, 2 source,
        3 divergence given in ``src``, 4 zero guidance)."""
        k = "guidance_rhs"
        _check_field(k, "rhs", rhs)
        B, C, Dp, Hp, Wp = rhs.shape
        _check_field(k, "dst", dst, rhs.shape, rhs.dtype)
        _check_field(k, "src", src, rhs.shape, rhs.dtype)
        _check_kind(k, "kind", kind, (B, Dp, Hp, Wp))
        _check_batch(k, B, ext=ext)
        _check(k, "alpha", alpha, _F64, 1)
        if alpha.shape[0] != B:
            raise ValueError(f"{k}: alpha must have shape ({B},); got {tuple(alpha.shape)}")
        if int(mode) not in (0, 1, 2, 3, 4):
            raise ValueError(f"{k}: mode must be 0 (pii), 1 (mixed), 2 (source), 3 (divergence) or 4 "
                             f"(harmonic); got {mode!r}")
        self._run(k, CTYPES[rhs.dtype], B * C * Dp * Hp, Wp,
                  (dst, src, kind, ext, alpha, _i32(int(mode)), rhs, _i32(B), _i32(C), _i32(Dp), _i32(Hp), _i32(Wp)))

    def _stencil_args(self, k, u, rhs, kind, ext, w):
        _check_field(k, "u", u)
        B, C, Dp, Hp, Wp = u.shape
        _check_field(k, "rhs", rhs, u.shape, u.dtype)
        _check_kind(k, "kind", kind, (B, Dp, Hp, Wp))
        _check_batch(k, B, ext=ext)
        _check(k, "w", w, _F64, 2)
        if tuple(w.shape) != (B, 3):
            raise ValueError(f"{k}: w must have shape (B, 3) = ({B}, 3); got {tuple(w.shape)}")
        return B, C, Dp, Hp, Wp

    def rbgs_sweep(self, u, rhs, kind, ext, w, color):
        """One red-black Gauss-Seidel half sweep on the unknowns with (z + y + x) % 2 == color."""
        k = "rbgs_sweep"
        B, C, Dp, Hp, Wp = self._stencil_args(k, u, rhs, kind, ext, w)
        self._run(k, CTYPES[u.dtype], B * C * Dp * Hp, (Wp + 1) // 2,
                  (u, rhs, kind, ext, w, _i32(int(color) & 1), _i32(B), _i32(C), _i32(Dp), _i32(Hp), _i32(Wp)))

    def jacobi_sweep(self, u, rhs, kind, ext, w, omega, u_out):
        """One weighted Jacobi sweep from ``u`` into ``u_out`` (non-unknown cells are copied)."""
        k = "jacobi_sweep"
        B, C, Dp, Hp, Wp = self._stencil_args(k, u, rhs, kind, ext, w)
        _check_field(k, "u_out", u_out, u.shape, u.dtype)
        self._run(k, CTYPES[u.dtype], B * C * Dp * Hp, Wp,
                  (u, rhs, kind, ext, w, np.float64(omega), u_out, _i32(B), _i32(C), _i32(Dp), _i32(Hp), _i32(Wp)))

    def residual(self, u, rhs, kind, ext, w, r):
        """r = rhs - A(u) on unknown cells, 0 on the other cells of the crop."""
        k = "residual"
        B, C, Dp, Hp, Wp = self._stencil_args(k, u, rhs, kind, ext, w)
        _check_field(k, "r", r, u.shape, u.dtype)
        self._run(k, CTYPES[u.dtype], B * C * Dp * Hp, Wp,
                  (u, rhs, kind, ext, w, r, _i32(B), _i32(C), _i32(Dp), _i32(Hp), _i32(Wp)))

    def coarsen_kind(self, kind_f, ext_f, flags, kind_c, ext_c):
        """Coarse cell labels by erosion (see the Numba twin)."""
        k = "coarsen_kind"
        _check(k, "kind_f", kind_f, _U8, 4)
        _check(k, "kind_c", kind_c, _U8, 4)
        B, Df, Hf, Wf = kind_f.shape
        _, Dc, Hc, Wc = kind_c.shape
        if kind_c.shape[0] != B:
            raise ValueError(f"{k}: kind_c must have batch size {B}; got shape {tuple(kind_c.shape)}")
        _check_batch(k, B, ext_f=ext_f, ext_c=ext_c, flags=flags)
        self._run(k, "float", B * Dc * Hc, Wc,
                  (kind_f, ext_f, flags, kind_c, ext_c, _i32(B), _i32(Df), _i32(Hf), _i32(Wf),
                   _i32(Dc), _i32(Hc), _i32(Wc)))

    def restrict(self, r_f, ext_f, kind_c, ext_c, flags, rhs_c):
        """Coarse right-hand side on coarse unknowns: the scaled transpose of :meth:`prolong_add`."""
        k = "restrict"
        _check_field(k, "rhs_c", rhs_c)
        B, C, Dc, Hc, Wc = rhs_c.shape
        _check_field(k, "r_f", r_f, dtype=rhs_c.dtype)
        _, _, Df, Hf, Wf = r_f.shape
        _check_kind(k, "kind_c", kind_c, (B, Dc, Hc, Wc))
        _check_batch(k, B, ext_f=ext_f, ext_c=ext_c, flags=flags)
        self._run(k, CTYPES[rhs_c.dtype], B * C * Dc * Hc, Wc,
                  (r_f, ext_f, kind_c, ext_c, flags, rhs_c, _i32(B), _i32(C), _i32(Df), _i32(Hf), _i32(Wf),
                   _i32(Dc), _i32(Hc), _i32(Wc)))

    def prolong_add(self, e_c, kind_c, ext_c, kind_f, ext_f, flags, u_f):
        """u_f += P e_c on fine unknowns (cell-centred bi/trilinear interpolation)."""
        k = "prolong_add"
        _check_field(k, "u_f", u_f)
        B, C, Df, Hf, Wf = u_f.shape
        _check_field(k, "e_c", e_c, dtype=u_f.dtype)
        _, _, Dc, Hc, Wc = e_c.shape
        _check_kind(k, "kind_c", kind_c, (B, Dc, Hc, Wc))
        _check_kind(k, "kind_f", kind_f, (B, Df, Hf, Wf))
        _check_batch(k, B, ext_c=ext_c, ext_f=ext_f, flags=flags)
        self._run(k, CTYPES[u_f.dtype], B * C * Df * Hf, Wf,
                  (e_c, kind_c, ext_c, kind_f, ext_f, flags, u_f, _i32(B), _i32(C), _i32(Df), _i32(Hf),
                   _i32(Wf), _i32(Dc), _i32(Hc), _i32(Wc)))

    def dot_unknowns(self, x, y, kind, ext, out):
        """out[b, c] = sum of x * y over the unknown cells of system (b, c), in float64.

        Two deterministic launches (row sums, then one thread per system summing its rows in
        order); the result equals the Numba twin's up to the float64 summation order.
        """
        k = "dot_unknowns"
        _check_field(k, "x", x)
        B, C, Dp, Hp, Wp = x.shape
        _check_field(k, "y", y, x.shape, x.dtype)
        _check_kind(k, "kind", kind, (B, Dp, Hp, Wp))
        _check_batch(k, B, ext=ext)
        _check(k, "out", out, _F64, 2)
        if tuple(out.shape) != (B, C):
            raise ValueError(f"{k}: out must have shape ({B}, {C}); got {tuple(out.shape)}")
        rows = B * C * Dp * Hp
        if rows == 0:
            return
        ctype = CTYPES[x.dtype]
        partial = self.empty((rows,), _F64)
        self._run("dot_unknowns_rows", ctype, rows, 1,
                  (x, y, kind, ext, partial, _i32(B), _i32(C), _i32(Dp), _i32(Hp), _i32(Wp)))
        self._run("dot_unknowns_total", ctype, B * C, 1, (partial, out, _i32(B), _i32(C), _i32(Dp), _i32(Hp)))

    def _vector_args(self, k, coef_name, coef, x, y, kind, ext):
        _check_field(k, "x", x)
        B, C, Dp, Hp, Wp = x.shape
        _check_field(k, "y", y, x.shape, x.dtype)
        _check_kind(k, "kind", kind, (B, Dp, Hp, Wp))
        _check_batch(k, B, ext=ext)
        _check(k, coef_name, coef, _F64, 2)
        if tuple(coef.shape) != (B, C):
            raise ValueError(f"{k}: {coef_name} must have shape ({B}, {C}); got {tuple(coef.shape)}")
        return B, C, Dp, Hp, Wp

    def axpy_unknowns(self, a, x, y, kind, ext):
        """y += a[b, c] * x on the unknown cells of every system (b, c); a: (B, C) float64."""
        k = "axpy_unknowns"
        B, C, Dp, Hp, Wp = self._vector_args(k, "a", a, x, y, kind, ext)
        self._run(k, CTYPES[x.dtype], B * C * Dp * Hp, Wp,
                  (a, x, y, kind, ext, _i32(B), _i32(C), _i32(Dp), _i32(Hp), _i32(Wp)))

    def xpby_unknowns(self, x, beta, y, kind, ext):
        """y = x + beta[b, c] * y on the unknown cells of every system (b, c); beta: (B, C) float64."""
        k = "xpby_unknowns"
        B, C, Dp, Hp, Wp = self._vector_args(k, "beta", beta, x, y, kind, ext)
        self._run(k, CTYPES[x.dtype], B * C * Dp * Hp, Wp,
                  (x, beta, y, kind, ext, _i32(B), _i32(C), _i32(Dp), _i32(Hp), _i32(Wp)))

    def scatter_crop(self, u, kind, off, ext, lo, hi, do_clip, out):
        """Add the crop's correction to ``out`` (holding dst) on unknown cells, clipped to [lo, hi]."""
        k = "scatter_crop"
        _check_field(k, "u", u)
        B, C, Dp, Hp, Wp = u.shape
        _check_kind(k, "kind", kind, (B, Dp, Hp, Wp))
        _check_batch(k, B, off=off, ext=ext)
        for arg, a in (("lo", lo), ("hi", hi)):
            _check(k, arg, a, u.dtype, 2)
            if tuple(a.shape) != (B, C):
                raise ValueError(f"{k}: {arg} must have shape ({B}, {C}); got {tuple(a.shape)}")
        _check_field(k, "out", out, dtype=u.dtype)
        if tuple(out.shape[:2]) != (B, C):
            raise ValueError(f"{k}: out must have shape ({B}, {C}, D, H, W); got {tuple(out.shape)}")
        _, _, D, H, W = out.shape
        self._run(k, CTYPES[u.dtype], B * C * Dp * Hp, Wp,
                  (u, kind, off, ext, lo, hi, _i32(1 if do_clip else 0), out, _i32(B), _i32(C),
                   _i32(D), _i32(H), _i32(W), _i32(Dp), _i32(Hp), _i32(Wp)))

    # -- capabilities (see pii_augment.ops._backends.Backend) -------------------------------------
    def prepare(self, d5, g5, m5, check_guide: bool) -> "_DeviceState":
        """One ``prepare_systems`` launch: out = dst, clip range, NaN/Inf flags, mask boxes."""
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        out = self.empty(d5.shape, d5.dtype)
        lo = self.empty((B, C), d5.dtype)
        hi = self.empty((B, C), d5.dtype)
        rep = _ReportTables(self, B, C)
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        self._go("prepare_systems", ctype, (B * C, 1, 1), (_BLOCK, 1, 1),
                 (d5, g5, m5, out, lo, hi, rep.flags, rep.boxes, rep.count, rep.status, rep.residual,
                  _i32(B), _i32(C), _i32(D), _i32(H), _i32(W), _i32(1 if check_guide else 0)))
        return _DeviceState(out, lo, hi, rep, d5.shape)

    def _table_cap(self, shape5: tuple, ndim: int) -> int:
        """Elements of T the sine and eigenvalue tables of any eligible box need (at most)."""
        from ._spectral import MAX_SIDE_SUM

        D, H, W = shape5[2:]
        sides = [min(n, MAX_SIDE_SUM) for n in ((D, H, W) if ndim == 3 else (1, H, W))]
        return sum(3 * n + 2 for n in sides)

    def _box_launch(self, state: "_DeviceState", cap: int, global_scratch: bool, systems=None) -> None:
        """One ``box_solve`` launch: over every system, or over ``systems`` (a host list)."""
        from ._spectral import MAX_SIDE_SUM

        d5, g5, alpha_dev, mode, clip, ndim = state.box_args
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        item = np.dtype(d5.dtype).itemsize
        tcap = self._table_cap(d5.shape, ndim)
        fixed = -(-tcap * item // 8) * 8 + 8 * _BLOCK
        blocks = B * C if systems is None else len(systems)
        sys_dev = _NULL if systems is None else self.index_array(np.asarray(systems, np.int32))
        scratch = self.empty((blocks * 2 * cap,), d5.dtype) if global_scratch else _NULL
        shared = fixed + (0 if global_scratch else 2 * cap * item)
        rep = state.rep
        self._go("box_solve", ctype, (blocks, 1, 1), (_BLOCK, 1, 1),
                 (d5, g5, alpha_dev, _i32(mode), rep.boxes, rep.count, state.lo, state.hi, _i32(1 if clip else 0),
                  state.out, rep.residual, rep.status, scratch, sys_dev, np.int64(cap), np.int64(tcap),
                  _i32(MAX_SIDE_SUM), _i32(B), _i32(C), _i32(D), _i32(H), _i32(W), _i32(ndim)),
                 shared_bytes=shared)

    def solve_boxes(self, state: "_DeviceState", d5, g5, alpha, mode, clip, ndim) -> None:
        """The first ``box_solve`` pass over every system, on chip, within ``box_smem_budget``.

        Boxes larger than that pass can hold are marked (status 2) and solved in :meth:`report`,
        after the synchronisation that tells their sizes."""
        item = np.dtype(d5.dtype).itemsize
        fixed = -(-self._table_cap(d5.shape, ndim) * item // 8) * 8 + 8 * _BLOCK
        spatial = d5.shape[2:] if ndim == 3 else d5.shape[3:]
        largest = int(np.prod([max(n - 2, 1) for n in spatial]))  # the biggest box with its ring inside
        budget = min(self.box_smem_budget, self.shared_limit())
        cap = max(0, min(largest, (budget - fixed) // (2 * item)))
        state.box_args = (d5, g5, self.index_array(alpha), int(mode), bool(clip), int(ndim))
        self._box_launch(state, cap, global_scratch=False)

    def solve_masks(self, state: "_DeviceState", d5, g5, m5, alpha, mode, clip, ndim, tol, max_iter,
                    gidx=None) -> None:
        """The first ``mg_solve`` pass over every system that is not empty and not a solved box,
        each in one thread block, its workspace on chip within :meth:`shared_limit`. Crops too
        large for it are marked (status 3) and solved in :meth:`report`, in global memory."""
        B, C, D, H, W = d5.shape
        item = np.dtype(d5.dtype).itemsize
        largest = (D + 2 if ndim == 3 else 1, H + 2, W + 2)  # a crop is its box and a one-cell halo
        capacity = min(self.shared_limit(), _mg_workspace_bytes(largest, item))
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        alpha_dev = state.box_args[2] if state.box_args is not None else self.index_array(alpha)
        state.mg_args = (d5, g5, m5, alpha_dev, int(mode), bool(clip), int(ndim), float(tol), int(max_iter))
        self._mg_launch(state, capacity, on_chip=True)

    def _mg_launch(self, state: "_DeviceState", capacity: int, on_chip: bool, systems=None) -> None:
        from ._mg_system import MG_DEFAULTS

        d5, g5, m5, alpha_dev, mode, clip, ndim, tol, max_iter = state.mg_args
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        item = np.dtype(d5.dtype).itemsize
        cells = int(capacity // (1 + 4 * item))  # level 0 alone takes 1 + 4 item bytes a cell: bounds a fitting crop
        blocks = B * C if systems is None else len(systems)
        x_buf = self.empty((blocks * cells,), d5.dtype)
        scratch = _NULL if on_chip else self.empty((blocks * capacity,), np.uint8)
        sys_dev = _NULL if systems is None else self.index_array(np.asarray(systems, np.int32))
        rep = state.rep
        nu1, nu2, coarsest, max_levels, stall = MG_DEFAULTS
        self._go("mg_solve", ctype, (blocks, 1, 1), (_BLOCK, 1, 1),
                 (d5, g5, m5, alpha_dev, _i32(mode), rep.boxes, rep.count, state.lo, state.hi, _i32(1 if clip else 0),
                  state.out, rep.residual, rep.status, rep.iters, x_buf, np.int64(cells), scratch, np.int64(capacity),
                  sys_dev, np.float64(tol), _i32(max_iter), _i32(nu1), _i32(nu2), _i32(coarsest), _i32(max_levels),
                  np.float64(stall), _i32(B), _i32(C), _i32(D), _i32(H), _i32(W), _i32(ndim)),
                 shared_bytes=capacity if on_chip else 0)

    def report(self, state: "_DeviceState") -> BatchReport:
        """The call's synchronisation: one read of the tables of :meth:`prepare`,
        :meth:`solve_boxes` and :meth:`solve_masks` (second passes over boxes or crops too large
        for the first, and a second read, only when there are such)."""
        t = state.rep.read()
        pending_box = t["status"] == 2
        pending_mg = t["status"] == 3
        if (pending_box.any() and state.box_args is not None) or (pending_mg.any() and state.mg_args is not None):
            boxes = t["boxes"]
            if pending_box.any():
                d5 = state.box_args[0]
                item = np.dtype(d5.dtype).itemsize
                vol = np.prod(boxes[:, 3:] - boxes[:, :3], axis=1)
                cap = int(vol[pending_box.any(axis=1)].max())
                fixed = -(-self._table_cap(d5.shape, state.box_args[5]) * item // 8) * 8 + 8 * _BLOCK
                on_chip = fixed + 2 * cap * item <= self.shared_limit()
                self._box_launch(state, cap, global_scratch=not on_chip, systems=np.flatnonzero(pending_box.reshape(-1)))
            if pending_mg.any():
                d5, ndim = state.mg_args[0], state.mg_args[6]
                item = np.dtype(d5.dtype).itemsize
                need = max(_mg_workspace_bytes(_crop_extent(boxes[b], ndim), item)
                           for b in np.flatnonzero(pending_mg.any(axis=1)))
                self._mg_launch(state, int(need), on_chip=False, systems=np.flatnonzero(pending_mg.reshape(-1)))
            t = state.rep.read()
        boxes = t["boxes"]
        lo, hi = boxes[:, :3].copy(), boxes[:, 3:].copy()
        vol = np.prod(hi - lo, axis=1)
        item = np.dtype(state.shape_dtype).itemsize
        if state.box_args is not None:  # traffic of the box solves: dst and guide read twice, out written
            self._tick("bytes", int(5 * item * (vol[:, None] * (t["status"] == BOX)).sum()))
        if state.mg_args is not None:  # of the whole-system solves, per crop cell: the mask, dst and
            # guide at the set-up and at two true-residual checks, out read and written, the
            # solution (global memory) read and written every iteration
            ndim = state.mg_args[6]
            crop = np.prod([_crop_extent(b, ndim) for b in boxes], axis=1) if len(boxes) else np.zeros(0)
            per = 1 + item * (2 * 3 + 2) + 2 * item * t["iters"]
            self._tick("bytes", int((crop[:, None] * per * (t["status"] > MG)).sum()))
        filled = (t["count"] > 0) & (t["count"] == vol)
        status = t["status"].astype(np.int64)
        return BatchReport(lo, hi, filled, (t["flags"] & 1) != 0, bool(((t["flags"] & 2) != 0).any()),
                           status, t["residual"], t["iters"].astype(np.int64))

    def patch_masks(self, patches, apply: np.ndarray, shape_code):
        """One ``patch_masks`` launch from the parameter tables (one small copy): (B, *spatial)
        bool, the union of each sample's patches. ``shape_code``: the kernel's code of every row
        (an int for all rows, or (N,) ints); None for shapes the kernel does not make (blobs,
        whose threshold goes through ``exp``, and bank masks), made on the host and copied. The
        inverse matrices of rotated/sheared patches (and each sample's first row, with several
        patches per sample) are copied only when there are such."""
        if shape_code is None:
            return self.index_array(Backend.patch_masks(self, patches, apply, None))
        B, N = patches.batch_size, patches.rows
        nd = patches.centers.shape[1]
        spatial = tuple(patches.spatial_shape)
        D, H, W = (1,) + spatial if nd == 2 else spatial
        mask = self.empty((B,) + spatial, np.uint8)
        pad = [(0, 0), (3 - nd, 0)]
        if N:
            lo, hi = patches.boxes()
            owner = patches.patch_sample
        else:  # one placeholder row (empty box) keeps the tables non-empty
            lo = hi = np.zeros((1, nd), np.int64)
            owner = np.zeros(1, np.int64)
        lo = np.pad(lo.astype(np.int64), pad)
        hi = np.pad(hi.astype(np.int64), pad, constant_values=1)
        on = apply[owner] if N else np.zeros(1, bool)
        hi = np.where(on[:, None], hi, lo)  # samples left alone: empty boxes
        rows = max(N, 1)
        centre = np.pad(patches.centers.astype(np.int64), pad) if N else np.zeros((1, 3), np.int64)
        width = (np.pad(np.maximum(patches.half_widths, 1).astype(np.float64), pad, constant_values=1.0)
                 if N else np.ones((1, 3)))
        tables = [lo, hi, centre, width]
        codes = np.asarray(shape_code)
        per_row = codes.ndim == 1
        if per_row:
            tables.append(np.resize(codes.astype(np.int32), rows))
        deformed = patches.deformed and N > 0
        if deformed:
            mat = np.zeros((rows, 3, 3))
            mat[:, :nd, :nd] = patches.matrices()
            tables.append(mat)
        multi = patches.sample is not None
        if multi:
            tables.append(patches.first.astype(np.int64))
        dev = self.upload(*tables)
        lo_d, hi_d, c_d, w_d = dev[:4]
        rest = dev[4:]
        kinds_d = rest.pop(0) if per_row else _NULL
        mat_d = rest.pop(0) if deformed else _NULL
        first_d = rest.pop(0) if multi else _NULL
        self._run("patch_masks", "float", B * D * H, W,
                  (lo_d, hi_d, c_d, w_d, mat_d, kinds_d, _i32(0 if per_row else int(codes)), first_d, _i32(nd),
                   mask, _i32(B), _i32(D), _i32(H), _i32(W)))
        return mask.view(np.bool_)

    def take(self, x, index: np.ndarray):
        """``x[index]`` along the batch axis (one copy of the index, one gather launch)."""
        idx = self.index_array(np.asarray(index, np.int64))
        out = self.xp.take(x, idx, axis=0)
        self._tick("launches")
        self._tick("bytes", 2 * out.nbytes)
        return out

    def label(self, d5, o5, m5, alpha, tolerance):
        """One ``label_pixels`` launch (row-mapped over (b, z, y))."""
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        scalar = np.float32 if ctype == "float" else np.float64
        label = self.empty((B, 1, D, H, W), d5.dtype)
        a = self.index_array(alpha.astype(d5.dtype))
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        self._run("label_pixels", ctype, B * D * H, W,
                  (d5, o5, m5, a, scalar(tolerance if tolerance is not None else 1.0),
                   _i32(0 if tolerance is None else 1), label, _i32(B), _i32(C), _i32(D), _i32(H), _i32(W)))
        return label

    def fpi(self, d5, s5, m5, alpha, check_finite):
        """One ``fpi_systems`` launch; with ``check_finite``, one read of its NaN/Inf flags."""
        B, C, D, H, W = d5.shape
        ctype = _ctype(d5.dtype, "dst")
        a = alpha.astype(d5.dtype)
        coef = self.index_array(np.stack([a, (1 - a).astype(d5.dtype)]))
        out = self.empty(d5.shape, d5.dtype)
        flags = self.empty((B, C), np.int32)
        if m5.dtype != _U8:
            m5 = m5.view(_U8)
        self._go("fpi_systems", ctype, (B * C, 1, 1), (_BLOCK, 1, 1),
                 (d5, s5, m5, coef[0], coef[1], out, flags, _i32(B), _i32(C), np.int64(D * H * W)))
        if check_finite:
            f = self.to_host(flags)
            for bit, name in ((1, "dst"), (2, "src")):
                if (f & bit).any():
                    raise ValueError(f"{name} contains NaN or Inf; pass check_finite=False to skip this check")
        return out

    # -- composites --------------------------------------------------------------------------------
    def smooth(self, u, rhs, kind, ext, w, sweeps, reverse):
        """``sweeps`` red-black Gauss-Seidel sweeps (black first when ``reverse``): 2 launches each."""
        first = 1 if reverse else 0
        for _ in range(int(sweeps)):
            self.rbgs_sweep(u, rhs, kind, ext, w, first)
            self.rbgs_sweep(u, rhs, kind, ext, w, 1 - first)


# ------------------------------------------------------------------------------------------------
# cupy
# ------------------------------------------------------------------------------------------------


def _import_cupy():
    try:
        import cupy
    except ImportError as e:
        raise ImportError(
            "backend='cupy' needs cupy: pip install cupy-cuda12x (or the cupy wheel matching your "
            f"CUDA driver); import failed with: {e}"
        ) from e
    return cupy


class CupyBackend(CudaKernelBackend):
    """GPU backend: cupy arrays, ``kernels/*.cu`` compiled with NVRTC via ``cupy.RawModule``.

    Modules are compiled once per (device, field type) and cached (cupy also keeps the binaries
    on disk). Kernels run on cupy's *current* stream; to run on torch's current stream wrap the
    call in ``with torch_stream():`` (see :func:`torch_stream`). The driver synchronises with the
    host only to read convergence norms.

    Raises ``ImportError`` when cupy is missing and ``RuntimeError`` when no CUDA GPU is visible.
    """

    name = "cupy"
    on_device = True

    def __init__(self) -> None:
        cupy = _import_cupy()
        try:
            n = cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # cupy raises CUDARuntimeError without a driver
            raise RuntimeError(f"backend='cupy' found no usable CUDA device: {e}") from e
        if n < 1:
            raise RuntimeError("backend='cupy' found no CUDA device")
        self.xp = cupy
        self._cupy = cupy
        self._functions: dict[tuple[int, str, str], Any] = {}
        self._modules: dict[tuple[int, str], Any] = {}
        self._smem_limits: dict[int, int] = {}
        self._lock = threading.Lock()

    def _ratio(self, num, den, active, sign):
        k = self.__dict__.get("_ratio_kernel")
        if k is None:
            k = self._ratio_kernel = self._cupy.ElementwiseKernel(
                "float64 num, float64 den, bool active, float64 sign", "float64 out",
                "double d = sign * den; out = (active && d > 0.0) ? num / d : 0.0;", "pii_augment_ratio")
        return k(num, den, active, float(sign))

    def to_host(self, x) -> np.ndarray:
        """Copy a cupy array to the host (synchronises the current stream; counted)."""
        self._tick("syncs")
        return self._cupy.asnumpy(x)

    def shared_limit(self) -> int:
        """The device's opt-in maximum of dynamic shared memory per block (227 KiB on H100/H200)."""
        rt = self._cupy.cuda.runtime
        dev = rt.getDevice()
        cached = self._smem_limits.get(dev)
        if cached is None:
            attr = getattr(rt, "cudaDevAttrMaxSharedMemoryPerBlockOptin", 97)
            cached = self._smem_limits[dev] = int(rt.deviceGetAttribute(attr, dev))
        return cached

    def module(self, ctype: str):
        """The ``cupy.RawModule`` of all kernels for ``ctype`` on the current device (cached)."""
        dev = self._cupy.cuda.runtime.getDevice()
        key = (dev, ctype)
        mod = self._modules.get(key)
        if mod is None:
            with self._lock:
                mod = self._modules.get(key)
                if mod is None:
                    mod = self._cupy.RawModule(
                        code=cuda_source(), options=NVRTC_OPTIONS, name_expressions=name_expressions(ctype)
                    )
                    mod.compile()
                    self._modules[key] = mod
        return mod

    def _launch(self, kernel, ctype, grid, block, args, shared_bytes: int = 0):
        key = (self._cupy.cuda.runtime.getDevice(), ctype, kernel)
        fn = self._functions.get(key)
        if fn is None:
            fn = self.module(ctype).get_function(f"{kernel}<{ctype}>")
            self._functions[key] = fn
        if shared_bytes > 48 * 1024 and fn.max_dynamic_shared_size_bytes < shared_bytes:
            fn.max_dynamic_shared_size_bytes = int(shared_bytes)  # opt in beyond the default 48 KiB
        fn(grid, block, args, shared_mem=int(shared_bytes))


def nvrtc_compile(arch: str = "compute_90", ctype: str = "float") -> dict[str, str]:
    """Compile all kernels with NVRTC as :class:`CupyBackend` does (same source, options and name
    expressions), for ``arch`` (a virtual architecture such as ``"compute_80"``), without a GPU.

    Needs cupy (its NVRTC binding) and the NVRTC library (from the CUDA toolkit or the
    ``nvidia-cuda-nvrtc`` wheel). Returns ``{"ptx": ..., "log": ..., **lowered names}``;
    raises ``RuntimeError`` with NVRTC's log when the compilation fails.
    """
    _import_cupy()
    from cupy_backends.cuda.libs import nvrtc

    names = name_expressions(ctype)
    prog = nvrtc.createProgram(cuda_source(), "pii_augment_kernels.cu", [], [])
    try:
        for n in names:
            nvrtc.addNameExpression(prog, n)
        try:
            nvrtc.compileProgram(prog, [*NVRTC_OPTIONS, f"-arch={arch}"])
        except Exception as e:
            raise RuntimeError(f"NVRTC ({arch}, {ctype}) failed: {e}\n{nvrtc.getProgramLog(prog)}") from None
        out = {"ptx": nvrtc.getPTX(prog).decode() if isinstance(nvrtc.getPTX(prog), bytes) else nvrtc.getPTX(prog),
               "log": nvrtc.getProgramLog(prog)}
        for n in names:
            out[n] = nvrtc.getLoweredName(prog, n)
        return out
    finally:
        nvrtc.destroyProgram(prog)


def torch_stream():
    """A cupy stream context on torch's current CUDA stream (use ``with torch_stream(): ...``).

    cupy launches on its current stream; wrap a call on CUDA torch tensors in this context so the
    kernels are ordered with the caller's torch work without any synchronisation.
    """
    import torch

    cupy = _import_cupy()
    return cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)


# ------------------------------------------------------------------------------------------------
# g++ emulation
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


def _emulation_unit(source: str | None, filename: str) -> tuple[str, tuple[str, ...]]:
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
    return "\n".join(lines) + "\n", names


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
    ``long long``, ``np.uint32``, ``np.float32``, ``np.float64``); ``shared_bytes`` is the
    dynamic shared memory of each block. The thread order and the limit on ``shared_bytes``
    follow ``$PII_AUGMENT_EMULATION_SHUFFLE`` and ``$PII_AUGMENT_EMULATION_SMEM_LIMIT``, read at
    every launch. A failed launch (bad configuration, too much shared memory, a barrier in a
    kernel not declared cooperative, a divergent barrier) raises ``RuntimeError`` naming the
    kernel. Launches from several host threads may run concurrently (ctypes releases the GIL).
    """

    def __init__(self, path: Path, names: Sequence[str]) -> None:
        self.library_path = Path(path)
        self.kernel_names = tuple(names)
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
        tu, names = _emulation_unit(source, filename)
        path = _build(tu, "cuda_emulated_extra", False)
        kernels = _EXTRA_LIBRARIES.get(path)
        if kernels is None:
            kernels = _EXTRA_LIBRARIES[path] = EmulatedKernels(path, names)
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
            self._kernels = EmulatedKernels(self.library_path, kernel_names())

    @property
    def threads(self) -> int:
        """Host threads the driver splits the batch over (as :class:`NumbaBackend`)."""
        return host_threads()

    def _launch(self, kernel, ctype, grid, block, args, shared_bytes: int = 0):
        self._kernels.launch(kernel, ctype, grid, block, args, shared_bytes)
