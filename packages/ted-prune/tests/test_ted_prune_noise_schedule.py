"""`TEDPruner(noise_schedule="late")` (session 27b): at the end of the warm-up TED reads its own
stored losses; if more than `noise_threshold` of them exceed ln C it switches to the late schedule
(full-data epochs at the end) at the same budget, else the default schedule runs unchanged.
Made-up float64 observations fed through `observe` / `end_epoch`; no benchmark run is trained."""

from __future__ import annotations

import math

import pytest
import torch
from maskloop import Selection
from ted_prune import TEDPruner

N, C, D, E = 600, 4, 5, 20


def _observe_epoch(p, high, seed):
    """Observe this epoch's selection: samples in `high` get stored p(label) ~ 0.05 < 1/C, the
    others ~ 0.9; random features."""
    g = torch.Generator().manual_seed(seed)
    idx = p.select().indices
    labels = idx % C
    logits = torch.zeros(idx.numel(), C, dtype=torch.float64)
    logits[torch.arange(idx.numel()), labels] = torch.where(high[idx], -2.0, 4.0).double()
    logits += 0.1 * torch.randn(logits.shape, generator=g, dtype=torch.float64)
    feats = torch.randn(idx.numel(), D, generator=g, dtype=torch.float64)
    for b in range(0, idx.numel(), 128):
        sl = slice(b, b + 128)
        p.observe(idx[sl], logits[sl], feats[sl], labels[sl])
    p.end_epoch()
    return idx


def _run(p, share, epochs=E):
    high = torch.arange(N) % 100 < round(100 * share)
    return [_observe_epoch(p, high, seed=e) for e in range(epochs)]


def _kw(**extra):
    return dict(budget=0.6, seed=3, precision="float64", **extra)


@pytest.mark.parametrize(
    ("kw", "err", "msg"),
    [({"noise_schedule": 1}, TypeError, "noise_schedule"),
     ({"noise_schedule": "early"}, ValueError, "noise_schedule"),
     ({"noise_schedule": "late", "noise_threshold": 0}, ValueError, "noise_threshold"),
     ({"noise_schedule": "late", "noise_threshold": 1.0}, ValueError, "noise_threshold"),
     ({"noise_schedule": "late", "noise_threshold": math.nan}, ValueError, "noise_threshold"),
     ({"noise_schedule": "late", "noise_threshold": True}, TypeError, "noise_threshold"),
     ({"noise_schedule": "late", "noise_threshold": "0.2"}, TypeError, "noise_threshold"),
     ({"noise_schedule": "late", "warmup": 0}, ValueError, "warmup"),
     ({"noise_schedule": "late", "grads": "full"}, ValueError, "grads"),
     ({"noise_schedule": "late", "budget": 0.2, "ramp": 0}, ValueError, "noise_schedule='late'")],
)  # fmt: skip
def test_bad_input_names_the_argument(kw, err, msg):
    with pytest.raises(err, match=msg):
        TEDPruner(N, E, **{**_kw(), **kw})


def test_late_needs_a_budget():
    with pytest.raises(ValueError, match="budget="):
        TEDPruner(N, E, keep=0.5, noise_schedule="late")
    with pytest.raises(ValueError, match="budget="):
        TEDPruner(N, E, keep=None, schedule=TEDPruner(N, E, keep=0.5).schedule,
                  noise_schedule="late")  # fmt: skip


def test_off_makes_no_decision():
    p = TEDPruner(N, E, **_kw(noise_schedule="off"))  # the default since s28b is None (see s28b)
    assert p.noise_schedule == "off" and p.noise_threshold == 0.2
    _run(p, share=0.5, epochs=4)
    assert p.noisy is None and p.noise_statistic is None


def test_both_schedules_spend_the_budget_and_agree_through_the_warm_up():
    for f in (0.7, 0.5):
        p = TEDPruner(3500, E, budget=f, noise_schedule="late")
        d, late = p.planned_budget(), p.planned_budget(p._late)
        assert abs(d["f"] - f) < 1e-3 and abs(late["f"] - f) < 1e-3
        assert late["f"] <= f + 1e-12 and d["f"] <= f + 1e-12
        sizes = [Selection.kept_count(3500, p._late(e)) for e in range(E)]
        assert sizes[:2] == p.planned_sizes()[:2] == [3500, 3500]  # nothing diverges before
        assert sizes[2] < 3500 and sizes[-3:] == [3500] * 3 and sizes[-4] < 3500
        assert (p._late.warmup, p._late.ramp, p._late.anneal) == (p.schedule.warmup, 0, 3)


def test_clean_path_is_the_default_bit_for_bit():
    d = TEDPruner(N, E, **_kw(noise_schedule="off"))  # the default schedule
    p = TEDPruner(N, E, **_kw(noise_schedule="late"))
    a, b = _run(d, share=0.1), _run(p, share=0.1)
    assert p.noisy is False and p.noise_statistic == pytest.approx(0.1)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert p.schedule.state_dict() == d.schedule.state_dict()
    assert torch.equal(p.scores, d.scores)
    assert p.budget()["f"] == d.budget()["f"]


def test_a_high_loss_group_switches_to_the_late_schedule():
    d = TEDPruner(N, E, **_kw(noise_schedule="off"))  # the default schedule
    p = TEDPruner(N, E, **_kw(noise_schedule="late"))
    a, b = _run(d, share=0.3), _run(p, share=0.3)
    assert p.noisy is True and p.noise_statistic == pytest.approx(0.3)
    assert p.schedule is p._late
    sizes = [x.numel() for x in b]
    assert sizes == [Selection.kept_count(N, p._late(e)) for e in range(E)]
    assert [x.numel() for x in a[:2]] == sizes[:2] == [N, N]
    assert sizes[-3:] == [N] * 3 and a[-1].numel() < N
    assert all(torch.equal(x, y) for x, y in zip(a[:2], b[:2], strict=True))
    # trained as planned (no model here, so no re-scoring pass: the plan's f adds it)
    assert p.budget()["trained"] == pytest.approx(p.planned_budget(p._late)["trained"])
    assert abs(p.planned_budget()["f"] - 0.6) < 1e-3


def test_threshold_is_strict_and_configurable():
    p = TEDPruner(N, E, **_kw(noise_schedule="late", noise_threshold=0.35))
    _run(p, share=0.3, epochs=3)
    assert p.noisy is False and p.schedule is not p._late


def test_state_dict_keeps_the_decision():
    p = TEDPruner(N, E, **_kw(noise_schedule="late"))
    _run(p, share=0.3, epochs=4)
    q = TEDPruner(N, E, **_kw(noise_schedule="late"))
    q.load_state_dict(p.state_dict())
    assert q.noisy is True and q.schedule.state_dict() == p._late.state_dict()
    assert q.planned_sizes() == p.planned_sizes()
    with pytest.raises(ValueError, match="noise_schedule"):
        TEDPruner(N, E, **_kw(noise_schedule="off")).load_state_dict(p.state_dict())
