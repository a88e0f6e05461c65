"""kornia augmentations: PII and FPI as kornia intensity augmentations, 2D and 3D.

They compose at any position of ``kornia.augmentation.AugmentationSequential``, between
geometric augmentations and with ``data_keys`` holding masks: the image step returns the image
alone (kornia's convention), the label is kept as :attr:`label` after every call and, with
``label_as_mask=True``, written into the sequence's ``"mask"`` at this position (so the geometric
steps after it move the label as they move the image). Everything random about a call is one
integer, ``params["pii_seed"]``, drawn from torch's global RNG (or the module's ``seed=``
stream), so ``seq(x, params=seq._params)`` replays the sequence exactly.

The per-sample gate is the module's own ``p`` (a skipped sample: unchanged, zero label); kornia's
gate stays at 1. A batch of one follows the modules' documented rule (the ``pool=``, else
the sample itself rolled by half). The blend is not differentiable: outputs carry no gradient.

Needs kornia: ``pip install 'pii-augment[kornia]'``.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import torch

from .._validate import check_bool
from ._common import METHODS, require

require("kornia", "kornia")
from kornia.augmentation import IntensityAugmentationBase2D, IntensityAugmentationBase3D  # noqa: E402

__all__ = [
    "RandomPoissonImageInterpolation",
    "RandomForeignPatchInterpolation",
    "RandomPoissonImageInterpolation3D",
    "RandomForeignPatchInterpolation3D",
]

_SEED_KEY = "pii_seed"


class _KorniaInterpolation:
    """What the 2D and 3D classes share (mixed in before kornia's base)."""

    method = "pii"
    spatial_dims = 2

    def _setup(self, p: float, label_as_mask: bool, keepdim: bool, options: dict) -> None:
        self.aug = METHODS[self.method](p=p, spatial_dims=self.spatial_dims, **options)
        self.label_as_mask = check_bool("label_as_mask", label_as_mask)
        self.label: Optional[torch.Tensor] = None
        self._last: Optional[tuple] = None  # (seed, shape, label) of the last image call

    def generate_parameters(self, batch_shape: tuple) -> Dict[str, torch.Tensor]:
        return {_SEED_KEY: torch.tensor(self.aug._call_seed(None), dtype=torch.int64)}

    def _seed_of(self, params: Dict[str, torch.Tensor]) -> int:
        if _SEED_KEY not in params:
            raise KeyError(f"params hold no {_SEED_KEY!r}: pass the params this augmentation drew (aug._params)")
        return int(params[_SEED_KEY])

    def apply_transform(self, input: torch.Tensor, params: Dict[str, torch.Tensor], flags: Dict[str, Any],
                        transform: Optional[torch.Tensor] = None) -> torch.Tensor:
        seed = self._seed_of(params)
        p = self.aug.forward_parameters(tuple(input.shape), seed=seed)
        out, label = self.aug(input, params=p)
        self.label, self._last = label, (seed, tuple(input.shape[:1]) + tuple(input.shape[2:]), label)
        return out

    def apply_transform_mask(self, input: torch.Tensor, params: Dict[str, torch.Tensor], flags: Dict[str, Any],
                             transform: Optional[torch.Tensor] = None) -> torch.Tensor:
        if not self.label_as_mask:
            return input
        seed = self._seed_of(params)
        if self._last is None or self._last[0] != seed:
            raise RuntimeError(
                "label_as_mask=True writes the label of the image into the mask: transform the "
                "mask in the same call as its image (data_keys with 'input' and 'mask')"
            )
        _, shape, label = self._last
        if (input.shape[0],) + tuple(input.shape[2:]) != shape:
            raise ValueError(f"mask has shape {tuple(input.shape)}; the image's label is {tuple(label.shape)}")
        return label.to(input.dtype).expand_as(input).clone()

    def apply_non_transform_mask(self, input, params, flags, transform=None):
        return self.apply_transform_mask(input, params, flags, transform)


class _Kornia2D(_KorniaInterpolation, IntensityAugmentationBase2D):
    def __init__(self, p: float = 1.0, *, label_as_mask: bool = False, keepdim: bool = False, **options: Any) -> None:
        IntensityAugmentationBase2D.__init__(self, p=1.0, p_batch=1.0, same_on_batch=False, keepdim=keepdim)
        self._setup(p, label_as_mask, keepdim, options)


class _Kornia3D(_KorniaInterpolation, IntensityAugmentationBase3D):
    spatial_dims = 3

    def __init__(self, p: float = 1.0, *, label_as_mask: bool = False, keepdim: bool = False, **options: Any) -> None:
        IntensityAugmentationBase3D.__init__(self, p=1.0, p_batch=1.0, same_on_batch=False, keepdim=keepdim)
        self._setup(p, label_as_mask, keepdim, options)

    def compute_transformation(self, input: torch.Tensor, params: Dict[str, torch.Tensor],
                               flags: Dict[str, Any]) -> torch.Tensor:
        return self.identity_matrix(input)  # no voxel moves


class RandomPoissonImageInterpolation(_Kornia2D):
    """PII as a kornia 2D intensity augmentation: ``aug(x) -> augmented``, the label in
    :attr:`label` (and in the sequence's mask with ``label_as_mask=True``).

    Args:
        p: probability that a sample gets an anomaly (the module's gate).
        label_as_mask: True: a ``"mask"`` data key passing this step becomes the label (so
            later geometric steps move it); False: masks pass unchanged (an intensity step).
        keepdim: kornia's option.
        **options: the options of :class:`~pii_augment.PoissonImageInterpolation` (``alpha``,
            ``shape``, ``pairing``, ``pool``, ``label``, ``seed``, ...).

    Shape:
        - input: :math:`(B, C, H, W)`, float.
        - Output: like the input; :attr:`label` :math:`(B, 1, H, W)`.

    Example:
        >>> import torch
        >>> import kornia.augmentation as K
        >>> from pii_augment.integrations.kornia import RandomPoissonImageInterpolation
        >>> seq = K.AugmentationSequential(
        ...     K.RandomHorizontalFlip(p=1.0), RandomPoissonImageInterpolation(label_as_mask=True),
        ...     K.RandomAffine(degrees=20, p=1.0), data_keys=["input", "mask"])
        >>> x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> out, mask = seq(x, torch.zeros(4, 1, 32, 32))
        >>> again, mask2 = seq(x, torch.zeros(4, 1, 32, 32), params=seq._params)  # replay
        >>> bool(torch.equal(again, out) and torch.equal(mask2, mask)), bool((mask > 0).any())
        (True, True)
    """

    method = "pii"


class RandomForeignPatchInterpolation(_Kornia2D):
    """FPI as a kornia 2D intensity augmentation; as :class:`RandomPoissonImageInterpolation`.

    Example:
        >>> import torch
        >>> from pii_augment.integrations.kornia import RandomForeignPatchInterpolation
        >>> aug = RandomForeignPatchInterpolation(seed=0)
        >>> out = aug(torch.rand(2, 3, 32, 32))
        >>> tuple(out.shape), tuple(aug.label.shape)
        ((2, 3, 32, 32), (2, 1, 32, 32))
    """

    method = "fpi"


class RandomPoissonImageInterpolation3D(_Kornia3D):
    """PII as a kornia 3D intensity augmentation: ``aug(x) -> augmented``, the label in
    :attr:`label`; options as :class:`RandomPoissonImageInterpolation`.

    Shape:
        - input: :math:`(B, C, D, H, W)`, float.
        - Output: like the input; :attr:`label` :math:`(B, 1, D, H, W)`.

    Example:
        >>> import torch
        >>> import kornia.augmentation as K
        >>> from pii_augment.integrations.kornia import RandomPoissonImageInterpolation3D
        >>> seq = K.AugmentationSequential(K.RandomHorizontalFlip3D(p=1.0),
        ...                                RandomPoissonImageInterpolation3D(), K.RandomDepthicalFlip3D(p=1.0))
        >>> x = torch.rand(2, 1, 8, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> out = seq(x)
        >>> bool(torch.equal(seq(x, params=seq._params), out)), tuple(seq[1].label.shape)
        (True, (2, 1, 8, 16, 16))
    """

    method = "pii"


class RandomForeignPatchInterpolation3D(_Kornia3D):
    """FPI as a kornia 3D intensity augmentation; as :class:`RandomPoissonImageInterpolation3D`.

    The gate is the module's ``p`` (kornia's stays at 1): the samples it skips come back as they
    were, with a zero label; which ones is in the module's parameters (``aug.aug._params.apply``).

    Example:
        >>> import torch
        >>> from pii_augment.integrations.kornia import RandomForeignPatchInterpolation3D
        >>> aug = RandomForeignPatchInterpolation3D(p=0.5, seed=0)
        >>> x = torch.rand(4, 1, 8, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> out = aug(x)
        >>> skipped = ~torch.from_numpy(aug.aug._params.apply)
        >>> skipped.tolist(), bool(torch.equal(out[skipped], x[skipped])), bool((aug.label[skipped] == 0).all())
        ([False, True, False, False], True, True)
    """

    method = "fpi"
