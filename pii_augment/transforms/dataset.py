"""A Dataset wrapper turning any dataset of normal images into (anomalous image, label) pairs."""

from __future__ import annotations

import operator
import os
from typing import Any, Callable

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from .._validate import check_choice, check_int, check_seed
from ..sampling.draws import sample_other_index
from .interpolation import PoissonImageInterpolation, PatchInterpolation
from .pool import default_image as _default_image

__all__ = ["AnomalyDataset"]


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

    Items are single images, so their rank decides how they are blended: a ``(C, H, W)`` item
    is a 2D image, a ``(C, D, H, W)`` item a volume (blended with 3D patches). The transform
    runs on a batch of one with the other image as its explicit source.

    Args:
        dataset: any map-style dataset whose items are images ``(C, H, W)`` / ``(C, D, H, W)``
            (float tensors or arrays), or tuples/dicts holding one (see ``get_image``).
        transform: a :class:`PoissonImageInterpolation` or :class:`ForeignPatchInterpolation`
            (its ``seed`` is not used: draws come from the generator above).
        seed: None or an int >= 0, mixed into every process' generator (None: torch's seeds
            alone decide).
        get_image: a callable picking the image out of an item (default: the item, ``item[0]``
            for tuples and lists, ``item["image"]`` for dicts).
        spatial_dims: None (the transform's ``spatial_dims`` if it set one, else each item's
            rank), 2 or 3: the image rank every item must have (a ``ValueError`` naming the item
            otherwise). It must agree with the transform's ``spatial_dims`` when both are set.

    Shape:
        - dataset item: :math:`(C, H, W)` or :math:`(C, D, H, W)`.
        - item: ``(augmented, label)``, :math:`(C, *spatial)` and :math:`(1, *spatial)`, detached.

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
        >>> volumes = torch.rand(4, 2, 8, 16, 16, generator=torch.Generator().manual_seed(0))
        >>> [tuple(t.shape) for t in AnomalyDataset(volumes, seed=0)[1]]  # (C, D, H, W) items
        [(2, 8, 16, 16), (1, 8, 16, 16)]
    """

    def __init__(
        self,
        dataset: Any,
        transform: PatchInterpolation | None = None,
        *,
        seed: int | None = None,
        get_image: Callable[[Any], Any] | None = None,
        spatial_dims: int | None = None,
    ) -> None:
        if transform is None:
            transform = PoissonImageInterpolation()
        if not isinstance(transform, PatchInterpolation):
            raise TypeError(
                "transform must be a PoissonImageInterpolation or ForeignPatchInterpolation; got "
                f"{type(transform).__name__}"
            )
        seed = check_seed("seed", seed)
        if get_image is not None and not callable(get_image):
            raise TypeError(f"get_image must be None or a callable; got {type(get_image).__name__}")
        if spatial_dims is not None:
            spatial_dims = check_choice("spatial_dims", check_int("spatial_dims", spatial_dims), (2, 3))
            if transform.spatial_dims not in (None, spatial_dims):
                raise ValueError(
                    f"spatial_dims={spatial_dims} disagrees with the transform's "
                    f"spatial_dims={transform.spatial_dims}"
                )
        self.dataset = dataset
        self.transform = transform
        self.seed = seed
        self.get_image = get_image or _default_image
        self.spatial_dims = spatial_dims
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

    def _check_rank(self, image: torch.Tensor, index: int) -> None:
        """The item's rank is that of one image of the dimensionality asked for (or inferred)."""
        nd, by = self.spatial_dims, "spatial_dims"
        if nd is None and self.transform.spatial_dims is not None:
            nd, by = self.transform.spatial_dims, "the transform's spatial_dims"
        ranks = {2: (3,), 3: (4,), None: (3, 4)}[nd]
        if image.ndim not in ranks:
            expected = {2: "(C, H, W)", 3: "(C, D, H, W)", None: "(C, H, W) or (C, D, H, W)"}[nd]
            why = "" if nd is None else f" ({by}={nd})"
            raise ValueError(
                f"image {index} of dataset has shape {tuple(image.shape)}: AnomalyDataset needs "
                f"single images {expected}{why}"
            )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        n = len(self)
        if n < 2:
            raise ValueError(f"dataset must hold at least 2 images (a source other than the image); got {n}")
        index = operator.index(index)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for a dataset of {n} images")
        index %= n
        g = self.generator()
        other = sample_other_index(index, n, g)
        image, source = self._image(index), self._image(other)
        self._check_rank(image, index)
        if image.shape != source.shape:
            raise ValueError(
                f"images {index} and {other} of dataset have shapes {tuple(image.shape)} and "
                f"{tuple(source.shape)}: AnomalyDataset needs images of one shape"
            )
        # A batch of one with an explicit source: the item's rank alone decides 2D or 3D.
        out, label = self.transform(image[None], source[None], generator=g)
        return out[0], label[0]
