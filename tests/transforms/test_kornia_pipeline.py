"""A kornia AugmentationSequential after PII: geometric augmentations move the label too."""

from __future__ import annotations

import torch

from ._optional import require

K = require("kornia.augmentation")

from pii_augment import PoissonImageInterpolation  # noqa: E402


def test_label_follows_flip_and_affine():
    x = torch.rand(4, 1, 48, 48, generator=torch.Generator().manual_seed(0))
    out, label = PoissonImageInterpolation(seed=0)(x)
    flip = K.AugmentationSequential(K.RandomHorizontalFlip(p=1.0), data_keys=["input", "mask"])
    img_f, label_f = flip(out, label)
    assert torch.equal(img_f, out.flip(-1)) and torch.equal(label_f, label.flip(-1))

    geo = K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5), K.RandomAffine(degrees=30, translate=(0.1, 0.1), p=1.0),
        data_keys=["input", "mask"],
    )
    torch.manual_seed(0)
    img_g, label_g = geo(out, label)
    assert img_g.shape == out.shape and label_g.shape == label.shape
    # Masks are resampled with nearest neighbours: label values stay 0 or the sample's alpha.
    for b in range(4):
        assert set(torch.unique(label_g[b]).tolist()) <= set(torch.unique(label[b]).tolist())
    # The same geometric parameters replayed on the image alone move it as they moved the label.
    replay = geo(out, params=geo._params, data_keys=["input"])
    torch.testing.assert_close(replay, img_g)
