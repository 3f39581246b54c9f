"""Ramps from an initial to a final value over a step window.

Used for data keep-ratios (TED's progressive pruning) and weight sparsity (SEVEN's cubic schedule,
after Zhu & Gupta 2017). A schedule is a callable `step -> value`: `initial` before `start`, `final`
from `end` on, and the ramp in between.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

__all__ = ["Schedule", "constant", "cubic", "linear"]

_KINDS = ("cubic", "linear", "constant")


def _real(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(float(value)):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    return float(value)


def _step(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class Schedule:
    """value(step) = initial for step < start, final for step >= end, a `kind` ramp in between.

    cubic:  final + (initial - final) * (1 - p)^3,  p = (step - start) / (end - start)
    linear: initial + (final - initial) * p
    """

    kind: str
    initial: float
    final: float
    start: int = 0
    end: int = 0

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        object.__setattr__(self, "initial", _real("initial", self.initial))
        object.__setattr__(self, "final", _real("final", self.final))
        object.__setattr__(self, "start", _step("start", self.start))
        object.__setattr__(self, "end", _step("end", self.end))
        if self.end < self.start:
            raise ValueError(f"end must be >= start, got start={self.start}, end={self.end}")

    def progress(self, step: int) -> float:
        """Fraction of the ramp done at `step`, in [0, 1]."""
        step = _step("step", step)
        if step < self.start:
            return 0.0
        if step >= self.end:
            return 1.0
        return (step - self.start) / (self.end - self.start)

    def __call__(self, step: int) -> float:
        p = self.progress(step)
        if self.kind == "constant" or p >= 1.0:
            return self.final if p >= 1.0 else self.initial
        if self.kind == "linear":
            return self.initial + (self.final - self.initial) * p
        return self.final + (self.initial - self.final) * (1.0 - p) ** 3


def cubic(initial: float, final: float, start: int, end: int) -> Schedule:
    """Cubic ramp: fast change first, slow near `final` (Zhu & Gupta's gradual pruning)."""
    return Schedule("cubic", initial, final, start, end)


def linear(initial: float, final: float, start: int, end: int) -> Schedule:
    """Linear ramp from `initial` at `start` to `final` at `end`."""
    return Schedule("linear", initial, final, start, end)


def constant(value: float) -> Schedule:
    """The same value at every step."""
    return Schedule("constant", value, value, 0, 0)
