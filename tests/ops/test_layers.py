"""blend_patches: several patches per sample, one full-batch blend per layer; the label rule."""

from __future__ import annotations

import numpy as np
import pytest

import pii_augment as pa
from pii_augment.ops import blend_patches, patch_masks

EMU = "cuda-emulated"


def _batch(seed=0, B=5, spatial=(40, 44)):
    rng = np.random.default_rng(seed)
    dst = rng.standard_normal((B, 2) + spatial).cumsum(-1).astype(np.float32)
    src = rng.standard_normal((B, 2) + spatial).cumsum(-2).astype(np.float32)
    return dst, src


@pytest.mark.parametrize("blend", ["pii", "fpi"])
def test_layers_are_the_functional_calls_in_sequence_and_the_label_is_their_max(blend):
    dst, src = _batch()
    p = pa.sample_patches(5, (40, 44), shape=("rectangle", "ellipse"), n_patches=(0, 4), rotation=(-90, 90),
                          seed=1)
    out, label = blend_patches(dst, src, p, blend=blend)
    fn = pa.poisson_interpolate if blend == "pii" else pa.foreign_patch_interpolate
    cur, ref_label = dst, np.zeros((5, 1, 40, 44), np.float32)
    for k in range(p.n_layers):
        lp, present = p.layer(k)
        m = lp.masks()
        m[~present] = False
        nxt = fn(cur, src, m, lp.alpha)
        ref_label = np.maximum(ref_label, pa.anomaly_label(cur, nxt, m, lp.alpha))
        cur = nxt
    np.testing.assert_array_equal(out, cur)
    np.testing.assert_array_equal(label, ref_label)
    # the rule: each labelled pixel holds the largest alpha of the patches over it that changed it
    assert set(np.unique(label)) <= set(np.r_[0.0, p.alpha].astype(np.float32))
    assert not (label[:, 0] > 0)[~p.masks()].any()
    untouched = p.counts == 0
    np.testing.assert_array_equal(out[untouched], dst[untouched])


def test_one_patch_per_sample_is_one_call():
    dst, src = _batch(2)
    p = pa.sample_patches(5, (40, 44), shape="ellipse", seed=3)
    out, label = blend_patches(dst, src, p)
    m = p.masks()
    ref = pa.poisson_interpolate(dst, src, m, p.alpha)
    np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(label, pa.anomaly_label(dst, ref, m, p.alpha))


def test_overlapping_patches_label_max_of_alphas():
    dst = np.zeros((1, 1, 32, 32), np.float32)
    src = np.ones((1, 1, 32, 32), np.float32)
    p = pa.PatchParams((32, 32), "rectangle", np.array([[12, 12], [16, 16]]), np.array([[6, 6], [6, 6]]),
                       np.array([0.8, 0.3]), 1, sample=np.array([0, 0]), n_samples=1)
    out, label = blend_patches(dst, src, p, blend="fpi", tolerance=None)
    lab = label[0, 0]
    assert lab[8, 8] == np.float32(0.8) and lab[20, 20] == np.float32(0.3)
    assert lab[14, 14] == np.float32(0.8)  # both: the larger
    assert out[0, 0, 14, 14] == pytest.approx(1 - 0.2 * 0.7)  # blended twice, in order


def test_emulated_device_and_torch_give_the_host_result():
    torch = pytest.importorskip("torch")
    dst, src = _batch(4, B=3, spatial=(24, 28))
    p = pa.sample_patches(3, (24, 28), shape=("rectangle", "ellipse"), n_patches=(1, 3), rotation=(-45, 45),
                          shear=(-20, 20), seed=5)
    ref, ref_label = blend_patches(dst, src, p, blend="fpi")
    emu, emu_label = blend_patches(dst, src, p, blend="fpi", backend=EMU)
    np.testing.assert_array_equal(emu, ref)
    np.testing.assert_array_equal(emu_label, ref_label)
    t_out, t_label = blend_patches(torch.from_numpy(dst), torch.from_numpy(src), p)
    assert isinstance(t_out, torch.Tensor) and t_label.shape == (3, 1, 24, 28)
    out, label = blend_patches(dst, src, p)
    np.testing.assert_array_equal(t_out.numpy(), out)
    apply = np.array([True, False, True])
    gated, gated_label = blend_patches(dst, src, p, apply=apply)
    np.testing.assert_array_equal(gated[1], dst[1])
    assert not gated_label[1].any()


def test_no_patch_at_all_and_bad_arguments():
    dst, src = _batch(6, B=2)
    p = pa.sample_patches(2, (40, 44), n_patches=(0, 0), seed=0)
    out, label = blend_patches(dst, src, p)
    np.testing.assert_array_equal(out, dst)
    assert not label.any()
    with pytest.raises(TypeError, match="patches must be a PatchParams"):
        blend_patches(dst, src, p.masks())
    with pytest.raises(ValueError, match="blend must be one of"):
        blend_patches(dst, src, p, blend="cut")
    with pytest.raises(ValueError, match="patches were drawn for batch size 2"):
        blend_patches(dst[:1], src[:1], p)
    with pytest.raises(ValueError, match=r"apply must have shape \(B,\)"):
        blend_patches(dst, src, p, apply=[True])
    assert patch_masks(p).shape == (2, 40, 44)


@pytest.mark.parametrize("blend", ["pii", "fpi"])
def test_box_layers_are_blended_from_their_boxes_without_masks(blend, monkeypatch):
    # on the host, a layer of axis-aligned boxes goes to the blend as boxes (no mask made), with
    # the bytes of the masks' path (a callable blend, which gets masks); samples left alone by
    # ``apply`` or without a k-th patch are empty boxes
    import pii_augment.ops.layers as layers

    made = []
    real = layers.patch_masks
    monkeypatch.setattr(layers, "patch_masks", lambda *a, **k: made.append(1) or real(*a, **k))
    dst, src = _batch(4, B=6)
    apply = np.array([1, 1, 0, 1, 1, 1], bool)
    for p in (pa.sample_patches(6, (40, 44), seed=2), pa.sample_patches(6, (40, 44), shape="rectangle", seed=5,
                                                                        border=0)):
        made.clear()
        out, label = blend_patches(dst, src, p, blend=blend, apply=apply)
        assert made == []
        fn = pa.poisson_interpolate if blend == "pii" else pa.foreign_patch_interpolate
        ref_out, ref_label = blend_patches(dst, src, p, blend=lambda d, s, m, a: fn(d, s, m, a), apply=apply)
        assert made == [1]
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(label, ref_label)
        np.testing.assert_array_equal(out[2], dst[2])
    made.clear()
    blend_patches(dst, src, pa.sample_patches(6, (40, 44), shape="ellipse", seed=2), blend=blend)
    assert made == [1]  # not boxes: masks
    made.clear()
    blend_patches(dst, src, pa.sample_patches(6, (40, 44), seed=2), blend=blend, backend=EMU)
    assert made == [1]  # a device makes the masks in one launch
