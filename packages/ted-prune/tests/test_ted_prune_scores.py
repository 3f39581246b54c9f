"""TED's alignment scores against brute-force per-sample gradients, and the schedule/budget maths."""

import pytest
import ted_prune
import torch
from ted_prune import (
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
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3))
    x = torch.randn(12, 5)
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
    torch.testing.assert_close(got_full, expect_full, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(got_part, expect_part, rtol=1e-5, atol=1e-7)


def test_full_alignment_matches_autograd_loop():
    model, x, y = _tiny(1)
    rows = []
    for i in range(len(x)):
        model.zero_grad()
        F.cross_entropy(model(x[i : i + 1]), y[i : i + 1]).backward()
        rows.append(torch.cat([p.grad.flatten() for p in model.parameters()]).double())
    g = torch.stack(rows)
    torch.testing.assert_close(alignment_full(model, x, y), g @ g.mean(0), rtol=1e-5, atol=1e-7)


def test_pruner_scores_equal_closed_form_after_one_epoch():
    """observe() over the whole data at fixed weights, then end_epoch: scores = alignment."""
    model, x, y = _tiny(2)
    p = TEDPruner(12, epochs=3, keep=0.5, warmup=1, ramp=0, rescore_every=0)
    with torch.no_grad():
        feats = model[1](model[0](x))
        logits = model(x)
    for s in (slice(0, 5), slice(5, 12)):
        idx = torch.arange(12)[s]
        p.observe(idx, logits[s], feats[s], y[s])
    p.end_epoch()
    torch.testing.assert_close(p.scores, alignment_last_layer(feats, logits, y, normalize=True))
    # epoch 1 keeps 6 samples: per class the top half by score
    sel = p.select()
    assert len(sel) == 6 and p.epoch == 1


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
