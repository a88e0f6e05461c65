"""The constructor's renamed keywords: source= (now pairing= / pool=) and half_width= (now
half_width_frac=) still work, with a FutureWarning naming the new keyword, and give the same
module as the new names."""

from __future__ import annotations

import pytest
import torch

from pii_augment import ForeignPatchInterpolation, PoissonImageInterpolation
from pii_augment.transforms import PAIRINGS, SOURCE_MODES

MODULES = [PoissonImageInterpolation, ForeignPatchInterpolation]


def _x(shape=(4, 1, 32, 32)):
    return torch.rand(shape, generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("cls", MODULES)
@pytest.mark.parametrize("mode", ["batch", "random"])
def test_source_mode_is_pairing(cls, mode):
    with pytest.warns(FutureWarning, match=r"source= \(of the constructor\) is renamed pairing="):
        old = cls(source=mode, seed=0)
    new = cls(pairing=mode, seed=0)
    assert old.pairing == new.pairing == mode and old.pool is None
    x = _x()
    assert torch.equal(old(x)[0], new(x)[0])


def test_source_pool_is_pool():
    bank = _x((3, 1, 32, 32))
    with pytest.warns(FutureWarning, match=r"is renamed pool="):
        old = PoissonImageInterpolation(source=bank, seed=0)
    new = PoissonImageInterpolation(pool=bank, seed=0)
    assert old.pool is not None and old.pool.kind == "bank"
    x = _x()
    assert torch.equal(old(x)[0], new(x)[0])


@pytest.mark.parametrize("cls", MODULES)
def test_half_width_is_half_width_frac(cls):
    with pytest.warns(FutureWarning, match=r"half_width= is renamed half_width_frac="):
        old = cls(half_width=(0.2, 0.4), seed=0)
    new = cls(half_width_frac=(0.2, 0.4), seed=0)
    assert old.half_width_frac == new.half_width_frac == (0.2, 0.4)
    x = _x()
    assert torch.equal(old(x)[0], new(x)[0])


def test_old_and_new_together_is_an_error():
    with pytest.raises(TypeError, match="pass half_width_frac= alone"):
        PoissonImageInterpolation(half_width=(0.1, 0.2), half_width_frac=(0.1, 0.3))
    with pytest.raises(TypeError, match="pass pairing= and pool= alone"):
        PoissonImageInterpolation(source="random", pairing="random")


def test_old_source_with_a_bad_mode_names_pairing():
    with pytest.warns(FutureWarning), pytest.raises(ValueError, match="pairing must be one of"):
        PoissonImageInterpolation(source="other")


def test_the_old_constant_is_the_new_one():
    assert SOURCE_MODES is PAIRINGS and set(PAIRINGS) == {"batch", "random"}


def test_repr_names_the_new_keywords():
    text = repr(PoissonImageInterpolation(pool=_x((3, 1, 32, 32))))
    assert "half_width_frac=" in text and "pairing='batch'" in text and "pool=<SourcePool: bank of 3>" in text
