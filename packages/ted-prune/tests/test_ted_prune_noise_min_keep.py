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

N, C, D, E = 600, 4, 5, 20


def _observe(p, high_at, seed):
    """Observe this epoch's selection in `select`'s order; position j gets p(label) ~ 0.002
    (loss ~ 6.1 > 1.5 ln 4) if `high_at(j, m)`, else ~ 0.95."""
    g = torch.Generator().manual_seed(seed)
    idx = p.select().indices
    m = idx.numel()
    high = torch.tensor([high_at(j, m) for j in range(m)])
    labels = idx % C
    logits = torch.zeros(m, C, dtype=torch.float64)
    logits[torch.arange(m), labels] = torch.where(high, -5.0, 4.0).double()
    logits += 0.1 * torch.randn(logits.shape, generator=g, dtype=torch.float64)
    feats = torch.randn(m, D, generator=g, dtype=torch.float64)
    for b in range(0, m, 128):
        sl = slice(b, b + 128)
        p.observe(idx[sl], logits[sl], feats[sl], labels[sl])
    p.end_epoch()
    return idx


def _every(k):
    """High at every k-th position of the LAST half only (share 1/k there)."""
    return lambda j, m: j >= m - m // 2 and j % k == 0


def _run(p, high_at, epochs=E):
    return [_observe(p, high_at if e == 0 else _every(50), seed=e) for e in range(epochs)]


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
    assert TEDPruner(4500, E, budget=0.5).noise_active is False  # "off"


@pytest.mark.parametrize("high", [_every(20), _every(50)])  # noisy and clean epoch 0
def test_below_the_floor_is_the_default_bit_for_bit(high):
    d = TEDPruner(N, E, **_kw(0.5))
    p = TEDPruner(N, E, **_kw(0.5, noise_schedule="late_epoch0", noise_min_keep=0.5))
    assert p.noise_late_keep < 0.5 and p.noise_active is False
    a, b = _run(d, high), _run(p, high)
    assert p.noisy is None and p.noise_statistic is None  # the detector never ran
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert p.schedule.state_dict() == d.schedule.state_dict()
    assert torch.equal(p.scores, d.scores) and p.budget()["f"] == d.budget()["f"]


@pytest.mark.parametrize(("high", "noisy"), [(_every(20), True), (_every(50), False)])
def test_above_the_floor_is_late_epoch0_bit_for_bit(high, noisy):
    e0 = TEDPruner(N, E, **_kw(0.7, noise_schedule="late_epoch0"))
    p = TEDPruner(N, E, **_kw(0.7, noise_schedule="late_epoch0", noise_min_keep=0.5))
    assert p.noise_late_keep >= 0.5 and p.noise_active is True
    a, b = _run(e0, high), _run(p, high)
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


def test_state_dict_records_the_floor():
    p = TEDPruner(N, E, **_kw(0.5, noise_schedule="late_epoch0", noise_min_keep=0.5))
    _run(p, _every(20), epochs=2)
    st = p.state_dict()
    q = TEDPruner(N, E, **_kw(0.5, noise_schedule="late_epoch0", noise_min_keep=0.5))
    q.load_state_dict(st)
    assert q.noisy is None and q.planned_sizes() == p.planned_sizes()
