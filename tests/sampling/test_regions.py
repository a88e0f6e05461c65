"""foreground / otsu_threshold: the region helper, 2D and 3D, against scikit-image's Otsu."""

from __future__ import annotations

import numpy as np
import pytest

import pii_augment as pa
from pii_augment.sampling import otsu_threshold


def _phantom(spatial, rng):
    grids = np.meshgrid(*[np.linspace(-1, 1, n) for n in spatial], indexing="ij")
    head = sum((g / 0.75) ** 2 for g in grids) < 1
    return head, (head * 2.0 + 0.2 * rng.standard_normal(spatial)).astype(np.float32)


@pytest.mark.parametrize("spatial", [(64, 72), (20, 24, 28)])
def test_otsu_foreground_finds_the_head(spatial):
    rng = np.random.default_rng(0)
    head, img = _phantom(spatial, rng)
    x = np.stack([img, img * 3 + 5])[:, None]  # two images of different scale and offset
    m = pa.foreground(x)
    assert m.shape == (2,) + spatial and m.dtype == bool
    for b in range(2):
        assert (m[b] == head).mean() > 0.99
    by_value = pa.foreground(x[:1], threshold=1.0)
    assert (by_value[0] == head).mean() > 0.99
    eroded = pa.foreground(x, erode=2)
    assert (eroded <= m).all() and eroded.sum() < m.sum()


def test_otsu_threshold_is_scikit_images():
    filters = pytest.importorskip("skimage.filters")
    rng = np.random.default_rng(1)
    for _ in range(5):
        v = np.r_[rng.normal(0, 1, 500), rng.normal(rng.uniform(3, 6), 1, 300)]
        assert otsu_threshold(v) == pytest.approx(filters.threshold_otsu(v), rel=1e-12, abs=1e-12)


def test_torch_images_and_bad_arguments():
    torch = pytest.importorskip("torch")
    x = torch.zeros(2, 1, 16, 16)
    x[:, :, 4:12, 4:12] = 1
    assert pa.foreground(x)[:, 4:12, 4:12].all()
    with pytest.raises(ValueError, match="threshold must be 'otsu' or a number"):
        pa.foreground(x, threshold="mean")
    with pytest.raises(ValueError, match=r"images must have shape \(B, C, H, W\)"):
        pa.foreground(np.zeros((16, 16)))
    with pytest.raises(TypeError, match="erode must be an int"):
        pa.foreground(x, erode=1.5)
    with pytest.raises(ValueError, match="NaN or Inf"):
        pa.foreground(np.full((1, 1, 4, 4), np.nan))
