"""The small draws of the torch layer: the per-call seed, the gate, a dataset's source index, a
pool's indices and the seed words taken from another framework's random state.

The modules (:mod:`pii_augment.transforms`) and the adapters (:mod:`pii_augment.integrations`)
draw nothing themselves: every random number comes from a function of this package, each making
the very draws (the same calls, in the same order, on the same generator) the torch layer made
before they moved here, so that seeded outputs stay bit for bit the same. torch is imported only
by the functions that draw from a ``torch.Generator`` or from torch's global RNG.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .._validate import check_int, check_real, check_seed

__all__ = ["SEED_HIGH", "sample_call_seed", "sample_gate", "sample_other_index", "sample_pool_indices",
           "sample_seed_words"]

#: The seeds of a call are drawn uniformly from ``[0, SEED_HIGH)``: 62 bits.
SEED_HIGH = 2**62
#: Seed words taken from another framework's state are drawn from ``[0, 2**31)``.
_WORD_HIGH = 2**31


def _is_torch_generator(generator: Any) -> bool:
    return type(generator).__module__.startswith("torch") and type(generator).__name__ == "Generator"


def sample_call_seed(generator: Any = None) -> int:
    """One integer in ``[0, 2**62)`` that seeds all the draws of one call of a module.

    Args:
        generator: a ``numpy.random.Generator`` (``integers(2**62)``), a CPU ``torch.Generator``
            (``torch.randint(2**62, (1,), generator=...)``), or None for torch's global RNG.

    Returns:
        A Python int.

    Example:
        >>> import numpy as np, torch
        >>> sample_call_seed(np.random.default_rng(0)) == sample_call_seed(np.random.default_rng(0))
        True
        >>> 0 <= sample_call_seed(torch.Generator().manual_seed(0)) < SEED_HIGH
        True
    """
    if isinstance(generator, np.random.Generator):
        return int(generator.integers(SEED_HIGH))
    import torch

    if generator is None:
        return int(torch.randint(SEED_HIGH, (1,)).item())
    if not _is_torch_generator(generator):
        raise TypeError(f"generator must be None, a numpy.random.Generator or a torch.Generator; got "
                        f"{type(generator).__name__}")
    return int(torch.randint(SEED_HIGH, (1,), generator=generator).item())


def sample_gate(batch_size: int, p: float, *, seed: int | np.random.Generator | None = None) -> np.ndarray:
    """The per-sample gate: which samples of a batch are augmented, each with probability ``p``.

    One uniform draw per sample, ``random(batch_size) < p`` (so ``p=1`` augments every sample and
    ``p=0`` none, and the draws are made whatever ``p``).

    Args:
        batch_size: B, an int >= 0.
        p: the probability, in [0, 1].
        seed: None, an int >= 0 or a ``numpy.random.Generator`` (drawn from in place).

    Returns:
        (B,) bool.

    Example:
        >>> import numpy as np
        >>> sample_gate(4, 1.0, seed=0).tolist(), sample_gate(4, 0.0, seed=0).tolist()
        ([True, True, True, True], [False, False, False, False])
        >>> rng = np.random.default_rng(0)
        >>> bool((sample_gate(6, 0.5, seed=rng) == (np.random.default_rng(0).random(6) < 0.5)).all())
        True
    """
    batch_size = check_int("batch_size", batch_size, low=0)
    p = check_real("p", p, low=0.0, high=1.0)
    seed = check_seed("seed", seed, generator=True)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.random(batch_size) < p


def sample_other_index(index: int, n: int, generator: Any = None) -> int:
    """Another index of ``0..n-1`` than ``index``, uniformly (the source image of a dataset item).

    ``(index + 1 + k) % n`` with ``k`` uniform in ``0..n-2``, one ``torch.randint`` draw.

    Args:
        index: an int in ``0..n-1``.
        n: the number of images, an int >= 2.
        generator: a CPU ``torch.Generator``, or None for torch's global RNG.

    Returns:
        A Python int in ``0..n-1``, never ``index``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> others = [sample_other_index(2, 5, g) for _ in range(100)]
        >>> 2 in others, sorted(set(others))
        (False, [0, 1, 3, 4])
    """
    import torch

    n = check_int("n", n, low=2)
    index = check_int("index", index, low=0, high=n - 1)
    return (index + 1 + int(torch.randint(n - 1, (1,), generator=generator).item())) % n


def sample_pool_indices(pool_size: int, batch_size: int, *, seed: int | np.random.Generator | None = None
                        ) -> np.ndarray:
    """The pool image of every sample of a batch, uniformly and independently (with repeats).

    Args:
        pool_size: N, the number of images in the pool, an int >= 1.
        batch_size: B, an int >= 0.
        seed: None, an int >= 0 or a ``numpy.random.Generator`` (drawn from in place).

    Returns:
        (B,) int64 indices in ``0..N-1``.

    Example:
        >>> idx = sample_pool_indices(3, 8, seed=0)
        >>> idx.shape, bool(((idx >= 0) & (idx < 3)).all())
        ((8,), True)
    """
    pool_size = check_int("pool_size", pool_size, low=1)
    batch_size = check_int("batch_size", batch_size, low=0)
    seed = check_seed("seed", seed, generator=True)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    return rng.integers(pool_size, size=batch_size)


def sample_seed_words(state: Any, n: int = 2) -> np.ndarray:
    """``n`` integers in ``[0, 2**31)`` drawn from another framework's random state, to seed a
    call's NumPy generator (:func:`~pii_augment.integrations._common.generator_from`).

    Args:
        state: a ``numpy.random.RandomState`` (MONAI's ``self.R``: ``randint``) or a
            ``numpy.random.Generator`` (albumentations' ``random_generator``: ``integers``).
        n: how many words, an int >= 1.

    Returns:
        (n,) int64.

    Example:
        >>> import numpy as np
        >>> sample_seed_words(np.random.RandomState(0)).tolist() == np.random.RandomState(0).randint(2**31, size=2).tolist()
        True
        >>> sample_seed_words(np.random.default_rng(0)).shape
        (2,)
    """
    n = check_int("n", n, low=1)
    if isinstance(state, np.random.RandomState):
        return state.randint(_WORD_HIGH, size=n)
    if isinstance(state, np.random.Generator):
        return state.integers(_WORD_HIGH, size=n)
    raise TypeError(f"state must be a numpy.random.RandomState or numpy.random.Generator; got {type(state).__name__}")
