"""anomaly_label and foreign_patch_interpolate."""

from __future__ import annotations

import numpy as np
import pytest

import pii_augment as pa


def test_fpi_is_the_linear_blend_inside_and_dst_outside(rng):
    dst = rng.standard_normal((3, 2, 9, 10)).astype(np.float32)
    src = rng.standard_normal((3, 2, 9, 10)).astype(np.float32)
    mask = rng.random((3, 9, 10)) < 0.4
    alpha = np.array([0.0, 0.3, 1.0])
    out = pa.foreign_patch_interpolate(dst, src, mask, alpha)
    a = alpha.astype(np.float32)[:, None, None, None]
    expect = np.where(mask[:, None], (1 - a) * dst + a * src, dst)
    np.testing.assert_array_equal(out, expect)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0], dst[0])  # alpha 0: identity


def test_fpi_3d_and_torch():
    torch = pytest.importorskip("torch")
    dst = torch.zeros(2, 1, 4, 5, 6)
    src = torch.ones(2, 1, 4, 5, 6)
    mask = torch.zeros(2, 4, 5, 6, dtype=torch.bool)
    mask[:, 1:3, 1:4, 2:5] = True
    out = pa.foreign_patch_interpolate(dst, src, mask, torch.tensor([0.25, 0.75]))
    assert isinstance(out, torch.Tensor)
    assert out[0][:, mask[0]].unique().tolist() == [0.25] and out[1][:, mask[1]].unique().tolist() == [0.75]
    assert out[:, :, ~mask[0]].abs().sum() == 0


def test_label_quantisation_rule():
    dst = np.array([[[[0.0005, 0.0005, 0.0005, 1.0]]]], np.float32)
    out = np.array([[[[0.0009, 0.0011, 0.0005, 2.0]]]], np.float32)
    mask = np.array([[[True, True, True, False]]])
    lab = pa.anomaly_label(dst, out, mask, 0.6)
    np.testing.assert_allclose(lab[0, 0, 0], [0.0, 0.6, 0.0, 0.0])  # same bin / changed / same / outside
    whole = pa.anomaly_label(dst, out, mask, 0.6, tolerance=None)
    np.testing.assert_allclose(whole[0, 0, 0], [0.6, 0.6, 0.6, 0.0])


def test_label_any_channel_counts_and_shape(rng):
    dst = rng.standard_normal((2, 3, 6, 6))
    out = dst.copy()
    out[0, 2, 1, 1] += 1.0
    mask = np.ones((2, 6, 6), bool)
    lab = pa.anomaly_label(dst, out, mask, [0.5, 0.9])
    assert lab.shape == (2, 1, 6, 6) and lab.dtype == np.float64
    assert lab[0, 0, 1, 1] == 0.5 and lab.sum() == 0.5


def test_label_nonzero_exactly_where_the_blend_changed_the_image(rng):
    dst = rng.standard_normal((4, 1, 24, 24)).astype(np.float32)
    src = rng.standard_normal((4, 1, 24, 24)).astype(np.float32)
    p = pa.sample_patches(4, (24, 24), seed=3)
    m = p.masks()
    out = pa.poisson_interpolate(dst, src, m, p.alpha)
    lab = pa.anomaly_label(dst, out, m, p.alpha)
    changed = np.floor(dst / 1e-3) != np.floor(out / 1e-3)
    np.testing.assert_array_equal(lab > 0, changed & m[:, None])
    np.testing.assert_allclose(lab[lab > 0], np.broadcast_to(p.alpha[:, None, None, None], lab.shape)[lab > 0])


def test_label_bad_tolerance():
    z = np.zeros((1, 1, 2, 2))
    with pytest.raises(ValueError, match="tolerance must be a finite number > 0"):
        pa.anomaly_label(z, z, np.ones((1, 2, 2), bool), 0.5, tolerance=0)
