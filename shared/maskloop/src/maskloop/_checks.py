"""Argument checks shared by the public functions: each error names the argument, value and range."""

from __future__ import annotations

import math
import numbers


def check_fraction(name: str, value: object, *, low_inclusive: bool, high_inclusive: bool) -> float:
    """Return `value` as a float in [0, 1] with the given open/closed ends, or raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} ({value!r})")
    v = float(value)
    lo_ok = v >= 0 if low_inclusive else v > 0
    hi_ok = v <= 1 if high_inclusive else v < 1
    if math.isnan(v) or not (lo_ok and hi_ok):
        interval = ("[" if low_inclusive else "(") + "0, 1" + ("]" if high_inclusive else ")")
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return v


def check_positive_int(name: str, value: object, *, minimum: int = 1) -> int:
    """Return `value` as an int >= `minimum`, or raise a clear error."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    if int(value) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return int(value)
