"""Where a sample's patch comes from when its batch cannot give one: a pool, or itself shifted.

A PII/FPI module takes each sample's patch from another sample of the batch by default. A
single sample, or a batch of one, has no other sample, so the modules follow one documented
rule (:data:`BATCH_OF_ONE_RULE`):

1. an explicit ``source`` given to the call is used;
2. else the module's ``pool=`` (a tensor bank, a Dataset or a callable: :class:`SourcePool`),
   one pool draw per sample;
3. else, with a batch of at least two, another sample of the batch (``pairing="batch"`` /
   ``"random"``);
4. else (one sample, no pool) the sample itself, rolled by half its size along every spatial
   axis (:func:`shifted_self`): the patch shows another part of the same image, never a crash.
"""

from __future__ import annotations

import copy
from typing import Any, Callable

import numpy as np
import torch

from ..sampling.draws import sample_call_seed, sample_pool_indices

__all__ = ["BATCH_OF_ONE_RULE", "SourcePool", "default_image", "shifted_self"]

#: The order in which a call finds its source (see the module docstring).
BATCH_OF_ONE_RULE = ("explicit source", "pool", "batch", "shifted self")


def default_image(item: Any) -> Any:
    """The image of a dataset item: the item itself, its first element, or its ``"image"`` key.

    Example:
        >>> default_image(("img", 3)), default_image({"image": "img", "label": 0}), default_image("img")
        ('img', 'img', 'img')
    """
    if isinstance(item, (tuple, list)):
        return item[0]
    if isinstance(item, dict):
        return item["image"]
    return item


def shifted_self(x: torch.Tensor) -> torch.Tensor:
    """The source of a sample without any other: ``x`` rolled by half of every spatial axis.

    Args:
        x: (B, C, *spatial).

    Returns:
        (B, C, *spatial), a new tensor: ``x`` circularly shifted by ``size // 2`` along each
        spatial axis, so a patch takes the content of the opposite part of the image.

    Example:
        >>> import torch
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> shifted_self(x)[0, 0, 0].tolist()
        [10.0, 11.0, 8.0, 9.0]
    """
    dims = tuple(range(2, x.ndim))
    return torch.roll(x, shifts=tuple(x.shape[d] // 2 for d in dims), dims=dims)


def _is_pool(value: Any) -> bool:
    """Whether a value of the modules' old ``source=`` keyword is a pool (rather than a mode name)."""
    if isinstance(value, (str, bytes)) or value is None:
        return False
    return isinstance(value, (torch.Tensor, np.ndarray)) or callable(value) or (
        hasattr(value, "__getitem__") and hasattr(value, "__len__")
    )


class SourcePool:
    """Images to take patches from, other than the batch's own: a bank, a Dataset or a callable.

    One draw per sample, made by the module with the call's generator (so a seed reproduces it
    and ``params`` replay it): an index into a bank or a dataset, or one seed for a callable.

    Args:
        source: one of
            - a tensor or array bank ``(N, C, *spatial)`` (float; kept where it is, moved to the
              images' device and dtype per call);
            - a map-style dataset (``__len__`` and ``__getitem__``) of single images
              ``(C, *spatial)`` or items holding one (see ``get_image``);
            - a callable ``fn(batch_shape, generator) -> (B, C, *spatial)`` tensor, called with
              the batch's shape and a ``numpy.random.Generator`` it must draw from alone (so
              replays are exact).
        get_image: picks the image out of a dataset item (default :func:`default_image`).

    Shape:
        - bank: :math:`(N, C, *spatial)`; dataset items :math:`(C, *spatial)`.
        - :meth:`take`: :math:`(B, C, *spatial)` like the images.

    Example:
        >>> import numpy as np, torch
        >>> pool = SourcePool(torch.rand(5, 1, 16, 16))
        >>> draw = pool.draw(np.random.default_rng(0), (3, 1, 16, 16))
        >>> pool.take(draw, torch.zeros(3, 1, 16, 16)).shape
        torch.Size([3, 1, 16, 16])
    """

    def __init__(self, source: Any, get_image: Callable[[Any], Any] | None = None) -> None:
        if get_image is not None and not callable(get_image):
            raise TypeError(f"get_image must be None or a callable; got {type(get_image).__name__}")
        self.get_image = get_image or default_image
        if isinstance(source, (torch.Tensor, np.ndarray)):
            bank = torch.as_tensor(source) if isinstance(source, np.ndarray) else source
            if not bank.dtype.is_floating_point or bank.ndim not in (4, 5) or bank.shape[0] == 0:
                raise ValueError(
                    f"source as a bank must be a non-empty float (N, C, H, W) or (N, C, D, H, W) "
                    f"tensor; got {bank.dtype} with shape {tuple(bank.shape)}"
                )
            self.kind, self.items = "bank", bank.detach()
        elif hasattr(source, "__getitem__") and hasattr(source, "__len__"):
            if len(source) == 0:
                raise ValueError("source as a dataset must hold at least one image; got an empty one")
            self.kind, self.items = "dataset", source
        elif callable(source):
            self.kind, self.items = "callable", source
        else:
            raise TypeError(
                f"a pool (pool=) must be a tensor bank, a Dataset or a callable; got "
                f"{type(source).__name__}"
            )

    def __repr__(self) -> str:
        size = "" if self.kind == "callable" else f" of {len(self.items)}"
        return f"<SourcePool: {self.kind}{size}>"

    def __deepcopy__(self, memo: dict) -> "SourcePool":
        return copy.copy(self)  # the images are shared, never copied with the module

    def draw(self, rng: np.random.Generator, batch_shape: tuple[int, ...]) -> Any:
        """One draw per sample: (B,) int64 indices, or a seed (int) for a callable."""
        if self.kind == "callable":
            return sample_call_seed(rng)
        return sample_pool_indices(len(self.items), int(batch_shape[0]), seed=rng)

    def take(self, draw: Any, like: torch.Tensor) -> torch.Tensor:
        """The (B, C, *spatial) source of a batch ``like``, on its device and of its dtype."""
        want = tuple(like.shape)
        if self.kind == "callable":
            src = self.items(want, np.random.default_rng(draw))
            if not isinstance(src, torch.Tensor):
                src = torch.as_tensor(np.asarray(src))
        elif self.kind == "bank":
            # index_select: torch's advanced indexing costs several times the copy at small batches
            src = self.items.index_select(0, torch.as_tensor(draw, dtype=torch.int64, device=self.items.device))
        else:
            images = []
            for i in np.asarray(draw).tolist():
                x = self.get_image(self.items[i])
                images.append(x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x)))
            shapes = {tuple(x.shape) for x in images}
            if len(shapes) != 1 or next(iter(shapes)) != want[1:]:
                raise ValueError(
                    f"source dataset items must be single images of shape {want[1:]} (the images' "
                    f"(C, *spatial)); got shapes {sorted(shapes)}"
                )
            src = torch.stack([x.as_subclass(torch.Tensor) for x in images])
        if tuple(src.shape) != want:
            raise ValueError(f"source pool gave shape {tuple(src.shape)}; the images have shape {want}")
        if not src.dtype.is_floating_point:
            raise TypeError(f"source pool images must be floating point like the images; got {src.dtype}")
        return src.as_subclass(torch.Tensor).to(device=like.device, dtype=like.dtype)
