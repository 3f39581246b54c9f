"""Schedules: endpoints, shape and argument checks."""

import pytest
from maskloop import schedules


def test_cubic_endpoints_and_shape() -> None:
    s = schedules.cubic(1.0, 0.3, start=2, end=12)
    assert s(0) == 1.0 and s(2) == 1.0
    assert s(12) == pytest.approx(0.3) and s(100) == pytest.approx(0.3)
    assert s(7) == pytest.approx(0.3 + 0.7 * 0.5**3)
    values = [s(t) for t in range(15)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def test_linear_and_constant() -> None:
    s = schedules.linear(0.0, 1.0, 0, 4)
    assert [s(t) for t in range(6)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert schedules.constant(0.7)(123) == 0.7


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="end must be >= start"):
        schedules.cubic(1, 0, 5, 3)
    with pytest.raises(ValueError, match="start must be a non-negative int"):
        schedules.linear(1, 0, -1, 3)
    with pytest.raises(TypeError, match="initial must be a real number"):
        schedules.cubic("a", 0, 0, 1)
    with pytest.raises(ValueError, match="step must be"):
        schedules.linear(1, 0, 0, 3)(-1)
