"""Array kinds (numpy, cupy, torch): detection, zero-copy conversion and input checks.

Every public function converts its inputs once, on entry, to a *host* array (numpy) or a
*device* array (cupy) with :func:`to_backend_array`, computes, and converts the result back with
:func:`from_backend_array`. Torch tensors travel zero-copy: CPU tensors through ``Tensor.numpy``,
CUDA tensors through DLPack.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


@dataclass(frozen=True)
class ArrayKind:
    """Where an input came from, so the output can be returned as the same kind.

    ``framework`` is ``"numpy"``, ``"cupy"`` or ``"torch"``; ``device`` is ``"cpu"`` or
    ``"cuda"``; ``torch_device`` is the original ``torch.device`` for torch inputs.
    """

    framework: str
    device: str
    torch_device: Any = None


def _is_torch(x: Any) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _is_cupy(x: Any) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(x, cupy.ndarray)


#: The kind of numpy arrays (one object, shared).
NUMPY_KIND = ArrayKind("numpy", "cpu")


def array_kind(x: Any) -> ArrayKind:
    """Return the :class:`ArrayKind` of ``x`` (numpy for anything array-like that is not cupy/torch)."""
    if type(x) is np.ndarray:
        return NUMPY_KIND
    if _is_torch(x):
        return ArrayKind("torch", "cuda" if x.is_cuda else "cpu", x.device)
    if _is_cupy(x):
        return ArrayKind("cupy", "cuda")
    return NUMPY_KIND


def check_array(x: Any, name: str) -> None:
    """Raise a ``TypeError`` naming ``name`` unless ``x`` is a numpy array, cupy array or torch tensor."""
    if isinstance(x, np.ndarray) or _is_torch(x) or _is_cupy(x):
        return
    raise TypeError(f"{name} must be a numpy array, cupy array or torch tensor; got {type(x).__name__}")


def to_backend_array(x: Any, name: str) -> Any:
    """Return ``x`` as a numpy (host) or cupy (device) array, without copying where possible.

    Torch tensors are detached (the operations of this library are not differentiable).
    """
    if _is_torch(x):
        t = x.detach()
        if t.is_cuda:
            import cupy as cp

            return cp.from_dlpack(t)
        if t.device.type != "cpu":
            raise TypeError(f"{name}: tensors on device {t.device} are not supported (cpu or cuda only)")
        if t.is_conj():
            t = t.resolve_conj()
        try:
            return t.numpy()
        except TypeError:  # bfloat16, float8, ...: no numpy dtype
            raise TypeError(
                f"{name} has dtype {t.dtype}, which numpy and cupy cannot hold; the functions take "
                f"float32 or float64 images: convert with {name}.float() (the torch modules "
                f"compute float16/bfloat16 batches in float32 and cast back)"
            ) from None
    if _is_cupy(x):
        return x
    if isinstance(x, np.ndarray):
        return x
    return np.asarray(x)


def from_backend_array(x: Any, kind: ArrayKind) -> Any:
    """Convert a numpy/cupy result back to the caller's kind (zero-copy)."""
    if kind.framework == "torch":
        import torch

        if kind.device == "cuda":
            return torch.from_dlpack(x)
        return torch.from_numpy(np.ascontiguousarray(x))
    return x


def get_xp(x: Any):
    """numpy or cupy module for a backend array."""
    if _is_cupy(x):
        import cupy as cp

        return cp
    return np


def same_device_or_raise(named: dict[str, Any]) -> ArrayKind:
    """Check that all array arguments live on one device; return the kind of the first.

    ``named`` maps argument names to the raw user inputs (``None`` values are ignored).
    """
    if all(v is None or type(v) is np.ndarray for v in named.values()):
        return NUMPY_KIND
    torch = sys.modules.get("torch")
    if torch is not None:  # CPU tensors (and numpy arrays) alone: all on the host
        first = next((v for v in named.values() if isinstance(v, torch.Tensor)), None)
        if first is not None and first.device.type == "cpu" and all(
                v is None or type(v) is np.ndarray or (isinstance(v, torch.Tensor) and v.device.type == "cpu")
                for v in named.values()):
            return array_kind(next(v for v in named.values() if v is not None and hasattr(v, "shape")))
    akinds = {n: array_kind(v) for n, v in named.items() if v is not None and hasattr(v, "shape")}
    first_name, first = next(iter(akinds.items()))
    for n, ak in akinds.items():
        if ak.device != first.device or (
            ak.torch_device is not None
            and first.torch_device is not None
            and ak.torch_device != first.torch_device
        ):
            raise ValueError(
                f"{n} is on {ak.torch_device or ak.device} but {first_name} is on "
                f"{first.torch_device or first.device}; move them to one device"
            )
    return first


