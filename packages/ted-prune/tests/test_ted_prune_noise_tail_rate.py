"""`TEDPruner(noise_tail_rate=r)` (session 29): below the late plan's keep floor the epoch-0
detector still runs; if it says noisy the default schedule runs with the suspect tail at
`tail_rate=r`, else (and above the floor) nothing changes, bit for bit. Made-up float64
observations through `observe` / `end_epoch` (the `epoch_losses` fixture); nothing is trained."""

from __future__ import annotations

import inspect

import pytest
import torch
from ted_prune import TEDPruner

N, E = 600, 20
FLOOR = {"noise_schedule": "late_epoch0", "noise_min_keep": 0.5}


def _kw(budget, **extra):
    return dict(budget=budget, seed=3, precision="float64", **extra)


@pytest.mark.parametrize(
    ("value", "err"),
    [(0.0, ValueError), (-0.5, ValueError), (1.5, ValueError), (float("nan"), ValueError),
     ("0.5", TypeError), (True, TypeError)],
)  # fmt: skip
def test_bad_values_name_the_argument(value, err):
    with pytest.raises(err, match="noise_tail_rate"):
        TEDPruner(N, E, **_kw(0.5, noise_tail_rate=value, **FLOOR))


@pytest.mark.parametrize(
    "extra",
    [{"noise_schedule": "off"}, {"noise_schedule": "late"}, {**FLOOR, "tail": "none"},
     {"keep": 0.5, "budget": None}],  # no budget: the default resolves to "off"
)  # fmt: skip
def test_needs_the_epoch0_detector_and_a_tail(extra):
    kw = {**_kw(0.5, noise_tail_rate=0.5), **extra}
    with pytest.raises(ValueError, match="noise_tail_rate"):
        TEDPruner(N, E, **kw)


def test_default_is_off_and_changes_nothing():
    assert inspect.signature(TEDPruner).parameters["noise_tail_rate"].default is None
    p = TEDPruner(4500, E, budget=0.5, **FLOOR)
    assert p.noise_tail_rate == 1.0 and p.noise_thin_active is False and p.noise_active is False
    assert TEDPruner(4500, E, budget=0.5, noise_tail_rate=1.0, **FLOOR).noise_thin_active is False
    q = TEDPruner(4500, E, budget=0.5, noise_tail_rate=0.5, **FLOOR)  # below the floor
    assert q.noise_thin_active is True and q.noise_active is True and q._late is None
    q = TEDPruner(4500, E, budget=0.5, noise_tail_rate=0.5, noise_norescore_min_keep=0.35, **FLOOR)
    assert q.noise_thin_active is False and q._late_norescore is True  # the second plan first
    r = TEDPruner(4500, E, budget=0.7, noise_tail_rate=0.5, **FLOOR)  # above: the late plan
    assert r.noise_thin_active is False and r._late is not None


def test_clean_epoch0_below_the_floor_is_the_default_bit_for_bit(epoch_losses):
    high = epoch_losses.every(50)  # share 0.02 < 0.025: clean
    d = TEDPruner(N, E, **_kw(0.5, **FLOOR))
    p = TEDPruner(N, E, **_kw(0.5, noise_tail_rate=0.5, **FLOOR))
    a, b = epoch_losses.run(d, high), epoch_losses.run(p, high)
    assert p.noisy is False and d.noisy is None  # the detector ran, and said clean
    assert p.tail_rate == 1.0
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert torch.equal(p.scores, d.scores) and p.budget()["f"] == d.budget()["f"]


def test_noisy_epoch0_below_the_floor_is_tail_rate_r_bit_for_bit(epoch_losses):
    high = epoch_losses.every(20)  # share 0.05 > 0.025: noisy
    d = TEDPruner(N, E, **_kw(0.5, **FLOOR))
    t = TEDPruner(N, E, **_kw(0.5, noise_schedule="off", tail_rate=0.25))
    p = TEDPruner(N, E, **_kw(0.5, noise_tail_rate=0.25, **FLOOR))
    a, b, c = (epoch_losses.run(x, high) for x in (d, t, p))
    assert p.noisy is True and p.tail_rate == 0.25
    assert p.schedule.state_dict() == d.schedule.state_dict()  # the default schedule, unchanged
    assert all(torch.equal(x, y) for x, y in zip(b, c, strict=True))
    assert any(not torch.equal(x, y) for x, y in zip(a, c, strict=True))  # the thinning acts
    assert torch.equal(p.scores, t.scores) and p.budget()["f"] == d.budget()["f"]


@pytest.mark.parametrize("k", [20, 50])
def test_above_the_floor_it_does_nothing(k, epoch_losses):
    high = epoch_losses.every(k)
    d = TEDPruner(N, E, **_kw(0.7, **FLOOR))
    p = TEDPruner(N, E, **_kw(0.7, noise_tail_rate=0.25, **FLOOR))
    a, b = epoch_losses.run(d, high), epoch_losses.run(p, high)
    assert p.noisy is d.noisy is (k == 20) and p.tail_rate == 1.0
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert p.schedule.state_dict() == d.schedule.state_dict()


def test_state_dict_restores_the_thinning(epoch_losses):
    p = TEDPruner(N, E, **_kw(0.5, noise_tail_rate=0.25, **FLOOR))
    epoch_losses.run(p, epoch_losses.every(20), epochs=2)
    assert p.noisy is True
    st = p.state_dict()
    assert st["extra"]["noise"]["tail_rate"] == 0.25
    q = TEDPruner(N, E, **_kw(0.5, noise_tail_rate=0.25, **FLOOR))
    q.load_state_dict(st)
    assert q.noisy is True and q.tail_rate == 0.25
    with pytest.raises(ValueError, match="noise_tail_rate"):  # the decision needs the option
        TEDPruner(N, E, **_kw(0.5, **FLOOR)).load_state_dict(st)
