"""`TEDPruner(tail=...)` (session 26): a suspect tail (misclassified by the stored logits, or each
class's highest-loss fraction) drawn uniformly at its class's keep ratio, the rest by TED's score,
and the session's readings. The study scripts' tests were retired with the scripts in session 32
(commit e375864 has them). No benchmark run is trained here."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from maskloop import Selection
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import READINGS, _pruner
from ted_prune.sampling import sample_groups

DEFAULTS = {k: p.default for k, p in inspect.signature(TEDPruner).parameters.items()}
# every reading pins noise_schedule="off" (the default is None since session ted-28b) and
# score_every=1 (the default; rule s32 made it 4 and rule s32b reverted it)
SKIP = ("tail", "loss_weights", "noise_schedule", "score_every")


@pytest.mark.parametrize(
    ("value", "err"),
    [
        ("wrong", ValueError),
        ("", ValueError),
        (0.0, ValueError),
        (1.0, ValueError),
        (-0.2, ValueError),
        (math.nan, ValueError),
        (True, TypeError),
        ([0.1], TypeError),
    ],
)
def test_bad_tail_names_the_argument(value, err):
    with pytest.raises(err, match="tail"):
        TEDPruner(100, 10, keep=0.5, tail=value)


def test_tail_needs_sampled_selection_and_last_layer_grads():
    with pytest.raises(ValueError, match="tail.*selection='sample'"):
        TEDPruner(100, 10, keep=0.5, selection="topk", tail="misclassified")
    with pytest.raises(ValueError, match="tail.*grads='last_layer'"):
        TEDPruner(100, 10, keep=0.5, grads="full", tail=0.1)
    TEDPruner(100, 10, keep=0.5, selection="topk", tail="none")  # off: allowed
    assert TEDPruner(100, 10, keep=0.5, tail=1 / 4).tail == 0.25
    # the default (session ted-26c): 0.2 where a tail applies, else off
    assert DEFAULTS["tail"] is None and DEFAULTS["loss_weights"] == "none"
    assert TEDPruner(100, 10, keep=0.5).tail == 0.2
    assert TEDPruner(100, 10, keep=0.5, selection="topk").tail == "none"
    assert TEDPruner(100, 10, keep=0.5, grads="full").tail == "none"
    assert TEDPruner(100, 10, keep=0.5, tail=None).tail == 0.2


def test_no_uniform_group_is_the_plain_draw_bit_for_bit():
    g0 = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 5, (600,), generator=g0)
    s = torch.randn(600, generator=g0, dtype=torch.float64)
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    quota = (counts.double() * 0.4).floor().long()
    a = sample_groups(s, gid, counts, quota, 0.05, torch.Generator().manual_seed(3))
    b = sample_groups(s, gid, counts, quota, 0.05, torch.Generator().manual_seed(3),
                      uniform_groups=torch.zeros(5, dtype=torch.bool))  # fmt: skip
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    uni = torch.tensor([True, False, False, False, True])
    _, p = sample_groups(s, gid, counts, quota, 0.05, torch.Generator().manual_seed(3),
                         uniform_groups=uni)  # fmt: skip
    for c in range(5):
        m = gid == c
        if uni[c]:
            assert torch.allclose(p[m], torch.full_like(p[m], float(quota[c] / counts[c])))
        else:
            assert torch.equal(p[m], a[1][m])


def test_tail_masks_read_the_stored_logits(stored_tail):
    made_up, pruner = stored_tail
    logits, labels, scores = made_up()
    p = pruner(logits, labels, scores, tail="misclassified", loss_weights="importance")
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    mis = logits.argmax(1) != labels
    assert 0 < int(mis.sum()) < 800
    assert torch.equal(p._tail_mask(gid, counts), mis)
    p = pruner(logits, labels, scores, tail=0.1, loss_weights="importance")
    tail = p._tail_mask(gid, counts)
    py = torch.softmax(logits, 1)[torch.arange(800), labels]
    for c in range(4):
        m = labels == c
        assert int(tail[m].sum()) == 20  # 10% of 200
        assert float(py[m & tail].max()) < float(py[m & ~tail].min())  # the highest losses


@pytest.mark.parametrize("tail", ["misclassified", 0.1, 0.3])
def test_tail_keeps_the_class_quotas_and_draws_its_tail_uniformly(tail, stored_tail):
    made_up, pruner = stored_tail
    logits, labels, scores = made_up()
    p = pruner(logits, labels, scores, tail=tail, loss_weights="importance")
    base = pruner(logits, labels, scores, tail="none", loss_weights="importance")
    kept, kept0 = p.select().indices, base.select().indices
    total = Selection.kept_count(800, p.keep_ratio(5))
    assert kept.numel() == kept0.numel() == total
    assert torch.equal(torch.bincount(labels[kept], minlength=4),
                       torch.bincount(labels[kept0], minlength=4))  # fmt: skip
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    mask = p._tail_mask(gid, counts)
    w = p.weights(kept)
    k = p.keep_ratio(5)
    for c in range(4):  # the tail's weight is k / (its quota / its size), one value per class
        t = mask[kept] & (labels[kept] == c)
        if t.sum() > 1:
            assert torch.allclose(w[t].double(), w[t][0].double().expand(int(t.sum())))
            size = int((mask & (labels == c)).sum())
            assert float(w[t][0]) == pytest.approx(k * size / int(t.sum()), rel=1e-6)
    # the tail's own scores do not matter (uniform draw), the rest's do
    shuffled = scores.clone()
    idx = torch.nonzero(mask).flatten()
    shuffled[idx] = scores[idx.flip(0)]
    assert torch.equal(
        pruner(logits, labels, shuffled, tail=tail, loss_weights="importance").select().indices,
        kept,
    )
    flipped = scores.clone()
    rest = torch.nonzero(~mask).flatten()
    flipped[rest] = 1.0 - scores[rest]
    assert not torch.equal(
        pruner(logits, labels, flipped, tail=tail, loss_weights="importance").select().indices, kept
    )


def test_tail_cuts_the_over_exposure_of_misclassified_samples(stored_tail):
    """Misclassified samples with the highest scores: the default keeps most of them, the tail
    keeps them at about the class keep ratio (float64 made-up data, averaged over 20 draws)."""
    made_up, pruner = stored_tail
    logits, labels, scores = made_up(seed=1)
    logits[torch.arange(800), labels] += 1.0  # fewer misclassified: below the always-kept 40%
    mis = logits.argmax(1) != labels
    assert 0.1 < float(mis.double().mean()) < 0.3
    scores = torch.where(mis, scores + 10.0, scores)  # TED's tilt: misclassified score highest
    rate = {}
    for tail in ("none", "misclassified"):
        hits = 0
        for seed in range(20):
            p = pruner(
                logits, labels, scores, tail=tail, loss_weights="importance", keep=0.7, seed=seed
            )
            hits += int(mis[p.select().indices].sum())
        rate[tail] = hits / (20 * int(mis.sum()))
    assert rate["none"] > 0.8  # Gumbel top-k: inclusion near, not at, p = 1
    assert abs(rate["misclassified"] - 0.7) < 0.05
    assert rate["none"] - rate["misclassified"] > 0.1


def test_tiny_tails_keep_exact_quotas(stored_tail):
    """20 classes of 3 samples, one misclassified each, keep 0.3: tail quotas round to 0 or 1,
    every class still keeps its quota and the total is exact."""
    _, pruner = stored_tail
    labels = torch.arange(60) % 20
    logits = torch.zeros(60, 20, dtype=torch.float64)
    logits[torch.arange(60), labels] = 2.0
    logits[:20, :] = 0.0
    logits[torch.arange(20), (labels[:20] + 1) % 20] = 2.0  # the first of each class: wrong
    scores = torch.rand(60, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    for keep in (0.3, 0.7):
        p = pruner(
            logits, labels, scores, tail="misclassified", loss_weights="importance", keep=keep
        )
        base = pruner(logits, labels, scores, tail="none", loss_weights="importance", keep=keep)
        kept, kept0 = p.select().indices, base.select().indices
        assert kept.numel() == kept0.numel()
        assert torch.equal(torch.bincount(labels[kept], minlength=20),
                           torch.bincount(labels[kept0], minlength=20))  # fmt: skip


def test_training_with_a_tail_keeps_the_schedule_and_its_option(small_ted_fit):
    pruner, sizes, _ = small_ted_fit(tail="misclassified", loss_weights="none")
    assert sizes == pruner.planned_sizes()
    assert bool((pruner.weight == 1).all())  # loss_weights="none"
    assert pruner.state_dict()["extra"]["options"]["tail"] == "misclassified"
    _, sizes10, _ = small_ted_fit(tail=0.1, loss_weights="none")
    assert sizes10 == sizes


@pytest.mark.parametrize(("name", "tail"), [("prune_residual_sample_w1_tmis", "misclassified"),
                                            ("prune_residual_sample_w1_tail10", 0.1)])  # fmt: skip
def test_tail_readings_are_the_current_defaults_but_weights_and_tail(name, tail):
    reading = READINGS[name]
    assert reading["tail"] == tail and reading["loss_weights"] == "none"
    assert all(DEFAULTS[k] == v for k, v in reading.items() if k not in SKIP)
    pruner = _pruner(f"TED:{name}", 600, 10, 0.7, 0, None)  # what the study's arm builds
    assert pruner.tail == tail and pruner.loss_weights == "none" and pruner.max_weight == 2.0


def test_tail20_reading_is_the_current_defaults_but_weights_and_tail():
    reading = READINGS["prune_residual_sample_w1_tail20"]
    assert reading["tail"] == 0.2 and reading["loss_weights"] == "none"
    assert all(DEFAULTS[k] == v for k, v in reading.items() if k not in SKIP)
