"""Backend registry: the one place where ``backend=`` is resolved.

A backend exposes the array module (``xp``), allocation helpers, a host copy for the few
scalars the driver needs, and the solver primitives under the names of
:mod:`pii_augment.ops._numba_kernels` (the CUDA twins carry the same names).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from .._arrays import _is_cupy

#: Kernel names every backend implements, in the argument order of the Numba twins.
PRIMITIVES = (
    "build_kind",
    "gather_crop",
    "guidance_rhs",
    "rbgs_sweep",
    "jacobi_sweep",
    "residual",
    "coarsen_kind",
    "restrict",
    "prolong_add",
    "dot_unknowns",
    "axpy_unknowns",
    "xpby_unknowns",
    "scatter_crop",
)

#: Composite operations the driver calls; each backend builds them from its primitives.
COMPOSITES = ("smooth",)

BACKENDS = ("auto", "numba", "cupy", "cuda-emulated")


def host_threads() -> int:
    """Threads for host backends: ``PII_AUGMENT_NUM_THREADS``, else 1 inside a torch DataLoader
    worker (the workers are the parallelism there), else ``NUMBA_NUM_THREADS``."""
    env = os.environ.get("PII_AUGMENT_NUM_THREADS")
    if env:
        return max(1, int(env))
    data = sys.modules.get("torch.utils.data")
    if data is not None and data.get_worker_info() is not None:
        return 1
    import numba

    return max(1, int(numba.config.NUMBA_NUM_THREADS))


class NumbaBackend:
    """CPU backend: numpy arrays, serial Numba primitives that release the GIL.

    The batch is split into ``threads`` contiguous chunks solved in parallel threads, each with
    its own crop (so a chunk of small patches does not pay for the largest patch of the batch).
    """

    name = "numba"
    xp = np
    on_device = False

    def __init__(self) -> None:
        from . import _numba_kernels as k

        for p in PRIMITIVES + COMPOSITES:
            setattr(self, p, getattr(k, p))

    @property
    def threads(self) -> int:
        return host_threads()

    def empty(self, shape, dtype):
        return np.empty(shape, dtype=dtype)

    def zeros(self, shape, dtype):
        return np.zeros(shape, dtype=dtype)

    def index_array(self, a):
        """A small host int64/float64 table as this backend's array."""
        return np.ascontiguousarray(a)

    def to_host(self, x) -> np.ndarray:
        return np.asarray(x)


_CACHE: dict[str, Any] = {}


def get_backend(name: str, array: Any):
    """Resolve ``backend=name`` for an input array living where ``array`` lives.

    ``"auto"`` picks ``"cupy"`` for device arrays and ``"numba"`` for host arrays. A backend that
    cannot run on the array's device raises a ``ValueError`` naming both.
    """
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}; got {name!r}")
    on_device = _is_cupy(array)
    if name == "auto":
        name = "cupy" if on_device else "numba"
    if name in ("numba", "cuda-emulated") and on_device:
        raise ValueError(
            f"backend={name!r} runs on host (numpy/CPU torch) arrays; the input is on a CUDA "
            f"device: use backend='cupy' or 'auto', or move the input to the CPU"
        )
    if name == "cupy" and not on_device:
        raise ValueError(
            "backend='cupy' needs device arrays (cupy or CUDA torch); the input is on the host: "
            "use backend='numba' or 'auto', or move the input to the GPU"
        )
    if name not in _CACHE:
        if name == "numba":
            _CACHE[name] = NumbaBackend()
        elif name == "cupy":
            from ._cuda import CupyBackend  # imports cupy lazily; clear error without cupy/GPU

            _CACHE[name] = CupyBackend()
        elif name == "cuda-emulated":
            from ._cuda import EmulatedCudaBackend  # compiles kernels/*.cu with g++ (cached)

            _CACHE[name] = EmulatedCudaBackend()
        else:  # pragma: no cover - BACKENDS is checked above
            raise NotImplementedError(f"backend={name!r} is not available in this build yet")
    return _CACHE[name]
