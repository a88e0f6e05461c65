"""A Dataset wrapper turning any dataset of normal images into (anomalous image, label) pairs."""

from __future__ import annotations

import operator
import os
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .interpolation import PoissonImageInterpolation, _PatchInterpolation

__all__ = ["AnomalyDataset"]


def _default_image(item: Any) -> Any:
    """The image of a dataset item: the item itself, its first element, or its ``"image"`` key."""
    if isinstance(item, (tuple, list)):
        return item[0]
    if isinstance(item, dict):
        return item["image"]
    return item


class AnomalyDataset(Dataset):
    """Wrap a dataset of normal images into ``(augmented, label)`` pairs for a DataLoader.

    Item ``i`` is image ``i`` of ``dataset`` with a patch of another image ``j != i`` (drawn
    uniformly) blended in by ``transform`` (a :class:`PoissonImageInterpolation` by default), and
    its per-pixel label.

    Randomness: each process draws from its own ``torch.Generator``, created on first use in that
    process (so no state is shared between DataLoader workers and nothing random is pickled):

    - in a DataLoader worker it is seeded from ``(seed, worker seed)``, the worker seed being the
      one torch gives each worker (``get_worker_info().seed``: the DataLoader's base seed plus the
      worker id, the base seed drawn anew for every epoch from the DataLoader's ``generator=``, or
      torch's global RNG). Workers and epochs thus differ, and a run is reproduced by fixing the
      DataLoader's generator (or ``torch.manual_seed``), as for torch's own random ops in workers;
    - in the main process (``num_workers=0``) it is seeded from ``seed``, or from
      ``torch.initial_seed()`` when ``seed`` is None.

    The wrapper is picklable and holds no generator once pickled.

    Args:
        dataset: any map-style dataset whose items are images ``(C, H, W)`` / ``(C, D, H, W)``
            (float tensors or arrays), or tuples/dicts holding one (see ``get_image``).
        transform: a :class:`PoissonImageInterpolation` or :class:`ForeignPatchInterpolation`
            (its ``seed`` is not used: draws come from the generator above).
        seed: mixed into every process' generator (None: torch's seeds alone decide).
        get_image: picks the image out of an item (default: the item, ``item[0]`` for tuples and
            lists, ``item["image"]`` for dicts).

    Shape:
        - item: ``(augmented, label)``, :math:`(C, *spatial)` and :math:`(1, *spatial)`.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from pii_augment import AnomalyDataset, PoissonImageInterpolation
        >>> normal = torch.rand(8, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> data = AnomalyDataset(normal, PoissonImageInterpolation(), seed=0)
        >>> image, label = data[3]
        >>> image.shape, label.shape
        (torch.Size([1, 32, 32]), torch.Size([1, 32, 32]))
        >>> loader = DataLoader(data, batch_size=4, generator=torch.Generator().manual_seed(0))
        >>> [tuple(t.shape) for t in next(iter(loader))]
        [(4, 1, 32, 32), (4, 1, 32, 32)]
    """

    def __init__(
        self,
        dataset: Any,
        transform: _PatchInterpolation | None = None,
        *,
        seed: int | None = None,
        get_image: Callable[[Any], Any] | None = None,
    ) -> None:
        if transform is None:
            transform = PoissonImageInterpolation()
        if not isinstance(transform, _PatchInterpolation):
            raise TypeError(
                "transform must be a PoissonImageInterpolation or ForeignPatchInterpolation; got "
                f"{type(transform).__name__}"
            )
        if seed is not None and (not isinstance(seed, (int, np.integer)) or seed < 0):
            raise ValueError(f"seed must be a non-negative int or None; got {seed!r}")
        self.dataset = dataset
        self.transform = transform
        self.seed = None if seed is None else int(seed)
        self.get_image = get_image or _default_image
        self._generator: torch.Generator | None = None
        self._owner: tuple | None = None

    def __len__(self) -> int:
        return len(self.dataset)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_generator"] = None
        state["_owner"] = None
        return state

    def generator(self) -> torch.Generator:
        """This process' generator (created on first use in a process, see the class doc)."""
        info = get_worker_info()
        owner = (os.getpid(), None if info is None else (info.id, info.seed))
        if self._generator is None or self._owner != owner:
            if info is not None:
                entropy = [int(info.seed)] if self.seed is None else [self.seed, int(info.seed)]
            else:
                entropy = [self.seed if self.seed is not None else int(torch.initial_seed())]
            words = np.random.SeedSequence(entropy).generate_state(2, np.uint32)
            g = torch.Generator()
            g.manual_seed((int(words[0]) << 31) ^ int(words[1]))
            self._generator, self._owner = g, owner
        return self._generator

    def _image(self, index: int) -> torch.Tensor:
        x = self.get_image(self.dataset[index])
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(np.asarray(x))
        return x

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        if n < 2:
            raise ValueError(f"dataset must hold at least 2 images (a source other than the image); got {n}")
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        g = self.generator()
        other = (index + 1 + int(torch.randint(n - 1, (1,), generator=g).item())) % n
        image, source = self._image(index), self._image(other)
        if image.shape != source.shape:
            raise ValueError(
                f"images {index} and {other} of dataset have shapes {tuple(image.shape)} and "
                f"{tuple(source.shape)}: AnomalyDataset needs images of one shape"
            )
        return self.transform(image, source, generator=g)
