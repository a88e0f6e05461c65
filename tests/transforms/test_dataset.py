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
