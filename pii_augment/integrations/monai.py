"""MONAI transforms: PII and FPI as ``Randomizable`` dict (``...d``) and array transforms.

MONAI's convention holds: a sample is channel-first and unbatched, ``(C, H, W)`` or
``(C, D, H, W)``, so the spatial rank is the sample's ``ndim - 1`` (checked against
``spatial_dims=`` when given: a single volume ``(1, 16, 32, 32)`` is a 3D volume, never a
16-channel image). Randomness comes from MONAI's ``self.R`` alone (one draw per call seeds the
call's NumPy generator), so ``set_random_state``, ``set_determinism`` and MONAI's DataLoader
(which seeds every worker's transforms) reproduce runs. ``MetaTensor`` inputs come back as
``MetaTensor`` with their metadata; the label gets the image's metadata (affine) too.

A sample's source, in this order: ``source_key`` (another image of the same dict, e.g. a second
loaded scan), the ``source=`` pool (a bank tensor ``(N, C, *spatial)``, a Dataset, a callable: see
:class:`~pii_augment.SourcePool`), else the sample itself rolled by half its size (the
documented rule of :data:`~pii_augment.transforms.pool.BATCH_OF_ONE_RULE`).

Needs MONAI: ``pip install 'pii-augment[monai]'``.
"""

from __future__ import annotations

from typing import Any, Hashable, Mapping, Sequence

import numpy as np
import torch

from ..sampling.draws import sample_seed_words
from ..transforms.interpolation import _rewrap
from ._common import METHODS, check_spatial_dims, generator_from, require

require("monai", "monai")
from monai.config import KeysCollection  # noqa: E402
from monai.transforms import MapTransform, RandomizableTransform  # noqa: E402
from monai.utils import TransformBackends  # noqa: E402

__all__ = [
    "RandPoissonImageInterpolation",
    "RandForeignPatchInterpolation",
    "RandPoissonImageInterpolationd",
    "RandForeignPatchInterpolationd",
]


def _as_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, np.ndarray):
        return torch.as_tensor(x)
    raise TypeError(f"{name} must be a torch.Tensor, MetaTensor or numpy array; got {type(x).__name__}")


class _Interpolation(RandomizableTransform):
    """The array transform: ``(image, label)`` of one channel-first sample."""

    method = "pii"
    backend = [TransformBackends.TORCH]

    def __init__(self, prob: float = 1.0, *, spatial_dims: int | None = None, source: Any = None,
                 **options: Any) -> None:
        RandomizableTransform.__init__(self, prob)
        if "p" in options:
            raise TypeError("use prob= (MONAI's name) rather than p=")
        if isinstance(source, str):
            raise TypeError("source must be None or a pool (a bank tensor, a Dataset, a callable); got a str")
        self.aug = METHODS[self.method](p=1.0, pool=source, **options)
        if spatial_dims is not None:
            check_spatial_dims(np.zeros((1,) * (int(spatial_dims) + 1)), spatial_dims, "spatial_dims")
        self.spatial_dims = spatial_dims
        self._seed_words: np.ndarray | None = None

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self._seed_words = sample_seed_words(self.R)

    def _blend(self, images: Sequence[Any], sources: Sequence[Any | None], names: Sequence[str]):
        """One sample's images (its keys) blended with the same patches, each from its source
        (all given, or all None: the pool, else itself shifted). Returns the outputs and the
        label (the largest of the keys' labels), MetaTensors kept."""
        xs = [_as_tensor(x, n) for x, n in zip(images, names)]
        check_spatial_dims(xs[0], self.spatial_dims, names[0])
        for x, n in zip(xs[1:], names[1:]):
            if tuple(x.shape[1:]) != tuple(xs[0].shape[1:]):
                raise ValueError(f"{n} has shape {tuple(x.shape)}; {names[0]} has {tuple(xs[0].shape)}: one spatial shape")
        if not self._do_transform:
            dtype = xs[0].dtype if xs[0].is_floating_point() else torch.float32
            label = torch.zeros((1,) + tuple(xs[0].shape[1:]), dtype=dtype, device=xs[0].device)
            return list(images), _rewrap(label, xs[0], label=True) if type(xs[0]) is not torch.Tensor else label
        g = generator_from(self._seed_words)
        params, outs, label = None, [], None
        for x, s, n in zip(xs, sources, names):
            plain = x.as_subclass(torch.Tensor)[None]
            src = None if s is None else _as_tensor(s, f"source of {n}").as_subclass(torch.Tensor)[None]
            if params is None:
                params = self.aug.forward_parameters(plain.shape, g, explicit_source=src is not None)
            out, lab = self.aug(plain, src, params=params)
            outs.append(out[0] if type(x) is torch.Tensor else _rewrap(out[0], x))
            label = lab[0] if label is None else torch.maximum(label, lab[0])
        return outs, label if type(xs[0]) is torch.Tensor else _rewrap(label, xs[0], label=True)

    def __call__(self, img: Any, source: Any = None, randomize: bool = True):
        """``(augmented, label)`` of one sample ``img`` (C, *spatial); ``source`` None or the
        same shape."""
        if randomize:
            self.randomize()
        outs, label = self._blend([img], [source], ["img"])
        return outs[0], label



