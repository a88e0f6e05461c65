"""pii_augment.plot: a batch and a volume drawn without error, the right panels."""

from __future__ import annotations

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")

import pii_augment as pa  # noqa: E402
from pii_augment.plot import show_batch, show_volume  # noqa: E402


def _made(spatial, B):
    rng = np.random.default_rng(0)
    dst, src = rng.random((2, B, 1) + spatial).astype(np.float32)
    p = pa.sample_patches(B, spatial, shape="ellipse", n_patches=(1, 3), rotation=(0, 90), seed=1)
    out, label = pa.blend_patches(dst, src, p, blend="fpi")
    return dst, src, out, label


def test_batch_and_volume_figures():
    import matplotlib.pyplot as plt

    fig = show_batch(*_made((32, 40), 3), title="t")
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 15
    plt.close(fig)
    fig = show_volume(*_made((10, 12, 14), 2), index=1, spacing=(2.0, 1.0, 1.0))
    assert len([a for a in fig.axes if a.get_label() != "<colorbar>"]) == 15  # 3 planes x 5 panels
    plt.close(fig)
    with pytest.raises(ValueError, match="label must have shape"):
        d, s, o, lab = _made((32, 40), 2)
        show_batch(d, s, o, lab[:, 0])