def same_elements(a: Any, b: Any) -> bool:
    """``a`` and ``b`` are one host array seen twice: the same elements in the same layout (as
    ``blend_with_label`` gets ``dst`` and ``src`` when the source is read from the batch
    itself), so checking one for NaN/Inf checks both.

    Example:
        >>> import numpy as np
        >>> x = np.zeros((2, 3))
        >>> same_elements(x, x.view()), same_elements(x, x.copy()), same_elements(x, x.T)
        (True, False, False)
    """
    if a is b:
        return True
    if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray)):
        return False
    if not np.may_share_memory(a, b):  # disjoint memory (the common case): no dict to build
        return False
    return (a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def check_image_batch(x: Any, name: str) -> None:
    """Validate a ``(B, C, H, W)`` or ``(B, C, D, H, W)`` floating point batch."""
    if x.ndim not in (4, 5):
        raise ValueError(
            f"{name} must have shape (B, C, H, W) or (B, C, D, H, W); got {x.ndim} dimensions "
            f"with shape {tuple(x.shape)}"
        )
    if np.dtype(x.dtype) not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must be float32 or float64; got {x.dtype}. Convert first, for example "
            f"x.astype(np.float32) (torch: x.float(); the torch modules compute float16/bfloat16 "
            f"batches in float32 and cast back)"
        )


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{name_b} must have the shape of {name_a} {tuple(a.shape)}; got {tuple(b.shape)}"
        )
    if a.dtype != b.dtype:
        raise TypeError(f"{name_b} must have the dtype of {name_a} ({a.dtype}); got {b.dtype}")


def normalize_mask(mask: Any, image_shape: tuple[int, ...], name: str = "mask") -> Any:
    """Return a ``(B, *spatial)`` bool mask, accepting ``(B, *spatial)`` or ``(B, 1, *spatial)``."""
    batch, spatial = image_shape[0], tuple(image_shape[2:])
    if mask.dtype != bool and str(mask.dtype) != "bool":
        raise TypeError(f"{name} must be a bool array; got dtype {mask.dtype}")
    shape = tuple(mask.shape)
    if shape == (batch, *spatial):
        return mask
    if shape == (batch, 1, *spatial):
        return mask[:, 0]
    raise ValueError(
        f"{name} must have shape (B, *spatial) = {(batch, *spatial)} or (B, 1, *spatial) = "
        f"{(batch, 1, *spatial)}; got {shape}"
    )


def normalize_alpha(alpha: Any, batch: int, xp, name: str = "alpha") -> np.ndarray:
    """Return alpha as a float64 host array of shape ``(B,)``, checked to lie in [0, 1]."""
    if _is_torch(alpha):
        alpha = alpha.detach().cpu().numpy()
    elif _is_cupy(alpha):
        alpha = alpha.get()
    if type(alpha) is float and 0 <= alpha <= 1:  # the common case (NaN fails the comparison)
        return np.full(batch, alpha)
    a = np.asarray(alpha)
    if a.dtype.kind not in "fiu":
        raise TypeError(
            f"{name} must be a number or an array of numbers in [0, 1]; got {type(alpha).__name__} "
            f"of dtype {a.dtype}"
        )
    a = a.astype(np.float64)
    if a.ndim == 0:
        a = np.full(batch, float(a))
    if a.shape != (batch,):
        raise ValueError(f"{name} must be a scalar or have shape (B,) = ({batch},); got {a.shape}")
    if a.size and not (all(0 <= v <= 1 for v in a.tolist()) if a.size <= 16 else (a.min() >= 0 and a.max() <= 1)):
        # NaN fails every comparison
        raise ValueError(f"{name} must lie in [0, 1]; got values in [{a.min()}, {a.max()}]")
    return a


def check_finite(x: Any, name: str) -> None:
    """Raise a ``ValueError`` naming ``name`` if ``x`` holds NaN or Inf.

    min and max propagate NaN and show infinities, and need no temporary array.
    """
    if x.size and not (bool(get_xp(x).isfinite(x.min())) and bool(get_xp(x).isfinite(x.max()))):
        raise ValueError(f"{name} contains NaN or Inf; pass check_finite=False to skip this check")


@contextlib.contextmanager
def torch_cuda_context(kind: ArrayKind):
    """Run cupy work on the torch tensor's device and on torch's current stream there.

    The kernels are then ordered with the caller's torch work, with no synchronisation; for other
    kinds of input this does nothing.
    """
    if kind.framework != "torch" or kind.device != "cuda":
        yield
        return
    import cupy
    import torch

    dev = kind.torch_device
    index = dev.index if dev.index is not None else torch.cuda.current_device()
    with cupy.cuda.Device(index):
        with cupy.cuda.ExternalStream(torch.cuda.current_stream(index).cuda_stream):
            yield


def on_torch_stream(fn):
    """Decorator: run ``fn`` inside :func:`torch_cuda_context` of its first array argument."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        first = args[0] if args else kwargs.get("dst")
        if type(first) is np.ndarray or not getattr(first, "is_cuda", True):  # host arrays and CPU tensors:
            return fn(*args, **kwargs)  # nothing to set up (and no context manager to pay for)
        with torch_cuda_context(array_kind(first)):
            return fn(*args, **kwargs)

    return wrapper
