"""Backend resolution, host threads, and the layout of pii_augment/ops/backends (one interface,
one module per backend, no import circle)."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

from pii_augment.ops.backends import get_backend, host_threads


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


# -- one interface, one module per backend, no import circle ----------------------------------

_MODULES = ("base", "host", "parity", "signatures", "sources", "cuda", "device", "emulated")
#: What each module of pii_augment/ops/backends may import from its siblings.
_ALLOWED = {
    "base": set(),
    "signatures": set(),  # (and ..codes)
    "parity": set(),
    "sources": {"signatures"},
    "host": {"base"},
    "cuda": {"base", "signatures", "sources"},
    "device": {"cuda", "signatures", "sources"},
    "emulated": {"base", "cuda", "signatures", "sources"},
}


def _sibling_imports(module: str) -> set[str]:
    import ast
    from pathlib import Path

    import pii_augment.ops.backends as pkg

    tree = ast.parse((Path(pkg.__file__).parent / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.add((node.module or "").split(".")[0])
    return found


@pytest.mark.parametrize("module", _MODULES)
def test_backend_modules_import_only_what_is_below_them(module):
    assert _sibling_imports(module) <= _ALLOWED[module]


def test_importing_the_package_imports_no_backend():
    import subprocess

    code = ("import sys, pii_augment.ops.backends; "
            "print(sorted(m for m in sys.modules if m.startswith('pii_augment.ops.backends.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['pii_augment.ops.backends.base']"


def _members() -> list[str]:
    """The protocol's members (attributes and methods) and the primitives and composites."""
    from pii_augment.ops.backends import COMPOSITES, PRIMITIVES, Backend

    declared = {n for n in vars(Backend) if not n.startswith("_")} | set(Backend.__annotations__)
    return sorted(declared | set(PRIMITIVES) | set(COMPOSITES))


@pytest.mark.parametrize("path", ["host.NumbaBackend", "device.CupyBackend", "emulated.EmulatedCudaBackend"])
def test_every_backend_class_has_the_whole_interface(path):
    """Checked on the classes, so that the cupy backend is checked without cupy or a GPU."""
    from importlib import import_module

    module, cls = path.split(".")
    klass = getattr(import_module(f"pii_augment.ops.backends.{module}"), cls)
    missing = [m for m in _members() if not hasattr(klass, m)]
    assert not missing, f"{cls} lacks {missing}"


def test_the_backends_made_here_are_instances_of_the_protocol():
    from pii_augment.ops.backends import BACKENDS, Backend

    assert BACKENDS == ("auto", "numba", "cupy", "cuda-emulated")
    for name in ("numba", "cuda-emulated"):
        assert isinstance(get_backend(name, np.zeros(1)), Backend)
