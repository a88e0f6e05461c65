"""pii_augment._arrays: the kinds of arrays, and the host fast paths agreeing with the general rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import pii_augment as pa
from pii_augment import _arrays


def test_cpu_tensors_are_one_device_and_keep_the_torch_kind():
    x, m = torch.zeros(2, 1, 8, 8), torch.zeros(2, 8, 8, dtype=torch.bool)
    kind = _arrays.same_device_or_raise({"dst": x, "src": None, "mask": m, "alpha": np.zeros(2)})
    assert (kind.framework, kind.device, kind.torch_device) == ("torch", "cpu", torch.device("cpu"))
    # numpy first, a CPU tensor after it: the kind of the first, as the general rule gives
    assert _arrays.same_device_or_raise({"dst": np.zeros(2), "src": x}).framework == "numpy"


def test_a_tensor_on_another_device_is_named():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="src is on meta but dst is on cpu"):
        _arrays.same_device_or_raise({"dst": x, "src": x.to("meta")})
    with pytest.raises(ValueError, match="src is on meta"):
        pa.poisson_interpolate(x, x.to("meta"), torch.zeros(2, 8, 8, dtype=torch.bool), 0.5)


def test_cpu_tensors_run_without_the_stream_context():
    seen = []

    @_arrays.on_torch_stream
    def f(dst):
        seen.append(dst)
        return dst

    x = torch.ones(3)
    assert f(x) is x and f(dst=x) is x and len(seen) == 2
