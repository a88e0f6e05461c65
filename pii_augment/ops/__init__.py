"""Deterministic batched math: guidance, Poisson solve, blends and labels (framework-agnostic)."""

from ._jit_cache import clear_if_stale

clear_if_stale()  # before any kernel loads its cache: see _jit_cache

from .blend import (
    DEFAULT_TOL,
    anomaly_label,
    blend_with_label,
    foreign_patch_interpolate,
    poisson_interpolate,
    solve_poisson,
)
from .layers import blend_patches
from .masks import patch_masks, take_samples
from .solver import ConvergenceError, ConvergenceWarning, SolveInfo

__all__ = [
    "DEFAULT_TOL",
    "anomaly_label",
    "foreign_patch_interpolate",
    "poisson_interpolate",
    "solve_poisson",
    "blend_with_label",
    "patch_masks",
    "blend_patches",
    "take_samples",
    "ConvergenceError",
    "ConvergenceWarning",
    "SolveInfo",
]
