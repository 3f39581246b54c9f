"""TED's named readings against brute force, the class guarantee, sampling, and the InfoBatch and
random-on-its-own-schedule baselines as their authors run them."""

import pytest
import torch
from ted_prune import SPEC_READING, InfoBatch, RandomSizes, TEDPruner
from ted_prune.ted import _scores_from_grads, last_layer_factors, quantiles, ted_scores


def _factors(n=30, d=4, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    feats = torch.randn(n, d, generator=g, dtype=torch.float64)
    logits = torch.randn(n, c, generator=g, dtype=torch.float64)
    y = torch.randint(0, c, (n,), generator=g)
    return feats, logits, y


READINGS = [
    ("keep_aligned", "signed"),
    ("keep_aligned", "abs"),
    ("prune_aligned", "signed"),
    ("prune_aligned", "abs"),
    ("prune_aligned", "residual"),
]


@pytest.mark.parametrize("curvature", ["none", "diagonal"])
@pytest.mark.parametrize(("direction", "rank"), READINGS)
def test_closed_form_scores_equal_explicit_outer_product_gradients(direction, rank, curvature):
    """ted_scores from (e, h~) equals the same reading on explicit last-layer gradients e_i h~_i^T."""
    feats, logits, y = _factors()
    e, h = last_layer_factors(feats, logits, y)
    g = torch.einsum("nc,nd->ncd", e, h).reshape(len(y), -1)
    target = torch.arange(len(y)) % 3 != 0
    got, a = ted_scores(e, h, target, direction=direction, rank=rank, curvature=curvature)
    expect, a2 = _scores_from_grads(g, target, direction, rank, curvature, 0.1)
    torch.testing.assert_close(a, a2, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got, expect, rtol=1e-10, atol=1e-12)
    # brute force of the alignment itself: a_i = sum_cd gT_cd P_cd g_i,cd
    gt = g[target].mean(0)
    if curvature == "diagonal":
        fisher = (g * g).mean(0)
        gt = gt / (fisher + 0.1 * fisher.mean())
    torch.testing.assert_close(a, g @ gt, rtol=1e-10, atol=1e-12)
    if rank == "residual" and curvature == "none":  # ||g_i||^2 - max(a_i, 0)^2 / ||g_T||^2
        gm = g[target].mean(0)
        r = (g * g).sum(1) - (g @ gm).clamp_min(0) ** 2 / (gm @ gm)
        torch.testing.assert_close(got, r, rtol=1e-10, atol=1e-12)


def _pruner_with_biased_class(**kw):
    """40 samples, 4 classes; class 3's samples all get the lowest spec scores."""
    n = 40
    y = torch.arange(n) % 4
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(n, 5, generator=g)
    logits = torch.randn(n, 4, generator=g)
    logits[y == 3, 3] = 8.0  # class 3 fitted: tiny gradients, alignment ~ 0
    logits[y != 3] = 0.0
    logits[y != 3, 3] = 3.0  # every other class pushed towards class 3: large, shared gradients
    p = TEDPruner(n, epochs=4, keep=0.25, warmup=1, ramp=0, rescore_every=0, **kw)
    p.observe(torch.arange(n), logits, feats, y)
    p.end_epoch()
    return p, y


def test_no_class_drops_out_by_default():
    """TEDPruner (defaults): every class keeps samples at keep=0.25; the spec reading drops one."""
    p, y = _pruner_with_biased_class()
    kept = y[p.select().indices]
    assert set(kept.tolist()) == {0, 1, 2, 3}
    counts = torch.bincount(kept, minlength=4)
    assert counts.min() >= 2 and counts.sum() == 10
    spec, y = _pruner_with_biased_class(**SPEC_READING)
    assert 3 not in set(y[spec.select().indices].tolist())  # why the default balances classes


def test_no_class_drops_out_when_sampling():
    """selection='sample' (balance='class'): exact count, per-class quotas, capped weights."""
    p, y = _pruner_with_biased_class(
        selection="sample", floor=0.1, max_weight=3.0, loss_weights="importance"
    )
    sel = p.select()
    assert len(sel) == 10
    assert torch.bincount(y[sel.indices], minlength=4).min() >= 2
    w = p.weights(sel.indices)
    assert float(w.max()) <= 3.0 and float(w.min()) > 0
    assert p.reweights and p.weights(torch.tensor([0, 1])).shape == (2,)


def test_stale_quantile_scores_are_rank_quantiles():
    """stale='quantile': after one full epoch the scores are the fresh scores' rank quantiles."""
    feats, logits, y = _factors(n=20)
    p = TEDPruner(
        20,
        epochs=3,
        keep=0.5,
        warmup=1,
        ramp=0,
        rescore_every=0,
        balance="none",
        precision="float64",
    )
    p.observe(torch.arange(20), logits.float(), feats.float(), y)
    p.end_epoch()
    e, h = last_layer_factors(feats.float(), logits.float(), y)
    raw, _ = ted_scores(e, h, torch.ones(20, dtype=torch.bool))
    torch.testing.assert_close(p.scores, quantiles(raw))
    assert sorted(p.scores.tolist()) == [i / 20 for i in range(1, 21)]


def test_retained_target_uses_this_epochs_selection():
    """target='retained': g_T is the mean gradient of the samples kept in the epoch."""
    feats, logits, y = _factors(n=16)
    kw = {"warmup": 1, "ramp": 0, "rescore_every": 0, "stale": "raw", "balance": "none"}
    kw["precision"] = "float64"
    p = TEDPruner(16, epochs=4, keep=0.5, **kw)
    p.observe(torch.arange(16), logits.float(), feats.float(), y)
    p.end_epoch()
    keep = p.select().indices
    p.observe(keep, logits[keep].float(), feats[keep].float(), y[keep])
    before = p.scores.clone()
    p.end_epoch()
    e, h = last_layer_factors(feats.float(), logits.float(), y)
    mask = torch.zeros(16, dtype=torch.bool)
    mask[keep] = True
    s, _ = ted_scores(e, h, mask)
    expect = before.clone()
    expect[keep] = 0.5 * before[keep] + 0.5 * s[keep]
    torch.testing.assert_close(p.scores, expect)


def test_bad_reading_options_are_rejected():
    with pytest.raises(ValueError, match="direction"):
        TEDPruner(10, epochs=3, direction="sideways")
    with pytest.raises(ValueError, match="residual"):
        TEDPruner(10, epochs=3, direction="keep_aligned", rank="residual")
    with pytest.raises(ValueError, match="floor"):
        TEDPruner(10, epochs=3, floor=1.5)


# --- InfoBatch as the authors run it ------------------------------------------------------------
def _feed(p, losses):
    sel = p.select()
    idx = sel.indices
    p.observe(idx, torch.zeros(len(idx), 2), None, torch.zeros(len(idx), dtype=torch.long),
              losses[idx].float())  # fmt: skip
    p.end_epoch()
    return sel


def test_infobatch_ratio_capped_at_point_nine_and_exact_kept_count():
    """prune_ratio=0.95 acts as 0.9: int(0.1 |W|) well-learned kept, weight 10, others weight 1."""
    n = 200
    p = InfoBatch(n, 16, keep=None, prune_ratio=0.95)
    losses = torch.linspace(0.0, 2.0, n, dtype=torch.float64) ** 2
    sel0 = _feed(p, losses)
    assert len(sel0) == n  # epoch 0: all scores equal, nothing pruned
    sel = p.select()
    well = losses < losses.mean()
    nw = int(well.sum())
    assert len(sel) == (n - nw) + int(0.1 * nw)
    w = p.weights(sel.indices).double()
    assert set(w.tolist()) == {1.0, 10.0}
    assert torch.equal(w == 10.0, well[sel.indices])


def test_infobatch_budget_mode_caps_ratio_and_annealing_resets_weights():
    """keep=0.05 would need r > 0.9: r stays 0.9; the annealing epochs train all data at weight 1."""
    n, e = 100, 8
    p = InfoBatch(n, e, keep=0.05)
    assert p.stop_epoch == 7  # prune while e + 1 <= 0.875 E
    losses = torch.linspace(0.0, 1.0, n, dtype=torch.float64) ** 3
    for _ in range(7):
        _feed(p, losses)
        assert p.ratio <= 0.9 + 1e-12
    assert p.ratio == pytest.approx(0.9)
    sel = p.select(7)
    assert len(sel) == n and torch.equal(p.weights(torch.arange(n)), torch.ones(n))


def test_random_sizes_follow_the_given_schedule():
    """RandomSizes keeps sizes[e] samples; dynamic redraws per epoch, static reuses the set."""
    sizes = [50, 20, 20, 50]
    dyn = RandomSizes(50, 4, sizes, seed=3)
    sta = RandomSizes(50, 4, sizes, dynamic=False, seed=3)
    assert [len(dyn.select(e)) for e in range(4)] == sizes
    assert not torch.equal(dyn.select(1).indices.sort().values, dyn.select(2).indices.sort().values)
    assert torch.equal(sta.select(1).indices.sort().values, sta.select(2).indices.sort().values)
    with pytest.raises(ValueError, match="sizes"):
        RandomSizes(50, 4, [50, 0, 20, 50])
