"""The small integer codes the solver's kernels share: cell labels, guidance modes, solve results.

Every code here is written three times in the package: in Python (the enums below), in the Numba
kernels (module-level ints taken from these enums, which Numba freezes as compile-time constants:
no enum member is ever passed to a compiled function) and in the CUDA kernels (the ``constexpr``
constants of namespace ``pii`` in ``kernels/common.cuh``, held equal to these enums by
``tests/ops/test_codes.py``). The values are part of the kernels' interface and never change.

- :class:`Cell`: the label of a cell of the solver's crop (the ``kind`` arrays, uint8);
- :class:`Guidance`: the guidance mode of a solve (the ``mode`` argument of the kernels, int);
- :class:`Verdict`: how the whole-system multigrid solve of one system ended;
- :class:`SolvedBy`: who solved a system, the codes of ``BatchReport.status``;
- :class:`Found`: what a batch's preparation found, ``BatchReport.flags`` (host kernels only: the
  device backends derive it from their tables, so it has no CUDA constant);
- :data:`MODES`: the public ``gradient=`` names and their modes.

Example:
    >>> from pii_augment.ops.codes import MODES, Cell, Guidance
    >>> int(Cell.UNKNOWN), int(Guidance.SOURCE)
    (2, 2)
    >>> MODES
    {'pii': 0, 'mixed': 1, 'source': 2}
"""

from __future__ import annotations

import enum

__all__ = ["Cell", "Guidance", "Verdict", "SolvedBy", "Found", "MODES"]


class Cell(enum.IntEnum):
    """The label of a cell of the solver's padded crop (the uint8 ``kind`` arrays).

    ``ABSENT`` (0): not part of the problem: outside the image, beyond the sample's crop, or on
    the ring of a coarse level; a stencil leaves it out (a Neumann edge). ``FIXED`` (1): a
    Dirichlet cell, outside the mask: its value is the destination's own (zero correction).
    ``UNKNOWN`` (2): inside the mask, solved for. A neighbour is present when its label is not
    ``ABSENT``; coarse labels take ``FIXED`` over ``UNKNOWN`` (erosion).

    Example:
        >>> from pii_augment.ops.codes import Cell
        >>> [int(c) for c in Cell]
        [0, 1, 2]
        >>> Cell(2).name
        'UNKNOWN'
    """

    ABSENT = 0
    FIXED = 1
    UNKNOWN = 2


class Guidance(enum.IntEnum):
    """The guidance mode of a solve (the kernels' ``mode`` argument).

    With ``a`` the weighted difference of the destination and ``s`` that of the source over a
    pair of neighbours, the guidance of the pair is ``a`` where ``|a| > |s|`` strictly, else
    ``s``: ``PII`` (0) weighs them ``1 - alpha`` and ``alpha`` (the alpha-weighted mixed
    gradient of DESIGN.md), ``MIXED`` (1) by 1 and 1, and ``SOURCE`` (2) always takes ``s``.
    ``DIVERGENCE`` (3): the divergence is given per pixel (:func:`pii_augment.solve_poisson`
    with ``rhs``); ``HARMONIC`` (4): zero guidance (``solve_poisson`` without ``rhs``). The
    public ``gradient=`` names map to the first three through :data:`MODES`.

    Example:
        >>> from pii_augment.ops.codes import Guidance
        >>> Guidance.HARMONIC.value, Guidance["PII"].value
        (4, 0)
    """

    PII = 0
    MIXED = 1
    SOURCE = 2
    DIVERGENCE = 3
    HARMONIC = 4


class Verdict(enum.IntEnum):
    """How the whole-system multigrid solve of one system ended (``_mg_system.STATUS``).

    ``CONVERGED`` (1): the true relative residual met ``tol``; ``STALLED`` (2): it stopped
    improving at the rounding floor of the dtype; ``NONFINITE`` (3): NaN or Inf in the data;
    ``MAX_ITER`` (4): stopped at ``max_iter``. (0, no member, means "still iterating" inside the
    solve.)

    Example:
        >>> from pii_augment.ops.codes import Verdict
        >>> Verdict.STALLED.name.lower(), int(Verdict.MAX_ITER)
        ('stalled', 4)
    """

    CONVERGED = 1
    STALLED = 2
    NONFINITE = 3
    MAX_ITER = 4


class SolvedBy(enum.IntEnum):
    """Who solved a system: the codes of ``BatchReport.status`` (one per sample and channel).

    ``NONE`` (0): nobody (yet); ``BOX`` (1): the exact box (DST-I) solve; ``MG`` (10): the
    whole-system multigrid, which stores ``MG + v`` with ``v`` its :class:`Verdict` (11 to 14).
    The device tables also hold ``BOX_PENDING`` (2) and ``MG_PENDING`` (3): a box, or a crop,
    too large for the first pass in shared memory, solved by a second pass in global memory.

    Example:
        >>> from pii_augment.ops.codes import SolvedBy, Verdict
        >>> SolvedBy.MG + Verdict.CONVERGED
        11
    """

    NONE = 0
    BOX = 1
    BOX_PENDING = 2
    MG_PENDING = 3
    MG = 10


class Found(enum.IntFlag):
    """What the preparation of a batch found, one bit each: ``BatchReport.flags``.

    ``GUIDE_BAD`` (1): the guidance (``src`` or ``rhs``) holds NaN or Inf (only looked at when
    checked); ``DST_BAD`` (2): a destination image holds NaN or Inf; ``WHOLE_IMAGE`` (4): a mask
    covers its whole image (no boundary: no unique solution); ``LEFT`` (8): a sample with a
    non-empty mask that the exact box solve did not solve (multigrid's work). A batch whose flags
    are 0 was checked and solved in the one pass, and the functional layer builds its result
    without looking at the per-sample tables.

    Example:
        >>> from pii_augment.ops.codes import Found
        >>> Found(10)
        <Found.DST_BAD|LEFT: 10>
    """

    GUIDE_BAD = 1
    DST_BAD = 2
    WHOLE_IMAGE = 4
    LEFT = 8


#: The public ``gradient=`` names and their guidance modes, as plain ints (what the kernels take).
MODES = {m.name.lower(): int(m) for m in (Guidance.PII, Guidance.MIXED, Guidance.SOURCE)}
