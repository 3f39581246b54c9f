"""`TEDPruner(tail_rate=...)` (session 27): the suspect tail drawn uniformly at `tail_rate` times its
class's keep ratio, the rest of the class by TED's score taking the freed quota. Made-up float64
scores and stored logits; no benchmark run is trained here."""

from __future__ import annotations

import math

import pytest
import torch
from maskloop import Selection
from ted_prune import TEDPruner


@pytest.mark.parametrize(
    ("value", "err"),
    [(0, ValueError), (0.0, ValueError), (-0.5, ValueError), (1.5, ValueError),
     (math.nan, ValueError), (True, TypeError), ("0.5", TypeError), (None, TypeError)],
)  # fmt: skip
def test_bad_tail_rate_names_the_argument(value, err):
    with pytest.raises(err, match="tail_rate"):
        TEDPruner(100, 10, keep=0.5, tail_rate=value)


def test_tail_rate_needs_a_tail():
    with pytest.raises(ValueError, match="tail_rate=0.5.*tail='none'"):
        TEDPruner(100, 10, keep=0.5, tail="none", tail_rate=0.5)
    with pytest.raises(ValueError, match="tail_rate"):  # no tail applies with topk
        TEDPruner(100, 10, keep=0.5, selection="topk", tail_rate=0.5)
    assert TEDPruner(100, 10, keep=0.5).tail_rate == 1.0  # the default: off
    assert TEDPruner(100, 10, keep=0.5, tail="none").tail_rate == 1.0
    assert TEDPruner(100, 10, keep=0.5, tail_rate=1).tail_rate == 1.0


def test_rate_one_is_the_plain_tail_bit_for_bit(stored_tail):
    made_up, pruner = stored_tail
    logits, labels, scores = made_up()
    a = pruner(logits, labels, scores, tail=0.2, tail_rate=1.0).select().indices
    b = TEDPruner(800, 10, keep=0.5, warmup=1, ramp=0, seed=0, tail=0.2, precision="float64")
    b._obs.label_buffer().copy_(labels)
    b._obs.set_buffers(logits, torch.zeros(800, 3))
    b.scores, b.has_score, b.epoch = scores.double(), torch.ones(800, dtype=torch.bool), 5
    assert torch.equal(a, b.select().indices)


@pytest.mark.parametrize(("rate", "keep"), [(0.5, 0.5), (0.25, 0.7), (0.5, 0.9)])
def test_thinned_tail_keeps_class_quotas_and_its_share(rate, keep, stored_tail):
    made_up, pruner = stored_tail
    logits, labels, scores = made_up()
    p = pruner(logits, labels, scores, tail=0.2, tail_rate=rate, keep=keep)
    base = pruner(logits, labels, scores, tail=0.2, tail_rate=1.0, keep=keep)
    kept, kept0 = p.select().indices, base.select().indices
    assert kept.numel() == kept0.numel() == Selection.kept_count(800, keep)
    assert torch.equal(torch.bincount(labels[kept], minlength=4),
                       torch.bincount(labels[kept0], minlength=4))  # fmt: skip
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    tail = p._tail_mask(gid, counts)
    quota = torch.bincount(labels[kept], minlength=4)
    for c in range(4):
        t, m = tail & (labels == c), labels == c
        want = round(rate * int(quota[c]) * int(t.sum()) / int(m.sum()))
        want = max(want, int(quota[c]) - int((m & ~tail).sum()))  # the rest holds at most its size
        got = torch.zeros(800, dtype=torch.bool)
        got[kept] = True
        assert int((got & t).sum()) == want
    assert bool((p.weights(kept) == 1).all())  # loss_weights="none": unit weights


def test_thinned_tail_is_drawn_uniformly_and_the_rest_by_score(stored_tail):
    made_up, pruner = stored_tail
    logits, labels, scores = made_up()
    p = pruner(logits, labels, scores, tail=0.2, tail_rate=0.5)
    kept = p.select().indices
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    tail = p._tail_mask(gid, counts)
    shuffled = scores.clone()
    idx = torch.nonzero(tail).flatten()
    shuffled[idx] = scores[idx.flip(0)]  # the tail's own scores do not matter
    assert torch.equal(
        pruner(logits, labels, shuffled, tail=0.2, tail_rate=0.5).select().indices, kept
    )
    flipped = scores.clone()
    rest = torch.nonzero(~tail).flatten()
    flipped[rest] = 1.0 - scores[rest]
    assert not torch.equal(
        pruner(logits, labels, flipped, tail=0.2, tail_rate=0.5).select().indices, kept
    )


def test_thinning_cuts_the_kept_rate_of_the_tail(stored_tail):
    """Averaged over 20 draws: the tail's kept rate is about rate x keep, the rest's higher."""
    made_up, pruner = stored_tail
    logits, labels, scores = made_up(seed=1)
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    hit = {1.0: 0, 0.5: 0}
    for rate in hit:
        for seed in range(20):
            p = pruner(logits, labels, scores, tail=0.2, tail_rate=rate, keep=0.6, seed=seed)
            tail = p._tail_mask(gid, counts)
            hit[rate] += int(tail[p.select().indices].sum())
    size = 20 * int(tail.sum())
    assert abs(hit[1.0] / size - 0.6) < 0.02
    assert abs(hit[0.5] / size - 0.3) < 0.02


def test_training_with_a_thinned_tail_keeps_the_schedule(small_ted_fit):
    pruner, sizes, weights = small_ted_fit(tail_rate=0.5)
    _, sizes1, _ = small_ted_fit()
    assert sizes == sizes1 == pruner.planned_sizes()
    assert all(bool((w == 1).all()) for w in weights)
    assert pruner.state_dict()["extra"]["options"]["tail_rate"] == 0.5
