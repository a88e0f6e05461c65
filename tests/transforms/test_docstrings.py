"""The seeded examples in the docstrings of pii_augment.transforms run and hold."""

from __future__ import annotations

import doctest
import importlib

import pytest

from ._optional import require

MODULES = [
    "pii_augment.transforms.interpolation", "pii_augment.transforms.dataset", "pii_augment.transforms.tv",
    "pii_augment.transforms.pool", "pii_augment.transforms.seeding",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name):
    if name.endswith(".tv"):
        require("torchvision")
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
