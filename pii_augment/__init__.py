"""pii_augment: Poisson Image Interpolation (PII) and Foreign Patch Interpolation (FPI)
augmentations for self-supervised anomaly detection, batched on the CPU (Numba) and the GPU.
"""

from .ops import (
    DEFAULT_TOL,
    ConvergenceError,
    ConvergenceWarning,
    SolveInfo,
    anomaly_label,
    blend_patches,
    foreign_patch_interpolate,
    poisson_interpolate,
    solve_poisson,
)
from .sampling import SHAPES, PatchParams, foreground, sample_patches, sample_source_indices

__version__ = "0.1.0"

#: Torch transforms, imported on first use so that the numpy API works without torch.
_TRANSFORMS = ("AnomalyDataset", "ForeignPatchInterpolation", "InterpolationParams", "PatchInterpolation",
               "PoissonImageInterpolation",
               "SourcePool", "rank_seed", "step_generator")


def __getattr__(name: str):
    if name in _TRANSFORMS:
        from . import transforms

        return getattr(transforms, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_TOL",
    "ConvergenceError",
    "ConvergenceWarning",
    "SolveInfo",
    "anomaly_label",
    "blend_patches",
    "foreign_patch_interpolate",
    "poisson_interpolate",
    "solve_poisson",
    "SHAPES",
    "PatchParams",
    "foreground",
    "sample_patches",
    "sample_source_indices",
    *_TRANSFORMS,
]
