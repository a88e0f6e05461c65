"""keep_freed_memory: glibc keeps freed batches for the next call (a count of page faults, in a
process of its own, since the setting is process-wide)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from pii_augment.host_memory import MAX_MMAP_THRESHOLD, _glibc, keep_freed_memory

# blend and label of a 64 x 1 x 256^2 float32 batch (two 16 MB arrays per call), ten calls after
# a warm-up; prints the page faults per call
_CALLS = """
import resource, sys
import numpy as np
from pii_augment.host_memory import keep_freed_memory
from pii_augment.ops import blend_with_label
if sys.argv[1] == "keep":
    assert keep_freed_memory()
rng = np.random.default_rng(0)
dst = rng.random((64, 1, 256, 256), dtype=np.float32)
mask = np.zeros((64, 256, 256), bool)
mask[:, 40:120, 60:200] = True
index = np.roll(np.arange(64), 1)
for _ in range(3):
    blend_with_label(dst, dst, mask, 0.5, blend="fpi", src_index=index)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    out, label = blend_with_label(dst, dst, mask, 0.5, blend="fpi", src_index=index)
    del out, label
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10)
"""


def _faults_per_call(mode: str) -> float:
    run = subprocess.run([sys.executable, "-c", _CALLS, mode], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    return float(run.stdout.split()[-1])


@pytest.mark.skipif(_glibc() is None, reason="the C library is not glibc")
def test_freed_batches_are_reused_without_new_pages():
    # 32 MB freed and asked for again per call: 4096 pages of 4 KB, or 16 of 2 MB when the system
    # hands out huge pages; kept in the heap, the calls fault almost nothing in
    kept = _faults_per_call("keep")
    assert kept <= 16, f"{kept} page faults per call with the freed memory kept"


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="trim_bytes"):
        keep_freed_memory(trim_bytes=-1)
    with pytest.raises(ValueError, match="mmap_bytes"):
        keep_freed_memory(mmap_bytes=MAX_MMAP_THRESHOLD + 1)
    with pytest.raises(TypeError, match="trim_bytes"):
        keep_freed_memory(trim_bytes=2.5)
    with pytest.raises(ValueError, match="trim_bytes"):
        keep_freed_memory(trim_bytes=2**31)
