"""`TEDPruner(score_every=k)` (session 32): TED's per-epoch observation, scoring and draw only every
k-th epoch of a constant keep ratio; the carried epochs train the previous kept set. Bad values
raise; k = 1 is the default bit for bit; the schedule and budget are k = 1's. Float64, seeded."""

from __future__ import annotations

import pytest
import torch
from maskloop import IndexedDataset, fit
from ted_prune import PrunerCallback, TEDPruner
from ted_prune.bench_mnist1d import _pruner
from torch.nn import functional as F
from torch.utils.data import DataLoader


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "2"])
def test_bad_score_every_names_the_argument(value):
    with pytest.raises(ValueError, match="score_every must be an int >= 1"):
        TEDPruner(100, 10, score_every=value)


def test_score_every_needs_last_layer_grads():
    with pytest.raises(ValueError, match="score_every=2 needs grads='last_layer'"):
        TEDPruner(100, 10, score_every=2, grads="full")
    assert TEDPruner(100, 10, score_every=1, grads="full").score_every == 1
    assert TEDPruner(100, 10, grads="full").score_every == 1  # the default where it cannot apply


def test_default_is_score_every_1_and_methods_pin_their_value():
    """Rule s32 adopted k = 4, rule s32b's harm check reverted it: the default is k = 1; rule s32's
    candidate is k = 4 and every earlier bench method and reading pins k = 1 explicitly."""
    import ted_prune.bench_mnist1d as bm
    from ted_prune.bench import make_pruner

    assert TEDPruner(100, 10).score_every == 1
    assert _pruner("TED_s32_every4", 4500, 20, 0.7, 0, None).score_every == 4
    with pytest.raises(ValueError):  # rule s32's short-lived default name is gone
        _pruner("TED_s32", 4500, 20, 0.7, 0, None)
    for m in ("TED", "TED_s25c", "TED_s26", "TED_s28b", "TED_s29", "TED+fresh", "TED_spec"):
        assert _pruner(m, 4500, 20, 0.7, 0, None).score_every == 1, m
    for name in bm.READINGS:
        assert _pruner(f"TED:{name}", 4500, 20, 0.7, 0, None).score_every == 1, name
    for m in ("TED", "TED_norm_class"):  # the digits / text suites' TED
        assert make_pruner(m, 4500, 20, 0.7, 0).score_every == 1


def _fit(problem, **options):
    """10 float64 epochs of a small MLP on 160 fixed 3-class samples (`problem`: conftest's
    `small_problem`; keep 0.4 after 1 warm-up and 2 ramp epochs, re-scoring every 4th); per epoch:
    kept indices, loss weights, whether observed, and the scores at the epoch's end."""
    ds, model = problem(160)
    p = TEDPruner(ds, 10, keep=0.4, warmup=1, ramp=2, rescore_every=4, seed=2,
                  precision="float64", **options)  # fmt: skip
    loader = DataLoader(IndexedDataset(ds), sampler=p.sampler, batch_size=16)
    rec: dict[str, list] = {"idx": [], "w": [], "learns": [], "scores": []}

    class Rec(PrunerCallback):
        def on_epoch_start(self, state):
            super().on_epoch_start(state)
            rec["idx"].append(p.sampler.selection.indices.sort().values.clone())
            rec["w"].append(p.weight.clone())
            rec["learns"].append(p._learns)

        def on_epoch_end(self, state):
            super().on_epoch_end(state)
            rec["scores"].append(p.scores.clone())

    fit(model, loader, epochs=10, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        progress=False, loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"),
        callbacks=[Rec(p)])  # fmt: skip
    return p, rec


def test_score_every_1_never_carries_and_is_deterministic(small_problem):
    """k = 1 (the default, pinned by every earlier bench method): every
    epoch is observed and its pruned epochs drawn anew; two runs agree bit for bit."""
    p0, a = _fit(small_problem)
    p1, b = _fit(small_problem, score_every=1)
    for k in a:
        assert all(torch.equal(u, v) if isinstance(u, torch.Tensor) else u == v
                   for u, v in zip(a[k], b[k], strict=True))  # fmt: skip
    strip = lambda b: {k: v for k, v in b.items() if k != "score_seconds"}  # noqa: E731
    assert strip(p0.budget()) == strip(p1.budget())
    assert all(a["learns"]) and p0.score_every == 1
    assert all(not torch.equal(a["idx"][e], a["idx"][e - 1]) for e in range(4, 10))


def test_carried_epochs_train_the_previous_kept_set_unobserved(small_problem):
    p, r = _fit(small_problem, score_every=2)
    sizes = [len(i) for i in r["idx"]]
    base, r1 = _fit(small_problem)
    assert sizes == [len(i) for i in r1["idx"]] == p.planned_sizes()  # k = 1's schedule
    # epochs 0-2: warm-up and ramp (sizes change); 3 re-scores (rescore_every=4); 4 draws after
    # it (4 % 2 == 0); 5 carries; 6 even; 7 re-scores; 8 even; 9 carries
    carried = [e for e in range(10) if not r["learns"][e]]
    assert carried == [5, 9]
    for e in carried:
        assert torch.equal(r["idx"][e], r["idx"][e - 1]) and torch.equal(r["w"][e], r["w"][e - 1])
        assert torch.equal(r["scores"][e], r["scores"][e - 1])  # nothing scored in a carried epoch
    for e in (4, 6, 8):  # drawn anew: not the previous set
        assert not torch.equal(r["idx"][e], r["idx"][e - 1])
    assert p.budget()["trained"] == base.budget()["trained"]
    assert p.budget()["f"] == pytest.approx(base.budget()["f"])
    assert not torch.equal(r["scores"][-1], r1["scores"][-1])  # not bit-identical to k = 1


def test_carry_condition_against_the_schedule():
    p = TEDPruner(400, 30, budget=0.7, seed=0, score_every=4)
    q = TEDPruner(400, 30, budget=0.7, seed=0)
    assert p.planned_sizes() == q.planned_sizes() and p.planned_budget() == q.planned_budget()
    sizes, rescored = p.planned_sizes(), set(p._rescore_epochs())
    p.scores = torch.rand(400, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    p.has_score[:] = True
    p._obs.labels = torch.arange(400) % 4
    carried = []
    for e in range(30):
        p.select(e)
        if p._carried:
            carried.append(e)
    want = [e for e in range(1, 30) if e % 4 and sizes[e] == sizes[e - 1] < 400
            and e not in rescored]  # fmt: skip
    assert carried == want and len(carried) >= 10


def test_bench_candidate_is_the_defaults_but_score_every():
    c = _pruner("TED_s32_every4", 4500, 20, 0.7, 240, None)
    d = _pruner("TED_s29", 4500, 20, 0.7, 240, None)
    assert c.score_every == 4 and d.score_every == 1
    assert c.planned_sizes() == d.planned_sizes() and c.tail == d.tail
    assert c.state_dict()["extra"]["options"]["score_every"] == 4
