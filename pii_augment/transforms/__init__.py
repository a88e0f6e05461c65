"""Torch-facing transforms: PII and FPI modules, a Dataset wrapper, a torchvision v2 adapter.

They compose the sampling and the functional layers and hold no math of their own. The
torchvision adapter lives in :mod:`pii_augment.transforms.tv` (imported on demand: torchvision is
optional).
"""

from .dataset import AnomalyDataset
from .interpolation import (
    LABEL_KINDS,
    SHAPE_ALIASES,
    PAIRINGS,
    SOURCE_MODES,
    ForeignPatchInterpolation,
    InterpolationParams,
    PatchInterpolation,
    PoissonImageInterpolation,
)
from .pool import BATCH_OF_ONE_RULE, SourcePool, shifted_self
from .seeding import rank_seed, step_generator

__all__ = [
    "AnomalyDataset",
    "BATCH_OF_ONE_RULE",
    "LABEL_KINDS",
    "SourcePool",
    "rank_seed",
    "shifted_self",
    "step_generator",
    "ForeignPatchInterpolation",
    "InterpolationParams",
    "PatchInterpolation",
    "PoissonImageInterpolation",
    "SHAPE_ALIASES",
    "PAIRINGS",
    "SOURCE_MODES",
]