class RandPoissonImageInterpolation(_Interpolation):
    """PII on one channel-first sample, a MONAI array transform: ``(augmented, label)``.

    With probability ``prob`` the sample gets a patch (of ``source``, else of the pool, else of
    itself rolled by half) blended in by :class:`~pii_augment.PoissonImageInterpolation`; the
    label is ``(1, *spatial)``. Otherwise it comes back unchanged with a zero label.

    Args:
        prob: probability of an anomaly (MONAI's name for ``p``).
        spatial_dims: None (the sample's ``ndim - 1``) or 2 / 3, checked against the sample.
        source: None or a pool: a bank ``(N, C, *spatial)``, a Dataset, a callable.
        **options: the module's options (``alpha``, ``shape``, ``half_width_frac``, ``label``, ...).

    Shape:
        - img: :math:`(C, H, W)` or :math:`(C, D, H, W)`, float (Tensor, MetaTensor or array).
        - Output: ``augmented`` like ``img``, ``label`` :math:`(1, *spatial)`.

    Example:
        >>> import torch
        >>> from pii_augment.integrations.monai import RandPoissonImageInterpolation
        >>> t = RandPoissonImageInterpolation(prob=1.0).set_random_state(0)
        >>> out, label = t(torch.rand(1, 16, 32, 32, generator=torch.Generator().manual_seed(0)))
        >>> tuple(label.shape), bool((label > 0).any())
        ((1, 16, 32, 32), True)
    """

    method = "pii"


class RandForeignPatchInterpolation(_Interpolation):
    """FPI on one channel-first sample, a MONAI array transform: ``(augmented, label)``.

    As :class:`RandPoissonImageInterpolation`, with :class:`~pii_augment.ForeignPatchInterpolation`.

    Example:
        >>> import torch
        >>> from pii_augment.integrations.monai import RandForeignPatchInterpolation
        >>> t = RandForeignPatchInterpolation(prob=1.0, spatial_dims=2).set_random_state(0)
        >>> out, label = t(torch.rand(3, 32, 32), torch.rand(3, 32, 32))
        >>> tuple(out.shape), tuple(label.shape)
        ((3, 32, 32), (1, 32, 32))
    """

    method = "fpi"


