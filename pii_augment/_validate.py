"""Argument checks shared by every layer: each names the argument, the expected and the received value.

The public functions and modules call these before doing any work (also for empty batches), so a
bad option fails at once with a ``TypeError`` (wrong kind of value) or a ``ValueError`` (right
kind, wrong value), never later with an error from deep inside the library.
"""

from __future__ import annotations

import math
import numbers
import os
import sys
import warnings
from collections.abc import Mapping, Set
from typing import Any, Sequence

import numpy as np

__all__ = [
    "check_choice",
    "check_real",
    "check_int",
    "check_bool",
    "check_pair",
    "check_shape",
    "check_seed",
    "warn_caller",
]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``; else a ``ValueError`` listing them.

    Example:
        >>> check_choice("method", "auto", ("auto", "multigrid"))
        'auto'
    """
    if value.__class__ is str and value in choices:  # the common case: a str equals only a str
        return value
    ok = any(isinstance(value, type(c)) and not (isinstance(value, bool) and not isinstance(c, bool))
             and value == c for c in choices)
    if not ok:
        raise ValueError(f"{name} must be one of {tuple(choices)}; got {_show(value)}")
    return value


def _bounds(low, high, low_open: bool = False, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high}"
    return ""


def check_real(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float within [low, high] (open ends where asked).

    Raises ``TypeError`` for anything that is not a real number (strings, bools, arrays) and
    ``ValueError`` for NaN, infinities and values out of range.

    Example:
        >>> check_real("tol", 1e-5, low=0, low_open=True)
        1e-05
    """
    cls = value.__class__
    if cls is not float and cls is not int and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
        # (exact floats and ints skip the slow isinstance of the numbers ABCs; bool is not int)
        raise TypeError(f"{name} must be a real number; got {type(value).__name__} {_show(value)}")
    v = float(value)
    bad = not math.isfinite(v)
    if low is not None:
        bad |= v <= low if low_open else v < low
    if high is not None:
        bad |= v >= high if high_open else v > high
    if bad:
        raise ValueError(f"{name} must be a finite number{_bounds(low, high, low_open, high_open)}; got {_show(value)}")
    return v


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """``value`` as an int within [low, high]; ``TypeError`` for non-integers (2.5, '3', True).

    Example:
        >>> check_int("batch_size", 4, low=0)
        4
    """
    if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must be an int; got {type(value).__name__} {_show(value)}")
    v = int(value)
    if (low is not None and v < low) or (high is not None and v > high):
        raise ValueError(f"{name} must be an int{_bounds(low, high)}; got {v}")
    return v


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is a bool (or numpy bool); else a ``TypeError``.

    Example:
        >>> check_bool("clip", True)
        True
    """
    if isinstance(value, (bool, np.bool_)):  # np.bool_ is named "bool" in numpy 2
        return bool(value)
    raise TypeError(f"{name} must be True or False; got {type(value).__name__} {_show(value)}")


def check_pair(name: str, value: Any, low: float, high: float, *, strict: bool = False) -> tuple[float, float]:
    """A ``(lo, hi)`` pair of real numbers with ``low <= lo <= hi <= high`` (``lo < hi`` if strict).

    Example:
        >>> check_pair("alpha", (0.05, 0.95), 0.0, 1.0)
        (0.05, 0.95)
    """
    try:
        unordered = isinstance(value, (str, bytes, Mapping, Set))
        first, second = (None, None) if unordered or len(value) != 2 else (value[0], value[1])
    except (TypeError, KeyError, IndexError):
        unordered = True
    if unordered or len(value) != 2:
        raise TypeError(f"{name} must be a (low, high) pair of numbers; got {_show(value)}")
    a = check_real(f"{name}[0]", first)
    b = check_real(f"{name}[1]", second)
    if not (low <= a <= b <= high) or (strict and a == b):
        rel = "<" if strict else "<="
        raise ValueError(f"{name} must satisfy {low} <= low {rel} high <= {high}; got {_show(tuple(value))}")
    return a, b


def check_shape(
    name: str, value: Any, lengths: Sequence[int], *, low: int | None = 1, what: str | None = None
) -> tuple[int, ...]:
    """``value`` as a tuple of ints, of one of the ``lengths``, each at least ``low``.

    ``TypeError`` for anything that is not a sequence of ints (an int, a string, a set, floats);
    ``ValueError`` for a wrong length or an entry below ``low``. ``what`` describes the expected
    layout in the messages, e.g. ``"(H, W) or (D, H, W)"``.

    Example:
        >>> check_shape("spatial_shape", [64, 48], (2, 3), what="(H, W) or (D, H, W)")
        (64, 48)
    """
    if (value.__class__ is tuple and len(value) in lengths
            and all(v.__class__ is int and (low is None or v >= low) for v in value)):
        return value  # the common case: a tuple of plain ints, all valid
    counts = " or ".join(str(n) for n in lengths)
    layout = f" {what}" if what else ""
    try:
        n = None if isinstance(value, (str, bytes, Mapping, Set)) else len(value)
        items = None if n is None else [value[i] for i in range(n)]
    except (TypeError, KeyError, IndexError):
        n = items = None
    if items is None:
        raise TypeError(
            f"{name} must be a sequence of {counts} ints{layout}; got {type(value).__name__} {_show(value)}"
        )
    out = tuple(check_int(f"{name}[{i}]", v, low=low) for i, v in enumerate(items))
    if len(out) not in tuple(lengths):
        expected = f"be {what} ({counts} entries)" if what else f"have {counts} entries"
        raise ValueError(f"{name} must {expected}; got {_show(out)}")
    return out


def check_seed(name: str, value: Any, *, generator: bool = False) -> Any:
    """``value`` if it is None or an int >= 0 (or, with ``generator``, a ``numpy.random.Generator``).

    ``TypeError`` for any other kind of value (floats, strings, bools, torch generators),
    ``ValueError`` for a negative int.

    Example:
        >>> check_seed("seed", 0), check_seed("seed", None)
        (0, None)
    """
    if value is None or (generator and isinstance(value, np.random.Generator)):
        return value
    if value.__class__ is not int and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        expected = "None, an int >= 0 or a numpy.random.Generator" if generator else "None or an int >= 0"
        raise TypeError(f"{name} must be {expected}; got {type(value).__name__} {_show(value)}")
    if value < 0:
        raise ValueError(f"{name} must be an int >= 0; got {int(value)}")
    return int(value)


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_caller(message: str, category: type[Warning]) -> None:
    """``warnings.warn`` attributed to the first frame outside the ``pii_augment`` package.

    The public functions are wrapped by decorators and call each other, so a fixed ``stacklevel``
    would point at the library's own files; this walks up to the user's line.
    """
    frame = sys._getframe(1)
    level = 2  # stacklevel 1 is this function, 2 its caller
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def renamed_keyword(old: str, new: str, old_value: Any, new_value: Any, default: Any) -> Any:
    """The value of a keyword renamed from ``old`` to ``new``, the old name still accepted for now.

    ``old_value`` is None when the old keyword was not given: ``new_value`` is returned. Else a
    ``FutureWarning`` (attributed to the caller's line) names the new keyword and ``old_value``
    is returned; a ``TypeError`` if the new keyword was given too (``new_value is not default``).

    Example:
        >>> import warnings
        >>> renamed_keyword("half_width", "half_width_frac", None, (0.1, 0.2), (0.05, 0.2))
        (0.1, 0.2)
        >>> with warnings.catch_warnings(record=True) as w:
        ...     warnings.simplefilter("always")
        ...     renamed_keyword("half_width", "half_width_frac", (0.1, 0.2), (0.05, 0.2), (0.05, 0.2))
        (0.1, 0.2)
        >>> w[0].category.__name__, str(w[0].message).split(":")[0]
        ('FutureWarning', 'half_width= is renamed half_width_frac=')
    """
    if old_value is None:
        return new_value
    if new_value is not default:
        raise TypeError(f"pass {new}= alone ({old}= is its old name); got both")
    warn_caller(f"{old}= is renamed {new}=: pass {new}= ({old}= will be removed)", FutureWarning)
    return old_value
