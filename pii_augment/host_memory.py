"""The host allocator, which decides much of the CPU path's speed on large batches.

A batch of 64 x 1 x 256 x 256 float32 is 16 MB, and a transform returns two such arrays per
call (the image and its label). glibc's ``malloc`` serves blocks that large with ``mmap`` or from
the top of its heap, and gives them back to the system when they are freed (``munmap``, or a trim
of the heap's top once more than its trim threshold is free; the threshold follows the largest
block freed so far, 32 MB here). The next call then writes into pages the system must fault in
and zero first: on a 2-core VM that measured 490-710 page faults and 7-9 ms per FPI call at
64 x 256^2, three to four times the blend itself (``benchmarks/RESULTS.md``). The pages a call
frees are the ones the next call needs, so keeping them is all it takes.

:func:`keep_freed_memory` sets glibc's thresholds (``mallopt``) so that freed batches stay in the
heap and are reused. It is process-wide and opt-in: the library never changes the allocator by
itself. The environment variables ``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=268435456`` do the same for a whole program (and the processes it starts);
jemalloc or tcmalloc loaded with ``LD_PRELOAD``, as PyTorch's CPU tuning guide suggests, avoid the
faults too. DataLoader workers started by ``fork`` inherit the setting; with ``spawn`` call it in
``worker_init_fn``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

from ._validate import check_int

__all__ = ["keep_freed_memory"]

#: mallopt parameter numbers (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

#: glibc's largest mmap threshold on 64-bit systems (HEAP_MAX_SIZE / 2): blocks above it are
#: always mmapped, so their pages are always new.
MAX_MMAP_THRESHOLD = 32 << 20


def _glibc():
    """glibc as a ctypes library, or None (another C library, or not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
    except (OSError, AttributeError):
        return None
    return libc


def keep_freed_memory(trim_bytes: int = 256 << 20, mmap_bytes: int = MAX_MMAP_THRESHOLD) -> bool:
    """Keep freed batches in the process' heap for the next call instead of giving them back.

    Sets glibc's mmap threshold to ``mmap_bytes`` (blocks below it come from the heap; this also
    stops glibc from moving the threshold by itself) and its trim threshold to ``trim_bytes``
    (the heap keeps up to that much free memory at its top). The process then holds on to memory
    it freed, up to about ``trim_bytes`` beyond its peak use. Process-wide and for the rest of the
    process' life; call it once, early (in a DataLoader's ``worker_init_fn`` when workers are
    spawned). Blocks above 32 MB (glibc's largest mmap threshold) keep coming from new pages.

    Args:
        trim_bytes: int in [0, 2**31 - 1], the free memory the heap keeps at its top (default
            256 MiB).
        mmap_bytes: int in [0, 32 MiB], the size from which blocks are mmapped (default 32 MiB).

    Returns:
        True when glibc took both settings; False where the C library is not glibc (nothing is
        changed there).

    Example:
        >>> from pii_augment.host_memory import keep_freed_memory
        >>> keep_freed_memory() in (True, False)
        True
    """
    trim_bytes = check_int("trim_bytes", trim_bytes, low=0, high=2**31 - 1)  # mallopt takes an int
    mmap_bytes = check_int("mmap_bytes", mmap_bytes, low=0, high=MAX_MMAP_THRESHOLD)
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    ok = libc.mallopt(_M_MMAP_THRESHOLD, mmap_bytes) == 1
    return ok & (libc.mallopt(_M_TRIM_THRESHOLD, trim_bytes) == 1)
