"""Makes ``import pii_augment`` work for the scripts of this folder: the installed package, else
the checkout they live in (the GPU machine runs them from a copy of the tree, not installed).

Import it first: ``import _checkout  # noqa: F401`` (the script's folder is on ``sys.path`` when
it is run as ``python benchmarks/<script>.py``).
"""

import sys
from pathlib import Path

try:
    import pii_augment  # noqa: F401
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
