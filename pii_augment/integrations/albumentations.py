"""albumentations transforms: PII and FPI as steps of ``albumentations.Compose``.

The image (``image=``, HWC: ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, uint8 or float) gets a
patch blended in; the label goes into the mask target ``label_key`` (``"mask"`` by default, or
an additional target declared as a mask: ``additional_targets={"anomaly": "mask"}``), so the
geometric steps after this one move it with the image. A call without that target gets a zero
one first, so the output has the same keys whether or not the step applied. Other targets pass
unchanged (an intensity step).

A sample's source, in this order: ``source_key`` (another image of the call, e.g. declared as
``additional_targets={"source": "image"}``), the ``source=`` pool (HWC images ``(N, H, W[, C])``
like ``image``, or the module's pools), else the image itself rolled by half (the modules'
documented rule). Randomness comes from the transform's ``random_generator`` alone, so
``Compose(..., seed=...)`` reproduces a pipeline.

Needs albumentations: ``pip install 'pii-augment[albumentations]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..sampling.draws import sample_seed_words
from ._common import METHODS, generator_from, require

require("albumentations", "albumentations")
from albumentations.core.transforms_interface import DualTransform  # noqa: E402

__all__ = ["RandomPoissonImageInterpolation", "RandomForeignPatchInterpolation"]


def _to_chw(image: Any, name: str) -> tuple[torch.Tensor, Any]:
    """HWC (or HW) uint8/float array -> (1, C, H, W) float32 tensor, and how to undo it."""
    if not isinstance(image, np.ndarray):
        raise TypeError(f"{name} must be a numpy array (H, W) or (H, W, C); got {type(image).__name__}")
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C); got {image.shape}")
    if image.dtype == np.uint8:
        x = image.astype(np.float32) / 255.0
    elif np.issubdtype(image.dtype, np.floating):
        x = image.astype(np.float32, copy=False)
    else:
        raise TypeError(f"{name} must be uint8 or floating point; got {image.dtype}")
    chw = x[None] if x.ndim == 2 else np.moveaxis(x, -1, 0)
    return torch.from_numpy(np.ascontiguousarray(chw))[None], (image.ndim, image.dtype)


def _to_hwc(x: torch.Tensor, how: Any) -> np.ndarray:
    ndim, dtype = how
    a = x[0].numpy()
    a = a[0] if ndim == 2 else np.moveaxis(a, 0, -1)
    if dtype == np.uint8:
        return np.clip(np.rint(a * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(a.astype(dtype, copy=False))


def _pool(source: Any) -> Any:
    """An HWC image bank ``(N, H, W[, C])`` becomes the module's ``(N, C, H, W)`` float bank."""
    if isinstance(source, np.ndarray):
        if source.ndim not in (3, 4):
            raise ValueError(f"source as a bank must be HWC images (N, H, W) or (N, H, W, C); got {source.shape}")
        return torch.cat([_to_chw(im, f"source[{i}]")[0] for i, im in enumerate(source)])
    return source


