"""`TEDPruner(noise_schedule="late_epoch0")` (session 28): at the end of epoch 0 TED reads the
training-pass losses of epoch 0's last half (in the order observed); if more than
`noise_threshold` (default 0.025) of them exceed 1.5 ln C it switches to the late schedule pruning
from epoch 1 (`warmup=1, ramp=0`, the last 3 of 20 epochs on full data) at the same budget, else
the default schedule runs unchanged. Made-up float64 observations through `observe` / `end_epoch`;
no benchmark run is trained."""

from __future__ import annotations

import math

import pytest
import torch
from maskloop import Selection
from ted_prune import TEDPruner
from ted_prune.ted import NOISE_THRESHOLD, NOISE_THRESHOLD_E0

N, E = 600, 20


def _kw(**extra):
    return dict(budget=0.6, seed=3, precision="float64", **extra)


@pytest.mark.parametrize(
    ("kw", "err", "msg"),
    [({"noise_schedule": "late_epoch1"}, ValueError, "noise_schedule"),
     ({"noise_schedule": "late_epoch0", "noise_threshold": 0.0}, ValueError, "noise_threshold"),
     ({"noise_schedule": "late_epoch0", "noise_threshold": 1}, ValueError, "noise_threshold"),
     ({"noise_schedule": "late_epoch0", "noise_threshold": "x"}, TypeError, "noise_threshold"),
     ({"noise_schedule": "late_epoch0", "warmup": 0}, ValueError, "warmup"),
     ({"noise_schedule": "late_epoch0", "grads": "full"}, ValueError, "grads"),
     ({"noise_schedule": "late_epoch0", "budget": 0.2, "ramp": 0}, ValueError,
      "noise_schedule='late_epoch0'")],
)  # fmt: skip
def test_bad_input_names_the_argument(kw, err, msg):
    with pytest.raises(err, match=msg):
        TEDPruner(N, E, **{**_kw(), **kw})


def test_needs_a_budget_and_threshold_defaults_per_schedule():
    with pytest.raises(ValueError, match="budget="):
        TEDPruner(N, E, keep=0.5, noise_schedule="late_epoch0")
    assert TEDPruner(N, E, **_kw(noise_schedule="late_epoch0")).noise_threshold == 0.025
    assert NOISE_THRESHOLD_E0 == 0.025 and NOISE_THRESHOLD == 0.2
    assert TEDPruner(N, E, **_kw(noise_schedule="late")).noise_threshold == 0.2
    assert TEDPruner(N, E, **_kw(noise_schedule="off")).noise_threshold == 0.2
    q = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0", noise_threshold=0.1))
    assert q.noise_threshold == 0.1


def test_late_branch_prunes_from_epoch_1_at_the_same_budget():
    for f in (0.7, 0.5):
        p = TEDPruner(4500, E, budget=f, noise_schedule="late_epoch0")
        d, late = p.planned_budget(), p.planned_budget(p._late)
        assert abs(d["f"] - f) < 1e-3 and abs(late["f"] - f) < 1e-3
        assert late["f"] <= f + 1e-12 and d["f"] <= f + 1e-12
        sizes = [Selection.kept_count(4500, p._late(e)) for e in range(E)]
        assert sizes[0] == p.planned_sizes()[0] == 4500  # epoch 0 is full data in both
        assert p.planned_sizes()[1] == 4500 and sizes[1] < 4500  # the default's warm-up is 2
        assert sizes[-3:] == [4500] * 3 and sizes[-4] < 4500
        assert (p._late.warmup, p._late.ramp, p._late.anneal) == (1, 0, 3)


def test_decides_on_the_last_half_of_epoch_0_in_observed_order(epoch_losses):
    # every sample of the FIRST half is high (share 0.5 over the epoch), the last half 1/50 = 0.02:
    # only the last half counts, so clean
    p = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0"))
    epoch_losses.observe(p, lambda j, m: j < m // 2 or (j >= m // 2 and j % 50 == 0), seed=0)
    assert p.noisy is False and p.noise_statistic == pytest.approx(6 / 300)
    # the same share in the last half but 1 in 20 (0.05 > 0.025): noisy, decided after epoch 0
    q = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0"))
    epoch_losses.observe(q, epoch_losses.every(20), seed=0)
    assert q.noisy is True and q.noise_statistic == pytest.approx(15 / 300)
    assert q.schedule is q._late and q.select().indices.numel() < N  # epoch 1 is pruned
    # strict threshold: exactly at it is clean
    r = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0", noise_threshold=0.05))
    epoch_losses.observe(r, epoch_losses.every(20), seed=0)
    assert r.noisy is False and r.schedule is not r._late
    # no observations in epoch 0: statistic 0, clean
    s = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0"))
    s.end_epoch()
    assert s.noisy is False and s.noise_statistic == 0.0


def test_clean_path_is_the_default_bit_for_bit(epoch_losses):
    d = TEDPruner(N, E, **_kw(noise_schedule="off"))  # the default schedule
    p = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0"))
    a, b = epoch_losses.run(d, epoch_losses.every(50)), epoch_losses.run(p, epoch_losses.every(50))
    assert p.noisy is False and p.noise_statistic == pytest.approx(6 / 300)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert p.schedule.state_dict() == d.schedule.state_dict()
    assert torch.equal(p.scores, d.scores)
    assert p.budget()["f"] == d.budget()["f"]


def test_noisy_path_spends_the_late_plan_exactly(epoch_losses):
    d = TEDPruner(N, E, **_kw(noise_schedule="off"))  # the default schedule
    p = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0"))
    a, b = epoch_losses.run(d, epoch_losses.every(20)), epoch_losses.run(p, epoch_losses.every(20))
    assert p.noisy is True
    sizes = [x.numel() for x in b]
    assert sizes == [Selection.kept_count(N, p._late(e)) for e in range(E)]
    assert sizes[0] == a[0].numel() == N and sizes[1] < N == a[1].numel()
    assert torch.equal(a[0], b[0])
    assert sizes[-3:] == [N] * 3
    # trained as planned (no model here, so no re-scoring pass: the plan's f adds it)
    assert p.budget()["trained"] == pytest.approx(p.planned_budget(p._late)["trained"])
    assert abs(p.planned_budget()["f"] - 0.6) < 1e-3


def test_state_dict_keeps_the_decision(epoch_losses):
    p = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0"))
    epoch_losses.run(p, epoch_losses.every(20), epochs=2)
    q = TEDPruner(N, E, **_kw(noise_schedule="late_epoch0"))
    q.load_state_dict(p.state_dict())
    assert q.noisy is True and q.schedule.state_dict() == p._late.state_dict()
    assert q.planned_sizes() == p.planned_sizes()
    assert math.isclose(q.noise_statistic, 0.05)
