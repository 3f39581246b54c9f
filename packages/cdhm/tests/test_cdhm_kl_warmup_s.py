"""Session 33's reading (issue 18): KL annealing of the s block apart from z
(``CDHMClassifier(kl_warmup_s=...)``, :func:`cdhm.causal_hmm.kl_warmup_weight`)."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
from cdhm import CDHMClassifier, simulate_domain
from cdhm.bench import DEFAULT_ROW, BenchConfig, _cache_key, _estimator
from cdhm.causal_hmm import CDHMNet, kl_warmup_weight
from pyro import poutine

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pyro.*")


@pytest.fixture(scope="module")
def toy():
    kw = {"recordings_per_class": 2, "windows_per_recording": 5, "window": 256}
    return simulate_domain("L0", 0, seed=0, tier="mild", **kw), simulate_domain(
        "D", 1, seed=0, tier="hard", **kw
    )


def _net() -> CDHMNet:
    torch.manual_seed(0)
    net = CDHMNet(16, 3, 2, 2, s_dim=2, z_dim=3, hidden=8, sticky_z=0.25, s_transition="ar1")
    return net.double()


def _xc() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(5, 3, 16, generator=g, dtype=torch.float64), torch.tensor([0, 1, 0, 1, 1])


#: an observed but fully masked label (no latent y site in the model)
_Y, _MASK = torch.zeros(5, dtype=torch.long), torch.zeros(5, dtype=torch.bool)


def test_kl_warmup_weight_is_its_equation():
    """beta(p) = max(1e-3, min(1, p / w)); 1 for w = 0."""
    assert kl_warmup_weight(0.0, 0.3) == 1e-3
    assert kl_warmup_weight(0.15, 0.3) == 0.15 / 0.3
    assert kl_warmup_weight(0.3, 0.3) == 1.0 and kl_warmup_weight(0.9, 0.3) == 1.0
    assert kl_warmup_weight(0.0, 0.0) == 1.0 and kl_warmup_weight(0.5, 0.0) == 1.0


def test_s_sites_take_kl_weight_s_and_z_sites_kl_weight():
    """In model and guide every s_t site is scaled by kl_weight_s and every z_t site by
    kl_weight; the x sites by 1 (float64 traces)."""
    net, (x, c) = _net(), _xc()
    for fn in (net.guide, net.model):
        with torch.no_grad():
            tr = poutine.trace(fn).get_trace(x, c, _Y, _MASK, 0.2, kl_weight_s=0.7)
        for t in range(3):
            assert tr.nodes[f"s_{t}"]["scale"] == 0.7
            assert tr.nodes[f"z_{t}"]["scale"] == 0.2
            if fn == net.model:
                assert tr.nodes[f"x_{t}"]["scale"] == 1.0


def test_the_loss_is_the_two_block_elbo_and_none_is_the_shared_weight():
    """-ELBO with (beta_s, beta_z) = -ELBO(1, 1) minus (1 - beta_s) sum_t KL-sample_s,t and
    (1 - beta_z) sum_t KL-sample_z,t (one sample, the same draws, float64); kl_weight_s=None is
    kl_weight_s=kl_weight exactly."""
    net, (x, c) = _net(), _xc()
    elbo = pyro.infer.Trace_ELBO(max_plate_nesting=1)

    def loss(**kw):
        pyro.set_rng_seed(3)
        with pyro.validation_enabled(False):
            out = elbo.differentiable_loss(net.model, net.guide, x, c, _Y, _MASK, **kw)
        return float(out.detach())

    pyro.set_rng_seed(3)
    with torch.no_grad():
        g = poutine.trace(net.guide).get_trace(x, c, _Y, _MASK)
        m = poutine.trace(poutine.replay(net.model, trace=g)).get_trace(x, c, _Y, _MASK)
    kl = {
        k: sum(
            float(g.nodes[f"{k}_{t}"]["fn"].log_prob(g.nodes[f"{k}_{t}"]["value"]).sum())
            - float(m.nodes[f"{k}_{t}"]["fn"].log_prob(m.nodes[f"{k}_{t}"]["value"]).sum())
            for t in range(3)
        )
        for k in ("s", "z")
    }
    full = loss(kl_weight=1.0)
    got = loss(kl_weight=0.4, kl_weight_s=0.9)
    assert got == pytest.approx(full - 0.1 * kl["s"] - 0.6 * kl["z"], rel=1e-10, abs=1e-9)
    assert loss(kl_weight=0.4) == loss(kl_weight=0.4, kl_weight_s=0.4)
    assert loss(kl_weight=0.4, kl_weight_s=1.0) != loss(kl_weight=0.4)


def test_equal_warmups_fit_as_the_default_and_zero_changes_the_fit(toy):
    """kl_warmup_s = kl_warmup gives the default's probabilities bit for bit; kl_warmup_s=0
    changes them and logs beta_s = 1 from the first step while beta ramps."""
    torch.set_num_threads(1)
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 3, "z_dim": 2, "hidden": 8, "batch_size": 8}

    def fit(**extra):
        est = CDHMClassifier(progress=False, **kw, **extra)
        return est.fit(a.x, a.y, b.x, a.domain, b.domain)

    base = fit()
    same = fit(kl_warmup_s=0.3)
    np.testing.assert_array_equal(same.predict_proba(b.x), base.predict_proba(b.x))
    zero = fit(kl_warmup_s=0.0)
    assert not np.array_equal(zero.predict_proba(b.x), base.predict_proba(b.x))
    assert zero.history_["beta_s"] == [1.0] and zero.history_["beta"][0] < 1.0
    assert "beta_s" not in base.history_


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (-0.1, ValueError, r"kl_warmup_s must be in \[0, 1\]"),
        (1.5, ValueError, r"kl_warmup_s must be in \[0, 1\]"),
        (float("nan"), ValueError, "kl_warmup_s"),
        ("0.3", TypeError, "kl_warmup_s must be a real number"),
        (True, TypeError, "kl_warmup_s must be a real number"),
    ],
)
def test_bad_kl_warmup_s_raises_naming_it(value, error, match):
    with pytest.raises(error, match=match):
        CDHMClassifier(kl_warmup_s=value)._check_params()


def test_kl_warmup_s_needs_the_split():
    with pytest.raises(ValueError, match="kl_warmup_s needs the s/z split"):
        CDHMClassifier(kl_warmup_s=0.0, entangled=True)._check_params()


def test_bench_row_and_unchanged_default_key():
    """The screen's row is the default's options plus kl_warmup_s=0; the option at None stays out
    of the default's cache key (committed grids keep their keys)."""
    cfg = BenchConfig()
    row = _estimator(DEFAULT_ROW + "+kls0", cfg, 3).get_params()
    assert row == {**_estimator(DEFAULT_ROW, cfg, 3).get_params(), "kl_warmup_s": 0.0}
    assert "kl_warmup_s" not in _cache_key(cfg)
