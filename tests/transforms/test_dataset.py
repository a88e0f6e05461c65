"""AnomalyDataset: items, seeding per process and per DataLoader worker, pickling, errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pii_augment import AnomalyDataset, ForeignPatchInterpolation, PoissonImageInterpolation


def _normal_images(n: int = 8, size: int = 24) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(0))


class _Logged(torch.utils.data.Dataset):
    """Items are (image, target) tuples; records the indices read."""

    def __init__(self, images):
        self.images, self.read = images, []

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        self.read.append(i)
        return self.images[i], i


def test_item_shapes_and_source_is_another_image():
    base = _Logged(_normal_images())
    data = AnomalyDataset(base, ForeignPatchInterpolation(), seed=0)
    for i in range(8):
        base.read.clear()
        image, label = data[i]
        assert image.shape == (1, 24, 24) and label.shape == (1, 24, 24)
        assert base.read[0] == i and base.read[1] != i and len(base.read) == 2
    assert len(data) == 8
    base.read.clear()
    data[-1]
    assert base.read[0] == 7


def test_items_dicts_and_numpy():
    imgs = _normal_images().numpy()
    data = AnomalyDataset([{"image": x} for x in imgs], seed=1)
    out, label = data[0]
    assert isinstance(out, torch.Tensor) and out.shape == (1, 24, 24)
    custom = AnomalyDataset(list(imgs), get_image=lambda item: item * 2, seed=1)
    assert custom[0][0].shape == (1, 24, 24)


def test_main_process_seed_reproduces():
    a = AnomalyDataset(_normal_images(), seed=3)
    b = AnomalyDataset(_normal_images(), seed=3)
    c = AnomalyDataset(_normal_images(), seed=4)
    first = [a[i] for i in range(3)]
    for i, (x, y) in enumerate(first):
        bx, by = b[i]
        assert torch.equal(x, bx) and torch.equal(y, by)
    assert not all(torch.equal(x[1], c[i][1]) for i, x in enumerate(first))


def test_pickle_drops_generator_and_replays():
    data = AnomalyDataset(_normal_images(), PoissonImageInterpolation(p=0.9), seed=5)
    fresh = pickle.loads(pickle.dumps(data))
    x = data[2]
    assert data._generator is not None
    clone = pickle.loads(pickle.dumps(data))
    assert clone._generator is None
    y = fresh[2]
    assert torch.equal(x[0], y[0]) and torch.equal(x[1], y[1])


def _epoch(data, loader_seed: int):
    loader = DataLoader(
        data, batch_size=4, num_workers=2, shuffle=False,
        generator=torch.Generator().manual_seed(loader_seed),
    )
    return [(x.clone(), y.clone()) for x, y in loader]


def test_dataloader_workers_reproducible_and_distinct():
    # Items 0-3 and 4-7 hold the same images: if both workers drew the same numbers, batch 0
    # (worker 0) and batch 1 (worker 1) would come out equal.
    imgs = _normal_images(4).repeat(2, 1, 1, 1)
    data = AnomalyDataset(imgs, ForeignPatchInterpolation(), seed=0)
    run1 = _epoch(data, 0)
    run2 = _epoch(data, 0)
    assert len(run1) == 2
    for (x1, y1), (x2, y2) in zip(run1, run2):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(run1[0][1], run1[1][1])
    other = _epoch(data, 1)  # another epoch / loader seed: other anomalies
    assert not torch.equal(other[0][1], run1[0][1])


def test_errors():
    with pytest.raises(ValueError, match="at least 2 images"):
        AnomalyDataset(_normal_images(1))[0]
    with pytest.raises(IndexError, match="out of range"):
        AnomalyDataset(_normal_images(4))[4]
    mixed = [torch.zeros(1, 8, 8), torch.zeros(1, 8, 9)]
    with pytest.raises(ValueError, match="images of one shape"):
        AnomalyDataset(mixed)[0]
    with pytest.raises(TypeError, match="transform must be"):
        AnomalyDataset(_normal_images(), transform=lambda x: x)
    with pytest.raises(ValueError, match="seed must be"):
        AnomalyDataset(_normal_images(), seed=-1)
    ints = AnomalyDataset(np.zeros((4, 1, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="floating point"):
        ints[0]


# ------------------------------------------------------------------------------------------------
# Item rank decides 2D or 3D; spatial_dims forces / checks it.


def _volumes(n: int = 6, c: int = 1, shape=(8, 16, 16)) -> torch.Tensor:
    return torch.rand((n, c) + shape, generator=torch.Generator().manual_seed(0))


def _replay(data, index):
    """What item ``index`` must be: the transform on the single image and its drawn source,
    from a copy of the dataset's generator (the call the wrapper made before items were batched)."""
    g = torch.Generator()
    g.set_state(data.generator().get_state())
    n = len(data)
    other = (index + 1 + int(torch.randint(n - 1, (1,), generator=g).item())) % n
    return other, g


@pytest.mark.parametrize("cls", [PoissonImageInterpolation, ForeignPatchInterpolation])
def test_2d_items_are_the_single_image_call(cls):
    imgs = _normal_images(6)
    data = AnomalyDataset(imgs, cls(), seed=2)
    for i in range(6):
        other, g = _replay(data, i)
        ref = cls()(imgs[i], imgs[other], generator=g)  # the call before batches of one
        out = data[i]
        assert torch.equal(out[0], ref[0]) and torch.equal(out[1], ref[1])


