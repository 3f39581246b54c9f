"""Session 34's reading (issue 18): the joint MMD of (s_T, f(s_T)) as CDHM's alignment
(``CDHMClassifier(alignment="jmmd")``, :func:`cdhm.models.joint_mmd`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from cdhm import CDHMClassifier, simulate_domain
from cdhm.models import joint_mmd, mk_mmd

SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def toy():
    kw = {"recordings_per_class": 2, "windows_per_recording": 6, "window": 512}
    return simulate_domain("L0", 0, seed=0, tier="mild", **kw), simulate_domain(
        "D", 1, seed=0, tier="hard", **kw
    )


def test_joint_mmd_matches_its_equation():
    """E K(u,u') + E K(v,v') - 2 E K(u,v), K = k_f * k_p with median bandwidths, by hand in
    float64."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(7, 3)), rng.normal(0.5, 1.0, size=(5, 3))
    pa, pb = rng.dirichlet(np.ones(4), 7), rng.dirichlet(np.ones(4), 5)
    x, p = np.r_[a, b], np.r_[pa, pb]
    dx, dp = ((x[:, None] - x[None]) ** 2).sum(-1), ((p[:, None] - p[None]) ** 2).sum(-1)
    # torch.median of an even count of values is the lower middle one (each distance twice)
    kx = sum(np.exp(-dx / (s * np.sort(dx[dx > 0])[(dx > 0).sum() // 2 - 1])) for s in SCALES) / 5
    kp = sum(np.exp(-dp / (s * np.sort(dp[dp > 0])[(dp > 0).sum() // 2 - 1])) for s in SCALES) / 5
    k = kx * kp
    expected = k[:7, :7].mean() + k[7:, 7:].mean() - 2 * k[:7, 7:].mean()
    t = torch.as_tensor
    got = joint_mmd(t(a), t(b), t(pa), t(pb))
    assert got.dtype == torch.float64
    assert float(got) == pytest.approx(expected, rel=1e-12)


def test_joint_mmd_sees_the_reading_the_marginal_does_not():
    """Equal features with swapped class readings: the marginal MK-MMD is 0, the joint is not;
    equal readings everywhere reduce it to the marginal MK-MMD; identical sets give 0."""
    rng = np.random.default_rng(1)
    s = torch.as_tensor(rng.normal(size=(8, 3)))
    onehot = torch.eye(2, dtype=torch.float64)[[0, 0, 0, 0, 1, 1, 1, 1]]
    assert float(mk_mmd(s, s)) == pytest.approx(0.0, abs=1e-12)
    assert float(joint_mmd(s, s, onehot, onehot.flip(1))) > 0.05
    assert float(joint_mmd(s, s, onehot, onehot)) == pytest.approx(0.0, abs=1e-12)
    t = torch.as_tensor(rng.normal(1.0, 1.0, size=(6, 3)))
    same = torch.full((8, 2), 0.5, dtype=torch.float64)
    assert float(joint_mmd(s, t, same, same[:6])) == pytest.approx(float(mk_mmd(s, t)), rel=1e-12)


@pytest.mark.parametrize(
    ("kw", "name"),
    [
        ({"a_probs": torch.zeros(3, 2)}, "a_probs"),
        ({"b_probs": torch.zeros(4)}, "b_probs"),
        ({"b_probs": torch.zeros(4, 3)}, "a_probs and b_probs"),
        ({"b": torch.zeros(4, 2)}, "a and b"),
    ],
)
def test_joint_mmd_rejects_bad_shapes_naming_the_argument(kw, name):
    args = {"a": torch.zeros(5, 3), "b": torch.zeros(4, 3)}
    args |= {"a_probs": torch.zeros(5, 2), "b_probs": torch.zeros(4, 2)} | kw
    with pytest.raises(ValueError, match=name):
        joint_mmd(**args)


def test_jmmd_term_enters_the_step_loss_as_written_and_moves_only_the_target_guide(toy):
    """step loss = loss without alignment + lambda_align w(p) JMMD^2 (float64, same random draws,
    the head read through its own weights); the term's gradient reaches the target guide, not
    the fault head and not the source guide; before the untied split its weight is 0."""
    import pyro

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["adapt_start"] = 0.0  # split at the first step: the fit builds the target guide
    est = CDHMClassifier(alignment="jmmd", lambda_align=0.7, progress=False, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert est.net_.target_split and np.isfinite(est.history_["align"]).all()
    net = est.net_ = est.net_.double()
    plain = CDHMClassifier(alignment=None, lambda_align=0.7, progress=False, **kw)
    plain.net_, plain.classes_ = net, est.classes_
    ia, ib = np.linspace(0, len(a) - 1, 8).astype(int), np.linspace(0, len(b) - 1, 8).astype(int)
    batch = {
        "xs": est._tensor(a.x[ia]).double(),
        "ys": torch.from_numpy(np.searchsorted(est.classes_, a.y[ia])),
        "cs": torch.zeros(8, dtype=torch.long),
        "xt": est._tensor(b.x[ib]).double(),
        "ct": torch.ones(8, dtype=torch.long),
    }
    with torch.no_grad():
        ss = net.encode(batch["xs"], batch["cs"], None)["s_loc"][:, -1]
        st = net.encode(batch["xt"], batch["ct"], torch.ones(8, dtype=torch.bool))["s_loc"][:, -1]
        ps, pt = torch.softmax(net.fault_head(ss), -1), torch.softmax(net.fault_head(st), -1)
        j = joint_mmd(ss, st, ps, pt)
    pyro.set_rng_seed(3)
    loss, logs = est._step(batch, 0.8)
    pyro.set_rng_seed(3)
    base, _ = plain._step(batch, 0.8)
    w = est._adapt_weight(0.8)
    assert w > 0.5 and 0.7 * w * float(j) > 1e-5  # detectable
    assert logs["align"] == pytest.approx(float(j), rel=1e-10)
    assert float(loss.detach()) == pytest.approx(
        float(base.detach()) + 0.7 * w * float(j), rel=1e-10
    )
    # the term alone (loss - plain loss): it moves the target guide only
    net.zero_grad()
    pyro.set_rng_seed(3)
    loss, _ = est._step(batch, 0.8)
    pyro.set_rng_seed(3)
    base, _ = plain._step(batch, 0.8)
    (loss - base).backward()

    def grad_mass(module):
        return sum(float(p.grad.abs().sum()) for p in module.parameters() if p.grad is not None)

    assert grad_mass(net.target_guide) > 0
    assert grad_mass(net.fault_head) == pytest.approx(0.0, abs=1e-12)
    assert grad_mass(net.encoder) == pytest.approx(0.0, abs=1e-12)
    # before the split (progress < adapt_start) the weight is 0: the plain loss exactly
    est.adapt_start = plain.adapt_start = 0.5
    pyro.set_rng_seed(4)
    early, _ = est._step(batch, 0.2)
    pyro.set_rng_seed(4)
    early_base, _ = plain._step(batch, 0.2)
    assert float(early.detach()) == float(early_base.detach())


def test_jmmd_row_differs_from_the_default_in_alignment_only_and_keeps_the_cache_key():
    """The bench row is the library default's row with alignment="jmmd"; the default stays
    "mmd", so every committed cache key is unchanged."""
    from cdhm.bench import DEFAULT_ROW, S34_JMMD_VARIANTS, BenchConfig, _cache_key, _estimator

    assert CDHMClassifier().alignment == "mmd"
    assert json.loads(_cache_key(BenchConfig()))["cdhm_defaults"]["alignment"] == "mmd"
    (name,) = S34_JMMD_VARIANTS
    one, base = _estimator(name, BenchConfig(), 4), _estimator(DEFAULT_ROW, BenchConfig(), 4)
    assert (one.alignment, base.alignment) == ("jmmd", "mmd")
    drop = {"alignment"}
    assert {k: v for k, v in one.get_params().items() if k not in drop} == {
        k: v for k, v in base.get_params().items() if k not in drop
    }
