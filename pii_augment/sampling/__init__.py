"""Random parameter sampling (the only layer that draws random numbers)."""

from .patches import SHAPES, PatchParams, sample_patches, sample_source_indices

__all__ = ["SHAPES", "PatchParams", "sample_patches", "sample_source_indices"]
