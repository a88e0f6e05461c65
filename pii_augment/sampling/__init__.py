"""Random parameter sampling (the only layer that draws random numbers), and the regions patches
are placed in."""

from .draws import sample_call_seed, sample_gate, sample_other_index, sample_pool_indices, sample_seed_words
from .patches import MAX_PATCHES, REGION_MODES, SHAPES, PatchParams, sample_patches, sample_source_indices
from .regions import foreground, otsu_threshold

__all__ = [
    "SHAPES",
    "REGION_MODES",
    "MAX_PATCHES",
    "PatchParams",
    "sample_patches",
    "sample_source_indices",
    "foreground",
    "otsu_threshold",
    "sample_call_seed",
    "sample_gate",
    "sample_other_index",
    "sample_pool_indices",
    "sample_seed_words",
]
