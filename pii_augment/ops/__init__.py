"""Deterministic batched math: guidance, Poisson solve, blends and labels (framework-agnostic)."""

from .blend import DEFAULT_TOL, anomaly_label, foreign_patch_interpolate, poisson_interpolate, solve_poisson
from .solver import ConvergenceError, ConvergenceWarning, SolveInfo

__all__ = [
    "DEFAULT_TOL",
    "anomaly_label",
    "foreign_patch_interpolate",
    "poisson_interpolate",
    "solve_poisson",
    "ConvergenceError",
    "ConvergenceWarning",
    "SolveInfo",
]
