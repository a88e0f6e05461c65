"""Keep Numba's on-disk cache of this package's kernels in step with their sources.

Numba caches a ``cache=True`` function's machine code in ``__pycache__`` next to its source, keyed
by that one file's time stamp and size. The code includes the functions it calls from *other*
files (inlined or linked in), so after an edit of, say, ``_spectral.py`` a cached kernel of
``_host_kernels.py`` still runs the old solve: silently, with no error, until its own file
changes. In an installed package every file changes together, so this bites a checkout that is
edited and tested in place (where it would make a before/after comparison compare nothing).

:func:`clear_if_stale` keeps a digest of every kernel source (:data:`KERNEL_SOURCES`) beside
the caches and deletes this package's cache files when the digest changes; it is called once when
:mod:`pii_augment.ops` is imported. Caches Numba writes elsewhere (``NUMBA_CACHE_DIR``, or the
user-wide directory for a read-only install) are not touched.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

#: The package's files whose Numba functions call each other (relative to ``pii_augment/``).
KERNEL_SOURCES = ("ops/_intrinsics.py", "ops/_numba_kernels.py", "ops/_spectral.py", "ops/_mg_system.py",
                  "ops/_host_kernels.py")
_ROOT = Path(__file__).resolve().parent.parent
_STAMP = "jit-sources.sha256"


def source_digest(root: Path = _ROOT) -> str:
    """sha256 (hex) over the names and contents of :data:`KERNEL_SOURCES` under ``root``.

    Example:
        >>> len(source_digest())
        64
    """
    h = hashlib.sha256()
    for rel in KERNEL_SOURCES:
        h.update(rel.encode())
        h.update(b"\0")
        h.update((root / rel).read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def clear_if_stale(root: Path = _ROOT) -> int:
    """Delete the Numba cache files (``*.nbi``, ``*.nbc``) of ``root/ops`` when the kernel sources
    differ from those the caches were built from; returns how many files were deleted (0 when
    they match, or when the directory cannot be written: nothing is raised).

    Example:
        >>> clear_if_stale() >= 0
        True
    """
    cache = root / "ops" / "__pycache__"
    try:
        digest = source_digest(root)
        stamp = cache / _STAMP
        if stamp.is_file() and stamp.read_text().strip() == digest:
            return 0
        removed = 0
        for path in cache.glob("*.nb[ic]") if cache.is_dir() else ():
            try:
                path.unlink()
                removed += 1
            except FileNotFoundError:  # another process cleared it first
                pass
        cache.mkdir(exist_ok=True)
        tmp = cache / f"{_STAMP}.{os.getpid()}"
        tmp.write_text(digest + "\n")
        os.replace(tmp, stamp)  # atomic: a concurrent import reads the old stamp or the new one
        return removed
    except OSError:  # a read-only install: Numba caches elsewhere, nothing of ours to keep in step
        return 0
