"""The runnable examples in the docstrings of pii_augment.integrations hold (with the real packages)."""

from __future__ import annotations

import doctest
import importlib
import warnings

import pytest

from transforms._optional import require

MODULES = {
    "pii_augment.integrations._common": None,
    "pii_augment.integrations.monai": "monai",
    "pii_augment.integrations.kornia": "kornia",
    "pii_augment.integrations.albumentations": "albumentations",
    "pii_augment.integrations.anomalib": "anomalib",
    "pii_augment.integrations.lightning": "lightning",
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_examples(name):
    if MODULES[name]:
        require(MODULES[name])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # anomalib 2.7 imports timm.models.layers
        module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_a_missing_package_names_its_extra():
    from pii_augment.integrations._common import require as require_package

    with pytest.raises(ImportError, match=r"pip install 'pii-augment\[monai\]'"):
        require_package("no_such_package_for_pii", "monai")
