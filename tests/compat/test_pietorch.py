"""compat.pietorch: blend_dst_numpy against pie-torch's own function (box and irregular masks,
with and without mixed gradients, 2D and 3D, channels), batched and device versions."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from pii_augment.compat.pietorch import blend_dst, blend_dst_batch, blend_dst_numpy

pietorch = pytest.importorskip("pietorch")

EMU = "cuda-emulated"


def _case(rng, nd, channels_dim, dtype, irregular):
    spatial = tuple(int(v) for v in rng.integers(24, 40, 2)) if nd == 2 else tuple(int(v) for v in rng.integers(10, 16, 3))
    box = tuple(int(rng.integers(5, s - 2)) for s in spatial)
    corner = np.array([int(rng.integers(0, s - b + 1)) for s, b in zip(spatial, box)])
    grids = np.meshgrid(*[np.linspace(-1, 1, s) for s in spatial], indexing="ij")
    base = sum(rng.normal() * g for g in grids)

    def with_channels(x, c):
        x = np.stack([x * (k + 1) + k for k in range(c)])
        return x if channels_dim is None else np.moveaxis(x, 0, channels_dim)

    C = 1 if channels_dim is None else 3
    t = base + 0.3 * rng.standard_normal(spatial)
    s = rng.standard_normal(box).cumsum(-1) * 0.3
    target = (t if channels_dim is None else with_channels(t, C)).astype(dtype)
    source = (s if channels_dim is None else with_channels(s, C)).astype(dtype)
    mask = (rng.random(box) < 0.6).astype(np.float64) if irregular else np.ones(box)
    return target, source, mask, corner


@pytest.mark.parametrize("nd", [2, 3])
@pytest.mark.parametrize("mix", [False, True])
@pytest.mark.parametrize("irregular", [False, True], ids=["box", "irregular"])
@pytest.mark.parametrize("channels_dim", [None, 0, -1])
def test_blend_dst_numpy_is_pietorchs(nd, mix, irregular, channels_dim):
    rng = np.random.default_rng(zlib.crc32(repr((nd, mix, irregular, channels_dim)).encode()))
    for dtype in (np.float32, np.float64):
        target, source, mask, corner = _case(rng, nd, channels_dim, dtype, irregular)
        keep = mask.copy()
        ref = pietorch.blend_dst_numpy(target, source, mask.copy(), corner, mix, channels_dim=channels_dim)
        got = blend_dst_numpy(target, source, mask, corner, mix, channels_dim=channels_dim)
        assert got.dtype == ref.dtype and got.shape == ref.shape
        err = np.abs(got.astype(np.float64) - ref).max() / float(np.ptp(target))
        assert err <= 1e-5, err
        np.testing.assert_array_equal(mask, keep)  # pie-torch zeroes the caller's mask ring; not here


def test_ties_go_to_the_target_and_the_top_left_pixel_owns_the_edge():
    """Mixed gradients that tie (|t| == |s|, opposite signs) take the target's, as pie-torch."""
    target = np.zeros((16, 16))
    target[:, ::2] = 1.0
    source = 1.0 - target[2:12, 2:12]  # every horizontal difference the target's, negated
    mask = np.ones((10, 10))
    ref = pietorch.blend_dst_numpy(target, source, mask.copy(), np.array([2, 2]), True)
    got = blend_dst_numpy(target, source, mask, np.array([2, 2]), True)
    assert np.abs(got - ref).max() <= 1e-10
    np.testing.assert_allclose(got, target, atol=1e-10)  # all ties: the target comes back


def test_batched_equals_per_sample_and_devices():
    rng = np.random.default_rng(3)
    B = 5
    targets = rng.standard_normal((B, 2, 40, 48)).cumsum(-1).astype(np.float32)
    sources = [rng.standard_normal((2, int(rng.integers(6, 20)), int(rng.integers(6, 20)))).astype(np.float32)
               for _ in range(B)]
    masks = [rng.random(x.shape[1:]) < 0.7 for x in sources]
    corners = np.array([[int(rng.integers(0, 40 - x.shape[1])), int(rng.integers(0, 48 - x.shape[2]))] for x in sources])
    batch = blend_dst_batch(targets, sources, masks, corners, True, channels_dim=0)
    for b in range(B):
        one = blend_dst_numpy(targets[b], sources[b], masks[b], corners[b], True, channels_dim=0)
        np.testing.assert_array_equal(batch[b], one)
    stacked = blend_dst_batch(targets, np.stack([s[:, :6, :6] for s in sources]), np.stack([m[:6, :6] for m in masks]),
                              corners, False, channels_dim=0)
    np.testing.assert_array_equal(
        stacked[1], blend_dst_numpy(targets[1], sources[1][:, :6, :6], masks[1][:6, :6], corners[1], False, 0))
    emu = blend_dst_batch(targets, sources, masks, corners, True, channels_dim=0, backend=EMU)
    assert np.abs(emu - batch).max() <= 1e-5 * float(np.ptp(targets))
    torch = pytest.importorskip("torch")
    t = blend_dst(torch.from_numpy(targets[0]), torch.from_numpy(sources[0]), torch.from_numpy(masks[0]),
                  torch.from_numpy(corners[0]), True, 0)
    assert isinstance(t, torch.Tensor) and torch.equal(t, torch.from_numpy(batch[0]))


def test_bad_arguments_are_named():
    t, s, m = np.zeros((16, 16)), np.zeros((6, 6)), np.ones((6, 6))
    with pytest.raises(TypeError, match="target must be float32 or float64"):
        blend_dst_numpy(t.astype(np.uint8), s, m, np.array([2, 2]), False)
    with pytest.raises(TypeError, match="corner_coord must hold 2 ints"):
        blend_dst_numpy(t, s, m, np.array([2.0, 2.0]), False)
    with pytest.raises(ValueError, match=r"corner_coord \[12, 2\] puts the \(6, 6\) patch outside"):
        blend_dst_numpy(t, s, m, np.array([12, 2]), False)
    with pytest.raises(ValueError, match="mask must have the spatial shape of source"):
        blend_dst_numpy(t, s, np.ones((5, 6)), np.array([2, 2]), False)
    with pytest.raises(TypeError, match="mix_gradients must be True or False"):
        blend_dst_numpy(t, s, m, np.array([2, 2]), 1)
    with pytest.raises(ValueError, match="channels_dim must be in"):
        blend_dst_numpy(t, s, m, np.array([2, 2]), False, channels_dim=3)
    with pytest.raises(ValueError, match="target contains NaN or Inf"):
        blend_dst_numpy(np.full((16, 16), np.nan), s, m, np.array([2, 2]), False)
    with pytest.raises(TypeError, match="target must be a numpy array"):
        blend_dst_numpy(t.tolist(), s, m, np.array([2, 2]), False)
    with pytest.raises(ValueError, match="source must hold B = 2 items"):
        blend_dst_batch(np.zeros((2, 16, 16)), [s], [m], np.zeros((2, 2), int), False)
