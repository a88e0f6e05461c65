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
