"""The runnable examples in the docstrings of the functional API and the sampler hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["pii_augment.ops.blend", "pii_augment.ops.codes", "pii_augment.sampling.patches", "pii_augment._validate",
           "pii_augment.ops.backends", "pii_augment.ops.backends.base", "pii_augment.ops.backends.signatures",
           "pii_augment.ops.backends.parity"]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
