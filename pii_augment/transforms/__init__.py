"""Torch-facing transforms: PII and FPI modules, a Dataset wrapper, a torchvision v2 adapter.

They compose the sampling and the functional layers and hold no math of their own. The
torchvision adapter lives in :mod:`pii_augment.transforms.tv` (imported on demand: torchvision is
optional).
"""

from .dataset import AnomalyDataset
from .interpolation import (
    SHAPE_ALIASES,
    SOURCE_MODES,
    ForeignPatchInterpolation,
    InterpolationParams,
    PoissonImageInterpolation,
)

__all__ = [
    "AnomalyDataset",
    "ForeignPatchInterpolation",
    "InterpolationParams",
    "PoissonImageInterpolation",
    "SHAPE_ALIASES",
    "SOURCE_MODES",
]
