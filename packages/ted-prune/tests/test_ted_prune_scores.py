"""TED's alignment scores against brute-force per-sample gradients, and the schedule/budget maths."""

import pytest
import ted_prune
import torch
from ted_prune import (
    SPEC_READING,
    ProgressiveSchedule,
    TEDPruner,
    alignment_full,
    alignment_last_layer,
    keep_for_budget,
    predicted_igd,
)
from torch import nn
from torch.nn import functional as F


def _tiny(seed=0):
    """A float64 model and data: the closed forms are checked to rounding error, not float32's."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = torch.randn(12, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (12,))
    return model, x, y


def _brute_last_layer(model, x, y):
    head = model[2]
    rows = []
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([head.weight.grad.flatten(), head.bias.grad]).double())
    return torch.stack(rows)


@pytest.mark.parametrize("normalize", [False, True])
def test_last_layer_alignment_matches_brute_force(normalize):
    model, x, y = _tiny()
    g = _brute_last_layer(model, x, y)
    if normalize:
        g = g / g.norm(dim=1, keepdim=True)
    target = torch.zeros(12, dtype=torch.bool)
    target[:5] = True
    expect_full = g @ g.mean(0)
    expect_part = g @ g[target].mean(0)
    with torch.no_grad():
        feats = model[1](model[0](x))
        logits = model(x)
    got_full = alignment_last_layer(feats, logits, y, normalize=normalize)
    got_part = alignment_last_layer(feats, logits, y, target_mask=target, normalize=normalize)
    torch.testing.assert_close(got_full, expect_full, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got_part, expect_part, rtol=1e-10, atol=1e-12)


def test_full_alignment_matches_autograd_loop():
    model, x, y = _tiny(1)
    rows = []
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]).double())
    g = torch.stack(rows)
    torch.testing.assert_close(alignment_full(model, x, y), g @ g.mean(0), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("normalize", [False, True])
def test_pruner_scores_equal_closed_form_after_one_epoch(normalize):
    """observe() over the whole data at fixed weights, then end_epoch: scores = alignment."""
    model, x, y = _tiny(2)
    p = TEDPruner(
        12,
        epochs=3,
        keep=0.5,
        warmup=1,
        ramp=0,
        rescore_every=0,
        normalize=normalize,
        **SPEC_READING,
    )
    with torch.no_grad():
        feats = model[1](model[0](x))
        logits = model(x)
    for s in (slice(0, 5), slice(5, 12)):
        idx = torch.arange(12)[s]
        p.observe(idx, logits[s], feats[s], y[s])
    p.end_epoch()
    expect = alignment_last_layer(feats, logits, y, normalize=normalize)
    torch.testing.assert_close(p.scores, expect)
    # epoch 1 keeps the 6 most aligned samples (spec default: global ranking)
    sel = p.select()
    assert len(sel) == 6 and p.epoch == 1
    if not normalize:
        assert set(sel.indices.tolist()) == set(torch.topk(expect, 6).indices.tolist())


def test_ema_over_epochs_with_stale_pruned_factors():
    """Epoch 1 observes only the kept samples: their scores become beta*old + (1-beta)*new, with
    g_D formed from the new factors of kept samples and the stored ones of pruned samples."""
    model, x, y = _tiny(3)
    p = TEDPruner(
        12,
        epochs=3,
        keep=0.5,
        warmup=1,
        ramp=0,
        rescore_every=0,
        beta=0.25,
        precision="float64",
        **SPEC_READING,
    )
    with torch.no_grad():
        f0, l0 = model[1](model[0](x)), model(x)
    p.observe(torch.arange(12), l0, f0, y)
    p.end_epoch()
    a0 = p.scores.clone()
    keep = p.select().indices
    with torch.no_grad():
        for w in model.parameters():
            w.add_(0.3 * torch.randn_like(w))
        f1, l1 = model[1](model[0](x)), model(x)
    p.observe(keep, l1[keep], f1[keep], y[keep])
    p.end_epoch()
    fc, lc = f0.clone(), l0.clone()
    fc[keep], lc[keep] = f1[keep], l1[keep]
    a1 = alignment_last_layer(fc, lc, y)
    expect = a0.clone()
    expect[keep] = 0.25 * a0[keep] + 0.75 * a1[keep]
    torch.testing.assert_close(p.scores, expect)
    torch.testing.assert_close(p.last_alignment[keep], a1[keep])


def test_pruner_with_exact_per_sample_grads_matches_alignment_full():
    """grads='full': end_epoch(model, dataset) scores every sample by torch.func gradients."""
    from torch.utils.data import TensorDataset

    model, x, y = _tiny(4)
    ds = TensorDataset(x, y)
    p = TEDPruner(ds, epochs=2, keep=0.5, warmup=1, ramp=0, grads="full", **SPEC_READING)
    assert not p.uses_features
    p.observe(torch.arange(12), model(x).detach(), None, y)
    rec = p.end_epoch(model, ds, batch_size=5)
    torch.testing.assert_close(p.scores, alignment_full(model, x, y))
    assert rec["scored"] == 36  # N per-sample backward passes = N / forward_cost forwards
    assert p.budget()["f"] == pytest.approx(12 / 24 + 12 / 24)
    with pytest.raises(ValueError, match="grads='full'"):
        TEDPruner(ds, epochs=2, grads="full").end_epoch()


def test_class_quantile_scores_match_per_class_loop():
    from ted_prune.ted import class_quantile_scores

    g = torch.Generator().manual_seed(0)
    s = torch.randn(50, generator=g, dtype=torch.float64)
    s[3] = float("inf")
    s[7] = s[8]
    lab = torch.randint(-1, 4, (50,), generator=g)
    got = class_quantile_scores(s, lab)
    for c in lab.unique():
        idx = torch.nonzero(lab == c).flatten()
        order = torch.argsort(-s[idx], stable=True)
        q = (torch.arange(idx.numel(), dtype=torch.float64) + 0.5) / idx.numel()
        expect = torch.empty(idx.numel(), dtype=torch.float64)
        q = -q
        q[0] = 1.0  # the best of every class is always kept
        expect[order] = q
        torch.testing.assert_close(got[idx], expect, atol=2e-9, rtol=0)


def test_predicted_igd_is_mean_over_pruned():
    a = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    m = torch.tensor([True, False, True, False])
    assert predicted_igd(a, m, lr=0.5) == pytest.approx(0.5 * 6 / 4)


def test_schedule_shape_and_budget_solver():
    s = ProgressiveSchedule(20, 0.4, warmup=2, ramp=5, anneal=2)
    f = s.fractions()
    assert f[:2] == [1.0, 1.0] and f[-2:] == [1.0, 1.0]
    assert all(a >= b for a, b in zip(f[2:18], f[3:18]))  # non-increasing ramp
    assert f[10] == pytest.approx(0.4)
    rho = keep_for_budget(0.6, 20, warmup=2, ramp=5, anneal=2)
    assert ProgressiveSchedule(20, rho, 2, 5, 2).mean() == pytest.approx(0.6, abs=1e-6)
    with pytest.raises(ValueError, match="budget"):
        keep_for_budget(0.1, 20, warmup=2, ramp=5, anneal=2)


def test_public_api_listed():
    for name in ted_prune.__all__:
        assert hasattr(ted_prune, name)


def test_version_matches_metadata():
    import importlib.metadata

    assert ted_prune.__version__ == importlib.metadata.version("ted-prune")
