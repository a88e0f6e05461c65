"""Source pools (bank, Dataset, callable), the batch-of-one rule, label kinds, tensor subclasses
kept, and the module's random state through get/set_state and state_dict."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pii_augment import ForeignPatchInterpolation, PoissonImageInterpolation, SourcePool
from pii_augment.transforms.pool import shifted_self


def _x(shape=(3, 1, 32, 32), seed=0):
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


class _Items(torch.utils.data.Dataset):
    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return {"image": self.images[i], "label": 0}


@pytest.mark.parametrize("kind", ["bank", "numpy", "dataset", "callable"])
def test_pools_are_drawn_per_sample_and_replayed(kind):
    bank = _x((5, 1, 32, 32), seed=1)
    pool = {"bank": bank, "numpy": bank.numpy(), "dataset": _Items(bank),
            "callable": lambda shape, g: torch.from_numpy(g.random(shape, dtype=np.float32))}[kind]
    aug = ForeignPatchInterpolation(pool=pool, seed=0, alpha=(1.0, 1.0))
    x = _x()
    out, label = aug(x)
    p = aug._params
    assert p.pool_draw is not None and p.source_index is None and bool((label > 0).any())
    again, label2 = aug(x, params=p)
    assert torch.equal(again, out) and torch.equal(label2, label)
    if kind != "callable":  # with alpha 1, FPI copies the pool image drawn for each sample
        src = bank[torch.as_tensor(p.pool_draw)]
        m = label > 0
        assert torch.equal(out[m], src[m])
    single, single_label = aug(x[0])  # a single sample takes its patch from the pool too
    assert single.shape == (1, 32, 32) and bool((single_label > 0).any())


def test_pool_errors_name_the_argument():
    with pytest.raises(ValueError, match="source as a bank must be a non-empty float"):
        PoissonImageInterpolation(pool=torch.zeros(4, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="source dataset items must be single images of shape"):
        PoissonImageInterpolation(pool=_Items(_x((2, 1, 16, 16))))(_x())
    with pytest.raises(ValueError, match="source pool gave shape"):
        PoissonImageInterpolation(pool=lambda shape, g: torch.zeros(1, 1, 8, 8))(_x())
    with pytest.raises(ValueError, match="pairing must be one of"):
        PoissonImageInterpolation(pairing="other")
    with pytest.raises(TypeError, match="a pool .pool=. must be a tensor bank, a Dataset or a callable"):
        PoissonImageInterpolation(pool=3)


@pytest.mark.parametrize("mode", ["batch", "random"])
def test_batch_of_one_rule(mode):
    x = _x((1, 2, 24, 32))
    aug = PoissonImageInterpolation(pairing=mode, seed=0)
    out, label = aug(x)
    assert aug._params.self_source and bool((label > 0).any())
    ref, _ = PoissonImageInterpolation(seed=0)(x, shifted_self(x))
    assert torch.equal(out, ref)
    # a batch of one inside a DataLoader without drop_last: no crash
    loader = torch.utils.data.DataLoader(_x((5, 1, 16, 16)), batch_size=2)
    assert [aug(b)[0].shape[0] for b in loader] == [2, 2, 1]


def test_label_kinds():
    x = _x()
    _, soft = PoissonImageInterpolation(seed=0)(x)
    _, hard = PoissonImageInterpolation(seed=0, label="mask")(x)
    assert torch.equal(hard, (soft > 0).float()) and set(torch.unique(hard).tolist()) == {0.0, 1.0}
    assert float(soft.max()) < 1.0
    with pytest.raises(ValueError, match="label must be one of"):
        PoissonImageInterpolation(label="soft")


def test_tensor_subclasses_come_back_with_their_attributes():
    class Tagged(torch.Tensor):
        pass

    x = _x().as_subclass(Tagged)
    x.meta = {"id": 7}
    out, label = PoissonImageInterpolation(seed=0)(x)
    assert type(out) is Tagged and type(label) is Tagged and out.meta == {"id": 7}
    assert out.meta is not x.meta  # copied, not shared


def test_random_state_round_trips_through_state_dict():
    aug = PoissonImageInterpolation(seed=3)
    aug.forward_parameters((2, 1, 32, 32))
    saved = aug.state_dict()
    nxt = aug.forward_parameters((2, 1, 32, 32)).alpha
    other = PoissonImageInterpolation(seed=99)
    other.load_state_dict(saved)
    assert other.seed == 3 and np.array_equal(other.forward_parameters((2, 1, 32, 32)).alpha, nxt)
    unseeded = PoissonImageInterpolation()
    assert unseeded.get_state() == {"seed": None, "rng": None}
    with pytest.raises(TypeError, match="state must be the dict of get_state"):
        unseeded.set_state({"rng": None})


def test_source_pool_repr_and_draws():
    pool = SourcePool(_x((4, 1, 8, 8)))
    assert repr(pool) == "<SourcePool: bank of 4>"
    assert pool.draw(np.random.default_rng(0), (6, 1, 8, 8)).shape == (6,)
