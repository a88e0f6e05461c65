"""The small draws of the torch layer (pii_augment.sampling.draws): the same numbers as the
inline draws they replace, their ranges, and their checks."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from pii_augment.sampling import draws
from pii_augment.sampling.draws import (
    SEED_HIGH,
    sample_call_seed,
    sample_gate,
    sample_other_index,
    sample_pool_indices,
    sample_seed_words,
)


def test_examples():
    pytest.importorskip("torch")
    result = doctest.testmod(draws, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_call_seed_numpy_is_the_inline_draw():
    a, b = np.random.default_rng(7), np.random.default_rng(7)
    assert [sample_call_seed(a) for _ in range(5)] == [int(b.integers(2**62)) for _ in range(5)]


def test_call_seed_torch_is_the_inline_draw():
    torch = pytest.importorskip("torch")
    g, h = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    got = [sample_call_seed(g) for _ in range(5)]
    assert got == [int(torch.randint(2**62, (1,), generator=h).item()) for _ in range(5)]
    assert all(0 <= s < SEED_HIGH for s in got)
    torch.manual_seed(11)
    first = sample_call_seed(None)
    torch.manual_seed(11)
    assert first == int(torch.randint(2**62, (1,)).item())


def test_call_seed_rejects_other_kinds():
    with pytest.raises(TypeError, match="generator must be None, a numpy.random.Generator or a torch.Generator"):
        sample_call_seed(np.random.RandomState(0))


@pytest.mark.parametrize("p", [0.0, 0.3, 0.5, 1.0])
def test_gate_is_the_inline_draw(p):
    got = sample_gate(9, p, seed=np.random.default_rng(5))
    assert got.dtype == np.bool_ and got.shape == (9,)
    assert np.array_equal(got, np.random.default_rng(5).random(9) < p)
    assert np.array_equal(sample_gate(9, p, seed=5), got)


def test_gate_draws_whatever_p():
    a, b = np.random.default_rng(0), np.random.default_rng(0)
    sample_gate(4, 0.0, seed=a)
    sample_gate(4, 1.0, seed=b)
    assert a.integers(2**62) == b.integers(2**62)


def test_gate_frequency():
    assert abs(sample_gate(20000, 0.25, seed=1).mean() - 0.25) < 0.02


@pytest.mark.parametrize("kw, err, match", [
    (dict(batch_size=-1, p=0.5), ValueError, "batch_size"),
    (dict(batch_size=2.5, p=0.5), TypeError, "batch_size"),
    (dict(batch_size=2, p=1.5), ValueError, "p"),
    (dict(batch_size=2, p=0.5, seed="0"), TypeError, "seed"),
])
def test_gate_checks(kw, err, match):
    with pytest.raises(err, match=match):
        sample_gate(**kw)


def test_other_index_is_the_inline_draw():
    torch = pytest.importorskip("torch")
    g, h = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    for index in range(6):
        want = (index + 1 + int(torch.randint(5, (1,), generator=h).item())) % 6
        assert sample_other_index(index, 6, g) == want


def test_other_index_never_itself_and_covers_the_others():
    torch = pytest.importorskip("torch")
    g = torch.Generator().manual_seed(1)
    seen = {sample_other_index(0, 4, g) for _ in range(200)}
    assert seen == {1, 2, 3}
    assert {sample_other_index(1, 2, g) for _ in range(20)} == {0}


@pytest.mark.parametrize("index, n, err", [(0, 1, ValueError), (3, 3, ValueError), (-1, 3, ValueError),
                                           (0.5, 3, TypeError)])
def test_other_index_checks(index, n, err):
    pytest.importorskip("torch")
    with pytest.raises(err):
        sample_other_index(index, n)


def test_pool_indices_are_the_inline_draw():
    got = sample_pool_indices(5, 7, seed=np.random.default_rng(2))
    assert np.array_equal(got, np.random.default_rng(2).integers(5, size=7))
    assert got.shape == (7,) and ((got >= 0) & (got < 5)).all()
    assert sample_pool_indices(5, 0, seed=0).shape == (0,)
    with pytest.raises(ValueError, match="pool_size"):
        sample_pool_indices(0, 3)


def test_seed_words_are_the_inline_draws():
    assert np.array_equal(sample_seed_words(np.random.RandomState(4)),
                          np.random.RandomState(4).randint(2**31, size=2))
    assert np.array_equal(sample_seed_words(np.random.default_rng(4), 3),
                          np.random.default_rng(4).integers(2**31, size=3))
    with pytest.raises(TypeError, match="state must be"):
        sample_seed_words(0)


def test_sample_patches_old_half_width_keyword_warns_and_matches():
    from pii_augment import sample_patches

    with pytest.warns(FutureWarning, match=r"half_width= is renamed half_width_frac="):
        old = sample_patches(5, (32, 32), half_width=(0.1, 0.3), shape="rectangle", seed=2)
    new = sample_patches(5, (32, 32), half_width_frac=(0.1, 0.3), shape="rectangle", seed=2)
    assert (old.half_widths == new.half_widths).all() and (old.masks() == new.masks()).all()
    with pytest.raises(TypeError, match="pass half_width_frac= alone"):
        sample_patches(2, (16, 16), half_width=(0.1, 0.2), half_width_frac=(0.1, 0.3))
