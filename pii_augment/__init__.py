"""pii_augment: Poisson Image Interpolation (PII) and Foreign Patch Interpolation (FPI)
augmentations for self-supervised anomaly detection, batched on the CPU (Numba) and the GPU.
"""

from .ops import (
    DEFAULT_TOL,
    ConvergenceError,
    ConvergenceWarning,
    SolveInfo,
    anomaly_label,
    foreign_patch_interpolate,
    poisson_interpolate,
    solve_poisson,
)
from .sampling import SHAPES, PatchParams, sample_patches, sample_source_indices

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_TOL",
    "ConvergenceError",
    "ConvergenceWarning",
    "SolveInfo",
    "anomaly_label",
    "foreign_patch_interpolate",
    "poisson_interpolate",
    "solve_poisson",
    "SHAPES",
    "PatchParams",
    "sample_patches",
    "sample_source_indices",
]
