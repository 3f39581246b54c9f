"""Session 32's reading (issue 18): confident self-training of the classifier over the target's s
(``CDHMClassifier(self_train_tau=...)``, :func:`cdhm.models.confident_self_training`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cdhm import CDHMClassifier, simulate_domain
from cdhm.models import confident_self_training


@pytest.fixture(scope="module")
def toy():
    kw = {"recordings_per_class": 2, "windows_per_recording": 6, "window": 512}
    return simulate_domain("L0", 0, seed=0, tier="mild", **kw), simulate_domain(
        "D", 1, seed=0, tier="hard", **kw
    )


def _batch(est, a, b):
    """8 source windows of `a` and 8 target windows of `b`, float64, in the fit's format."""
    ia, ib = np.linspace(0, len(a) - 1, 8).astype(int), np.linspace(0, len(b) - 1, 8).astype(int)
    return {
        "xs": est._tensor(a.x[ia]).double(),
        "ys": torch.from_numpy(np.searchsorted(est.classes_, a.y[ia])),
        "cs": torch.zeros(8, dtype=torch.long),
        "xt": est._tensor(b.x[ib]).double(),
        "ct": torch.ones(8, dtype=torch.long),
    }


def test_confident_self_training_matches_its_equation():
    """(1/m) sum_j 1[max p_j >= tau] (-log p_j,argmax) and its gradient keep_j (p_j - e_yhat) / m,
    by hand in float64; labels and mask are constants."""
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(9, 4, generator=g, dtype=torch.float64) * 2.0).requires_grad_()
    p = torch.softmax(logits.detach(), -1).numpy()
    conf, yhat = p.max(1), p.argmax(1)
    tau = float(np.median(conf))
    keep = conf >= tau
    assert 0 < keep.sum() < 9
    expected = float((keep * -np.log(p[np.arange(9), yhat])).sum() / 9)
    loss, mask = confident_self_training(logits, tau)
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12)
    assert mask.tolist() == keep.tolist()
    loss.backward()
    grad = keep[:, None] * (p - np.eye(4)[yhat]) / 9
    np.testing.assert_allclose(logits.grad.numpy(), grad, rtol=1e-10, atol=1e-14)
    low, _ = confident_self_training(logits.detach(), 1e-9)  # every window kept
    assert float(low) > float(loss.detach())
    with pytest.raises(ValueError, match="logits"):
        confident_self_training(torch.zeros(4), 0.9)


def test_self_train_term_enters_the_step_loss_as_written_and_trains_the_head(toy):
    """step loss = loss without the option + lambda_y w(p) st (float64, same random draws); the
    term's gradient reaches the fault head and the target guide, not the source guide; before the
    untied split its weight is 0 and the loss is the plain one."""
    import pyro

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["adapt_start"] = 0.0  # split at the first step: the fit builds the target guide
    est = CDHMClassifier(self_train_tau=0.25, lambda_y=0.8, progress=False, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert est.net_.target_split and np.isfinite(est.history_["self_train_ce"]).all()
    net = est.net_ = est.net_.double()
    plain = CDHMClassifier(lambda_y=0.8, progress=False, **kw)
    plain.net_, plain.classes_ = net, est.classes_
    batch = _batch(est, a, b)
    with torch.no_grad():
        s_t = net.encode(batch["xt"], batch["ct"], torch.ones(8, dtype=torch.bool))["s_loc"]
        logits = net.fault_logits(s_t)
    # a threshold inside the batch's confidences: some windows kept, some not
    est.self_train_tau = float(torch.softmax(logits, -1).max(1).values.median())
    st, keep = confident_self_training(logits, est.self_train_tau)
    assert 0 < int(keep.sum()) < 8
    pyro.set_rng_seed(3)
    loss, logs = est._step(batch, 0.8)
    pyro.set_rng_seed(3)
    base, _ = plain._step(batch, 0.8)
    w = est._adapt_weight(0.8)
    assert w > 0.5 and 0.8 * w * float(st) > 1e-4  # detectable
    assert logs["self_train_ce"] == pytest.approx(float(st), rel=1e-10)
    assert float(loss.detach()) == pytest.approx(
        float(base.detach()) + 0.8 * w * float(st), rel=1e-10
    )
    # the term alone: gradient into the head and the target guide, none into the source guide
    net.zero_grad()
    s_t = net.encode(batch["xt"], batch["ct"], torch.ones(8, dtype=torch.bool))["s_loc"]
    confident_self_training(net.fault_logits(s_t), est.self_train_tau)[0].backward()

    def grad_mass(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_mass(net.fault_head) > 0 and grad_mass(net.target_guide) > 0
    assert all(p.grad is None for p in net.encoder.parameters())
    # before the split (progress < adapt_start) the weight is 0: the plain loss exactly
    est.adapt_start = plain.adapt_start = 0.5
    pyro.set_rng_seed(4)
    early, _ = est._step(batch, 0.2)
    pyro.set_rng_seed(4)
    early_base, _ = plain._step(batch, 0.2)
    assert est._adapt_weight(0.2) == 0.0
    assert float(early.detach()) == float(early_base.detach())


def test_self_train_row_differs_from_the_default_in_tau_only_and_keeps_the_cache_key():
    """The bench row is the library default's row with self_train_tau=0.9; at its off value
    (None, the default) the option stays out of the cache key (committed caches keep theirs)."""
    from cdhm.bench import DEFAULT_ROW, S32_SELF_TRAIN_VARIANTS, BenchConfig, _cache_key, _estimator

    assert CDHMClassifier().self_train_tau is None
    assert "self_train_tau" not in json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]
    (name,) = S32_SELF_TRAIN_VARIANTS
    one, base = _estimator(name, BenchConfig(), 4), _estimator(DEFAULT_ROW, BenchConfig(), 4)
    assert (one.self_train_tau, base.self_train_tau) == (0.9, None)
    drop = {"self_train_tau"}
    assert {k: v for k, v in one.get_params().items() if k not in drop} == {
        k: v for k, v in base.get_params().items() if k not in drop
    }


@pytest.mark.parametrize(
    ("value", "exc"),
    [
        (0.0, ValueError),
        (1.0, ValueError),
        (1.5, ValueError),
        (-0.1, ValueError),
        (float("nan"), ValueError),
        ("0.9", TypeError),
        (True, TypeError),
    ],
    ids=["zero", "one", "above-one", "negative", "nan", "str", "bool"],
)
def test_self_train_tau_rejects_bad_values(toy, value, exc):
    """CDHMClassifier.fit: a self_train_tau outside (0, 1), or not a real number, raises naming it."""
    a, _ = toy
    with pytest.raises(exc, match="self_train_tau"):
        CDHMClassifier(n_segments=4, epochs=1, self_train_tau=value).fit(a.x, a.y)
