"""Lightning: the recipe for PII/FPI in a ``LightningModule``, and the helpers it uses.

The recipe: augment on the device, after the batch was moved there, for training batches only
(``on_after_batch_transfer``; validation and prediction see the images as they are), with the
step's own generator (:func:`step_generator_of`). Its draws are then a function of ``(seed,
rank, global step)`` alone, so

- DDP ranks draw different patches, even under ``seed_everything`` (which gives every rank the
  same global RNG, and so the same patches to modules drawing from it);
- a run resumed from a checkpoint draws at step ``k`` what an uninterrupted run drew at step
  ``k`` (Lightning restores ``global_step``).

A module drawing from its own ``seed=`` stream instead (no ``generator=``) keeps that stream's
position in ``state_dict()`` (``_extra_state``), so Lightning's checkpoints resume it too; seed
it per rank with :func:`~pii_augment.rank_seed` (in ``setup()``) so ranks differ.

::

    import lightning.pytorch as pl
    import torch.nn.functional as F
    from pii_augment import PoissonImageInterpolation
    from pii_augment.integrations.lightning import augment_training_batch

    class Detector(pl.LightningModule):
        def __init__(self, net, seed=0):
            super().__init__()
            self.net, self.seed = net, seed
            self.aug = PoissonImageInterpolation()

        def on_after_batch_transfer(self, batch, dataloader_idx):
            return augment_training_batch(self, self.aug, batch, self.seed)  # (images, label) in training

        def training_step(self, batch, batch_idx):
            images, label = batch
            return F.binary_cross_entropy_with_logits(self.net(images), label)  # the soft label

Needs Lightning: ``pip install 'pii-augment[lightning]'``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..transforms.interpolation import PatchInterpolation
from ..transforms.seeding import step_generator
from ._common import require

require("lightning", "lightning")

__all__ = ["step_generator_of", "augment_training_batch"]


def step_generator_of(module: Any, seed: int) -> np.random.Generator:
    """The augmentation's generator of a LightningModule's current step:
    :func:`~pii_augment.step_generator` of ``(seed, module.global_rank, module.global_step)``.

    Args:
        module: a ``LightningModule`` attached to a Trainer (or anything with ``global_rank``
            and ``global_step``).
        seed: an int >= 0, the run's seed.

    Example:
        >>> import lightning.pytorch as pl
        >>> g = step_generator_of(pl.LightningModule(), seed=0)  # rank 0, step 0 when detached
        >>> int(g.integers(100)) == int(step_generator_of(pl.LightningModule(), seed=0).integers(100))
        True
    """
    return step_generator(seed, int(module.global_rank), int(module.global_step))


def augment_training_batch(module: Any, aug: PatchInterpolation, batch: Any, seed: int) -> Any:
    """The body of ``on_after_batch_transfer`` in the recipe: in training, the batch's images
    blended with the step's generator; otherwise the batch unchanged.

    Args:
        module: the ``LightningModule`` (its trainer says whether it is training; rank and step
            seed the draws).
        aug: a :class:`~pii_augment.PoissonImageInterpolation` or
            :class:`~pii_augment.ForeignPatchInterpolation`.
        batch: a tensor of images ``(B, C, *spatial)``, a tuple/list whose first element is
            the images, or a dict with the key ``"image"``.
        seed: an int >= 0, the run's seed.

    Returns:
        In training: ``(augmented, label)`` for a tensor batch; the tuple with its images
        replaced and the label appended; the dict with ``"image"`` replaced and
        ``"anomaly_label"`` added. Otherwise ``batch`` itself.

    Example:
        >>> import torch, lightning.pytorch as pl
        >>> from pii_augment import PoissonImageInterpolation
        >>> module = pl.LightningModule()  # detached: not training, so the batch passes
        >>> x = torch.rand(2, 1, 16, 16)
        >>> augment_training_batch(module, PoissonImageInterpolation(), x, seed=0) is x
        True
    """
    if not isinstance(aug, PatchInterpolation):
        raise TypeError(f"aug must be a PoissonImageInterpolation or ForeignPatchInterpolation; got {type(aug).__name__}")
    trainer = getattr(module, "_trainer", None)
    if trainer is None or not trainer.training:
        return batch
    g = step_generator_of(module, seed)
    if isinstance(batch, torch.Tensor):
        return aug(batch, generator=g)
    if isinstance(batch, dict):
        out, label = aug(batch["image"], generator=g)
        return {**batch, "image": out, "anomaly_label": label}
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        out, label = aug(batch[0], generator=g)
        return (out, *batch[1:], label)
    raise TypeError(
        f"batch must be a tensor of images, a tuple/list starting with them or a dict with 'image'; "
        f"got {type(batch).__name__}"
    )
