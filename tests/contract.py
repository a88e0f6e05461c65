"""``check_functional``: the contract that every public function of :mod:`pii_augment.ops` keeps.

In the style of torchvision's and CuPy's shared checks: one helper, applied to every function
over every backend (tests/ops/test_contract.py), instead of a hand-written copy per function.
For a call on one backend it checks that

- the inputs are not modified (bit for bit);
- the outputs have the kind (numpy, cupy), dtype and shape they should;
- an empty batch (B = 0) works and keeps kind, dtype and shape;
- non-contiguous inputs (strided views, channels-last images) give the same bytes as contiguous;
- torch tensors in give torch tensors out (same dtype and device, the same bytes as the arrays;
  also for a channels-last tensor and one that requires grad), inputs untouched;
- each bad call raises the expected exception with a message naming the argument.

Arguments are made as numpy arrays and moved to the backend's own kind: numpy for ``numba`` and
``cuda-emulated``, cupy (and torch CUDA) for ``cupy``.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence

import numpy as np
import pytest

#: make_args(batch) -> (args, kwargs): the positional arguments (numpy arrays and scalars; the
#: first is ``dst``) and keyword options of a valid call for a batch of ``batch`` samples.
MakeArgs = Callable[[int], tuple[tuple, dict]]

#: (what, bad, exception, match): ``bad(args, kwargs) -> (args, kwargs)`` turns a valid call into
#: one that must raise ``exception`` with a message matching ``match`` (a regular expression).
ErrorCase = tuple[str, Callable[[list, dict], tuple[list, dict]], type[Exception], str]


def _cupy():
    import cupy

    return cupy


def to_host(x: Any) -> np.ndarray:
    """numpy copy-or-view of a numpy array, cupy array or torch tensor."""
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    if type(x).__module__.startswith("cupy"):
        return x.get()
    return np.asarray(x)


def to_backend(x: Any, backend: str) -> Any:
    """A numpy argument as the backend's own kind (cupy for ``cupy``); anything else unchanged."""
    if backend == "cupy" and isinstance(x, np.ndarray):
        return _cupy().asarray(x)
    return x


def to_torch(x: Any, backend: str) -> Any:
    """A float or bool numpy argument as a torch tensor (on CUDA for ``cupy``); else unchanged."""
    import torch

    if isinstance(x, np.ndarray) and x.dtype.kind in "fb":
        t = torch.from_numpy(x.copy())
        return t.cuda() if backend == "cupy" else t
    return x


def non_contiguous(x: Any, channels_last: bool = False) -> Any:
    """The same values as ``x`` (numpy or cupy) in a non-contiguous layout: every other element
    of a buffer twice as long along the last axis, or (images) channels-last strides."""
    if not hasattr(x, "ndim") or x.ndim == 0:
        return x
    xp = _cupy() if type(x).__module__.startswith("cupy") else np
    if channels_last:
        if x.ndim < 4:
            return x
        view = xp.moveaxis(xp.ascontiguousarray(xp.moveaxis(x, 1, -1)), -1, 1)
    else:
        buf = xp.zeros(x.shape[:-1] + (2 * x.shape[-1],), x.dtype)
        buf[..., ::2] = x
        view = buf[..., ::2]
    assert not view.flags.c_contiguous or x.size <= 1
    return view


def _as_tuple(out: Any) -> tuple:
    return out if isinstance(out, tuple) else (out,)


def _expected_shape(what: str, dst_shape: tuple[int, ...]) -> tuple[int, ...]:
    if what == "image":
        return dst_shape
    if what == "label":
        return (dst_shape[0], 1) + dst_shape[2:]
    raise ValueError(what)


def _same_bytes(a: Sequence[np.ndarray], b: Sequence[np.ndarray], what: str) -> None:
    assert len(a) == len(b), what
    for i, (x, y) in enumerate(zip(a, b)):
        assert x.dtype == y.dtype and x.shape == y.shape, f"{what}: output {i}"
        assert np.array_equal(x, y, equal_nan=True), f"{what}: output {i} differs"


def _call(fn: Callable, args: Sequence, kwargs: dict, backend: str) -> tuple:
    return _as_tuple(fn(*args, backend=backend, **kwargs))


