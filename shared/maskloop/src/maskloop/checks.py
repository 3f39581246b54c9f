"""Public argument checks: each returns the value normalised or raises an error naming the argument.

Method packages use these instead of private copies, so every message reads alike:
`TypeError` for the wrong type, `ValueError` for a value out of range, both naming the argument, the
value and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

__all__ = [
    "check_choice",
    "check_fraction",
    "check_input_shape",
    "check_int",
    "check_keep",
    "check_positive_int",
    "check_real",
    "check_sparsity",
]


def check_fraction(
    name: str,
    value: object,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = False,
    meaning: str | None = None,
) -> float:
    """Return `value` as a float in [0, 1] with the given open/closed ends, or raise a clear error.

    `meaning` (e.g. "the fraction of weights removed") is added to the range error.
    """
    interval = ("[" if low_inclusive else "(") + "0, 1" + ("]" if high_inclusive else ")")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a real number in {interval}, got {type(value).__name__} ({value!r})"
        )
    v = float(value)
    lo_ok = v >= 0 if low_inclusive else v > 0
    hi_ok = v <= 1 if high_inclusive else v < 1
    if math.isnan(v) or not (lo_ok and hi_ok):
        what = f" ({meaning})" if meaning else ""
        raise ValueError(f"{name} must be in {interval}{what}, got {value!r}")
    return v


def check_sparsity(value: object, name: str = "sparsity") -> float:
    """A fraction of weights removed, in [0, 1)."""
    return check_fraction(name, value, meaning="the fraction of weights removed")


def check_keep(value: object, name: str = "keep") -> float:
    """A fraction of samples (or weights) kept, in (0, 1]."""
    return check_fraction(name, value, low_inclusive=False, high_inclusive=True)


def check_int(name: str, value: object, minimum: int | None = None) -> int:
    """Return `value` as an int (numpy integers accepted, bools refused), >= `minimum` if given."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if minimum is not None and int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return `value` as an int >= `minimum` (default 1), or raise a clear error."""
    return check_int(name, value, minimum)


def check_real(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    finite: bool = True,
) -> float:
    """Return `value` as a float (NaN refused; infinities refused when `finite`) within the bounds."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    v = float(value)
    bad = math.isnan(v) or (finite and math.isinf(v))
    if low is not None:
        bad = bad or (v < low if low_inclusive else v <= low)
    if high is not None:
        bad = bad or (v > high if high_inclusive else v >= high)
    if bad:
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        interval = ("[" if low_inclusive and low is not None else "(") + f"{lo}, {hi}"
        interval += "]" if high_inclusive and high is not None else ")"
        kind = "a finite number" if finite else "a number"
        raise ValueError(f"{name} must be {kind} in {interval}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """Return `value` if it is one of `choices`, else raise ValueError listing them."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")
    return value


def check_input_shape(input_shape: object, name: str = "input_shape") -> tuple[int, ...]:
    """Return one input's shape without the batch axis (a sequence of positive ints, bools
    refused) as a tuple, or raise ValueError naming `name`."""
    if not isinstance(input_shape, Sequence) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise ValueError(f"{name} must be a sequence of positive ints, got {input_shape!r}")
    return tuple(input_shape)
