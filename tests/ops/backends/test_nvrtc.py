"""The kernels compile with NVRTC exactly as cupy compiles them on a GPU (same translation unit,
options and name expressions), for sm_80 and sm_90, without a GPU: cupy's NVRTC binding and the
NVRTC library (the CUDA toolkit's, or the nvidia-cuda-nvrtc wheel that torch brings) suffice.
Required in CI (the test extra installs cupy-cuda13x); skipped on a machine without cupy."""

from __future__ import annotations

import os
import warnings

import pytest

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # cupy may warn at import (e.g. about CUDA_PATH): not under test
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        import cupy  # noqa: F401
    else:
        pytest.importorskip("cupy")

from pii_augment.ops.backends.sources import kernel_names
from pii_augment.ops.backends.device import nvrtc_compile  # noqa: E402


@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize("ctype", ["float", "double"])
def test_every_kernel_compiles_with_nvrtc(arch, ctype):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = nvrtc_compile(arch, ctype)
    assert out["log"].strip() in ("", "\x00"), out["log"]  # no warnings either
    for k in kernel_names():
        lowered = out[f"{k}<{ctype}>"]
        assert lowered and lowered in out["ptx"], k
