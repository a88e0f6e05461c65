"""What the integration modules share: importing their package with a clear error, and drawing a
NumPy generator from a framework's random state."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from .._validate import check_choice, check_int
from ..transforms.interpolation import ForeignPatchInterpolation, PoissonImageInterpolation

METHODS = {"pii": PoissonImageInterpolation, "fpi": ForeignPatchInterpolation}


def require(module: str, extra: str) -> Any:
    """Import ``module``, or an ``ImportError`` telling which extra of pii-augment installs it.

    Example:
        >>> require("numpy", "test").__name__
        'numpy'
    """
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"pii_augment.integrations.{extra} needs the package {module.split('.')[0]!r}: "
            f"pip install 'pii-augment[{extra}]'"
        ) from e


def generator_from(words: Any) -> np.random.Generator:
    """A NumPy generator seeded by integers drawn from another framework's random state.

    Example:
        >>> import numpy as np
        >>> g = generator_from(np.random.RandomState(0).randint(2**31, size=2))
        >>> isinstance(g, np.random.Generator)
        True
    """
    return np.random.default_rng([int(w) for w in np.atleast_1d(words)])


def check_spatial_dims(x: Any, spatial_dims: int | None, name: str) -> int:
    """The spatial rank of a channel-first single sample ``x`` ``(C, *spatial)``: ``ndim - 1``,
    checked against ``spatial_dims`` when given (a ``ValueError`` naming ``name`` otherwise).

    Example:
        >>> import numpy as np
        >>> check_spatial_dims(np.zeros((1, 16, 32, 32)), None, "image")
        3
    """
    nd = x.ndim - 1
    if spatial_dims is not None:
        spatial_dims = check_choice("spatial_dims", check_int("spatial_dims", spatial_dims), (2, 3))
        if nd != spatial_dims:
            raise ValueError(
                f"{name} has shape {tuple(x.shape)}: with spatial_dims={spatial_dims} a channel-first "
                f"sample has {spatial_dims + 1} dimensions (C, *spatial); got {x.ndim}"
            )
    if nd not in (2, 3):
        raise ValueError(
            f"{name} must be a channel-first sample (C, H, W) or (C, D, H, W); got shape {tuple(x.shape)}"
        )
    return nd
