"""torchvision.transforms.v2 adapter: a PII/FPI module as a step of ``v2.Compose``, per sample or
per batch, and a collate function blending at batch level after ``default_collate``.

Imports torchvision (an optional dependency, extra ``[tv]``) on import of this module only.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch.utils.data import default_collate
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2._utils import is_pure_tensor

from .interpolation import PatchInterpolation

__all__ = ["AnomalyLabel", "AnomalyCollate", "TorchvisionTransform"]

#: The key the label gets in a dict sample (or batch) that holds no :class:`AnomalyLabel`.
LABEL_KEY = "anomaly_label"


def _check_aug(aug: Any) -> PatchInterpolation:
    if not isinstance(aug, PatchInterpolation):
        raise TypeError(
            "aug must be a PoissonImageInterpolation or ForeignPatchInterpolation; got "
            f"{type(aug).__name__}"
        )
    return aug


class AnomalyLabel(tv_tensors.Mask):
    """The slot of the anomaly label in a sample: a ``tv_tensors.Mask`` that
    :class:`TorchvisionTransform` fills with the label.

    Put one (zeros, the label of a normal image) in the sample and the step returns the very
    structure it was given: the label takes the slot's place, so ``v2.RandomApply`` (which
    returns its input unchanged when it skips) gives one structure on every call, with a zero
    label when it skipped. Geometric v2 steps move it as the ``Mask`` it is.

    Example:
        >>> import torch
        >>> AnomalyLabel.zeros_like(torch.zeros(3, 32, 32)).shape
        torch.Size([1, 32, 32])
    """

    @classmethod
    def zeros_like(cls, image: torch.Tensor, spatial_dims: int = 2) -> "AnomalyLabel":
        """A zero label for ``image``: its channel axis (the one before the ``spatial_dims``
        last) of size 1, ``(C, H, W) -> (1, H, W)``, ``(B, C, H, W) -> (B, 1, H, W)``; the
        image's float dtype (float32 for integer images) and device."""
        if spatial_dims not in (2, 3) or image.ndim < spatial_dims + 1:
            raise ValueError(
                f"spatial_dims must be 2 or 3 and image hold a channel axis before them; got "
                f"spatial_dims={spatial_dims!r}, image shape {tuple(image.shape)}"
            )
        shape = tuple(image.shape[: -spatial_dims - 1]) + (1,) + tuple(image.shape[-spatial_dims:])
        dtype = image.dtype if image.dtype.is_floating_point else torch.float32
        return cls(torch.zeros(shape, dtype=dtype, device=image.device))


class TorchvisionTransform(v2.Transform):
    """Wrap a :class:`~pii_augment.PoissonImageInterpolation` or
    :class:`~pii_augment.ForeignPatchInterpolation` as a ``torchvision.transforms.v2`` transform.

    Built on v2's hooks: :meth:`make_params` blends the sample's one image once (its patches,
    alpha and source drawn by the module), :meth:`transform` hands every input its part: the
    image its blend (an ``Image`` stays an ``Image``), an :class:`AnomalyLabel` the label, and
    everything else (masks, boxes, labels, plain tensors beside an Image) passes untouched.

    Which input is the image: the one ``tv_tensors.Image``; without one, the one plain tensor
    (several plain tensors are ambiguous, an error: wrap the image in ``tv_tensors.Image``, or
    blend after collation with :class:`AnomalyCollate`).

    Per sample or per batch: a batch ``(B, C, H, W)`` swaps patches between its images; a single
    ``(C, H, W)`` image takes its patch from the module's ``pool=``, or from itself
    rolled by half (the module's documented rule), so a Dataset transform always makes an
    anomaly.

    Where the label goes, the same on every call:

    - the sample holds an :class:`AnomalyLabel`: there (the output has the input's structure:
      use this under ``v2.RandomApply``);
    - else a single dict sample: under the key ``label_key`` of a shallow copy;
    - else appended: ``(*inputs, label)``, a ``tv_tensors.Mask``.

    Args:
        aug: the module to run; its parameters, seed and ``_params`` are those of the step.
        label_key: the key of the label in a dict sample without an :class:`AnomalyLabel`.

    Shape:
        - image: :math:`(C, H, W)` or :math:`(B, C, H, W)` (or the 3D forms), float.
        - label: :math:`(1, H, W)` or :math:`(B, 1, H, W)`, the image's dtype.

    Example:
        >>> import torch
        >>> from torchvision import tv_tensors
        >>> from torchvision.transforms import v2
        >>> from pii_augment import PoissonImageInterpolation
        >>> from pii_augment.transforms.tv import AnomalyLabel, TorchvisionTransform
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
        >>> one = tv_tensors.Image(torch.rand(3, 32, 32))  # one sample, its label slot
        >>> step = v2.RandomApply([TorchvisionTransform(PoissonImageInterpolation())], p=0.5)
        >>> out = step(one, AnomalyLabel.zeros_like(one))
        >>> [type(t).__name__ for t in out]
        ['Image', 'AnomalyLabel']
    """

    _transformed_types = (tv_tensors.Image, AnomalyLabel, is_pure_tensor)

    def __init__(self, aug: PatchInterpolation, *, label_key: str = LABEL_KEY) -> None:
        super().__init__()
        self.aug = _check_aug(aug)
        if not isinstance(label_key, str):
            raise TypeError(f"label_key must be a str; got {type(label_key).__name__}")
        self.label_key = label_key
        self._label: torch.Tensor | None = None

    def check_inputs(self, flat_inputs: list[Any]) -> None:
        images = [x for x in flat_inputs if isinstance(x, tv_tensors.Image)]
        if not images:
            images = [x for x in flat_inputs if is_pure_tensor(x)]
            if len(images) > 1:
                raise ValueError(
                    f"inputs hold {len(images)} plain tensors and no tv_tensors.Image: which is the "
                    f"image is ambiguous (v2 would take the first); wrap the image in "
                    f"tv_tensors.Image, or blend batches after collation with AnomalyCollate"
                )
        if len(images) != 1:
            raise ValueError(
                f"inputs must hold exactly one image (a tv_tensors.Image, or a plain tensor when "
                f"there is no Image); found {len(images)}"
            )
        if sum(isinstance(x, AnomalyLabel) for x in flat_inputs) > 1:
            raise ValueError("inputs hold several AnomalyLabel slots; give at most one")

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        image = next(x for x in flat_inputs if not isinstance(x, AnomalyLabel))
        out, label = self.aug(image.as_subclass(torch.Tensor))
        self._label = label
        return {"out": out, "label": label}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, AnomalyLabel):
            label = params["label"]
            if tuple(inpt.shape) != tuple(label.shape):
                raise ValueError(
                    f"the AnomalyLabel slot has shape {tuple(inpt.shape)}; the label has shape "
                    f"{tuple(label.shape)} (use AnomalyLabel.zeros_like(image))"
                )
            return tv_tensors.wrap(label.to(inpt.dtype), like=inpt)
        out = params["out"]
        return tv_tensors.wrap(out, like=inpt) if isinstance(inpt, tv_tensors.Image) else out

    def forward(self, *inputs: Any) -> Any:
        self._label = None
        result = super().forward(*inputs)
        label, self._label = self._label, None
        flat = torch.utils._pytree.tree_flatten(inputs)[0]
        if any(isinstance(x, AnomalyLabel) for x in flat):
            return result
        if len(inputs) == 1 and isinstance(inputs[0], dict):
            return {**result, self.label_key: tv_tensors.Mask(label)}
        return (*(result if len(inputs) > 1 else (result,)), tv_tensors.Mask(label))


