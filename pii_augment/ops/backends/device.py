"""The GPU backend (``backend="cupy"``): cupy arrays, ``kernels/*.cu`` compiled with NVRTC
through ``cupy.RawModule`` once per device and field type, launched on cupy's current stream;
also :func:`nvrtc_compile` (the same build without a GPU) and :func:`torch_stream`.

Nothing here imports cupy at module import time.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .cuda import CudaKernelBackend
from .signatures import check_launch
from .sources import cuda_source, name_expressions

#: Options of the NVRTC build. ``--fmad=false`` keeps a*b+c as two roundings, as on the CPU, so
#: the GPU computes the same iterates as the Numba and emulated backends (the kernels are memory
#: bound; fused multiply-adds would buy nothing).
NVRTC_OPTIONS = ("-std=c++17", "--fmad=false")

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
        check_launch(kernel, ctype, self.kernel_params(kernel), args)
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
