"""The backends of tests/ops as fixtures: ``nb`` (Numba), ``emu`` (the CUDA kernels run on the CPU
by g++, compiled on first use and cached) and ``gpu`` (cupy; only for tests marked ``gpu``)."""

from __future__ import annotations

import numpy as np
import pytest

from pii_augment.ops.backends import get_backend


@pytest.fixture(scope="session")
def nb():
    return get_backend("numba", np.zeros(1))


@pytest.fixture(scope="session")
def emu():
    return get_backend("cuda-emulated", np.zeros(1))


@pytest.fixture(scope="session")
def gpu():
    import cupy

    return get_backend("cupy", cupy.zeros(1))