class AnomalyCollate:
    """A DataLoader ``collate_fn`` that collates with ``default_collate`` and then blends the
    batch: PII/FPI at batch level (patches swapped between the batch's images), after
    tv_tensors have become plain tensors.

    Args:
        aug: the module to run on the collated image batch.
        image: where the images are in a collated batch: an index (tuple/list batches) or a key
            (dict batches). Default: the batch itself if it is a tensor, its ``"image"`` key if
            a dict; for a tuple, which element is the image must be given when it holds more
            than one tensor (a ``ValueError`` otherwise, never a guess).
        label_key: the key of the label in dict batches (tuple batches get it appended).
        collate_fn: the collation to run first (default ``default_collate``).

    Shape:
        - the collated images: :math:`(B, C, H, W)` (or 3D); label :math:`(B, 1, H, W)`.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from pii_augment import ForeignPatchInterpolation
        >>> from pii_augment.transforms.tv import AnomalyCollate
        >>> data = [(torch.zeros(1, 8, 8, dtype=torch.long), torch.rand(1, 32, 32)) for _ in range(4)]
        >>> loader = DataLoader(data, batch_size=4, collate_fn=AnomalyCollate(ForeignPatchInterpolation(), image=1))
        >>> seg, image, label = next(iter(loader))
        >>> tuple(image.shape), tuple(label.shape)
        ((4, 1, 32, 32), (4, 1, 32, 32))
    """

    def __init__(self, aug: PatchInterpolation, image: int | str | None = None, *,
                 label_key: str = LABEL_KEY, collate_fn: Callable[[list], Any] = default_collate) -> None:
        self.aug = _check_aug(aug)
        if image is not None and not isinstance(image, (int, str)):
            raise TypeError(f"image must be None, an index or a key; got {type(image).__name__}")
        if not callable(collate_fn):
            raise TypeError(f"collate_fn must be callable; got {type(collate_fn).__name__}")
        self.image, self.label_key, self.collate_fn = image, label_key, collate_fn

    def __call__(self, samples: list) -> Any:
        batch = self.collate_fn(samples)
        if isinstance(batch, torch.Tensor):
            return self.aug(batch)
        if isinstance(batch, dict):
            key = "image" if self.image is None else self.image
            if key not in batch:
                raise KeyError(f"image={key!r} is not a key of the collated batch (keys {sorted(batch)})")
            out, label = self.aug(batch[key])
            return {**batch, key: out, self.label_key: label}
        batch = list(batch)
        index = self.image
        if index is None:
            tensors = [i for i, x in enumerate(batch) if isinstance(x, torch.Tensor)]
            if len(tensors) != 1:
                raise ValueError(
                    f"the collated batch holds {len(tensors)} tensors: pass image= (the index of "
                    f"the images) so that the right one is blended"
                )
            index = tensors[0]
        if not isinstance(index, int) or not -len(batch) <= index < len(batch):
            raise ValueError(f"image={index!r} is not an index of the collated batch of {len(batch)} elements")
        batch[index], label = self.aug(batch[index])
        return (*batch, label)
