"""sample_patches / PatchParams / sample_source_indices."""

from __future__ import annotations

import numpy as np
import pytest

import pii_augment as pa


def test_original_draws_for_256():
    p = pa.sample_patches(20000, (256, 256), seed=0)
    assert p.centers.min() >= int(0.1 * 256) and p.centers.max() < int(0.9 * 256)
    w = p.half_widths
    assert (w[:, 0] == w[:, 1]).all()  # one half-width for both axes
    assert w.min() == round(0.05 * 256) and w.max() == round(0.2 * 256) - 1
    assert 0.05 <= p.alpha.min() and p.alpha.max() < 0.95
    assert abs(p.alpha.mean() - 0.5) < 0.01


def test_square_uses_first_axis_for_both_half_widths():
    p = pa.sample_patches(5000, (100, 400), seed=1)
    assert p.half_widths.max() < round(0.2 * 100)  # from H, not W
    assert p.centers[:, 1].max() >= int(0.9 * 400) - 40


def test_masks_are_the_clipped_boxes_without_the_outer_ring():
    p = pa.sample_patches(500, (64, 48), seed=2)
    m = p.masks()
    assert not m[:, 0].any() and not m[:, -1].any() and not m[:, :, 0].any() and not m[:, :, -1].any()
    for b in range(0, 500, 37):
        (cy, cx), (wy, wx) = p.centers[b], p.half_widths[b]
        box = np.zeros((64, 48), bool)
        box[max(cy - wy, 1):min(cy + wy, 63), max(cx - wx, 1):min(cx + wx, 47)] = True
        np.testing.assert_array_equal(m[b], box)


def test_border_zero_allows_the_edge():
    p = pa.sample_patches(2000, (32, 32), seed=3, border=0, center=(0.0, 1.0), half_width=(0.1, 0.4))
    assert p.masks()[:, 0].any()


@pytest.mark.parametrize("shape", pa.SHAPES)
@pytest.mark.parametrize("spatial", [(40, 50), (12, 16, 20)])
def test_shapes_are_seeded_and_inside_their_box(shape, spatial):
    a = pa.sample_patches(16, spatial, shape=shape, seed=7)
    b = pa.sample_patches(16, spatial, shape=shape, seed=np.random.default_rng(7))
    ma, mb = a.masks(), b.masks()
    np.testing.assert_array_equal(ma, mb)
    assert ma.shape == (16,) + spatial and ma.dtype == bool
    lo, hi = a.boxes()
    for i in range(16):
        idx = np.nonzero(ma[i])
        if idx[0].size:
            assert all(idx[k].min() >= lo[i, k] and idx[k].max() < hi[i, k] for k in range(len(spatial)))
    assert ma.any(axis=tuple(range(1, ma.ndim))).mean() > 0.5
    c = pa.sample_patches(16, spatial, shape=shape, seed=8)
    assert not np.array_equal(c.masks(), ma)


def test_ellipse_is_inside_the_rectangle_of_the_same_draw():
    r = pa.sample_patches(64, (48, 48), shape="rectangle", seed=4)
    e = pa.sample_patches(64, (48, 48), shape="ellipse", seed=4)
    assert (e.masks() <= r.masks()).all() and e.masks().sum() < r.masks().sum()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(shape="star"), "shape must be one of"),
        (dict(alpha=(0.5, 0.2)), "alpha range"),
        (dict(spatial_shape=(8,)), "spatial_shape"),
        (dict(batch_size=-1), "batch_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    args = dict(batch_size=4, spatial_shape=(16, 16))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        pa.sample_patches(args.pop("batch_size"), args.pop("spatial_shape"), **args)


@pytest.mark.parametrize("n", [2, 3, 7, 64])
def test_source_indices_never_self(n):
    swap = pa.sample_source_indices(n, seed=0)
    assert (swap != np.arange(n)).all() and sorted(swap) == list(range(n))
    if n % 2 == 0:
        assert (swap[swap] == np.arange(n)).all()  # pairs, both ways
    rnd = pa.sample_source_indices(n, seed=0, mode="random")
    assert (rnd != np.arange(n)).all()
    with pytest.raises(ValueError, match="batch_size >= 2"):
        pa.sample_source_indices(1)
