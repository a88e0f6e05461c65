"""The contract of every public function (tests/contract.py) on every backend (the ``backend``
fixture of tests/conftest.py: numba, cuda-emulated, and cupy on a GPU)."""

from __future__ import annotations

import numpy as np
import pytest
from contract import check_functional
from problems import random_problem

import pii_augment as pa
from pii_augment.ops import blend_with_label

SPATIAL = (16, 16)


def _problem(batch: int, dtype):
    """(dst, src, mask, alpha) for 2 x 2 x 16 x 16 (a box at the edge, blobs), cut to ``batch``."""
    dst, src, mask, alpha = random_problem(5, 2, 2, SPATIAL, ["rect", "blobs"], dtype)
    return dst[:batch], src[:batch], mask[:batch], alpha[:batch]


def _blend_args(dtype, **kwargs):
    def make(batch):
        return _problem(batch, dtype), dict(kwargs)

    return make


def _label_args(dtype):
    def make(batch):
        dst, _, mask, alpha = _problem(batch, dtype)
        out = dst + np.where(mask[:, None], dtype(0.25), dtype(0))
        return (dst, out, mask, alpha), {}

    return make


def _solve_args(dtype):
    def make(batch):
        dst, src, mask, _ = _problem(batch, dtype)
        return (dst, mask, src - dst), {}  # (dst, mask, rhs)

    return make


def _with_label_args(dtype, blend):
    def make(batch):
        return _problem(batch, dtype), dict(blend=blend, src_index=np.arange(batch)[::-1].copy())

    return make


# ------------------------------------------------------------------------------------------------
# bad calls: (the argument the message must name, the change to a valid call, exception, match)
# ------------------------------------------------------------------------------------------------


def _put(i, value):
    def bad(args, kwargs):
        args[i] = value(args) if callable(value) else value
        return args, kwargs

    return bad


def _opt(**options):
    def bad(args, kwargs):
        return args, {**kwargs, **options}

    return bad


def _nan(i, value=np.nan):
    def bad(args, kwargs):
        x = args[i].copy()
        x.flat[3] = value
        args[i] = x
        return args, kwargs

    return bad


def _full_mask(i):
    return _put(i, lambda a: np.ones_like(a[i]))


def _images(second: str, nan: bool = True, mask_at: int = 2, alpha_at: int | None = 3):
    """The errors of a function of (dst, <second>, mask[, alpha]): shapes, dtypes, kinds, NaN."""
    cases = [
        ("dst", _put(0, lambda a: a[0][:, 0]), ValueError, r"dst must have shape \(B, C, H, W\)"),
        ("dst", _put(0, lambda a: a[0].tolist()), TypeError, "dst must be a numpy array, cupy array or torch tensor; got list"),
        ("mask", _put(mask_at, lambda a: a[mask_at].astype(np.uint8)), TypeError, "mask must be a bool array"),
        ("mask", _put(mask_at, lambda a: a[mask_at][:, :-1]), ValueError, r"mask must have shape \(B, \*spatial\)"),
    ]
    at = 1 if mask_at == 2 else 2
    cases += [
        (second, _put(at, lambda a: a[at][..., :-1]), ValueError, f"{second} must have the shape of dst"),
        (second, _put(at, lambda a: a[at].astype(np.float16)), TypeError, f"{second} must have the dtype of dst"),
        ("dst", lambda a, k: ([a[0].astype(np.uint8), a[1].astype(np.uint8)] + a[2:], k), TypeError,
         "dst must be float32 or float64"),
    ]
    if alpha_at is not None:
        cases += [
            ("alpha", _put(alpha_at, 1.5), ValueError, r"alpha must lie in \[0, 1\]"),
            ("alpha", _put(alpha_at, np.full(3, 0.5)), ValueError, r"alpha must be a scalar or have shape \(B,\)"),
            ("alpha", _put(alpha_at, "0.5"), TypeError, "alpha must be a number"),
        ]
    if nan:
        cases += [
            ("dst", _nan(0), ValueError, "dst contains NaN or Inf"),
            ("dst", _nan(0, -np.inf), ValueError, "dst contains NaN or Inf"),
            (second, _nan(at), ValueError, f"{second} contains NaN or Inf"),
            (second, _nan(at, np.inf), ValueError, f"{second} contains NaN or Inf"),
        ]
    return cases


PII_ERRORS = _images("src") + [
    ("gradient", _opt(gradient="PII"), ValueError, "gradient must be one of"),
    ("tol", _opt(tol=0), ValueError, "tol must be a finite number > 0"),
    ("mask", _full_mask(2), ValueError, "mask covers the whole image"),
]
SOLVE_ERRORS = _images("rhs", mask_at=1, alpha_at=None) + [
    ("max_iter", _opt(max_iter=0), ValueError, "max_iter must be an int >= 1"),
    ("mask", _full_mask(1), ValueError, "mask covers the whole image"),
]
FPI_ERRORS = _images("src") + [
    ("check_finite", _opt(check_finite=None), TypeError, "check_finite must be True or False"),
]
LABEL_ERRORS = _images("out", nan=False) + [
    ("tolerance", _opt(tolerance=0), ValueError, "tolerance must be a finite number > 0"),
]
WITH_LABEL_ERRORS = _images("src") + [
    ("blend", _opt(blend="poisson"), ValueError, "blend must be one of"),
    ("src_index", _opt(src_index=np.array([0.0, 1.0])), TypeError, r"src_index must be a \(B,\) = \(2,\) integer array"),
    ("src_index", _opt(src_index=np.array([0, 2])), ValueError, r"src_index must hold batch positions in \[0, 2\)"),
]

CASES = {
    "poisson_interpolate": (pa.poisson_interpolate, lambda dt: _blend_args(dt), ("image",), PII_ERRORS),
    "poisson_interpolate-multigrid": (pa.poisson_interpolate, lambda dt: _blend_args(dt, method="multigrid"),
                                      ("image",), []),
    "solve_poisson": (pa.solve_poisson, _solve_args, ("image",), SOLVE_ERRORS),
    "foreign_patch_interpolate": (pa.foreign_patch_interpolate, lambda dt: _blend_args(dt), ("image",), FPI_ERRORS),
    "anomaly_label": (pa.anomaly_label, _label_args, ("label",), LABEL_ERRORS),
    "blend_with_label-pii": (blend_with_label, lambda dt: _with_label_args(dt, "pii"), ("image", "label"),
                             WITH_LABEL_ERRORS),
    "blend_with_label-fpi": (blend_with_label, lambda dt: _with_label_args(dt, "fpi"), ("image", "label"), []),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", list(CASES))
def test_contract(case, dtype, backend):
    fn, make, outputs, errors = CASES[case]
    check_functional(fn, make(dtype), backend, outputs=outputs, errors=errors)
