"""`TEDPruner(noise_norescore_min_keep=m2)` (session 29): below the late plan's keep floor, the
late shape without re-scoring (keep rho_0 solved with no re-scoring cost) where rho_0 >= m2; the
epoch-0 detector decides; clean (or rho_0 < m2, or above the floor) nothing changes, bit for bit.
Made-up float64 observations through `observe` / `end_epoch` (the `epoch_losses` fixture)."""

from __future__ import annotations

import inspect

import pytest
import torch
from ted_prune import TEDPruner

N, E = 600, 20
FLOOR = {"noise_schedule": "late_epoch0", "noise_min_keep": 0.5}  # s28b's default, written out


def _kw(budget, **extra):
    return dict(budget=budget, seed=3, precision="float64", **extra)


@pytest.mark.parametrize(
    ("value", "err"),
    [(0.0, ValueError), (1.0, ValueError), (-0.2, ValueError), (float("nan"), ValueError),
     ("0.35", TypeError), (True, TypeError)],
)  # fmt: skip
def test_bad_values_name_the_argument(value, err):
    with pytest.raises(err, match="noise_norescore_min_keep"):
        TEDPruner(N, E, **_kw(0.5, noise_norescore_min_keep=value, **FLOOR))


@pytest.mark.parametrize("extra", [{"noise_schedule": "off"}, {"noise_schedule": "late"},
                                   {"keep": 0.5, "budget": None}])  # fmt: skip
def test_needs_the_epoch0_detector(extra):
    with pytest.raises(ValueError, match="noise_norescore_min_keep"):
        TEDPruner(N, E, **{**_kw(0.5, noise_norescore_min_keep=0.35), **extra})


def test_default_off_and_the_plan_arithmetic():
    assert inspect.signature(TEDPruner).parameters["noise_norescore_min_keep"].default is None
    p = TEDPruner(3500, E, budget=0.5, **FLOOR)
    assert p.noise_norescore_min_keep is None and p.noise_active is False and p._late is None
    got = {}
    for f in (0.7, 0.5, 0.48, 0.45, 0.3):
        q = TEDPruner(3500, E, budget=f, noise_norescore_min_keep=0.35, **FLOOR)
        k0 = None if q.noise_norescore_keep is None else round(q.noise_norescore_keep, 3)
        got[f] = (k0, q._late_norescore, q.noise_active)
    # rho_0 = (20 f - 4) / 16; above the s28b floor (f = 0.7) the plan with re-scoring runs
    assert got == {0.7: (None, False, True), 0.5: (0.375, True, True), 0.48: (0.35, True, True),
                   0.45: (0.312, False, False), 0.3: (0.125, False, False)}  # fmt: skip


def test_clean_epoch0_is_the_default_bit_for_bit(epoch_losses):
    high = epoch_losses.every(50)
    d = TEDPruner(N, E, **_kw(0.5, **FLOOR))
    p = TEDPruner(N, E, **_kw(0.5, noise_norescore_min_keep=0.35, **FLOOR))
    a, b = epoch_losses.run(d, high), epoch_losses.run(p, high)
    assert p.noisy is False and p.rescore_every == 5
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert torch.equal(p.scores, d.scores) and p.budget()["f"] == d.budget()["f"]


def test_noisy_epoch0_is_the_late_shape_without_rescoring_bit_for_bit(epoch_losses):
    high = epoch_losses.every(20)
    late0 = TEDPruner(N, E, **_kw(0.5, noise_schedule="off", warmup=1, ramp=0, anneal=3,
                                  rescore_every=0))  # fmt: skip
    p = TEDPruner(N, E, **_kw(0.5, noise_norescore_min_keep=0.35, **FLOOR))
    d = TEDPruner(N, E, **_kw(0.5, **FLOOR))
    a, b, c = (epoch_losses.run(x, high) for x in (late0, p, d))
    assert p.noisy is True and p.rescore_every == 0
    assert [x.numel() for x in b] == late0.planned_sizes() == p.planned_sizes()
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert torch.equal(p.scores, late0.scores)
    assert p.budget()["scored"] == 0 and abs(p.budget()["f"] - 0.5) < 2 / N
    assert [x.numel() for x in c] != [x.numel() for x in b]  # the default's sizes differ


def test_above_the_floor_it_does_nothing(epoch_losses):
    high = epoch_losses.every(20)
    d = TEDPruner(N, E, **_kw(0.7, **FLOOR))
    p = TEDPruner(N, E, **_kw(0.7, noise_norescore_min_keep=0.35, **FLOOR))
    a, b = epoch_losses.run(d, high), epoch_losses.run(p, high)
    assert p.noisy is d.noisy is True and p.rescore_every == 5
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_state_dict_restores_the_plan(epoch_losses):
    p = TEDPruner(N, E, **_kw(0.5, noise_norescore_min_keep=0.35, **FLOOR))
    epoch_losses.run(p, epoch_losses.every(20), epochs=2)
    st = p.state_dict()
    q = TEDPruner(N, E, **_kw(0.5, noise_norescore_min_keep=0.35, **FLOOR))
    q.load_state_dict(st)
    assert q.noisy is True and q.rescore_every == 0 and q.planned_sizes() == p.planned_sizes()
    with pytest.raises(ValueError, match="noise_norescore_min_keep"):
        TEDPruner(N, E, **_kw(0.5, **FLOOR)).load_state_dict(st)