@pytest.mark.parametrize("cls", [PoissonImageInterpolation, ForeignPatchInterpolation])
@pytest.mark.parametrize("channels", [1, 3])
def test_3d_items_are_blended_as_volumes(cls, channels):
    vols = _volumes(c=channels)
    aug = cls(half_width_frac=(0.2, 0.4))
    data = AnomalyDataset(vols, aug, seed=0)
    for i in range(3):
        other, g = _replay(data, i)
        ref_aug = cls(half_width_frac=(0.2, 0.4), spatial_dims=3)
        ref = ref_aug(vols[i], vols[other], generator=g)
        out, label = data[i]
        assert out.shape == (channels, 8, 16, 16) and label.shape == (1, 8, 16, 16)
        assert torch.equal(out, ref[0]) and torch.equal(label, ref[1])
        mask = torch.from_numpy(aug._params.masks()[0])  # a 3D patch
        assert mask.shape == (8, 16, 16) and bool(mask.any()) and not bool(mask.all(0).any())
        assert bool(((label[0] > 0) <= mask).all())
    for forced in (AnomalyDataset(vols, cls(half_width_frac=(0.2, 0.4)), seed=0, spatial_dims=3),
                   AnomalyDataset(vols, cls(half_width_frac=(0.2, 0.4), spatial_dims=3), seed=0)):
        a, b = forced[1], AnomalyDataset(vols, cls(half_width_frac=(0.2, 0.4)), seed=0)[1]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@pytest.mark.parametrize("num_workers", [0, 2])
def test_3d_items_through_a_dataloader(num_workers):
    vols = _volumes(8)

    def epoch():
        data = AnomalyDataset(vols, ForeignPatchInterpolation(half_width_frac=(0.2, 0.4)), seed=1)
        loader = DataLoader(data, batch_size=4, num_workers=num_workers,
                            generator=torch.Generator().manual_seed(0))
        return [(x.clone(), y.clone()) for x, y in loader]

    run1, run2 = epoch(), epoch()
    assert len(run1) == 2
    for (x1, y1), (x2, y2) in zip(run1, run2):
        assert x1.shape == (4, 1, 8, 16, 16) and y1.shape == (4, 1, 8, 16, 16)
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
        assert not x1.requires_grad and not y1.requires_grad
        assert bool((y1 > 0).flatten(1).any(1).all())
        # The border ring of the volume (first and last slice included) is never covered.
        assert not bool(y1[:, :, 0].any()) and not bool(y1[:, :, -1].any())
    if num_workers == 0:  # the main process draws items in order: the batches are data[i]
        data = AnomalyDataset(vols, ForeignPatchInterpolation(half_width_frac=(0.2, 0.4)), seed=1)
        items = [data[i] for i in range(8)]
        assert torch.equal(run1[1][0], torch.stack([x for x, _ in items[4:]]))
        assert torch.equal(run1[1][1], torch.stack([y for _, y in items[4:]]))


def test_spatial_dims_mismatches_name_the_item():
    with pytest.raises(ValueError, match=r"image 0 of dataset has shape \(1, 24, 24\): .*\(C, D, H, W\) \(spatial_dims=3\)"):
        AnomalyDataset(_normal_images(), spatial_dims=3)[0]
    with pytest.raises(ValueError, match=r"image 2 of dataset has shape \(1, 8, 16, 16\): .*\(C, H, W\) \(spatial_dims=2\)"):
        AnomalyDataset(_volumes(), spatial_dims=2)[2]
    with pytest.raises(ValueError, match=r"image 5 of dataset .*\(C, H, W\) \(the transform's spatial_dims=2\)"):
        AnomalyDataset(_volumes(), ForeignPatchInterpolation(spatial_dims=2))[-1]
    with pytest.raises(ValueError, match=r"image 1 of dataset has shape \(24, 24\): .*\(C, H, W\) or \(C, D, H, W\)$"):
        AnomalyDataset(_normal_images()[:, 0])[1]
    with pytest.raises(ValueError, match=r"image 0 of dataset has shape \(2, 1, 4, 8, 8\)"):
        AnomalyDataset(torch.zeros(3, 2, 1, 4, 8, 8))[0]
    with pytest.raises(ValueError, match=r"spatial_dims=2 disagrees with the transform's spatial_dims=3"):
        AnomalyDataset(_volumes(), ForeignPatchInterpolation(spatial_dims=3), spatial_dims=2)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(spatial_dims=4), ValueError, r"^spatial_dims must be one of \(2, 3\); got 4"),
        (dict(spatial_dims=1), ValueError, r"^spatial_dims must be one of \(2, 3\); got 1"),
        (dict(spatial_dims="3"), TypeError, r"^spatial_dims must be an int; got str '3'"),
        (dict(spatial_dims=3.0), TypeError, r"^spatial_dims must be an int; got float 3.0"),
        (dict(seed=-1), ValueError, r"^seed must be an int >= 0; got -1"),
        (dict(seed="3"), TypeError, r"^seed must be None or an int >= 0; got str '3'"),
        (dict(seed=1.5), TypeError, r"^seed must be None or an int >= 0; got float 1.5"),
        (dict(seed=True), TypeError, r"^seed must be None or an int >= 0; got bool True"),
        (dict(get_image=3), TypeError, r"^get_image must be None or a callable; got int"),
        (dict(transform=PoissonImageInterpolation), TypeError, r"^transform must be"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        AnomalyDataset(_normal_images(), **kwargs)
