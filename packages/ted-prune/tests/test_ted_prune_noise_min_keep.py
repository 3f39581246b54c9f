"""`TEDPruner(noise_min_keep=m)` (session 28b): the late branch of `noise_schedule` only where its
planned constant keep ratio is >= m; below the floor (or where the late plan cannot reach the
budget) the run is the default schedule's bit for bit, above it `late_epoch0`'s bit for bit.
Made-up float64 observations through `observe` / `end_epoch` (as in
`test_ted_prune_noise_epoch0.py`); no benchmark run is trained."""

from __future__ import annotations

import pytest
import torch
from ted_prune import TEDPruner
from ted_prune.ted import NOISE_MIN_KEEP_S28B

N, E = 600, 20


def _kw(budget, **extra):
    return dict(budget=budget, seed=3, precision="float64", **extra)


@pytest.mark.parametrize(
    ("value", "err"),
    [(-0.1, ValueError), (1.0, ValueError), (float("nan"), ValueError), ("0.5", TypeError),
     (True, TypeError)],
)  # fmt: skip
def test_bad_values_name_the_argument(value, err):
    with pytest.raises(err, match="noise_min_keep"):
        TEDPruner(N, E, **_kw(0.7, noise_schedule="late_epoch0", noise_min_keep=value))


def test_floor_value_and_late_keep_at_the_rule_budgets():
    assert NOISE_MIN_KEEP_S28B == 0.5
    got = {}
    for f in (0.7, 0.625, 0.62, 0.5):
        p = TEDPruner(4500, E, budget=f, noise_schedule="late_epoch0", noise_min_keep=0.5)
        got[f] = (round(p.noise_late_keep, 3), p.noise_active)
    assert got == {0.7: (0.6, True), 0.625: (0.5, True), 0.62: (0.493, False),
                   0.5: (0.333, False)}  # fmt: skip
    # no floor (the default 0.0): session 28's late_epoch0, active at any feasible budget
    q = TEDPruner(4500, E, budget=0.5, noise_schedule="late_epoch0")
    assert q.noise_min_keep == 0.0 and q.noise_active is True
    assert round(q.noise_late_keep, 3) == 0.333
    assert TEDPruner(4500, E, budget=0.5, noise_schedule="off").noise_active is False


@pytest.mark.parametrize("k", [20, 50])  # noisy and clean epoch 0
def test_below_the_floor_is_the_default_bit_for_bit(k, epoch_losses):
    high = epoch_losses.every(k)
    d = TEDPruner(N, E, **_kw(0.5, noise_schedule="off"))  # the default schedule
    p = TEDPruner(N, E, **_kw(0.5, noise_schedule="late_epoch0", noise_min_keep=0.5))
    assert p.noise_late_keep < 0.5 and p.noise_active is False
    a, b = epoch_losses.run(d, high), epoch_losses.run(p, high)
    assert p.noisy is None and p.noise_statistic is None  # the detector never ran
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert p.schedule.state_dict() == d.schedule.state_dict()
    assert torch.equal(p.scores, d.scores) and p.budget()["f"] == d.budget()["f"]


@pytest.mark.parametrize(("k", "noisy"), [(20, True), (50, False)])
def test_above_the_floor_is_late_epoch0_bit_for_bit(k, noisy, epoch_losses):
    high = epoch_losses.every(k)
    e0 = TEDPruner(N, E, **_kw(0.7, noise_schedule="late_epoch0"))
    p = TEDPruner(N, E, **_kw(0.7, noise_schedule="late_epoch0", noise_min_keep=0.5))
    assert p.noise_late_keep >= 0.5 and p.noise_active is True
    a, b = epoch_losses.run(e0, high), epoch_losses.run(p, high)
    assert p.noisy is noisy and e0.noisy is noisy
    assert p.noise_statistic == e0.noise_statistic
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert p.schedule.state_dict() == e0.schedule.state_dict()
    assert torch.equal(p.scores, e0.scores) and p.budget()["f"] == e0.budget()["f"]


def test_an_infeasible_late_plan_falls_back_under_a_floor_and_raises_without():
    # f = 0.24: the default reaches it (>= 0.227), the late plan (4 full epochs + re-scoring) cannot
    d = TEDPruner(N, E, **_kw(0.24))
    p = TEDPruner(N, E, **_kw(0.24, noise_schedule="late_epoch0", noise_min_keep=0.5))
    assert p.noise_active is False and p.noise_late_keep is None
    assert p.schedule.state_dict() == d.schedule.state_dict()
    with pytest.raises(ValueError, match="noise_schedule='late_epoch0'"):
        TEDPruner(N, E, **_kw(0.24, noise_schedule="late_epoch0"))


def test_state_dict_records_the_floor(epoch_losses):
    p = TEDPruner(N, E, **_kw(0.5, noise_schedule="late_epoch0", noise_min_keep=0.5))
    epoch_losses.run(p, epoch_losses.every(20), epochs=2)
    st = p.state_dict()
    q = TEDPruner(N, E, **_kw(0.5, noise_schedule="late_epoch0", noise_min_keep=0.5))
    q.load_state_dict(st)
    assert q.noisy is None and q.planned_sizes() == p.planned_sizes()
