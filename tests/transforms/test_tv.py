"""TorchvisionTransform: a PII/FPI module as a torchvision.transforms.v2 step."""

from __future__ import annotations

import pytest
import torch

from ._optional import require

require("torchvision")
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from pii_augment import ForeignPatchInterpolation, PoissonImageInterpolation  # noqa: E402
from pii_augment.transforms.tv import TorchvisionTransform  # noqa: E402


def _uint8_batch() -> torch.Tensor:
    return torch.randint(0, 256, (4, 1, 48, 40), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("cls", [PoissonImageInterpolation, ForeignPatchInterpolation])
def test_compose_image_in_image_and_mask_out_label_follows_flip(cls):
    raw = _uint8_batch()
    pipeline = v2.Compose([
        v2.ToDtype(torch.float32, scale=True),
        TorchvisionTransform(cls(seed=0)),
        v2.RandomHorizontalFlip(p=1.0),
    ])
    image, label = pipeline(tv_tensors.Image(raw))
    assert isinstance(image, tv_tensors.Image) and isinstance(label, tv_tensors.Mask)
    assert image.shape == raw.shape and label.shape == (4, 1, 48, 40) and label.dtype == torch.float32
    ref, ref_label = cls(seed=0)(raw.float() / 255)
    torch.testing.assert_close(image.as_subclass(torch.Tensor), ref.flip(-1))
    assert torch.equal(label.as_subclass(torch.Tensor), ref_label.flip(-1))
    assert bool((label > 0).any())


def test_structured_inputs_pass_through():
    x = tv_tensors.Image(_uint8_batch().float() / 255)
    boxes = tv_tensors.BoundingBoxes([[0, 0, 10, 10]], format="XYXY", canvas_size=(48, 40))
    step = TorchvisionTransform(ForeignPatchInterpolation(seed=1))
    sample, target, label = step({"image": x}, {"boxes": boxes, "id": 3})
    assert isinstance(sample["image"], tv_tensors.Image) and target["id"] == 3
    assert target["boxes"] is boxes and isinstance(label, tv_tensors.Mask)
    # Two inputs in Compose: the outputs are unpacked into the next step, which flips them all.
    flipped = v2.Compose([step, v2.RandomVerticalFlip(p=1.0)])({"image": x}, {"boxes": boxes})
    assert isinstance(flipped[2], tv_tensors.Mask) and flipped[2].shape == (4, 1, 48, 40)


def test_plain_tensor_is_the_image_and_errors():
    x = _uint8_batch().float()
    out, label = TorchvisionTransform(PoissonImageInterpolation(seed=0))(x)
    assert type(out) is torch.Tensor and isinstance(label, tv_tensors.Mask)
    step = TorchvisionTransform(ForeignPatchInterpolation())
    with pytest.raises(ValueError, match="exactly one image"):
        step(tv_tensors.Image(x), tv_tensors.Image(x))
    with pytest.raises(TypeError, match="aug must be"):
        TorchvisionTransform(v2.RandomHorizontalFlip())
    with pytest.raises(TypeError, match="floating point"):
        step(tv_tensors.Image(_uint8_batch()))


# ---------------------------------------------------------------- per sample, RandomApply, collate
from torch.utils.data import DataLoader  # noqa: E402

from pii_augment.transforms.tv import AnomalyCollate, AnomalyLabel  # noqa: E402


def _sample(seed: int = 0) -> tv_tensors.Image:
    return tv_tensors.Image(torch.rand(3, 32, 40, generator=torch.Generator().manual_seed(seed)))


def test_single_sample_with_a_pool_and_without():
    bank = torch.rand(5, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    pipeline = v2.Compose([TorchvisionTransform(PoissonImageInterpolation(pool=bank, seed=0)),
                           v2.RandomHorizontalFlip(p=1.0)])
    image, label = pipeline(_sample())
    assert isinstance(image, tv_tensors.Image) and image.shape == (3, 32, 40) and label.shape == (1, 32, 40)
    assert bool((label > 0).any())
    aug = PoissonImageInterpolation(pool=bank, seed=0)
    ref, ref_label = aug(_sample().as_subclass(torch.Tensor))
    assert aug._params.pool_draw is not None
    torch.testing.assert_close(image.as_subclass(torch.Tensor), ref.flip(-1))
    # without a pool: the documented rule (the sample itself, rolled by half), an anomaly all the same
    image, label = TorchvisionTransform(ForeignPatchInterpolation(seed=0))(_sample())
    assert bool((label > 0).any()) and not torch.equal(image, _sample())


def test_random_apply_one_structure_on_every_call():
    step = v2.RandomApply([TorchvisionTransform(PoissonImageInterpolation())], p=0.5)
    torch.manual_seed(0)
    applied = 0
    for i in range(12):
        x = _sample(i)
        out = step(x, AnomalyLabel.zeros_like(x))
        assert isinstance(out, tuple) and len(out) == 2
        assert isinstance(out[0], tv_tensors.Image) and isinstance(out[1], AnomalyLabel)
        assert out[1].shape == (1, 32, 40)
        changed = bool((out[1] > 0).any())
        assert changed == (not torch.equal(out[0], x))
        applied += changed
    assert 0 < applied < 12
    # the slot is a Mask: a later flip moves the label with the image
    x = _sample()
    img, lab = v2.Compose([TorchvisionTransform(PoissonImageInterpolation(seed=3)),
                           v2.RandomVerticalFlip(p=1.0)])(x, AnomalyLabel.zeros_like(x))
    _, ref_label = PoissonImageInterpolation(seed=3)(x.as_subclass(torch.Tensor))
    assert torch.equal(lab.as_subclass(torch.Tensor), ref_label.flip(-2))


def test_dict_sample_stays_a_dict():
    out = TorchvisionTransform(PoissonImageInterpolation(seed=0))({"image": _sample(), "id": 7})
    assert isinstance(out, dict) and set(out) == {"image", "id", "anomaly_label"}
    assert isinstance(out["image"], tv_tensors.Image) and isinstance(out["anomaly_label"], tv_tensors.Mask)
    x = _sample()
    out = TorchvisionTransform(PoissonImageInterpolation(seed=0))({"image": x, "label": AnomalyLabel.zeros_like(x)})
    assert set(out) == {"image", "label"} and bool((out["label"] > 0).any())


def test_plain_tensors_after_collate_are_never_guessed():
    seg, image = torch.zeros(4, 1, 32, 40), torch.rand(4, 1, 32, 40)
    with pytest.raises(ValueError, match="2 plain tensors .* ambiguous"):
        TorchvisionTransform(PoissonImageInterpolation())(seg, image)
    data = [(torch.zeros(1, 32, 40, dtype=torch.long), torch.rand(1, 32, 40, generator=torch.Generator().manual_seed(i)))
            for i in range(6)]
    loader = DataLoader(data, batch_size=3, collate_fn=AnomalyCollate(PoissonImageInterpolation(seed=0), image=1))
    for seg_b, image_b, label_b in loader:
        assert seg_b.dtype == torch.long and not seg_b.any()  # the segmentation is untouched
        assert image_b.shape == (3, 1, 32, 40) and bool((label_b > 0).any())
    with pytest.raises(ValueError, match="pass image="):
        AnomalyCollate(PoissonImageInterpolation())([(torch.zeros(1, 8, 8), torch.zeros(1, 8, 8))] * 2)
    out = AnomalyCollate(PoissonImageInterpolation(seed=0))([{"image": torch.rand(1, 16, 16)} for _ in range(3)])
    assert set(out) == {"image", "anomaly_label"} and out["anomaly_label"].shape == (3, 1, 16, 16)


def test_the_module_keeps_tv_tensors():
    out, label = PoissonImageInterpolation(seed=0)(tv_tensors.Image(torch.rand(2, 1, 32, 32)))
    assert type(out) is tv_tensors.Image and type(label) is tv_tensors.Mask
