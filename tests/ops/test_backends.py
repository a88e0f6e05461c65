"""Backend resolution and host threads."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from pii_augment.ops._backends import get_backend, host_threads


def test_auto_on_host_is_numba_and_unknown_names_are_refused():
    assert get_backend("auto", np.zeros(1)).name == "numba"
    with pytest.raises(ValueError, match="backend must be one of"):
        get_backend("opencl", np.zeros(1))


def test_host_threads_env_and_dataloader_workers(monkeypatch):
    monkeypatch.setenv("PII_AUGMENT_NUM_THREADS", "3")
    assert host_threads() == 3
    monkeypatch.delenv("PII_AUGMENT_NUM_THREADS")
    fake = types.ModuleType("torch.utils.data")
    fake.get_worker_info = lambda: object()  # as inside a DataLoader worker
    monkeypatch.setitem(sys.modules, "torch.utils.data", fake)
    assert host_threads() == 1
    fake.get_worker_info = lambda: None
    import numba

    assert host_threads() == max(1, int(numba.config.NUMBA_NUM_THREADS))
