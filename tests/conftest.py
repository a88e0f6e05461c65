"""Shared fixtures, the one way to skip GPU tests, and the ``backend`` fixture.

GPU tests carry ``@pytest.mark.gpu`` (``pytestmark = pytest.mark.gpu`` for a module), or
``@pytest.mark.gpu(torch=True)`` when they also move torch tensors to CUDA; without cupy, a
visible CUDA device (or, with ``torch=True``, a torch built with CUDA) they are skipped here
with the reason. No test file checks for a GPU itself.
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest

#: The backends every public function is checked on (tests/ops/test_contract.py); cupy is a GPU test.
BACKENDS = ("numba", "cuda-emulated", pytest.param("cupy", marks=pytest.mark.gpu))


@functools.cache
def _gpu_missing(torch: bool) -> str | None:
    """Why the GPU tests cannot run on this machine; None when they can."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # cupy may warn at import (e.g. about CUDA_PATH)
            import cupy
    except ImportError:
        return "needs cupy (the test extra installs cupy-cuda13x)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as err:  # no driver, a driver too old for the runtime, ...
        return f"needs a CUDA GPU: cupy sees none ({type(err).__name__}: {str(err).strip()[:120]})"
    if count == 0:
        return "needs a CUDA GPU: cupy sees none"
    if torch:
        import torch as _torch

        if not _torch.cuda.is_available():
            return "needs torch with CUDA (this torch sees no CUDA device)"
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("gpu")
        if marker is None:
            continue
        reason = _gpu_missing(bool(marker.kwargs.get("torch", False)))
        if reason:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    """The backend name: numba, cuda-emulated (the CUDA kernels on the CPU) and, on a GPU, cupy."""
    return request.param
