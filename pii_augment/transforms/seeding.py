"""Generators for distributed and resumable training: one stream per rank, one per step.

``torch.manual_seed`` (or Lightning's ``seed_everything``) gives every DDP rank the same global
RNG, so augmentations drawing from it make the same patches on every rank. These helpers derive
independent streams from ``(seed, rank)`` and ``(seed, rank, step)`` with NumPy's
``SeedSequence``: a step's stream depends on nothing else, so a resumed run draws exactly what an
uninterrupted one would.
"""

from __future__ import annotations

import numpy as np

from .._validate import check_int, check_seed

__all__ = ["rank_seed", "step_generator"]


def rank_seed(seed: int, rank: int) -> int:
    """A 62-bit seed of its own for ``rank``, derived from ``seed`` (for a module's ``seed=``).

    Args:
        seed: an int >= 0, the run's seed.
        rank: an int >= 0, the process' rank (``torch.distributed.get_rank()``,
            ``trainer.global_rank``).

    Returns:
        An int in ``[0, 2**62)``, different for different ranks.

    Example:
        >>> from pii_augment import PoissonImageInterpolation, rank_seed
        >>> rank_seed(0, 0) != rank_seed(0, 1)
        True
        >>> aug = PoissonImageInterpolation(seed=rank_seed(0, rank=1))
    """
    seed = check_seed("seed", seed)
    rank = check_int("rank", rank, low=0)
    words = np.random.SeedSequence([seed, rank]).generate_state(2, np.uint32)
    return (int(words[0]) << 30) ^ int(words[1])


def step_generator(seed: int, rank: int = 0, step: int = 0) -> np.random.Generator:
    """The augmentation's random stream of one training step: a function of (seed, rank, step).

    Pass it as ``generator=`` of a call: ranks draw different patches, and a run resumed at
    step ``k`` draws what an uninterrupted run drew at step ``k``.

    Args:
        seed: an int >= 0, the run's seed.
        rank: an int >= 0, the process' rank.
        step: an int >= 0, the global step (``trainer.global_step``).

    Returns:
        A fresh ``numpy.random.Generator``.

    Example:
        >>> import torch
        >>> from pii_augment import PoissonImageInterpolation, step_generator
        >>> aug = PoissonImageInterpolation()
        >>> x = torch.rand(4, 1, 32, 32, generator=torch.Generator().manual_seed(0))
        >>> a, _ = aug(x, generator=step_generator(0, rank=0, step=5))
        >>> b, _ = aug(x, generator=step_generator(0, rank=0, step=5))
        >>> c, _ = aug(x, generator=step_generator(0, rank=1, step=5))
        >>> bool(torch.equal(a, b)), bool(torch.equal(a, c))
        (True, False)
    """
    seed = check_seed("seed", seed)
    rank = check_int("rank", rank, low=0)
    step = check_int("step", step, low=0)
    return np.random.default_rng([seed, rank, step])