class _Interpolationd(RandomizableTransform, MapTransform):
    """The dict transform over ``keys``, the label under ``label_key``."""

    array_class = RandPoissonImageInterpolation
    backend = RandPoissonImageInterpolation.backend

    def __init__(self, keys: KeysCollection, label_key: str = "label", *,
                 source_key: str | Sequence[str] | None = None, prob: float = 1.0,
                 spatial_dims: int | None = None, source: Any = None,
                 allow_missing_keys: bool = False, **options: Any) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        if not isinstance(label_key, Hashable) or label_key is None:
            raise TypeError(f"label_key must be a dict key; got {label_key!r}")
        if source_key is not None:
            source_key = (source_key,) if isinstance(source_key, str) else tuple(source_key)
            if len(source_key) != len(self.keys):
                raise ValueError(
                    f"source_key must name one source per key: {len(self.keys)} keys {self.keys}, "
                    f"{len(source_key)} source keys {source_key}"
                )
        self.label_key, self.source_key = label_key, source_key
        self.array = self.array_class(prob=1.0, spatial_dims=spatial_dims, source=source, **options)

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed, state)
        self.array.set_random_state(seed, state)
        return self

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        self.array.randomize(None)
        self.array._do_transform = self._do_transform

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        keys = [k for k in self.key_iterator(d)]
        self.randomize(None)
        if not keys:
            return d
        sources = [None] * len(keys)
        if self.source_key is not None:
            pairs = dict(zip(self.keys, self.source_key))
            for k in keys:
                if pairs[k] not in d:
                    raise KeyError(f"source_key {pairs[k]!r} (the source of {k!r}) is not in the data (keys {list(d)})")
            sources = [d[pairs[k]] for k in keys]
        outs, label = self.array._blend([d[k] for k in keys], sources, [repr(k) for k in keys])
        d.update(zip(keys, outs))
        d[self.label_key] = label
        return d


class RandPoissonImageInterpolationd(_Interpolationd):
    """PII as a MONAI dict transform: the images under ``keys`` get one anomaly (the same patch
    for every key), its label goes under ``label_key``.

    Args:
        keys: the image keys (channel-first samples of one spatial shape).
        label_key: where the label ``(1, *spatial)`` goes (always written: zeros when the sample
            was left alone, so batches collate).
        source_key: None, or the key (one per key) of the image each key takes its patch from;
            None: the ``source`` pool, else the image itself rolled by half.
        prob: probability of an anomaly.
        spatial_dims: None (from the data: ``ndim - 1``) or 2 / 3, checked against the data.
        source: None or a pool (bank ``(N, C, *spatial)``, Dataset, callable).
        allow_missing_keys: MONAI's option.
        **options: the module's options (``alpha``, ``shape``, ``n_patches``, ``label``, ...).

    Shape:
        - ``data[key]``: :math:`(C, H, W)` or :math:`(C, D, H, W)`, float.
        - ``data[label_key]``: :math:`(1, *spatial)`, the image's dtype (MetaTensor if it is one).

    Example:
        >>> import torch
        >>> from monai.data import MetaTensor
        >>> from pii_augment.integrations.monai import RandPoissonImageInterpolationd
        >>> t = RandPoissonImageInterpolationd(keys="image", label_key="anomaly").set_random_state(0)
        >>> vol = MetaTensor(torch.rand(1, 16, 32, 32), meta={"filename_or_obj": "a.nii.gz"})
        >>> out = t({"image": vol})
        >>> type(out["image"]).__name__, out["image"].meta["filename_or_obj"], tuple(out["anomaly"].shape)
        ('MetaTensor', 'a.nii.gz', (1, 16, 32, 32))
    """

    array_class = RandPoissonImageInterpolation


class RandForeignPatchInterpolationd(_Interpolationd):
    """FPI as a MONAI dict transform; as :class:`RandPoissonImageInterpolationd`.

    Example:
        >>> import torch
        >>> from pii_augment.integrations.monai import RandForeignPatchInterpolationd
        >>> t = RandForeignPatchInterpolationd(keys="image", source_key="other").set_random_state(0)
        >>> out = t({"image": torch.rand(1, 32, 32), "other": torch.rand(1, 32, 32)})
        >>> sorted(out), tuple(out["label"].shape)
        (['image', 'label', 'other'], (1, 32, 32))
    """

    array_class = RandForeignPatchInterpolation
