"""The shared argument checks (pii_augment/_validate.py): their fast paths for plain floats, ints
and tuples of ints accept and reject exactly what the general rules do."""

from __future__ import annotations

import numpy as np
import pytest

from pii_augment._validate import check_int, check_real, check_seed, check_shape


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), np.float64(0.25), np.int64(1)])
def test_check_real_takes_every_real_number_as_a_float(value):
    out = check_real("x", value, low=0, high=1)
    assert type(out) is float and out == float(value)


@pytest.mark.parametrize("value,err", [(True, TypeError), ("1", TypeError), (np.zeros(1), TypeError),
                                       (float("nan"), ValueError), (float("inf"), ValueError), (2, ValueError),
                                       (0.0, ValueError), (-1, ValueError)])
def test_check_real_rejects(value, err):
    with pytest.raises(err, match="^x must"):
        check_real("x", value, low=0, high=1, low_open=True)


@pytest.mark.parametrize("value", [3, np.int64(3), np.uint8(3)])
def test_check_int_takes_every_integer(value):
    out = check_int("n", value, low=0, high=3)
    assert type(out) is int and out == 3


@pytest.mark.parametrize("value,err", [(True, TypeError), (3.0, TypeError), ("3", TypeError), (4, ValueError),
                                       (-1, ValueError)])
def test_check_int_rejects(value, err):
    with pytest.raises(err, match="^n must"):
        check_int("n", value, low=0, high=3)


def test_check_seed():
    assert check_seed("seed", 5) == 5 and type(check_seed("seed", np.int64(5))) is int
    for bad, err in ((True, TypeError), (1.0, TypeError), (-1, ValueError)):
        with pytest.raises(err, match="^seed must"):
            check_seed("seed", bad)


@pytest.mark.parametrize("value", [(64, 48), [64, 48], (np.int64(64), 48), np.array([64, 48])])
def test_check_shape_takes_sequences_of_ints(value):
    out = check_shape("shape", value, (2, 3))
    assert out == (64, 48) and all(type(v) is int for v in out)


@pytest.mark.parametrize("value,err", [((64, True), TypeError), ((64, 48.0), TypeError), ((64, 0), ValueError),
                                       ((64,), ValueError), ((1, 2, 3, 4), ValueError), (64, TypeError),
                                       ("ab", TypeError)])
def test_check_shape_rejects(value, err):
    with pytest.raises(err, match="^shape"):
        check_shape("shape", value, (2, 3))


def test_check_shape_low():
    assert check_shape("b", (0, 1, 8, 8), (4, 5), low=0) == (0, 1, 8, 8)
    with pytest.raises(ValueError):
        check_shape("b", (0, 1, 8, 8), (4, 5))
