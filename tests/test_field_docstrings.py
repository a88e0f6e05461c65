"""The runnable examples in the docstrings of the field features' modules hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["pii_augment.sampling.regions", "pii_augment.ops.layers", "pii_augment.ops.masks",
           "pii_augment.compat.pietorch", "pii_augment.plot"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    if name.endswith(("pietorch", "plot")):
        pytest.importorskip("torch")
        pytest.importorskip("matplotlib")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
