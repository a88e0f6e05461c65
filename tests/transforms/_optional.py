"""Optional test dependencies: skipped on a developer machine without them, required in CI.

CI (``CI=true``) installs torchvision and kornia (see .ci/run), so there a missing one is an
import error, never a silent skip.
"""

from __future__ import annotations

import importlib
import os

import pytest


def require(module: str):
    """Import ``module``; skip the calling test module when absent, unless running in CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        return importlib.import_module(module)
    return pytest.importorskip(module)
