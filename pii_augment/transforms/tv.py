"""torchvision.transforms.v2 adapter: a PII/FPI module as a step of ``v2.Compose``.

Imports torchvision (an optional dependency) on import of this module only.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten
from torchvision import tv_tensors
from torchvision.transforms import v2

from .interpolation import _PatchInterpolation

__all__ = ["TorchvisionTransform"]


class TorchvisionTransform(v2.Transform):
    """Wrap a :class:`~pii_augment.PoissonImageInterpolation` or
    :class:`~pii_augment.ForeignPatchInterpolation` as a ``torchvision.transforms.v2`` transform.

    A batch transform, like ``v2.CutMix``: the one ``tv_tensors.Image`` among the inputs (or,
    without any, the first plain tensor, as v2 does) is a batch ``(B, C, H, W)`` whose images
    swap patches. The step returns its inputs with that image augmented (still an ``Image``)
    followed by the label as a ``tv_tensors.Mask``, so later v2 steps (flips, crops, affine) move
    the label with the image, and everything else passes through untouched.

    Args:
        aug: the module to run; its parameters, seed and ``_params`` are those of the step.

    Shape:
        - inputs: ``*inputs`` holding one image :math:`(B, C, H, W)` (or :math:`(B, C, D, H, W)`).
        - Output: ``(*inputs, label)``; the image keeps its shape and type, ``label`` is a
          ``tv_tensors.Mask`` :math:`(B, 1, H, W)` of the image's dtype.

    Example:
        >>> import torch
        >>> from torchvision import tv_tensors
        >>> from torchvision.transforms import v2
        >>> from pii_augment import PoissonImageInterpolation
        >>> from pii_augment.transforms.tv import TorchvisionTransform
        >>> pipeline = v2.Compose([
        ...     v2.ToDtype(torch.float32, scale=True),
        ...     TorchvisionTransform(PoissonImageInterpolation(seed=0)),
        ...     v2.RandomHorizontalFlip(p=1.0),
        ... ])
        >>> images = torch.randint(0, 256, (4, 1, 64, 64), dtype=torch.uint8,
        ...                        generator=torch.Generator().manual_seed(0))
        >>> image, label = pipeline(tv_tensors.Image(images))
        >>> type(image).__name__, type(label).__name__, tuple(label.shape)
        ('Image', 'Mask', (4, 1, 64, 64))
    """

    def __init__(self, aug: _PatchInterpolation) -> None:
        super().__init__()
        if not isinstance(aug, _PatchInterpolation):
            raise TypeError(
                "aug must be a PoissonImageInterpolation or ForeignPatchInterpolation; got "
                f"{type(aug).__name__}"
            )
        self.aug = aug

    def forward(self, *inputs: Any) -> Any:
        flat, spec = tree_flatten(inputs)
        images = [i for i, x in enumerate(flat) if isinstance(x, tv_tensors.Image)]
        if not images:
            images = [
                i for i, x in enumerate(flat)
                if type(x) is torch.Tensor  # noqa: E721 (plain tensors, not other tv_tensors)
            ][:1]
        if len(images) != 1:
            raise ValueError(
                f"inputs must hold exactly one image (a tv_tensors.Image, or a plain tensor when "
                f"there is no Image); found {len(images)}"
            )
        i = images[0]
        image = flat[i]
        out, label = self.aug(image.as_subclass(torch.Tensor))
        flat[i] = tv_tensors.wrap(out, like=image) if isinstance(image, tv_tensors.Image) else out
        return (*tree_unflatten(flat, spec), tv_tensors.Mask(label))
