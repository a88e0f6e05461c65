"""MONAI: the dict and array transforms in CacheDataset + DataLoader workers, 2D and 3D, with the
real package (MetaTensor metadata kept, set_determinism reproducing the bytes)."""

from __future__ import annotations

import pytest
import torch

from transforms._optional import require

require("monai")
from monai.data import CacheDataset, DataLoader, MetaTensor  # noqa: E402
from monai.transforms import Compose, RandFlipd  # noqa: E402
from monai.utils import set_determinism  # noqa: E402

from pii_augment.integrations.monai import (  # noqa: E402
    RandForeignPatchInterpolationd,
    RandPoissonImageInterpolation,
    RandPoissonImageInterpolationd,
)

SHAPES = {2: (1, 32, 40), 3: (1, 12, 20, 24)}


def _items(nd: int, n: int = 6) -> list[dict]:
    g = torch.Generator().manual_seed(nd)
    affine = torch.diag(torch.tensor([0.5] * nd + [1.0], dtype=torch.float64))
    return [{"image": MetaTensor(torch.rand(SHAPES[nd], generator=g), affine=affine,
                                 meta={"filename_or_obj": f"case{i}.nii.gz"})} for i in range(n)]


def _epoch(nd: int, seed: int) -> list[dict]:
    set_determinism(seed)
    transform = Compose([
        RandPoissonImageInterpolationd(keys="image", label_key="anomaly", prob=0.8, shape="ellipse"),
        RandFlipd(keys=["image", "anomaly"], prob=0.5, spatial_axis=0),
    ])
    data = CacheDataset(_items(nd), transform, progress=False, num_workers=0)
    loader = DataLoader(data, batch_size=2, num_workers=2)
    batches = list(loader)
    set_determinism(None)
    return batches


@pytest.mark.parametrize("nd", [2, 3])
def test_cache_dataset_workers_metadata_and_determinism(nd):
    first, again, other = _epoch(nd, 0), _epoch(nd, 0), _epoch(nd, 1)
    positives = 0
    for b, b2 in zip(first, again):
        image, label = b["image"], b["anomaly"]
        assert isinstance(image, MetaTensor) and isinstance(label, MetaTensor)
        assert image.shape == (2,) + SHAPES[nd] and label.shape == (2, 1) + SHAPES[nd][1:]
        assert image.meta["filename_or_obj"][0].startswith("case")
        # the affine travelled (RandFlipd after PII updated it: a flip negates an axis)
        assert torch.equal(image.affine[0].diagonal().abs(), torch.tensor([0.5] * nd + [1.0], dtype=torch.float64))
        # the bytes are reproduced under set_determinism
        assert torch.equal(image.as_tensor(), b2["image"].as_tensor())
        assert torch.equal(label.as_tensor(), b2["anomaly"].as_tensor())
        positives += int((label > 0).sum())
    assert positives > 0
    assert any(not torch.equal(b["image"].as_tensor(), c["image"].as_tensor()) for b, c in zip(first, other))


def test_a_volume_is_3d_never_16_channels():
    vol = torch.rand(1, 16, 32, 32, generator=torch.Generator().manual_seed(0))
    out, label = RandPoissonImageInterpolation(prob=1.0).set_random_state(0)(vol)
    assert label.shape == (1, 16, 32, 32)
    touched = (label[0] > 0).flatten(1).any(1)  # the slices the 3D patch covers, not all 16
    assert 0 < int(touched.sum()) < 16
    with pytest.raises(ValueError, match="spatial_dims=2 a channel-first sample has 3 dimensions"):
        RandPoissonImageInterpolation(spatial_dims=2)(vol)


def test_sources_pool_source_key_prob_and_mask_labels():
    x = MetaTensor(torch.rand(1, 32, 32, generator=torch.Generator().manual_seed(0)))
    bank = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(1))
    t = RandPoissonImageInterpolationd(keys="image", source=bank, label="mask").set_random_state(0)
    out = t({"image": x})
    assert t.array.aug._params.pool_draw is not None
    assert set(torch.unique(out["label"]).tolist()) == {0.0, 1.0}
    t = RandForeignPatchInterpolationd(keys=["image", "t2"], source_key=["s1", "s2"]).set_random_state(0)
    d = t({"image": x, "t2": x.clone(), "s1": torch.zeros(1, 32, 32), "s2": torch.ones(1, 32, 32)})
    changed1, changed2 = d["image"] != x, d["t2"] != x
    assert bool(changed1.any()) and torch.equal(changed1, changed2)  # one patch for both keys
    skipped = RandPoissonImageInterpolationd(keys="image", prob=0.0)({"image": x})
    assert skipped["image"] is x and not skipped["label"].any()
    with pytest.raises(ValueError, match="one source per key"):
        RandPoissonImageInterpolationd(keys=["a", "b"], source_key="s")
    with pytest.raises(KeyError, match="source_key 'nope'"):
        RandPoissonImageInterpolationd(keys="image", source_key="nope")({"image": x})
