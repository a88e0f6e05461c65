"""The backends, and the one place where ``backend=`` is resolved (:func:`get_backend`).

One module per backend behind the :class:`~pii_augment.ops.backends.base.Backend` protocol:

- :mod:`.base`: the protocol, the shared defaults (:class:`BackendBase`), the primitive names,
  :class:`BatchReport`, the host threads;
- :mod:`.host`: ``"numba"``, numpy arrays and the Numba kernels;
- :mod:`.sources` and :mod:`.cuda`: the CUDA sources and :class:`CudaKernelBackend`, the device
  path shared by the two backends below (argument checks, launch geometry, marshalling, counts);
- :mod:`.device`: ``"cupy"``, the kernels compiled with NVRTC and run on a GPU;
- :mod:`.emulated`: ``"cuda-emulated"``, the same kernels compiled with g++ and run on the CPU.

Importing this package imports :mod:`.base` only; a backend's module is imported the first time
the backend is asked for (so cupy and g++ are needed only by the backends that use them).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..._arrays import _is_cupy
from .base import (
    BOX,
    COMPOSITES,
    MG,
    PRIMITIVES,
    Backend,
    BackendBase,
    BatchReport,
    all_finite_host,
    chunks,
    host_threads,
    map_chunks,
    run_parts,
)

__all__ = [
    "BACKENDS",
    "BOX",
    "COMPOSITES",
    "MG",
    "PRIMITIVES",
    "Backend",
    "BackendBase",
    "BatchReport",
    "all_finite_host",
    "chunks",
    "get_backend",
    "host_threads",
    "map_chunks",
    "run_parts",
]

#: ``backend=`` name -> (module of this package, class, where its arrays live: "host" or "device").
_REGISTRY = {
    "numba": ("host", "NumbaBackend", "host"),
    "cupy": ("device", "CupyBackend", "device"),  # imports cupy; a clear error without cupy or a GPU
    "cuda-emulated": ("emulated", "EmulatedCudaBackend", "host"),  # compiles kernels/*.cu with g++ (cached)
}

#: The accepted values of ``backend=``.
BACKENDS = ("auto", *_REGISTRY)

_CACHE: dict[str, Backend] = {}


def get_backend(name: str, array: Any) -> Backend:
    """Resolve ``backend=name`` for an input array living where ``array`` lives.

    ``"auto"`` picks ``"cupy"`` for device arrays and ``"numba"`` for host arrays. A backend that
    cannot run on the array's device raises a ``ValueError`` naming both. Backends are made once
    per process and shared.

    Example:
        >>> import numpy as np
        >>> get_backend("auto", np.zeros((1, 8, 8))).name
        'numba'
        >>> get_backend("cupy", np.zeros((1, 8, 8)))
        Traceback (most recent call last):
        ...
        ValueError: backend='cupy' needs device arrays (cupy or CUDA torch); the input is on the host: use backend='numba' or 'auto', or move the input to the GPU
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {name!r}")
    on_device = _is_cupy(array)
    if name == "auto":
        name = "cupy" if on_device else "numba"
    module, cls, where = _REGISTRY[name]
    if where == "host" and on_device:
        raise ValueError(
            f"backend={name!r} runs on host (numpy/CPU torch) arrays; the input is on a CUDA "
            f"device: use backend='cupy' or 'auto', or move the input to the CPU"
        )
    if where == "device" and not on_device:
        raise ValueError(
            f"backend={name!r} needs device arrays (cupy or CUDA torch); the input is on the host: "
            "use backend='numba' or 'auto', or move the input to the GPU"
        )
    bk = _CACHE.get(name)
    if bk is None:
        bk = _CACHE[name] = getattr(import_module(f".{module}", __name__), cls)()
    return bk
