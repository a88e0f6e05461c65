"""kornia: PII/FPI inside AugmentationSequential at any position, with masks, replayed exactly
(the real package)."""

from __future__ import annotations

import pytest
import torch

from transforms._optional import require

K = require("kornia.augmentation")
from kornia.augmentation.container.params import ParamItem  # noqa: E402

from pii_augment import PoissonImageInterpolation  # noqa: E402
from pii_augment.integrations.kornia import (  # noqa: E402
    RandomForeignPatchInterpolation,
    RandomPoissonImageInterpolation,
    RandomPoissonImageInterpolation3D,
)


def _x(shape=(4, 1, 40, 48), seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def test_between_two_geometric_steps_with_masks_replayed_exactly():
    pii = RandomPoissonImageInterpolation(label_as_mask=True, shape="ellipse")
    seq = K.AugmentationSequential(K.RandomHorizontalFlip(p=1.0), pii, K.RandomVerticalFlip(p=1.0),
                                   data_keys=["input", "mask"])
    x = _x()
    torch.manual_seed(0)
    out, mask = seq(x, torch.zeros(4, 1, 40, 48))
    # the image is vflip(pii(hflip(x))) with the parameters the step drew; the mask is its label, moved
    seed = int(seq._params[1].data["pii_seed"])
    ref_aug = PoissonImageInterpolation(shape="ellipse", spatial_dims=2)
    ref, ref_label = ref_aug(x.flip(-1), params=ref_aug.forward_parameters(x.shape, seed=seed))
    torch.testing.assert_close(out, ref.flip(-2), rtol=0, atol=0)
    assert torch.equal(mask, ref_label.flip(-2)) and torch.equal(pii.label, ref_label) and bool((mask > 0).any())
    # replayed with the sequence's params, whatever the global RNG does meanwhile
    torch.manual_seed(123)
    again, mask2 = seq(x, torch.zeros(4, 1, 40, 48), params=seq._params)
    assert torch.equal(again, out) and torch.equal(mask2, mask)


def test_with_affine_and_a_segmentation_mask_left_alone():
    pii = RandomForeignPatchInterpolation(p=0.5)  # masks pass unchanged (label_as_mask=False)
    seq = K.AugmentationSequential(K.RandomAffine(degrees=15, p=1.0), pii, K.RandomHorizontalFlip(p=1.0),
                                   data_keys=["input", "mask"])
    x, seg = _x(seed=1), (_x(seed=2) > 0.5).float()
    torch.manual_seed(0)
    out, seg_out = seq(x, seg)
    label = pii.label
    assert label.shape == (4, 1, 40, 48) and bool((label > 0).any()) and not bool((label > 0).flatten(1).any(1).all())
    # the segmentation went through the two geometric steps only
    geo = K.AugmentationSequential(K.RandomAffine(degrees=15, p=1.0), K.RandomHorizontalFlip(p=1.0),
                                   data_keys=["input", "mask"])
    names = [n for n, _ in geo.named_children()]
    _, seg_ref = geo(x, seg, params=[ParamItem(names[0], seq._params[0].data), ParamItem(names[1], seq._params[2].data)])
    assert torch.equal(seg_out, seg_ref)
    again, seg2 = seq(x, seg, params=seq._params)
    assert torch.equal(again, out) and torch.equal(seg2, seg_out)


def test_batch_of_one_3d_and_mask_without_image():
    out = RandomPoissonImageInterpolation(seed=0)(_x((1, 1, 32, 32)))  # the batch-of-one rule
    assert out.shape == (1, 1, 32, 32)
    seq3 = K.AugmentationSequential(K.RandomHorizontalFlip3D(p=1.0), RandomPoissonImageInterpolation3D(),
                                    K.RandomDepthicalFlip3D(p=1.0))
    v = _x((2, 1, 8, 16, 16))
    torch.manual_seed(0)
    out3 = seq3(v)
    assert torch.equal(seq3(v, params=seq3._params), out3) and bool((seq3[1].label > 0).any())
    pii = RandomPoissonImageInterpolation(label_as_mask=True)
    seq = K.AugmentationSequential(pii, data_keys=["input", "mask"])
    seq(_x(), torch.zeros(4, 1, 40, 48))
    with pytest.raises(RuntimeError, match="same call as its image"):
        pii._last = None
        seq(torch.zeros(4, 1, 40, 48), params=seq._params, data_keys=["mask"])