def _check_untouched(before: Sequence, after: Sequence, what: str) -> None:
    for i, (x, y) in enumerate(zip(before, after)):
        if hasattr(y, "shape"):
            assert np.array_equal(to_host(y), x, equal_nan=True), f"{what}: argument {i} was modified"


def check_functional(fn: Callable, make_args: MakeArgs, backend: str, *, outputs: Sequence[str] = ("image",),
                     errors: Sequence[ErrorCase] = (), batch: int = 2) -> None:
    """Check the contract of the public function ``fn`` on ``backend`` (see the module docstring).

    ``outputs``: what ``fn`` returns, in order: ``"image"`` (the shape of ``dst``) or ``"label"``
    ((B, 1, *spatial)); a single output is returned bare, several as a tuple.
    """
    args, kwargs = make_args(batch)
    dst = args[0]
    native = [to_backend(a, backend) for a in args]
    host_before = [np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args]

    # kind, dtype, shape; inputs untouched
    out = _call(fn, native, kwargs, backend)
    assert len(out) == len(outputs), f"{fn.__name__} returned {len(out)} outputs, expected {len(outputs)}"
    for o, what in zip(out, outputs):
        assert type(o) is type(native[0]), f"{fn.__name__}: {type(native[0]).__name__} in, {type(o).__name__} out"
        assert o.dtype == dst.dtype and tuple(o.shape) == _expected_shape(what, dst.shape), (
            f"{fn.__name__}: {what} has dtype {o.dtype}, shape {tuple(o.shape)}")
    _check_untouched(host_before, native, fn.__name__)
    ref = [to_host(o) for o in out]

    # the same call again: the same bytes (no state carried between calls)
    _same_bytes(ref, [to_host(o) for o in _call(fn, native, kwargs, backend)], f"{fn.__name__} called twice")

    # empty batch
    e_args, e_kwargs = make_args(0)
    e_out = _call(fn, [to_backend(a, backend) for a in e_args], e_kwargs, backend)
    for o, what in zip(e_out, outputs):
        assert type(o) is type(native[0]) and o.dtype == dst.dtype, f"{fn.__name__}: empty batch"
        assert tuple(o.shape) == _expected_shape(what, e_args[0].shape), f"{fn.__name__}: empty batch {what} shape"

    # non-contiguous inputs: the same bytes
    for channels_last in (False, True):
        views = [non_contiguous(a, channels_last) for a in native]
        got = _call(fn, views, kwargs, backend)
        _same_bytes(ref, [to_host(o) for o in got], f"{fn.__name__}: non-contiguous (channels_last={channels_last})")
        _check_untouched(host_before, views, f"{fn.__name__}: non-contiguous")

    # torch in, torch out
    torch = pytest.importorskip("torch")
    for variant in ("plain", "channels_last", "requires_grad"):
        targs = [to_torch(a, backend) for a in args]
        if variant == "channels_last" and targs[0].ndim == 4:
            targs[0] = targs[0].contiguous(memory_format=torch.channels_last)
        if variant == "requires_grad":
            targs[0] = targs[0].clone().requires_grad_(True)
        tout = _call(fn, targs, kwargs, backend)
        for o in tout:
            assert isinstance(o, torch.Tensor), f"{fn.__name__}: torch in, {type(o).__name__} out"
            assert o.dtype == targs[0].dtype and o.device == targs[0].device, f"{fn.__name__}: torch {variant}"
        _same_bytes(ref, [to_host(o) for o in tout], f"{fn.__name__}: torch ({variant})")
        _check_untouched(host_before, targs, f"{fn.__name__}: torch ({variant})")

    # errors naming the argument
    for what, bad, exc, match in errors:
        b_args, b_kwargs = bad(list(make_args(batch)[0]), dict(make_args(batch)[1]))
        with pytest.raises(exc, match=match) as info:
            _call(fn, [to_backend(a, backend) for a in b_args], b_kwargs, backend)
        assert re.search(rf"\b{re.escape(what)}\b", str(info.value)), f"{fn.__name__}: the error does not name {what}"
