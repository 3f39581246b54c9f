"""Session 31's reading (issue 18): certainty-weighted information maximisation of the target
through the frozen fault head (``CDHMClassifier(lambda_im=...)``)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cdhm.data import simulate_domain
from cdhm.models import certainty_weighted_entropy


@pytest.fixture(scope="module")
def toy():
    kw = {"recordings_per_class": 2, "windows_per_recording": 6, "window": 512}
    return simulate_domain("A", 0, **kw), simulate_domain("B", 1, **kw)


def test_certainty_weighted_entropy_matches_its_equation():
    """sum_j c_j H_j / sum_j c_j with c_j = 1 + exp(-H_j) (float64, by hand); the weights are
    constants (the gradient is that of the weighted mean with c fixed)."""
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(7, 4, generator=g, dtype=torch.float64) * 2.0
    p = np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True)
    h = -(p * np.log(p)).sum(1)
    c = 1.0 + np.exp(-h)
    expected = float((c * h).sum() / c.sum())
    assert float(certainty_weighted_entropy(logits)) == pytest.approx(expected, rel=1e-12)
    # differs from the plain mean entropy whenever the rows' entropies differ
    assert abs(expected - h.mean()) > 1e-3
    # uniform rows: log K; one-hot rows: 0
    assert float(certainty_weighted_entropy(torch.zeros(3, 4, dtype=torch.float64))) == (
        pytest.approx(np.log(4), rel=1e-12)
    )
    sharp = torch.tensor([[60.0, 0.0, 0.0], [0.0, 0.0, 60.0]], dtype=torch.float64)
    assert float(certainty_weighted_entropy(sharp)) == pytest.approx(0.0, abs=1e-20)
    # gradient with c held constant
    x = logits.clone().requires_grad_(True)
    certainty_weighted_entropy(x).backward()
    y = logits.clone().requires_grad_(True)
    logp = torch.log_softmax(y, -1)
    hh = -(logp.exp() * logp).sum(-1)
    cc = torch.as_tensor(c)
    ((cc * hh).sum() / cc.sum()).backward()
    assert torch.allclose(x.grad, y.grad, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    ("bad", "err", "match"),
    [
        (np.zeros((3, 4)), TypeError, "logits must be a torch.Tensor"),
        (torch.zeros(4), ValueError, r"logits must have shape \(m, K\)"),
        (torch.zeros(0, 4), ValueError, r"logits must have shape \(m, K\)"),
        (torch.zeros(3, 1), ValueError, "K >= 2 classes"),
        (torch.tensor([[0.0, float("nan")]]), ValueError, "logits must be finite"),
    ],
)
def test_certainty_weighted_entropy_rejects_bad_logits(bad, err, match):
    with pytest.raises(err, match=match):
        certainty_weighted_entropy(bad)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), "0.3", True])
def test_lambda_im_rejects_bad_values_naming_it(toy, bad):
    from cdhm.causal_hmm import CDHMClassifier

    a, _ = toy
    with pytest.raises((ValueError, TypeError), match="lambda_im"):
        CDHMClassifier(lambda_im=bad, epochs=1, progress=False).fit(a.x, a.y)


def test_im_variant_is_a_named_option_off_the_cache_key():
    """The session-31 row differs from the library default's bench row in lambda_im alone; the
    cache key holds no lambda_im (earlier runs keep their keys); no other row sets it."""
    from cdhm.bench import OPTION_VARIANTS, S31_IM_VARIANTS, BenchConfig, _cache_key, _estimator

    assert "lambda_im" not in json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]
    name = "CDHM+adda+stickyz0.25+optcarry+sskip+sar1+im0.3"
    assert set(S31_IM_VARIANTS) == {name}
    one = _estimator(name, BenchConfig(), 208)
    base = _estimator("CDHM+adda+stickyz0.25+optcarry+sskip+sar1", BenchConfig(), 208)
    assert one.lambda_im == 0.3 and base.lambda_im == 0.0
    assert {k: v for k, v in one.get_params().items() if k != "lambda_im"} == {
        k: v for k, v in base.get_params().items() if k != "lambda_im"
    }
    for other in ["CDHM", *OPTION_VARIANTS]:
        if other != name:
            assert _estimator(other, BenchConfig(), 4).lambda_im == 0.0, other


def test_im_term_runs_after_the_split_and_moves_only_the_target_s(toy):
    """On the library default with lambda_im > 0: no term before the split, a finite one after
    it (ent in [0, log K], bal in [0, log K]); through the frozen head the term sends no gradient
    to the fault head's parameters."""
    from cdhm.causal_hmm import CDHMClassifier

    a, b = toy
    kw = {"n_segments": 4, "epochs": 3, "s_dim": 4, "z_dim": 4, "hidden": 16, "progress": False}
    est = CDHMClassifier(lambda_im=0.3, adapt_start=0.3, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert est.net_.target_split
    ent, bal = np.asarray(est.history_["im_entropy"]), np.asarray(est.history_["im_balance_gap"])
    k = len(est.classes_)
    assert np.isfinite(ent).all() and (ent >= 0).all() and (ent <= np.log(k) + 1e-6).all()
    assert np.isfinite(bal).all() and (bal >= -1e-6).all() and (bal <= np.log(k) + 1e-6).all()
    net = est.net_
    s = torch.randn(5, net.T, net.s_dim, requires_grad=True)
    net.zero_grad()
    certainty_weighted_entropy(net.fault_logits(s, frozen=True)).backward()
    assert all(p.grad is None for p in net.fault_head.parameters())
    assert s.grad is not None and float(s.grad.abs().sum()) > 0