class _AlbumentationsInterpolation(DualTransform):
    method = "pii"

    def __init__(self, label_key: str = "mask", source_key: str | None = None, source: Any = None,
                 p: float = 1.0, **options: Any) -> None:
        super().__init__(p=p)
        if not isinstance(label_key, str) or (source_key is not None and not isinstance(source_key, str)):
            raise TypeError(f"label_key and source_key must be str (source_key may be None); got {label_key!r}, {source_key!r}")
        if "seed" in options:
            raise TypeError("seed= is the Compose's: use Compose(..., seed=...) (the draws come from its generator)")
        self.label_key, self.source_key = label_key, source_key
        self.aug = METHODS[self.method](p=1.0, pool=None if source is None else _pool(source),
                                        spatial_dims=2, **options)

    def get_transform_init_args_names(self) -> tuple[str, ...]:
        return ("label_key", "source_key")

    def __call__(self, *args: Any, force_apply: bool = False, **kwargs: Any) -> Any:
        if "image" not in kwargs:
            raise KeyError(f"{type(self).__name__} needs image=; got keys {sorted(kwargs)}")
        if self.label_key != "mask" and self.label_key not in self._key2func:
            raise KeyError(
                f"label_key={self.label_key!r} is not a mask target of the pipeline: declare it, "
                f"Compose(..., additional_targets={{{self.label_key!r}: 'mask'}})"
            )
        if self.label_key not in kwargs:  # the label of a normal image, so skipping keeps the keys
            kwargs[self.label_key] = np.zeros(kwargs["image"].shape[:2], np.float32)
        return super().__call__(*args, force_apply=force_apply, **kwargs)

    def get_params_dependent_on_data(self, params: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
        x, how = _to_chw(data["image"], "image")
        src = None
        if self.source_key is not None:
            if self.source_key not in data:
                raise KeyError(f"source_key {self.source_key!r} is not among the call's keys {sorted(data)}")
            src, _ = _to_chw(data[self.source_key], self.source_key)
            if src.shape != x.shape:
                raise ValueError(f"{self.source_key} has shape {data[self.source_key].shape}; image has {data['image'].shape}")
        g = generator_from(sample_seed_words(self.random_generator))
        out, label = self.aug(x, src, generator=g)
        return {"pii_image": _to_hwc(out, how), "pii_label": label[0, 0].numpy()}

    def apply_with_params(self, params: dict[str, Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
        res = dict(kwargs)
        res["image"] = params["pii_image"]
        res[self.label_key] = params["pii_label"].astype(np.float32, copy=False)
        return res


class RandomPoissonImageInterpolation(_AlbumentationsInterpolation):
    """PII as an albumentations transform: ``image`` gets an anomaly, ``label_key`` its label.

    Args:
        label_key: the mask target the label (float32 ``(H, W)``) goes to.
        source_key: None or the key of the image to take patches from.
        source: None or a pool: HWC images ``(N, H, W[, C])`` like ``image`` (uint8 or float),
            or a pool of :class:`~pii_augment.SourcePool` in the module's ``(C, H, W)`` float layout.
        p: albumentations' probability of applying the step (the label stays zero otherwise).
        **options: the options of :class:`~pii_augment.PoissonImageInterpolation` (``alpha``,
            ``shape``, ``half_width_frac``, ``label``, ...; not ``seed``: use ``Compose(seed=...)``).

    Shape:
        - image: :math:`(H, W)` or :math:`(H, W, C)`, uint8 or float; the output keeps both.
        - label: :math:`(H, W)` float32.

    Example:
        >>> import numpy as np
        >>> import albumentations as A
        >>> from pii_augment.integrations.albumentations import RandomPoissonImageInterpolation
        >>> pipe = A.Compose([RandomPoissonImageInterpolation(), A.HorizontalFlip(p=1.0)], seed=0)
        >>> image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
        >>> out = pipe(image=image)
        >>> out["image"].dtype, out["image"].shape, out["mask"].shape, bool((out["mask"] > 0).any())
        (dtype('uint8'), (32, 40, 3), (32, 40), True)
    """

    method = "pii"


class RandomForeignPatchInterpolation(_AlbumentationsInterpolation):
    """FPI as an albumentations transform; as :class:`RandomPoissonImageInterpolation`.

    Example:
        >>> import numpy as np
        >>> import albumentations as A
        >>> from pii_augment.integrations.albumentations import RandomForeignPatchInterpolation
        >>> pipe = A.Compose([RandomForeignPatchInterpolation(source_key="other")],
        ...                  additional_targets={"other": "image"}, seed=0)
        >>> rng = np.random.default_rng(0)
        >>> out = pipe(image=rng.random((32, 32), dtype=np.float32), other=rng.random((32, 32), dtype=np.float32))
        >>> out["image"].dtype, out["mask"].shape
        (dtype('float32'), (32, 32))
    """

    method = "fpi"
