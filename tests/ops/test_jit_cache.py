"""The Numba cache of the kernels is cleared when a kernel source changes (pii_augment/ops/_jit_cache.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

from pii_augment.ops import _jit_cache


def _copy_sources(tmp_path: Path) -> Path:
    root = tmp_path / "pkg"
    for rel in _jit_cache.KERNEL_SOURCES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(Path(_jit_cache.__file__).parent.parent / rel, root / rel)
    return root


def test_caches_survive_while_the_sources_are_unchanged_and_go_when_one_changes(tmp_path):
    root = _copy_sources(tmp_path)
    cache = root / "ops" / "__pycache__"
    assert _jit_cache.clear_if_stale(root) == 0  # no caches yet: the stamp is written
    (cache / "_host_kernels.label_host-1.py311.nbi").write_bytes(b"index")
    (cache / "_host_kernels.label_host-1.py311.1.nbc").write_bytes(b"code")
    (cache / "blend.cpython-311.pyc").write_bytes(b"bytecode")
    assert _jit_cache.clear_if_stale(root) == 0
    assert len(list(cache.glob("*.nb[ic]"))) == 2
    src = root / "ops" / "_spectral.py"  # a callee's file, not the cached function's own
    src.write_text(src.read_text() + "\n# edited\n")
    assert _jit_cache.clear_if_stale(root) == 2
    assert not list(cache.glob("*.nb[ic]"))
    assert (cache / "blend.cpython-311.pyc").exists()  # only Numba's files go
    assert _jit_cache.clear_if_stale(root) == 0  # the new stamp matches


def test_a_missing_or_unwritable_tree_is_not_an_error(tmp_path):
    assert _jit_cache.clear_if_stale(tmp_path / "absent") == 0


def test_every_file_with_numba_functions_is_a_kernel_source():
    """A new file of Numba functions must join KERNEL_SOURCES, or edits of it leave stale caches."""
    root = Path(_jit_cache.__file__).parent.parent
    with_numba = {p.relative_to(root).as_posix() for p in root.rglob("*.py") if "@njit" in p.read_text()}
    assert with_numba == set(_jit_cache.KERNEL_SOURCES)
