"""CDHM: ELBO behaviour, disentanglement probes, persistence and input validation."""

import math

import numpy as np
import pytest
import torch
from cdhm import CDHMClassifier, CDHMNet, simulate_domain
from maskloop import Callback
from pyro.infer import Trace_ELBO
from sklearn.exceptions import NotFittedError

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pyro.*")


@pytest.fixture(scope="module")
def toy():
    """Two very different working conditions, 4 classes, short windows."""
    kw = {"recordings_per_class": 2, "windows_per_recording": 12, "window": 512}
    a = simulate_domain("L0", 0, seed=0, tier="mild", **kw)
    b = simulate_domain("D", 1, seed=0, tier="hard", **kw)
    return a, b


@pytest.fixture(scope="module")
def fitted(toy):
    a, b = toy
    torch.set_num_threads(2)
    # the shared-encoder model (target_encoder="adapted" is the default since session 18): what
    # the probes below assert was measured on it
    est = CDHMClassifier(
        n_segments=4, epochs=25, s_dim=4, z_dim=4, hidden=32, seed=0, target_encoder="shared"
    )
    return est.fit(a.x, a.y, b.x, a.domain, b.domain)


def test_elbo_finite_and_decreasing(toy):
    a, _ = toy
    net = CDHMNet(128, 4, 4, 2, s_dim=4, z_dim=4, hidden=32)
    x = torch.randn(8, 4, 128)
    c = torch.zeros(8, dtype=torch.long)
    loss = Trace_ELBO().differentiable_loss(net.model, net.guide, x, c)
    assert torch.isfinite(loss)
    est = CDHMClassifier(n_segments=4, epochs=8, s_dim=4, z_dim=4, hidden=32, alignment=None)
    est.fit(a.x, a.y)
    hist = est.history_["loss_pyro"]
    assert all(np.isfinite(hist))
    assert hist[-1] < hist[0] - 0.05
    terms = est.elbo_terms(a.x[:16])
    assert all(np.isfinite(v) for v in terms.values())
    assert terms["kl_s_per_step"] > 0


def test_probes_s_carries_fault_z_carries_domain(toy, fitted):
    from cdhm.bench import linear_probe

    a, b = toy
    x = np.concatenate([a.x, b.x])
    c = np.concatenate([a.domain, b.domain])
    y = np.concatenate([a.y, b.y])
    s = fitted.transform(x, c, part="s")
    z = fitted.transform(x, c, part="z")
    assert s.shape == (len(x), 4) and z.shape == (len(x), 4)
    assert linear_probe(s[: len(a)], a.y) > 0.6  # fault readable from s (source, chance 0.25)
    assert linear_probe(z, c) > 0.9  # domain readable from z
    assert linear_probe(z, c) >= linear_probe(s, c) - 0.02
    assert fitted.score(a.x, a.y) > 0.6
    proba = fitted.predict_proba(b.x)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-5)
    assert y.shape == (len(x),)


def test_save_load_round_trip(tmp_path, fitted, toy):
    a, b = toy
    fitted.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").exists()
    again = CDHMClassifier.load(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(b.x), fitted.predict_proba(b.x), atol=1e-6)
    np.testing.assert_allclose(again.transform(b.x, 1), fitted.transform(b.x, 1), atol=1e-6)
    assert again.get_params() == fitted.get_params()
    (tmp_path / "m" / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        CDHMClassifier.load(tmp_path / "m")


def test_bad_inputs(toy, fitted):
    a, b = toy
    est = CDHMClassifier(n_segments=4, epochs=1)
    with pytest.raises(ValueError, match="shape"):
        est.fit(a.x[0], a.y)
    bad = a.x.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(bad, a.y)
    with pytest.raises(ValueError, match="unknown class labels \\[7\\]"):
        CDHMClassifier(n_segments=4, epochs=1, classes=[0, 1, 2, 3]).fit(
            a.x, np.where(a.y == 3, 7, a.y)
        )
    with pytest.raises(ValueError, match="n_segments=3 must divide"):
        CDHMClassifier(n_segments=3, epochs=1).fit(a.x, a.y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(a.x, a.y[:-1])
    with pytest.raises(ValueError, match="alignment"):
        CDHMClassifier(alignment="wasserstein").fit(a.x, a.y)
    with pytest.raises(ValueError, match="kl_warmup"):
        CDHMClassifier(kl_warmup=2.0).fit(a.x, a.y)
    with pytest.raises(ValueError, match="X has 256 features, but CDHMClassifier is expecting 512"):
        fitted.predict(a.x[:, :256])
    with pytest.raises(NotFittedError, match="not fitted"):
        CDHMClassifier().predict(a.x)
    with pytest.raises(ValueError, match="could not convert string to float"):
        est.fit(np.array([["a"] * 512]), [0])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"alignment": "mmd"},
        {"alignment": "dann", "temporal_prior": False},
        {"alignment": "dann", "entangled": True, "lambda_c": 0.0},
    ],
)
def test_alignment_options_and_ablations_train(toy, kwargs):
    a, b = toy
    est = CDHMClassifier(n_segments=4, epochs=2, s_dim=4, z_dim=4, hidden=16, **kwargs)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["align"]).all()  # alignment on s is active
    if kwargs["alignment"] == "dann":  # domain classifier accuracy and GRL weight are logged
        assert all(0.0 <= v <= 1.0 for v in est.history_["domain_acc"])
        assert est.history_["grl_lambda"][-1] > est.history_["grl_lambda"][0]
    s = est.transform(b.x, 1, part="s")
    assert s.shape == (len(b), 8 if kwargs.get("entangled") else 4)
    if kwargs.get("entangled"):
        with pytest.raises(ValueError, match="entangled"):
            est.transform(b.x, 1, part="z")
    else:
        assert est.transform(b.x, 1, part="z").shape == (len(b), 4)


def test_align_warmup_schedule(toy):
    """align_warmup keeps the alignment weight at 0 for that fraction of training, then runs the
    Ganin ramp over the rest; 0 (the default) is exactly the plain Ganin schedule."""
    from cdhm import ganin_lambda

    est = CDHMClassifier(align_warmup=0.5)
    assert est._align_weight(0.0) == 0.0 and est._align_weight(0.49) == 0.0
    assert est._align_weight(0.75) == ganin_lambda(0.5) and est._align_weight(1.0) == ganin_lambda(
        1
    )
    plain = CDHMClassifier()
    assert all(plain._align_weight(p) == ganin_lambda(p) for p in np.linspace(0, 1, 11))
    a, b = toy
    est = CDHMClassifier(
        n_segments=4,
        epochs=4,
        s_dim=4,
        z_dim=4,
        hidden=16,
        align_warmup=0.5,
        target_encoder="shared",
    )
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    w = est.history_["align_weight"]
    assert w[0] == 0.0 and w[1] == 0.0 and 0.0 < w[2] < w[3] < 1.0
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="align_warmup must be in"):
            CDHMClassifier(align_warmup=bad).fit(a.x, a.y)


def _kernel(x: torch.Tensor) -> torch.Tensor:
    """The multi-bandwidth Gaussian kernel of mk_mmd / lmmd, written out (median heuristic)."""
    d2 = torch.cdist(x, x).pow(2)
    sigma2 = d2[d2 > 0].median()
    return sum(torch.exp(-d2 / (s * sigma2)) for s in (0.25, 0.5, 1.0, 2.0, 4.0)) / 5


def test_lmmd_matches_its_equation():
    """lmmd: the per-class weighted MMD^2 of DSAN, averaged over classes in both source labels and
    target argmax, written out with loops (float64); a class absent from the target argmax drops."""
    from cdhm.models import lmmd

    g = torch.Generator().manual_seed(0)
    a = torch.randn(7, 3, generator=g, dtype=torch.float64)
    b = torch.randn(6, 3, generator=g, dtype=torch.float64) + 0.5
    ya = torch.tensor([0, 0, 1, 1, 1, 2, 3])
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64)
    logits[:, 3] -= 20.0  # class 3 is never the target argmax -> not in C
    p = torch.softmax(logits, -1)
    k = _kernel(torch.cat([a, b]))
    n = len(a)
    classes = sorted(set(ya.tolist()) & set(p.argmax(1).tolist()))
    assert 3 not in classes and len(classes) >= 2
    total = torch.zeros((), dtype=torch.float64)
    for c in classes:
        ws = (ya == c).double() / (ya == c).sum()
        wt = p[:, c] / p[:, c].sum()
        total = total + (
            sum(ws[i] * ws[j] * k[i, j] for i in range(n) for j in range(n))
            + sum(wt[i] * wt[j] * k[n + i, n + j] for i in range(6) for j in range(6))
            - 2 * sum(ws[i] * wt[j] * k[i, n + j] for i in range(n) for j in range(6))
        )
    expected = total / len(classes)
    assert float(lmmd(a, b, ya, p)) == pytest.approx(float(expected), rel=1e-12)
    # one class, hard pseudo-labels: LMMD is the plain MK-MMD
    from cdhm import mk_mmd

    one = torch.ones(6, 1, dtype=torch.float64)
    assert float(lmmd(a, b, torch.zeros(7, dtype=torch.long), one)) == pytest.approx(
        float(mk_mmd(a, b)), rel=1e-12
    )
    # the pseudo-labels are constants: no gradient flows into them
    p_req = p.clone().requires_grad_(True)
    a_req = a.clone().requires_grad_(True)
    lmmd(a_req, b, ya, p_req).backward()
    assert p_req.grad is None and a_req.grad is not None
    with pytest.raises(ValueError, match="a_labels holds a class >= the 4 columns"):
        lmmd(a, b, torch.full((7,), 4), p)


def _eight_windows(est, a, b):
    """A fixed training batch of 8 source windows of `a` and 8 target windows of `b` (domains 0 / 1)
    in the fitted estimator's tensor format, for the loss-as-written tests."""
    ia, ib = np.linspace(0, len(a) - 1, 8).astype(int), np.linspace(0, len(b) - 1, 8).astype(int)
    return {
        "xs": est._tensor(a.x[ia]),
        "ys": torch.from_numpy(np.searchsorted(est.classes_, a.y[ia])),
        "cs": torch.zeros(8, dtype=torch.long),
        "xt": est._tensor(b.x[ib]),
        "ct": torch.ones(8, dtype=torch.long),
    }


def _step_beside_plain(est, plain, a, b, progress):
    """`est`'s step loss and logs on `_eight_windows` and the loss of `plain` (an estimator without
    the term under test, given `est`'s fitted network) on the same batch and Pyro seed."""
    import pyro

    batch = _eight_windows(est, a, b)
    pyro.set_rng_seed(3)
    loss, logs = est._step(batch, progress)
    plain.net_ = est.net_
    pyro.set_rng_seed(3)
    base, _ = plain._step(batch, progress)
    return batch, loss, logs, base


@pytest.mark.parametrize("steps", ["last", "all"])
def test_lmmd_alignment_and_entropy_terms_enter_the_loss_as_written(toy, steps):
    """CDHMClassifier(alignment="lmmd", lambda_ent): the step loss is the no-alignment loss +
    lambda_align w(p) LMMD(s_s, s_t; y_s, softmax f(s_T^t)) + lambda_ent w(p) mean H(f(s_T^t))."""
    from cdhm.models import ganin_lambda, lmmd

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equations below are the shared encoder's
    est = CDHMClassifier(alignment="lmmd", lambda_ent=0.7, align_steps=steps, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["align"]).all() and "target_entropy" in est.history_
    net, progress = est.net_, 0.4
    plain_est = CDHMClassifier(alignment=None, **kw)
    batch, loss, logs, plain = _step_beside_plain(est, plain_est, a, b, progress)
    xs, xt = batch["xs"], batch["xt"]
    with torch.no_grad():
        post = net.encode(torch.cat([xs, xt]), torch.cat([batch["cs"], batch["ct"]]))
        s_all = post["s_loc"]
        logits_t = net.fault_head(s_all[8:, -1])
        probs = torch.softmax(logits_t, -1)
        if steps == "last":
            al = lmmd(s_all[:8, -1], s_all[8:, -1], batch["ys"], probs)
        else:
            al = lmmd(
                s_all[:8].reshape(-1, 4),
                s_all[8:].reshape(-1, 4),
                batch["ys"].repeat_interleave(4),
                probs.repeat_interleave(4, dim=0),
            )
        ent = -(probs * torch.log_softmax(logits_t, -1)).sum(-1).mean()
    w = ganin_lambda(progress)
    expected = plain + est.lambda_align * w * al + 0.7 * w * ent
    assert float(est.lambda_align * w * al) > 1e-3 * abs(float(plain.detach()))  # detectable
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5, abs=1e-6)
    assert logs["align"] == pytest.approx(float(al), rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"alignment": "lmd"}, "alignment must be one of \\('dann', 'mmd', 'lmmd'"),
        ({"lambda_ent": -0.1}, "lambda_ent"),
        ({"lambda_ent": float("nan")}, "lambda_ent"),
        ({"lambda_ent": "0.1"}, "lambda_ent"),
    ],
    ids=["alignment-unknown", "lambda_ent-negative", "lambda_ent-nan", "lambda_ent-str"],
)
def test_lmmd_and_entropy_options_reject_bad_values(toy, kwargs, match):
    """CDHMClassifier.fit: a bad alignment or lambda_ent raises naming the argument."""
    a, _ = toy
    with pytest.raises((ValueError, TypeError), match=match):
        CDHMClassifier(n_segments=4, epochs=1, **kwargs).fit(a.x, a.y)


def test_lmmd_term_on_top_of_mmd_enters_the_loss_after_lmmd_start(toy):
    """CDHMClassifier(lambda_lmmd, lmmd_start): loss = the plain MK-MMD loss + lambda_lmmd w_l(p)
    LMMD(s_T) with w_l = 0 before lmmd_start and the Ganin ramp of (p - start) / (1 - start) after."""
    import pyro
    from cdhm.models import ganin_lambda, lmmd

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equations below are the shared encoder's
    est = CDHMClassifier(lambda_lmmd=0.4, lmmd_start=0.2, **kw)
    assert est._lmmd_weight(0.19) == 0.0
    assert est._lmmd_weight(0.6) == ganin_lambda(0.5)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["lmmd"]).all() and "lmmd_weight" in est.history_
    net = est.net_
    batch = _eight_windows(est, a, b)
    xs, xt, ys = batch["xs"], batch["xt"], batch["ys"]
    plain_est = CDHMClassifier(**kw)  # the default MK-MMD alignment alone
    plain_est.net_ = net
    losses = {}
    for name, e in (("lmmd", est), ("plain", plain_est)):
        for p in (0.1, 0.6):
            pyro.set_rng_seed(5)
            losses[name, p] = float(e._step(batch, p)[0].detach())
    assert losses["lmmd", 0.1] == losses["plain", 0.1]  # before lmmd_start: exactly the plain loss
    with torch.no_grad():
        s_all = net.encode(torch.cat([xs, xt]), torch.cat([batch["cs"], batch["ct"]]))["s_loc"]
        probs = torch.softmax(net.fault_head(s_all[8:, -1]), -1)
        term = 0.4 * ganin_lambda(0.5) * float(lmmd(s_all[:8, -1], s_all[8:, -1], ys, probs))
    assert term > 1e-3 * abs(losses["plain", 0.6])
    assert losses["lmmd", 0.6] == pytest.approx(losses["plain", 0.6] + term, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lambda_lmmd": -1.0}, "lambda_lmmd"),
        ({"lmmd_start": 1.0}, "lmmd_start must be in"),
        ({"lmmd_start": -0.2}, "lmmd_start must be in"),
    ],
    ids=["lambda_lmmd-negative", "lmmd_start-one", "lmmd_start-negative"],
)
def test_lmmd_term_options_reject_bad_values(toy, kwargs, match):
    """CDHMClassifier.fit: a bad lambda_lmmd or lmmd_start raises naming the argument."""
    a, _ = toy
    with pytest.raises(ValueError, match=match):
        CDHMClassifier(n_segments=4, epochs=1, **kwargs).fit(a.x, a.y)


def test_diversity_term_enters_the_loss_as_written(toy):
    """CDHMClassifier(lambda_div): the step loss is the plain loss + lambda_div w(p)
    (log K - H(mean_j softmax f(s_T^j))) over the batch's target windows; the gap is 0 for a
    uniform mean prediction and log K when every window gets one class."""
    import math

    from cdhm.models import ganin_lambda

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equations below are the shared encoder's
    est = CDHMClassifier(lambda_div=0.7, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["target_diversity_gap"]).all()
    net, progress = est.net_, 0.4
    batch, loss, logs, plain = _step_beside_plain(est, CDHMClassifier(**kw), a, b, progress)
    xs, xt = batch["xs"], batch["xt"]
    with torch.no_grad():
        post = net.encode(torch.cat([xs, xt]), torch.cat([batch["cs"], batch["ct"]]))
        p_bar = torch.softmax(net.fault_head(post["s_loc"][8:, -1]), -1).double().mean(0)
    gap = math.log(4) - float(-(p_bar * p_bar.log()).sum())
    assert logs["target_diversity_gap"] == pytest.approx(gap, rel=1e-4, abs=1e-6)
    expected = float(plain.detach()) + 0.7 * ganin_lambda(progress) * gap
    assert 0.7 * ganin_lambda(progress) * gap > 1e-4  # detectable
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the gap's two ends, written out: uniform -> 0, one class -> log K
    uni = torch.full((4,), 0.25, dtype=torch.float64)
    assert float(math.log(4) + (uni * uni.log()).sum()) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="lambda_div"):
        CDHMClassifier(n_segments=4, epochs=1, lambda_div=-0.1).fit(a.x, a.y)


def test_align_gate_holds_alignment_until_the_source_accuracy_forms(toy):
    """align_gate: the running source accuracy a <- 0.8 a + 0.2 acc opens the gate once it reaches
    the threshold; the schedule is 0 before and the Ganin ramp from the opening point after."""
    from cdhm.models import ganin_lambda

    a, b = toy
    est = CDHMClassifier(n_segments=4, s_dim=4, z_dim=4, hidden=16, align_gate=0.5)
    net = est._build(128, 4, 2)
    assert float(net.gate_open) == -1.0 and float(net.gate_acc) == 0.0
    ws = [est._gate(net, 1.0, p) for p in (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)]
    # a = 0.2, 0.36, 0.488, 0.5904 -> opens at the 4th step (p = 0.3)
    assert ws[:3] == [0.0, 0.0, 0.0]
    assert float(net.gate_open) == pytest.approx(0.3)
    assert ws[3] == 0.0 and ws[4] == pytest.approx(ganin_lambda(0.2 / 0.7))
    assert ws[5] == pytest.approx(ganin_lambda(1.0))
    est._gate(net, 0.0, 1.0)  # the gate never closes again
    assert float(net.gate_open) == pytest.approx(0.3)
    # a gate the toy source cannot reach keeps every alignment weight at 0 during fit
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16}
    shut = CDHMClassifier(align_gate=0.999999, **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert shut.history_["align_weight"] == [0.0, 0.0]
    assert all(0.0 <= v <= 1.0 for v in shut.history_["gate_acc"])
    # off (0) builds no gate buffers: state_dict keys of the default are unchanged
    assert "gate_acc" not in CDHMClassifier()._build(128, 4, 2).state_dict()
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="align_gate must be in"):
            CDHMClassifier(align_gate=bad, **kw).fit(a.x, a.y)


def test_align_gate_model_saves_and_loads(toy, tmp_path):
    """A model fit with align_gate > 0 keeps its gate buffers through save / load."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16}
    est = CDHMClassifier(align_gate=0.3, **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    back = CDHMClassifier.load(est.save(tmp_path / "m"))
    assert float(back.net_.gate_acc) == float(est.net_.gate_acc)
    np.testing.assert_array_equal(back.predict_proba(b.x), est.predict_proba(b.x))


def test_fault_steps_all_reads_the_evidence_of_every_step(toy):
    """fault_steps="all": the label site of the Pyro model and the prediction use
    mean_t f(s_t) (sampled s_t in the model, posterior means in predict_proba), not f(s_T)."""
    from pyro import poutine

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equations below are the shared encoder's
    est = CDHMClassifier(fault_steps="all", align_steps="all", **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    net = est.net_.double()
    x, c = est.segments(b.x[:6], 1)
    x = x.double()
    with torch.no_grad():
        g = poutine.trace(net.guide).get_trace(x, c)
        m = poutine.trace(poutine.replay(net.model, trace=g)).get_trace(x, c)
        s = torch.stack([g.nodes[f"s_{t}"]["value"] for t in range(4)], 1)
        expected = net.fault_head(s).mean(1)
        last = net.fault_head(s[:, -1])
        got = m.nodes["y"]["fn"].logits
        assert torch.allclose(torch.log_softmax(expected, -1), got, atol=1e-12)
        assert not torch.allclose(torch.log_softmax(last, -1), got, atol=1e-3)
        means = net.encode(x, c)["s_loc"]
        proba = torch.softmax(net.fault_head(means).mean(1), -1)
    est.net_.float()
    np.testing.assert_allclose(est.predict_proba(b.x[:6]), proba.numpy(), rtol=1e-4, atol=1e-6)


def test_beta_s_weights_only_the_s_block_kl(toy):
    """beta_s: -ELBO(beta_s) - (-ELBO(1)) = (beta_s - 1) * kl_weight * sum_t (log q - log p) of
    the s sites on the same samples; the z block and the reconstruction are untouched."""
    import pyro
    from pyro import poutine

    net = CDHMNet(128, 4, 4, 2, s_dim=4, z_dim=4, hidden=16).double()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 128, generator=g, dtype=torch.float64)
    c = torch.tensor([0, 1, 0, 1, 0, 1])
    kl_w, beta = 0.7, 3.5
    losses = {}
    for bs in (1.0, beta):
        pyro.set_rng_seed(5)
        losses[bs] = Trace_ELBO().differentiable_loss(
            net.model, net.guide, x, c, None, None, kl_w, 1.0, 1.0, bs
        )
    pyro.set_rng_seed(5)
    tr = poutine.trace(net.guide).get_trace(x, c)
    mt = poutine.trace(poutine.replay(net.model, trace=tr)).get_trace(x, c)
    kl_s = sum(
        (
            tr.nodes[f"s_{t}"]["fn"].log_prob(tr.nodes[f"s_{t}"]["value"])
            - mt.nodes[f"s_{t}"]["fn"].log_prob(tr.nodes[f"s_{t}"]["value"])
        ).sum()
        for t in range(4)
    )
    diff = float((losses[beta] - losses[1.0]).detach())
    assert abs(diff) > 1e-3
    assert diff == pytest.approx((beta - 1) * kl_w * float(kl_s.detach()), rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"fault_steps": "first"}, "fault_steps must be one of"),
        ({"fault_steps": None}, "fault_steps must be one of"),
        ({"beta_s": 0.0}, "beta_s"),
        ({"beta_s": -1.0}, "beta_s"),
        ({"beta_s": float("nan")}, "beta_s"),
        ({"beta_s": "2"}, "beta_s"),
    ],
    ids=["steps-unknown", "steps-none", "beta-zero", "beta-negative", "beta-nan", "beta-str"],
)
def test_fault_steps_and_beta_s_reject_bad_values(toy, kwargs, match):
    """CDHMClassifier.fit: a bad fault_steps or beta_s raises naming the argument."""
    a, _ = toy
    with pytest.raises((ValueError, TypeError), match=match):
        CDHMClassifier(n_segments=4, epochs=1, **kwargs).fit(a.x, a.y)
    if "fault_steps" in kwargs:
        with pytest.raises(ValueError, match=match):
            CDHMNet(128, 4, 4, 2, fault_steps=kwargs["fault_steps"])


@pytest.mark.parametrize("alignment", ["mmd", "dann"])
def test_align_direction_to_source_moves_only_the_target_s(toy, alignment):
    """align_direction="to_source": the step loss is the same number as with "both" (same batch,
    same Pyro seed), and its gradient differs by exactly the alignment term's gradient through the
    source rows of s, d/dθ lambda_align w(p) A(s_src, sg(s_tgt)) (float64; the DANN discriminator's
    own gradient unchanged): what flows into the target windows is the same, into the source
    windows it is not."""
    import pyro

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equations below are the shared encoder's
    kw["progress"] = False
    one = CDHMClassifier(alignment=alignment, align_direction="to_source", **kw)
    one.fit(a.x, a.y, b.x, a.domain, b.domain)
    both = CDHMClassifier(alignment=alignment, **kw)
    net = one.net_.double()
    both.net_ = net
    batch = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(one, a, b).items()
    }
    batch["xs"].requires_grad_(True)
    batch["xt"].requires_grad_(True)
    progress, grads, losses = 0.6, {}, {}
    params = [p for p in net.parameters() if p.requires_grad]
    for name, est in (("one", one), ("both", both)):
        pyro.set_rng_seed(3)
        loss, logs = est._step(batch, progress)
        losses[name] = float(loss.detach())
        wrt = [*params, batch["xs"], batch["xt"]]
        got = torch.autograd.grad(loss, wrt, allow_unused=True)
        grads[name] = [torch.zeros_like(v) if g is None else g for g, v in zip(got, wrt)]
        assert logs["align_weight"] > 0
    assert losses["one"] == losses["both"]
    # the part of the gradient that "both" has and "to_source" lacks: the alignment term through
    # the source rows only (target rows detached)
    s_all = net.encode(torch.cat([batch["xs"], batch["xt"]]), torch.cat([batch["cs"], batch["ct"]]))
    s_T = s_all["s_loc"][:, -1]
    s_T = torch.cat([s_T[:8], s_T[8:].detach()])
    w = both._align_weight(progress)
    if alignment == "mmd":
        from cdhm.models import mk_mmd

        term = both.lambda_align * w * mk_mmd(s_T[:8], s_T[8:])
    else:
        from cdhm.models import grad_reverse

        d = torch.cat([torch.zeros(8), torch.ones(8)]).double()
        logit = net.domain_head(grad_reverse(s_T, w)).squeeze(-1)
        term = both.lambda_align * torch.nn.functional.binary_cross_entropy_with_logits(logit, d)
    g_src = torch.autograd.grad(term, [*params, batch["xs"], batch["xt"]], allow_unused=True)
    # the domain discriminator itself is trained on both domains either way
    head = {id(p) for p in net.domain_head.parameters()}
    moved = 0.0
    for v, g_b, g_o, g_s in zip([*params, 0, 0], grads["both"], grads["one"], g_src):
        g_s = torch.zeros_like(g_b) if g_s is None or id(v) in head else g_s
        torch.testing.assert_close(g_b - g_o, g_s, rtol=1e-7, atol=1e-10)
        moved = max(moved, float((g_b - g_o).abs().max()))
    assert moved > 1e-6  # the detached path is not negligible on this batch
    # what flows into the target windows is unchanged; into the source windows it differs
    torch.testing.assert_close(grads["both"][-1], grads["one"][-1], rtol=1e-7, atol=1e-12)
    assert float((grads["both"][-2] - grads["one"][-2]).abs().max()) > 0
    one.net_.float()


@pytest.mark.parametrize("bad", ["target", None, 1, "TO_SOURCE"])
def test_align_direction_rejects_bad_values(toy, bad):
    """CDHMClassifier.fit: an align_direction outside ALIGN_DIRECTIONS raises naming it."""
    a, _ = toy
    with pytest.raises(ValueError, match="align_direction must be one of"):
        CDHMClassifier(n_segments=4, epochs=1, align_direction=bad).fit(a.x, a.y)


def test_align_ramp_linear_weight_is_zero_at_start_and_full_at_the_end(toy):
    """align_ramp="linear": the alignment weight is exactly p (0 at progress 0, the full
    lambda_align at progress 1, after align_warmup p rescaled), and the step loss is the
    no-alignment loss + lambda_align p MK-MMD(s_T) in float64; "ganin" (the default) is unchanged."""
    from cdhm.models import ganin_lambda

    lin = CDHMClassifier(align_ramp="linear")
    assert [lin._align_weight(p) for p in (0.0, 0.2, 0.5, 1.0)] == [0.0, 0.2, 0.5, 1.0]
    late = CDHMClassifier(align_ramp="linear", align_warmup=0.5)
    assert (late._align_weight(0.49), late._align_weight(0.75), late._align_weight(1.0)) == (
        0.0,
        0.5,
        1.0,
    )
    plain = CDHMClassifier()
    assert all(plain._align_weight(p) == ganin_lambda(p) for p in np.linspace(0, 1, 11))
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equations below are the shared encoder's
    kw["progress"] = False
    est = CDHMClassifier(align_ramp="linear", lambda_align=0.7, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    est.net_.double()
    none = CDHMClassifier(alignment=None, **kw)
    for progress, w in ((0.0, 0.0), (0.3, 0.3), (1.0, 1.0)):
        import pyro

        batch = {
            k: (v.double() if v.is_floating_point() else v)
            for k, v in _eight_windows(est, a, b).items()
        }
        pyro.set_rng_seed(3)
        loss, logs = est._step(batch, progress)
        none.net_ = est.net_
        pyro.set_rng_seed(3)
        base, _ = none._step(batch, progress)
        assert loss.dtype == torch.float64 and logs["align_weight"] == w
        assert logs["align"] > 1e-6  # the term is there; only its weight is 0 at the start
        expected = float(base.detach()) + 0.7 * w * logs["align"]
        assert float(loss.detach()) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    est.net_.float()


@pytest.mark.parametrize("bad", ["Linear", "sigmoid", None, 10])
def test_align_ramp_rejects_bad_values(toy, bad):
    """CDHMClassifier.fit: an align_ramp outside ALIGN_RAMPS raises naming it."""
    a, _ = toy
    with pytest.raises(ValueError, match="align_ramp must be one of"):
        CDHMClassifier(n_segments=4, epochs=1, align_ramp=bad).fit(a.x, a.y)


def _guide_params(net, target):
    """The parameters of the source guide (`target=False`) or of its target copy, by name."""
    from cdhm.causal_hmm import GUIDE_PARTS

    if target:
        return dict(net.target_guide.named_parameters())
    return {
        f"{n}.{k}": p
        for n in (*GUIDE_PARTS, "s_skip")  # s_skip: the session-26 skip, when the net has it
        if hasattr(net, n)
        for k, p in getattr(net, n).named_parameters()
    }


def test_target_guide_split_copies_the_source_guide_and_routes_target_rows():
    """CDHMNet(target_guide=True): the shared weights start as without it (same seed); before the
    split every window goes through the source guide; split_target copies it exactly; after
    that, rows flagged in target_rows are encoded by the target copy and the others by the source
    one, in their original order (float64, exact)."""
    torch.manual_seed(0)
    plain = CDHMNet(32, 4, 3, 2, s_dim=3, z_dim=2, hidden=8).double()
    torch.manual_seed(0)
    net = CDHMNet(32, 4, 3, 2, s_dim=3, z_dim=2, hidden=8, target_guide=True).double()
    for k, v in plain.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k
    net.eval()
    x = torch.randn(6, 4, 32, dtype=torch.float64)
    c = torch.tensor([0, 1, 0, 1, 1, 0])
    rows = c == 1
    before = net.encode(x, c, rows)
    assert not net.target_split
    with torch.no_grad():
        for p in net.target_guide.parameters():  # a stale target copy must not be read
            p.add_(1.0)
    assert torch.equal(net.encode(x, c, rows)["s_loc"], before["s_loc"])
    with torch.no_grad():
        for p in _guide_params(net, target=False).values():
            p.mul_(1.5)  # the source guide trained on: the split must copy what it is now
    net.split_target()
    assert net.target_split
    src, tgt = _guide_params(net, False), _guide_params(net, True)
    assert set(src) == set(tgt) and all(torch.equal(src[k], tgt[k]) for k in src)
    with torch.no_grad():
        for p in net.target_guide.parameters():
            p.add_(0.25)
    mixed = net.encode(x, c, rows)
    only_src = net.encode(x[~rows], c[~rows])
    only_tgt = net.encode(x[rows], c[rows], torch.ones(int(rows.sum()), dtype=torch.bool))
    for k in ("s_loc", "s_scale", "z_loc", "z_scale"):
        assert torch.equal(mixed[k][~rows], only_src[k])
        assert torch.equal(mixed[k][rows], only_tgt[k])
    assert not torch.allclose(only_tgt["s_loc"], net.encode(x[rows], c[rows])["s_loc"])
    with pytest.raises(ValueError, match="target_guide=True"):
        plain.split_target()


def test_target_encoder_adapted_aligns_only_the_target_guide_after_the_split(toy):
    """target_encoder="adapted": before adapt_start the alignment weight is 0 and the step loss is
    the no-alignment loss; after it, the loss is the no-alignment loss + lambda_align w(p)
    MK-MMD(sg(s_src), s_tgt) with w the Ganin ramp of (p - adapt_start) / (1 - adapt_start), and
    the alignment's gradient reaches the target guide only: every other parameter (source guide,
    decoder, priors, heads) gets exactly the no-alignment gradient (float64)."""
    import pyro
    from cdhm.models import ganin_lambda

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    est = CDHMClassifier(target_encoder="adapted", adapt_start=0.5, lambda_align=0.7, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)  # 3 steps: progress 0, 0.5, 1 -> split at 0.5
    # 96 windows, batches of 32: the weight is 0 (p = 0), 0 (split at p = 0.5) and ganin(1)
    assert len(a.x) == 96 and est.net_.target_split
    assert est.history_["align_weight"][0] == pytest.approx(ganin_lambda(1.0) / 3, rel=1e-9)
    assert est.net_.target_cond.tolist() == [False, True]
    net = est.net_.double()
    none = CDHMClassifier(alignment=None, target_encoder="adapted", adapt_start=0.5, **kw)
    none.net_ = net
    batch = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(est, a, b).items()
    }
    params = dict(net.named_parameters())
    tgt = {f"target_guide.{k}" for k in _guide_params(net, True)}
    for progress in (0.75, 1.0):
        grads = {}
        for name, e in (("adda", est), ("none", none)):
            pyro.set_rng_seed(3)
            loss, logs = e._step(batch, progress)
            got = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
            grads[name] = {
                k: torch.zeros_like(p) if g is None else g for (k, p), g in zip(params.items(), got)
            }
            grads[name + "_loss"] = float(loss.detach())
            grads[name + "_logs"] = logs
        w = ganin_lambda((progress - 0.5) / 0.5)
        assert grads["adda_logs"]["align_weight"] == w
        expected = grads["none_loss"] + 0.7 * w * grads["adda_logs"]["align"]
        assert grads["adda_loss"] == pytest.approx(expected, rel=1e-12, abs=1e-12)
        moved = 0.0
        for k in params:
            diff = float((grads["adda"][k] - grads["none"][k]).abs().max())
            if k in tgt:
                moved = max(moved, diff)
            else:
                assert diff <= 1e-12, k
        assert moved > 1e-6  # the alignment does move the target guide
    # before the split (a fresh net): no alignment, and the target copy gets no gradient
    fresh = CDHMClassifier(target_encoder="adapted", adapt_start=0.5, lambda_align=0.7, **kw)
    fresh.net_ = fresh._build(net.D, 4, 2)
    pyro.set_rng_seed(3)
    loss, logs = fresh._step(_eight_windows(est, a, b), 0.25)
    assert logs["align_weight"] == 0.0 and not fresh.net_.target_split
    loss.backward()
    assert all(p.grad is None for p in fresh.net_.target_guide.parameters())
    assert any(p.grad is not None for p in fresh.net_.encoder.parameters())
    est.net_.float()


def test_target_encoder_adapted_predicts_through_the_target_guide_and_reloads(toy, tmp_path):
    """After an adapted fit, predict_proba is softmax f(s_T) of the target guide for every window,
    transform routes by condition, and save / load restores the split and the routing."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    est = CDHMClassifier(target_encoder="adapted", progress=False, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    net = est.net_
    x = est._tensor(b.x)
    with torch.no_grad():
        via_target = net.fault_logits(
            net.encode(
                x, torch.zeros(len(x), dtype=torch.long), torch.ones(len(x), dtype=torch.bool)
            )["s_loc"]
        )
        via_source = net.fault_logits(net.encode(x, torch.zeros(len(x), dtype=torch.long))["s_loc"])
    np.testing.assert_allclose(
        est.predict_proba(b.x), torch.softmax(via_target, -1).numpy(), rtol=1e-6
    )
    assert not torch.allclose(via_target, via_source)
    s_tgt = est.transform(b.x, 1, part="s")  # condition 1: the target's
    s_src = est.transform(b.x, 0, part="s")
    assert not np.allclose(s_tgt, s_src)
    est.save(tmp_path / "m")
    again = CDHMClassifier.load(tmp_path / "m")
    assert again.net_.target_split
    np.testing.assert_array_equal(again.predict_proba(b.x), est.predict_proba(b.x))
    np.testing.assert_array_equal(again.transform(b.x, 1), est.transform(b.x, 1))


def test_target_encoder_adapted_composes_with_align_warmup_and_align_gate(toy, fitted):
    """target_encoder="adapted" (the default) with align_warmup / align_gate: the target guide is
    split at adapt_start and its alignment weight stays 0 until the warm-up (or the gate's
    opening) has passed too, then the align_ramp runs from the later of the two; at their off
    value (0) the schedule is exactly adapt_start's. Checked on the schedules and in _step."""
    import pyro
    from cdhm.models import ganin_lambda

    def ramp(p, start):
        return 0.0 if p < start else ganin_lambda((p - start) / (1.0 - start))

    ps = np.linspace(0, 1, 21)
    for warmup, start in ((0.0, 0.5), (0.2, 0.5), (0.7, 0.7)):  # 0.2 ends before the split
        est = CDHMClassifier(adapt_start=0.5, align_warmup=warmup)
        assert [est._adapt_weight(p) for p in ps] == [ramp(p, start) for p in ps]
    gate = CDHMClassifier(n_segments=4, s_dim=4, z_dim=4, hidden=16, align_gate=0.5)
    net = gate._build(128, 4, 2)
    # a = 0.2, 0.36, 0.488, 0.5904: opens at p = 0.3, before the split -> the ramp starts at 0.5
    ws = [gate._gate(net, 1.0, p, 0.5) for p in (0.0, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)]
    assert ws == [0.0] * 5 + [ganin_lambda(0.5), ganin_lambda(1.0)]
    late = gate._build(128, 4, 2)  # opens at p = 0.75, after the split -> the ramp starts there
    ws = [gate._gate(late, float(p >= 0.6), p, 0.5) for p in (0.55, 0.6, 0.65, 0.7, 0.75, 0.875)]
    assert float(late.gate_open) == 0.75 and ws == [0.0] * 5 + [ganin_lambda(0.5)]
    # in the training step (float64): split at adapt_start, weight by the composed schedule
    # (fresh nets; the module's fitted estimator only formats the batch)
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    batch = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(fitted, a, b).items()
    }
    warm = CDHMClassifier(align_warmup=0.7, **kw)
    gated = CDHMClassifier(align_gate=0.999999, **kw)  # the toy source never opens it
    opened = CDHMClassifier(align_gate=0.5, **kw)
    for est in (warm, gated, opened):
        est.net_ = est._build(fitted.net_.D, 4, 2).double()
    opened.net_.gate_open.fill_(0.1)  # opened before the split
    expect = {
        warm: (0.0, 0.0, ramp(0.85, 0.7)),
        gated: (0.0, 0.0, 0.0),
        opened: (0.0, ramp(0.6, 0.5), ramp(0.85, 0.5)),
    }
    for est, want in expect.items():
        got = []
        for p in (0.25, 0.6, 0.85):
            pyro.set_rng_seed(3)
            _, logs = est._step(batch, p)
            got.append(logs["align_weight"])
            assert est.net_.target_split == (p >= 0.5)
        assert tuple(got) == want and got[-1] == logs.get("schedule_weight", got[-1])
    assert 0.0 < ramp(0.6, 0.5) < ramp(0.85, 0.7) < 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_encoder": "separate"}, "target_encoder must be one of"),
        ({"target_encoder": None}, "target_encoder must be one of"),
        ({"adapt_start": 1.0}, "adapt_start"),
        ({"adapt_start": -0.1}, "adapt_start"),
    ],
)
def test_target_encoder_rejects_bad_values(toy, kwargs, match):
    """CDHMClassifier.fit: a bad target_encoder / adapt_start raises a ValueError naming it."""
    a, _ = toy
    with pytest.raises(ValueError, match=match):
        CDHMClassifier(n_segments=4, epochs=1, **kwargs).fit(a.x, a.y)


def test_split_terms_zy_and_sz_enter_the_loss_as_written(toy):
    """lambda_zy / lambda_sz (session 19): the step loss is the plain loss + lambda_zy mean_t
    HSIC(z_t^src, onehot y) + lambda_sz mean_t HSIC(s_t, z_t) (Gaussian kernels) on the batch's
    posterior means; both add nothing to the entangled model (no z block)."""
    from cdhm.models import hsic

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equations below are the shared encoder's
    est = CDHMClassifier(lambda_zy=0.7, lambda_sz=0.3, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["hsic_z_y"]).all()
    assert np.isfinite(est.history_["hsic_s_z"]).all()
    net = est.net_
    batch, loss, logs, plain = _step_beside_plain(est, CDHMClassifier(**kw), a, b, 0.4)
    with torch.no_grad():
        x = torch.cat([batch["xs"], batch["xt"]])
        post = net.encode(x, torch.cat([batch["cs"], batch["ct"]]))
        s, z = post["s_loc"].double(), post["z_loc"].double()
        oh = torch.nn.functional.one_hot(batch["ys"], 4).double()
        zy = sum(float(hsic(z[:8, t], oh)) for t in range(4)) / 4
        sz = sum(float(hsic(s[:, t], z[:, t], "gaussian")) for t in range(4)) / 4
    assert logs["hsic_z_y"] == pytest.approx(zy, rel=1e-4, abs=1e-7)
    assert logs["hsic_s_z"] == pytest.approx(sz, rel=1e-4, abs=1e-7)
    assert 0.7 * zy > 1e-4 and 0.3 * sz > 1e-4  # detectable
    expected = float(plain.detach()) + 0.7 * zy + 0.3 * sz
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5, abs=1e-6)
    # the entangled model has no z: the terms add nothing
    ent = {**kw, "entangled": True}
    est_e = CDHMClassifier(lambda_zy=0.7, lambda_sz=0.3, **ent)
    est_e.fit(a.x, a.y, b.x, a.domain, b.domain)
    _, loss_e, logs_e, plain_e = _step_beside_plain(est_e, CDHMClassifier(**ent), a, b, 0.4)
    assert "hsic_z_y" not in logs_e and "hsic_s_z" not in logs_e
    assert float(loss_e.detach()) == float(plain_e.detach())


def test_hsic_gaussian_kernel_on_b():
    """hsic(a, b, "gaussian"): near 0 for independent draws, larger for b = a; b_kernel checked."""
    from cdhm.models import hsic

    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 3, generator=g, dtype=torch.float64)
    b = torch.randn(200, 3, generator=g, dtype=torch.float64)
    dep, ind = float(hsic(a, a + 0.1 * b, "gaussian")), float(hsic(a, b, "gaussian"))
    assert dep > 10 * ind and ind < 2e-3
    with pytest.raises(ValueError, match="b_kernel"):
        hsic(a, b, "rbf")


@pytest.mark.parametrize(
    ("kwargs", "exc"),
    [
        ({"lambda_zy": -1.0}, ValueError),
        ({"lambda_zy": float("nan")}, ValueError),
        ({"lambda_sz": -0.5}, ValueError),
        ({"lambda_sz": "1"}, TypeError),
    ],
    ids=["zy-negative", "zy-nan", "sz-negative", "sz-str"],
)
def test_split_terms_reject_bad_values(toy, kwargs, exc):
    """CDHMClassifier.fit: a bad lambda_zy or lambda_sz raises naming the argument."""
    a, _ = toy
    with pytest.raises(exc, match=next(iter(kwargs))):
        CDHMClassifier(n_segments=4, epochs=1, **kwargs).fit(a.x, a.y)


def test_pseudo_labels_head_and_centroid():
    """pseudo_labels: "head" keeps the confident argmax; "centroid" relabels every window by the
    nearest centroid of the confident windows (a window across the head's boundary but inside a
    cluster takes the cluster's label); nothing confident -> nothing kept; bad input raises."""
    from cdhm.models import pseudo_labels

    feats = torch.tensor([[0.0, 0.0], [0.1, 0.0], [0.2, 0.1], [5.0, 5.0], [5.1, 4.9], [4.8, 5.2]])
    probs = torch.tensor(
        [[0.95, 0.05], [0.92, 0.08], [0.30, 0.70], [0.05, 0.95], [0.40, 0.60], [0.10, 0.90]]
    )
    label, keep = pseudo_labels(feats, probs, "head", 0.9)
    assert label.tolist() == [0, 0, 1, 1, 1, 1]
    assert keep.tolist() == [True, True, False, True, False, True]
    label, keep = pseudo_labels(feats, probs, "centroid", 0.9)
    assert label.tolist() == [0, 0, 0, 1, 1, 1] and bool(keep.all())  # window 2 takes cluster 0
    # no confident window of class 0: no centroid for it, every window goes to class 1
    only1 = torch.tensor([[0.6, 0.4]] * 3 + [[0.05, 0.95], [0.6, 0.4], [0.1, 0.9]])
    label, keep = pseudo_labels(feats, only1, "centroid", 0.9)
    assert label.tolist() == [1] * 6 and bool(keep.all())
    _, keep = pseudo_labels(feats, torch.full((6, 2), 0.5), "centroid", 0.9)
    assert not bool(keep.any())
    with pytest.raises(ValueError, match="mode"):
        pseudo_labels(feats, probs, "knn")
    with pytest.raises(ValueError, match="threshold"):
        pseudo_labels(feats, probs, "head", 1.0)
    with pytest.raises(ValueError, match="one row per window"):
        pseudo_labels(feats[:3], probs)


def test_shot_centroids_follow_liang_et_al():
    """shot_centroids (SHOT's obtain_label): soft centroids, cosine distance on [f, 1] normed, one
    hard refinement round; a window the head misreads but inside a cluster takes the cluster's
    label; a class that is nobody's argmax gets no centroid; pseudo_labels(..., "shot") keeps all."""
    from cdhm.models import pseudo_labels, shot_centroids, shot_labels

    feats = torch.tensor(
        [[3.0, 0.0], [3.2, 0.1], [2.9, -0.1], [0.0, 3.0], [0.1, 3.1], [-0.1, 2.8]],
        dtype=torch.float64,
    )
    probs = torch.tensor(
        [[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.3, 0.7, 0.0], [0.1, 0.9, 0.0], [0.2, 0.8, 0.0]]
        + [[0.1, 0.8, 0.1]],
        dtype=torch.float64,
    )
    centroids, classes = shot_centroids(feats, probs)
    assert classes.tolist() == [0, 1]  # class 2 is nobody's argmax
    f = torch.cat([feats, torch.ones(6, 1, dtype=torch.float64)], 1)
    f = f / f.norm(dim=1, keepdim=True)
    torch.testing.assert_close(centroids[0], f[:3].mean(0), rtol=1e-7, atol=1e-12)  # SHOT's 1e-8
    torch.testing.assert_close(centroids[1], f[3:].mean(0), rtol=1e-7, atol=1e-12)
    assert shot_labels(feats, centroids, classes).tolist() == [0, 0, 0, 1, 1, 1]  # 2 -> cluster 0
    label, keep = pseudo_labels(feats, probs, "shot", 0.99)  # the threshold plays no part
    assert label.tolist() == [0, 0, 0, 1, 1, 1] and bool(keep.all())
    with pytest.raises(ValueError, match="one row per window"):
        shot_centroids(feats[:0], probs[:0])


def test_shot_term_enters_the_loss_as_written_with_whole_set_centroids(toy):
    """pseudo_label="shot" (session 20b): step loss = plain + w(p) [H_mean - H(p_bar) + lambda_pl
    CE(f(s_T), yhat)] (float64); in fit, the centroids come from the whole target set, once at the
    start of adaptation and again at each later epoch's start."""
    import pyro
    from cdhm.causal_hmm import _ShotCentroids
    from cdhm.models import pseudo_labels, shot_centroids, shot_labels

    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"
    est = CDHMClassifier(lambda_pl=0.7, pseudo_label="shot", **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["pseudo_label_ce"]).all()
    assert est._shot.refreshes == 2 and est._shot.xt is None  # one per epoch, released after fit
    est.net_ = est.net_.double()
    net = est.net_
    batch = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(est, a, b).items()
    }
    # the whole-set centroids: cached until the next epoch starts
    xt = est._tensor(b.x).double()
    shot = _ShotCentroids(xt, torch.ones(len(xt), dtype=torch.long))
    got = shot.get(net, False)
    with torch.no_grad():
        s = net.encode(xt, shot.ct)["s_loc"]
        want = shot_centroids(s[:, -1], torch.softmax(net.fault_logits(s), -1))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    assert shot.get(net, False) is got
    shot.on_epoch_start(None)
    assert shot.get(net, False) is not got and shot.refreshes == 2
    # the loss as written, with those centroids standing in for fit's
    est._shot = shot
    plain = CDHMClassifier(**kw)
    plain.net_ = net
    with torch.no_grad():
        s_t = net.encode(batch["xt"], batch["ct"])["s_loc"]
        logits = net.fault_logits(s_t)
    p = torch.softmax(logits, -1)
    ent = float(-(p * torch.log_softmax(logits, -1)).sum(-1).mean())
    p_bar = p.mean(0)
    div = float((p_bar * p_bar.log()).sum())
    label = shot_labels(s_t[:, -1], *want)
    ce = float(torch.nn.functional.cross_entropy(logits, label))
    pyro.set_rng_seed(3)
    loss, logs = est._step(batch, 0.6)
    pyro.set_rng_seed(3)
    base, _ = plain._step(batch, 0.6)
    w = est._align_weight(0.6)
    assert logs["pseudo_label_ce"] == pytest.approx(ce, rel=1e-10)
    assert w * abs(ent + div + 0.7 * ce) > 1e-3  # detectable
    assert float(loss.detach()) == pytest.approx(
        float(base.detach()) + w * (ent + div + 0.7 * ce), rel=1e-10
    )
    # outside fit (no target set) the batch stands in for it
    est._shot = None
    pyro.set_rng_seed(3)
    _, logs = est._step(batch, 0.6)
    batch_label = pseudo_labels(s_t[:, -1], p.detach(), "shot")[0]
    ce_b = float(torch.nn.functional.cross_entropy(logits, batch_label))
    assert logs["pseudo_label_ce"] == pytest.approx(ce_b, rel=1e-10)


def test_shot_fixed_labels_each_window_once_and_keeps_it(toy):
    """pseudo_label="shot-fixed" (session 22): every target window's label is SHOT's (whole-set
    centroids at the first call), fixed for the fit (one computation over two epochs, not
    refreshed at an epoch's start nor when the network moves), and the step's cross-entropy
    uses the labels of the batch's own windows (float64)."""
    import pyro
    from cdhm.causal_hmm import _ShotCentroids
    from cdhm.models import shot_centroids, shot_labels

    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"
    est = CDHMClassifier(lambda_pl=0.7, pseudo_label="shot-fixed", **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["pseudo_label_ce"]).all()
    assert est._shot.fixed and est._shot.refreshes == 1  # once, not once per epoch
    assert est._shot.xt is None and est._shot.labels is None  # released after fit
    est.net_ = est.net_.double()
    net = est.net_
    xt = est._tensor(b.x).double()
    shot = _ShotCentroids(xt, torch.ones(len(xt), dtype=torch.long), fixed=True)
    got = shot.window_labels(net, False)
    with torch.no_grad():
        s = net.encode(xt, shot.ct)["s_loc"]
        want = shot_labels(
            s[:, -1], *shot_centroids(s[:, -1], torch.softmax(net.fault_logits(s), -1))
        )
    assert torch.equal(got, want) and got.shape == (len(xt),)
    shot.on_epoch_start(None)
    with torch.no_grad():
        for prm in net.parameters():
            prm.add_(0.5 * torch.randn_like(prm))
    assert shot.window_labels(net, False) is got and shot.refreshes == 1
    # the step: the labels of the batch's windows (indices "it"), not the batch's own clustering
    ib = np.linspace(0, len(b) - 1, 8).astype(int)
    batch = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(est, a, b).items()
    }
    batch["it"] = torch.as_tensor(ib)
    est._shot = shot
    with torch.no_grad():
        logits = net.fault_logits(net.encode(batch["xt"], batch["ct"])["s_loc"])
    # arbitrary fixed labels (not the batch's own clustering): the step must read these
    label = (got[batch["it"]] + torch.arange(8)) % logits.shape[-1]
    shot.labels = label.new_zeros(len(xt)).index_put((batch["it"],), label)
    ce = float(torch.nn.functional.cross_entropy(logits, label))
    pyro.set_rng_seed(3)
    _, logs = est._step(batch, 0.6)
    assert logs["pseudo_label_ce"] == pytest.approx(ce, rel=1e-10)
    # before the adaptation weight is > 0 nothing is fixed yet (the term weighs 0)
    late = CDHMClassifier(lambda_pl=0.7, pseudo_label="shot-fixed", align_warmup=0.9, **kw)
    late.net_ = net
    late._shot = _ShotCentroids(xt, shot.ct, fixed=True)
    pyro.set_rng_seed(3)
    late._step(batch, 0.1)
    assert late._shot.labels is None and late._shot.refreshes == 0


@pytest.mark.parametrize("mode", ["head", "centroid"])
def test_pseudo_label_term_enters_the_loss_as_written_through_the_frozen_head(toy, mode):
    """lambda_pl (session 20): step loss = plain loss + lambda_pl w(p) (1/m) sum_j keep_j
    CE(f(s_T^j), yhat_j) on the target windows (float64); the fault head gets no gradient from
    the term, the target's s does."""
    import pyro
    from cdhm.models import pseudo_labels

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"
    est = CDHMClassifier(lambda_pl=0.7, pseudo_label=mode, pl_threshold=0.0, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert np.isfinite(est.history_["pseudo_label_ce"]).all()
    est.net_ = est.net_.double()
    batch = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(est, a, b).items()
    }
    plain = CDHMClassifier(**kw)
    plain.net_ = est.net_
    net = est.net_
    with torch.no_grad():
        logits = net.fault_logits(net.encode(batch["xt"], batch["ct"])["s_loc"])
    # a threshold inside the batch's confidences: some windows kept, some not
    est.pl_threshold = float(torch.softmax(logits, -1).max(1).values.median())
    s_t = net.encode(batch["xt"], batch["ct"])["s_loc"]
    label, keep = pseudo_labels(s_t[:, -1], torch.softmax(logits, -1), mode, est.pl_threshold)
    assert (0 < int(keep.sum()) < 8) if mode == "head" else bool(keep.all())
    pyro.set_rng_seed(3)
    loss, logs = est._step(batch, 0.6)
    pyro.set_rng_seed(3)
    base, _ = plain._step(batch, 0.6)
    ce = torch.nn.functional.cross_entropy(logits, label, reduction="none")
    pl = float((ce * keep.double()).sum() / 8)
    w = est._align_weight(0.6)
    assert logs["pseudo_label_ce"] == pytest.approx(pl, rel=1e-10)
    assert 0.7 * w * pl > 1e-3  # detectable
    assert float(loss.detach()) == pytest.approx(float(base.detach()) + 0.7 * w * pl, rel=1e-10)
    # the term alone: no gradient into the fault head, some into the encoder
    net.zero_grad()
    frozen = net.fault_logits(s_t, frozen=True)
    assert torch.equal(frozen, logits)
    torch.nn.functional.cross_entropy(frozen, label).backward()
    assert all(p.grad is None for p in net.fault_head.parameters())
    assert sum(float(p.grad.abs().sum()) for p in net.encoder.parameters()) > 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "name"),
    [
        ({"lambda_pl": -0.1}, ValueError, "lambda_pl"),
        ({"lambda_pl": "1"}, TypeError, "lambda_pl"),
        ({"pseudo_label": "knn"}, ValueError, "pseudo_label"),
        ({"pseudo_label": "shot-fixed"}, ValueError, "shot-fixed.*lambda_pl"),  # lambda_pl=0
        ({"pl_threshold": 1.0}, ValueError, "pl_threshold"),
        ({"pl_threshold": float("nan")}, ValueError, "pl_threshold"),
    ],
)
def test_pseudo_label_options_reject_bad_values(toy, kwargs, exc, name):
    """CDHMClassifier.fit: a bad lambda_pl / pseudo_label / pl_threshold raises naming it."""
    a, _ = toy
    with pytest.raises(exc, match=name):
        CDHMClassifier(n_segments=4, epochs=1, **kwargs).fit(a.x, a.y)


@pytest.mark.parametrize("chain", ["s", "z"])
def test_sticky_prior_is_the_random_walk(chain):
    """sticky_s (session 21) / sticky_z (session 22): the model's p(s_t | s_{t-1}) (resp. z) is
    N(prev, sigma^2 I) for t >= 1 (loc the guide's previous sample itself, log-density as written
    in float64), while that chain's t = 0 site and every site of the other chain are the learned
    ones of the default net with the same weights."""
    from pyro import poutine

    g = torch.Generator().manual_seed(3)
    x = torch.randn(6, 4, 32, generator=g)
    c = torch.tensor([0, 0, 0, 1, 1, 1])
    kw = {"s_dim": 3, "z_dim": 2, "hidden": 16}
    sticky = CDHMNet(32, 4, 4, 2, **{f"sticky_{chain}": 0.25}, **kw)
    plain = CDHMNet(32, 4, 4, 2, **kw)
    plain.load_state_dict(sticky.state_dict())
    torch.manual_seed(0)
    guide = poutine.trace(sticky.guide).get_trace(x, c)
    tr = {
        name: poutine.trace(poutine.replay(net.model, trace=guide)).get_trace(x, c).nodes
        for name, net in (("sticky", sticky), ("plain", plain))
    }
    for t in range(1, 4):
        site, prev = f"{chain}_{t}", guide.nodes[f"{chain}_{t - 1}"]["value"]
        fn = tr["sticky"][site]["fn"].base_dist
        assert torch.equal(fn.loc, prev) and torch.equal(fn.scale, torch.full_like(prev, 0.25))
        v = guide.nodes[site]["value"].double()
        d = (v - prev.double()) / 0.25
        want = (-0.5 * d**2 - math.log(0.25) - 0.5 * math.log(2 * math.pi)).sum(-1)
        got = tr["sticky"][site]["fn"].log_prob(guide.nodes[site]["value"]).double()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
        assert not torch.equal(tr["plain"][site]["fn"].base_dist.loc, prev)
    other = "z" if chain == "s" else "s"
    same = [f"{chain}_0", *(f"{other}_{t}" for t in range(4))]
    for site in same:
        a, b = (tr[k][site]["fn"].base_dist for k in ("sticky", "plain"))
        assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale), site
    with pytest.raises(ValueError, match=f"sticky_{chain}"):
        CDHMNet(32, 4, 4, 2, **{f"sticky_{chain}": 0.25}, temporal_prior=False, **kw)


def test_sticky_s_reaches_the_net_and_survives_save_load(toy, tmp_path):
    """CDHMClassifier(sticky_s=...) builds the sticky net (with entangled=True its one latent is
    the sticky chain) and save/load rebuilds it: same option, same probabilities."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    est = CDHMClassifier(sticky_s=0.25, progress=False, **kw).fit(a.x, a.y, b.x)
    assert est.net_.sticky_s == 0.25 and CDHMClassifier().sticky_s is None
    est.save(tmp_path / "m")
    again = CDHMClassifier.load(tmp_path / "m")
    assert again.sticky_s == 0.25 and again.net_.sticky_s == 0.25
    np.testing.assert_array_equal(again.predict_proba(b.x), est.predict_proba(b.x))
    ent = CDHMClassifier(sticky_s=0.5, entangled=True, lambda_c=0.0, progress=False, **kw)
    ent.fit(a.x, a.y, b.x)
    assert ent.net_.sticky_s == 0.5 and ent.net_.s_dim == 5 and ent.net_.z_dim == 0


def test_sticky_z_auto_is_the_default_and_follows_the_markov_prior(toy):
    """The default sticky_z="auto" (session 22) builds the net with STICKY_Z (0.25) with the
    Markov prior, None without it (the no-temporal ablation still builds); bad strings name it."""
    from cdhm.causal_hmm import STICKY_Z

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    est = CDHMClassifier(progress=False, **kw)
    assert est.sticky_z == "auto" and STICKY_Z == 0.25
    assert est.fit(a.x, a.y, b.x).net_.sticky_z == STICKY_Z
    flat = CDHMClassifier(temporal_prior=False, progress=False, **kw).fit(a.x, a.y, b.x)
    assert flat.net_.sticky_z is None
    with pytest.raises(TypeError, match="sticky_z must be 'auto', None or a float"):
        CDHMClassifier(sticky_z="sticky", **kw).fit(a.x, a.y)
    with pytest.raises(TypeError, match="sticky_s"):  # "auto" is sticky_z's alone
        CDHMClassifier(sticky_s="auto", **kw).fit(a.x, a.y)


def test_sticky_z_reaches_the_net_and_survives_save_load(toy, tmp_path):
    """CDHMClassifier(sticky_z=...) builds the net with the slow z chain and save/load rebuilds
    it: same option, same probabilities; with entangled=True (no z) it changes nothing."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    est = CDHMClassifier(sticky_z=0.25, progress=False, **kw).fit(a.x, a.y, b.x)
    assert est.net_.sticky_z == 0.25 and est.net_.sticky_s is None
    est.save(tmp_path / "m")
    again = CDHMClassifier.load(tmp_path / "m")
    assert again.sticky_z == 0.25 and again.net_.sticky_z == 0.25
    np.testing.assert_array_equal(again.predict_proba(b.x), est.predict_proba(b.x))
    plain = CDHMClassifier(sticky_z=None, progress=False, **kw).fit(a.x, a.y, b.x)
    assert plain.net_.sticky_z is None
    assert not np.array_equal(plain.predict_proba(b.x), est.predict_proba(b.x))
    ekw = {**kw, "entangled": True, "lambda_c": 0.0, "progress": False}
    ent = CDHMClassifier(sticky_z=0.5, **ekw).fit(a.x, a.y, b.x)
    ent0 = CDHMClassifier(sticky_z=None, **ekw).fit(a.x, a.y, b.x)
    assert ent.net_.z_dim == 0
    np.testing.assert_array_equal(ent.predict_proba(b.x), ent0.predict_proba(b.x))


@pytest.mark.parametrize("name", ["sticky_s", "sticky_z"])
@pytest.mark.parametrize(
    ("value", "extra", "exc"),
    [
        (0.0, {}, ValueError),
        (-0.25, {}, ValueError),
        (float("nan"), {}, ValueError),
        (float("inf"), {}, ValueError),
        ("0.25", {}, TypeError),
        (True, {}, TypeError),
        (0.25, {"temporal_prior": False}, ValueError),
    ],
    ids=["zero", "negative", "nan", "inf", "str", "bool", "no-temporal-prior"],
)
def test_sticky_options_reject_bad_values(toy, name, value, extra, exc):
    """CDHMClassifier.fit: a bad sticky_s / sticky_z (or one without the Markov prior) raises
    naming it."""
    a, _ = toy
    with pytest.raises(exc, match=name):
        CDHMClassifier(n_segments=4, epochs=1, **{name: value}, **extra).fit(a.x, a.y)


def _generative_names(net):
    """Names of the generative model's parameters (decoder, scale, priors, heads)."""
    from cdhm.causal_hmm import GENERATIVE_PARTS

    return {
        k
        for k, _ in net.named_parameters()
        if k == "x_log_scale" or k.split(".")[0] in GENERATIVE_PARTS
    }


def test_generative_from_source_keeps_the_target_elbo_off_the_generative_model(toy):
    """generative_from="source" (session 23): after the split the step loss is
    (negELBO(source windows) + negELBO(target windows through the detached generative model)) /
    (B T D) + lambda_align w(p) MMD, and the target windows send no gradient to the decoder, the
    priors or the heads: replacing the batch's target windows leaves every generative (and source
    guide) gradient unchanged, float64, while the target guide's changes; with "both" the
    decoder's gradient does depend on them. Before the split the two settings are the same loss."""
    import pyro
    from pyro.infer import Trace_ELBO

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw |= {"progress": False, "target_encoder": "adapted", "adapt_start": 0.5}
    est = CDHMClassifier(generative_from="source", lambda_align=0.7, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert est.net_.target_split
    net = est.net_.double()
    both = CDHMClassifier(generative_from="both", lambda_align=0.7, **kw)
    both.net_ = net
    one = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(est, a, b).items()
    }
    other = dict(one, xt=torch.flip(one["xt"], [0]) * 0.5 + 0.1)  # other target windows
    params = dict(net.named_parameters())
    gen = _generative_names(net)
    src_guide = {
        k for k in params if k.split(".")[0] in ("encoder", "q_s", "q_s_out", "q_z", "q_z_out")
    }
    tgt_guide = {k for k in params if k.startswith("target_guide.")}
    assert gen and src_guide and tgt_guide and not (gen & src_guide)

    def grads(e, batch):
        pyro.set_rng_seed(3)
        loss, logs = e._step(batch, 0.75)
        got = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        g = {k: torch.zeros_like(p) if d is None else d for (k, p), d in zip(params.items(), got)}
        return loss, logs, g

    loss, logs, g1 = grads(est, one)
    _, _, g2 = grads(est, other)
    for k in gen | src_guide:
        assert float((g1[k] - g2[k]).abs().max()) <= 1e-12, k
    assert max(float((g1[k] - g2[k]).abs().max()) for k in tgt_guide) > 1e-6
    assert max(float(g1[k].abs().max()) for k in gen) > 1e-6  # the source still trains them
    _, _, h1 = grads(both, one)
    _, _, h2 = grads(both, other)
    assert max(float((h1[k] - h2[k]).abs().max()) for k in gen if k.startswith("decoder")) > 1e-6
    # the loss as written, on the same Pyro draws (source pass first, then the target pass)
    per, ns = net.T * net.D, 8
    scales = (1.0, 1.0 * per * 16 / ns, 0.5 * per, 1.0)
    x = torch.cat([one["xs"], one["xt"]])
    c = torch.cat([one["cs"], one["ct"]])
    y = torch.cat([one["ys"], torch.zeros(8, dtype=torch.long)])
    m = torch.arange(16) < ns
    pyro.set_rng_seed(3)
    elbo = Trace_ELBO(max_plate_nesting=1)
    with pyro.validation_enabled(False):
        neg_s = elbo.differentiable_loss(
            net.model, net.guide, x[:ns], c[:ns], y[:ns], m[:ns], *scales, target_rows=~m[:ns]
        )
        decoder_weight = net.decoder[0].weight
        with net.generative_detached():
            assert not net.decoder[0].weight.requires_grad
            neg_t = elbo.differentiable_loss(
                net.model, net.guide, x[ns:], c[ns:], y[ns:], m[ns:], *scales, target_rows=~m[ns:]
            )
    assert net.decoder[0].weight is decoder_weight and isinstance(
        net.x_log_scale, torch.nn.Parameter
    )
    from cdhm.models import ganin_lambda

    w = ganin_lambda(0.5)
    assert logs["align_weight"] == w
    expected = float((neg_s + neg_t).detach()) / (16 * per) + 0.7 * w * logs["align"]
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # before the split: one pass over both domains, the same loss either way
    for e in (est, both):
        e.net_ = e._build(net.D, 4, 2).double()
        e.net_.load_state_dict(net.state_dict())
        e.net_.target_active.fill_(False)
    pyro.set_rng_seed(3)
    before_src, _ = est._step(one, 0.25)
    pyro.set_rng_seed(3)
    before_both, _ = both._step(one, 0.25)
    assert float(before_src.detach()) == float(before_both.detach())
    est.net_.float()


def test_generative_from_source_fits_saves_and_loads(toy, tmp_path):
    """An end-to-end fit with generative_from="source" predicts through the target guide, differs
    from "both" on the same seed, and save / load restores the option and the probabilities."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    est = CDHMClassifier(generative_from="source", progress=False, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    proba = est.predict_proba(b.x)
    assert np.isfinite(proba).all() and est.net_.target_split
    plain = CDHMClassifier(generative_from="both", progress=False, **kw)
    plain.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert not np.array_equal(plain.predict_proba(b.x), proba)
    est.save(tmp_path / "m")
    again = CDHMClassifier.load(tmp_path / "m")
    assert again.generative_from == "source"
    np.testing.assert_array_equal(again.predict_proba(b.x), proba)


@pytest.mark.parametrize(
    ("value", "extra", "exc"),
    [
        ("target", {}, ValueError),
        ("", {}, ValueError),
        (None, {}, TypeError),
        (1, {}, TypeError),
        ("source", {"target_encoder": "shared"}, ValueError),
    ],
    ids=["unknown", "empty", "none", "int", "shared-encoder"],
)
def test_generative_from_rejects_bad_values(toy, value, extra, exc):
    """CDHMClassifier.fit: a bad generative_from (or "source" without the untied target guide)
    raises naming it."""
    a, _ = toy
    with pytest.raises(exc, match="generative_from"):
        CDHMClassifier(n_segments=4, epochs=1, generative_from=value, **extra).fit(a.x, a.y)


def test_target_z_source_fits_the_target_through_s_only(toy):
    """target_z="source" (session 23b) on generative_from="source": after the split the target
    windows' q(z) is the source guide's z path read as constants, so (float64) the target guide's
    z path (q_z, q_z_out) gets no gradient and does not move over optimiser steps while its s path
    (encoder, q_s, q_s_out) does; replacing the batch's target windows leaves every generative and
    source-guide gradient unchanged; the cached target z means are exactly the source guide's.
    With target_z="adapted" the target guide's z path does get a gradient (the contrast)."""
    import pyro

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw |= {"progress": False, "target_encoder": "adapted", "generative_from": "source"}
    est = CDHMClassifier(target_z="source", lambda_align=0.7, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    assert est.net_.target_split and est.net_.target_z == "source"
    net = est.net_.double()
    off = CDHMClassifier(target_z="adapted", lambda_align=0.7, **kw)
    off.net_ = off._build(net.D, 4, 2).double()
    off.net_.load_state_dict(net.state_dict())
    assert off.net_.target_z == "adapted"
    one = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(est, a, b).items()
    }
    other = dict(one, xt=torch.flip(one["xt"], [0]) * 0.5 + 0.1)
    z_path = ("target_guide.q_z.", "target_guide.q_z_out.")
    s_path = ("target_guide.encoder.", "target_guide.q_s.", "target_guide.q_s_out.")

    def grads(e, batch):
        params = dict(e.net_.named_parameters())
        pyro.set_rng_seed(3)
        loss, _ = e._step(batch, 0.75)
        got = torch.autograd.grad(loss, list(params.values()), allow_unused=True)
        return {k: d for k, d in zip(params, got)}

    g1, g2 = grads(est, one), grads(est, other)
    assert [k for k in g1 if k.startswith(z_path)]
    for k in g1:
        if k.startswith(z_path):
            assert g1[k] is None, k
    assert max(float(g1[k].abs().max()) for k in g1 if k.startswith(s_path)) > 1e-6
    for k in g1:
        if not k.startswith("target_guide."):
            d1 = torch.zeros(()) if g1[k] is None else g1[k]
            d2 = torch.zeros(()) if g2[k] is None else g2[k]
            assert float((d1 - d2).abs().max()) <= 1e-12, k
    # the cached target posterior: s from the target guide, z from the source guide
    post = net.encode(one["xt"], one["ct"], torch.ones(8, dtype=torch.bool))
    with torch.no_grad():
        src = net._encode(one["xt"], one["ct"], net)
        tgt = net._encode(one["xt"], one["ct"], net.target_guide)
    assert torch.equal(post["z_loc"], src["z_loc"]) and torch.equal(post["z_scale"], src["z_scale"])
    assert torch.equal(post["s_loc"], tgt["s_loc"]) and not torch.equal(src["s_loc"], tgt["s_loc"])
    assert not post["z_loc"].requires_grad and post["s_loc"].requires_grad
    h = grads(off, one)
    assert max(float(h[k].abs().max()) for k in h if k.startswith(z_path)) > 1e-6
    # a few optimiser steps: the target guide's z path stays at its split values, its s path moves
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    for _ in range(3):
        pyro.set_rng_seed(3)
        loss, _ = est._step(one, 0.75)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = dict(net.named_parameters())
    for k in before:
        if k.startswith(z_path):
            assert torch.equal(before[k], after[k].detach()), k
    assert any(
        not torch.equal(before[k], after[k].detach()) for k in before if k.startswith(s_path)
    )
    est.net_.float()


def test_target_z_off_changes_nothing(toy):
    """target_z="adapted" (the default) fits exactly as before the option existed: the same
    probabilities as a fit that does not pass it, and "source" differs on the same seed."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    kw |= {"progress": False, "generative_from": "source"}
    base = CDHMClassifier(**kw).fit(a.x, a.y, b.x, a.domain, b.domain).predict_proba(b.x)
    off = CDHMClassifier(target_z="adapted", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    np.testing.assert_array_equal(off.predict_proba(b.x), base)
    on = CDHMClassifier(target_z="source", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    proba = on.predict_proba(b.x)
    assert np.isfinite(proba).all() and not np.array_equal(proba, base)


@pytest.mark.parametrize(
    ("value", "extra", "exc"),
    [
        ("frozen", {"generative_from": "source"}, ValueError),
        (None, {"generative_from": "source"}, TypeError),
        (1, {"generative_from": "source"}, TypeError),
        ("source", {}, ValueError),
        ("source", {"generative_from": "source", "entangled": True}, ValueError),
    ],
    ids=["unknown", "none", "int", "generative-both", "entangled"],
)
def test_target_z_rejects_bad_values(toy, value, extra, exc):
    """CDHMClassifier.fit: a bad target_z, or "source" without generative_from="source" or
    without a z block, raises naming it."""
    a, _ = toy
    with pytest.raises(exc, match="target_z"):
        CDHMClassifier(n_segments=4, epochs=1, target_z=value, **extra).fit(a.x, a.y)


def test_target_opt_state_source_carries_adam_state_at_the_split(toy):
    """target_opt_state="source" (session 24): at the step of the split, before its update, each
    target-guide parameter gets a copy (equal values, its own tensors) of its source twin's Adam
    state, so the source's step count and moments continue in the target guide (float64)."""
    from types import SimpleNamespace

    import pyro
    from cdhm.causal_hmm import GUIDE_PARTS, _CarryOptimizerState

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    est = CDHMClassifier(progress=False, target_opt_state="source", **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    net = est.net_.double()
    net.target_active.fill_(False)  # back to before the split
    batch = {
        k: (v.double() if v.is_floating_point() else v)
        for k, v in _eight_windows(est, a, b).items()
    }
    opt = torch.optim.Adam(net.parameters(), lr=1e-2, weight_decay=1e-4)
    carry = _CarryOptimizerState()
    state = SimpleNamespace(model=net, optimizer=opt)
    for progress in (0.1, 0.2, 0.3, 0.6):  # three steps before the split, then the split
        pyro.set_rng_seed(3)
        loss, _ = est._step(batch, progress)
        opt.zero_grad()
        loss.backward()
        if progress == 0.6:
            assert net.target_split
            carry.on_after_backward(state)
            pairs = [
                (s, t)
                for n in (*GUIDE_PARTS, "s_skip")
                if hasattr(net, n)
                for s, t in zip(getattr(net, n).parameters(), net.target_guide[n].parameters())
            ]
            assert len(pairs) > 10
            for s, t in pairs:
                assert set(opt.state[t]) == set(opt.state[s]) == {"step", "exp_avg", "exp_avg_sq"}
                for k in opt.state[s]:
                    assert torch.equal(opt.state[t][k], opt.state[s][k])
                    assert opt.state[t][k] is not opt.state[s][k]
                assert float(opt.state[t]["step"]) == 3.0
        else:
            carry.on_after_backward(state)  # before the split: nothing is copied
            assert not any(opt.state.get(p) for p in net.target_guide.parameters())
        opt.step()
    # after the update each guide's state has moved on with its own gradient
    for s, t in pairs:
        assert float(opt.state[t]["step"]) == float(opt.state[s]["step"]) == 4.0
    assert any(not torch.equal(opt.state[t]["exp_avg"], opt.state[s]["exp_avg"]) for s, t in pairs)
    est.net_.float()


class _KeepOptimizer(Callback):
    """Keeps the fit's optimiser (for the step counts of its state) and the identity of the target
    guide's state entries after the first step of the split."""

    first = None

    def on_step_end(self, state):
        net = state.model
        if self.first is None and net.target_split:
            self.first = [id(state.optimizer.state[p]) for p in net.target_guide.parameters()]

    def on_fit_end(self, state):
        self.optimizer, self.net = state.optimizer, state.model


@pytest.mark.parametrize("value", ["fresh", "source"])
def test_target_opt_state_step_counts_after_a_fit(toy, value):
    """After a fit the target guide's Adam step count is the source guide's with "source" (the
    state was carried at the split) and only the steps since the split with "fresh"."""
    from cdhm.causal_hmm import GUIDE_PARTS

    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    keep = _KeepOptimizer()
    est = CDHMClassifier(progress=False, target_opt_state=value, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain, callbacks=[keep])
    net, opt = keep.net, keep.optimizer
    assert net.target_split
    # the state is carried once, at the split: later steps update the same entries in place
    assert keep.first == [id(opt.state[p]) for p in net.target_guide.parameters()]
    for n in [n for n in (*GUIDE_PARTS, "s_skip") if hasattr(net, n)]:
        for s, t in zip(getattr(net, n).parameters(), net.target_guide[n].parameters()):
            src, tgt = float(opt.state[s]["step"]), float(opt.state[t]["step"])
            if value == "source":
                assert tgt == src
            else:
                assert 0 < tgt < src


def test_target_opt_state_auto_is_source_with_the_untied_guide(toy):
    """target_opt_state="auto" (the default since session 24) fits exactly as "source" with the
    untied target guide and as "fresh" with the shared one; "fresh" (the behaviour before) differs
    from the default on the same seed."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    kw |= {"progress": False}

    def proba(**extra):
        est = CDHMClassifier(**kw, **extra).fit(a.x, a.y, b.x, a.domain, b.domain)
        return est.predict_proba(b.x)

    base = proba()
    assert CDHMClassifier().target_opt_state == "auto"
    np.testing.assert_array_equal(proba(target_opt_state="source"), base)
    fresh = proba(target_opt_state="fresh")
    assert np.isfinite(fresh).all() and not np.array_equal(fresh, base)
    np.testing.assert_array_equal(
        proba(target_encoder="shared"), proba(target_encoder="shared", target_opt_state="fresh")
    )


@pytest.mark.parametrize(
    ("value", "extra", "exc"),
    [
        ("copy", {}, ValueError),
        ("", {}, ValueError),
        (None, {}, TypeError),
        (True, {}, TypeError),
        ("source", {"target_encoder": "shared"}, ValueError),
    ],
    ids=["unknown", "empty", "none", "bool", "shared-encoder"],
)
def test_target_opt_state_rejects_bad_values(toy, value, extra, exc):
    """CDHMClassifier.fit: a bad target_opt_state, or "source" without the untied target guide,
    raises naming it ("auto" with the shared guide is valid: it resolves to "fresh")."""
    a, _ = toy
    with pytest.raises(exc, match="target_opt_state"):
        CDHMClassifier(n_segments=4, epochs=1, target_opt_state=value, **extra).fit(a.x, a.y)


def test_class_scatter_ratio_matches_its_equation():
    """class_scatter_ratio (session 25): tr(S_W) / tr(S_T), by hand in float64; in [0, 1],
    invariant to a common shift, rotation and scale; 0 with one class; bad shapes raise."""
    from cdhm.causal_hmm import class_scatter_ratio

    s = torch.tensor([[0.0, 0.0], [2.0, 0.0], [10.0, 1.0], [12.0, -1.0], [5.0, 5.0]])
    s = s.double()
    y = torch.tensor([0, 0, 1, 1, 2])
    # class means (1, 0), (11, 0), (5, 5); within = 1 + 1 + 2 + 2 + 0 = 6
    m = s.mean(0)
    total = float(((s - m) ** 2).sum())
    assert float(class_scatter_ratio(s, y)) == pytest.approx(6.0 / total, rel=1e-12)
    rot = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    moved = 7.5 * s @ rot + torch.tensor([3.0, -4.0], dtype=torch.float64)
    assert float(class_scatter_ratio(moved, y)) == pytest.approx(6.0 / total, rel=1e-12)
    # each class one point: 0; every class with the same mean: 1
    pts = torch.tensor([[1.0, 2.0], [1.0, 2.0], [4.0, 0.0]], dtype=torch.float64)
    assert float(class_scatter_ratio(pts, torch.tensor([0, 0, 1]))) == 0.0
    same = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]], dtype=torch.float64)
    assert float(class_scatter_ratio(same, torch.tensor([0, 0, 1, 1]))) == pytest.approx(1.0)
    # one class: 0, still in the graph
    a = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    out = class_scatter_ratio(a, torch.zeros(5, dtype=torch.long))
    assert float(out.detach()) == 0.0
    out.backward()
    assert a.grad is not None and float(a.grad.abs().sum()) == 0.0
    with pytest.raises(ValueError, match="class_scatter_ratio needs s"):
        class_scatter_ratio(s, y[:4])


def test_compact_term_enters_the_loss_as_written(toy):
    """lambda_compact (session 25): the step loss is the plain loss + lambda_compact
    tr(S_W) / tr(S_T) of the source windows' posterior means s_T and their labels."""
    from cdhm.causal_hmm import class_scatter_ratio

    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["target_encoder"] = "shared"  # the equation below is the shared encoder's
    est = CDHMClassifier(lambda_compact=0.7, **kw)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    hist = np.asarray(est.history_["compact"])
    assert np.isfinite(hist).all() and ((hist >= 0) & (hist <= 1)).all()
    net = est.net_
    batch, loss, logs, plain = _step_beside_plain(est, CDHMClassifier(**kw), a, b, 0.4)
    with torch.no_grad():
        x = torch.cat([batch["xs"], batch["xt"]])
        s = net.encode(x, torch.cat([batch["cs"], batch["ct"]]))["s_loc"].double()
        ratio = float(class_scatter_ratio(s[:8, -1], batch["ys"]))
    assert logs["compact"] == pytest.approx(ratio, rel=1e-4, abs=1e-7)
    assert 0.7 * ratio > 1e-3 * abs(float(plain.detach()))  # detectable
    expected = float(plain.detach()) + 0.7 * ratio
    assert float(loss.detach()) == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_compact_off_changes_nothing_and_on_gathers_the_source_classes(toy):
    """lambda_compact=0 (the default) fits exactly as a fit that does not pass it; a positive
    weight changes the fit and leaves the source classes more compact in s (lower within / total
    scatter of the training windows' s_T) than the same fit without it."""
    from cdhm.causal_hmm import class_scatter_ratio

    a, b = toy
    kw = {"n_segments": 4, "epochs": 6, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    base = CDHMClassifier(**kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    off = CDHMClassifier(lambda_compact=0.0, **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    np.testing.assert_array_equal(off.predict_proba(b.x), base.predict_proba(b.x))
    on = CDHMClassifier(lambda_compact=5.0, **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert not np.array_equal(on.predict_proba(b.x), base.predict_proba(b.x))
    y = torch.from_numpy(np.searchsorted(base.classes_, a.y))

    def ratio(est):
        s = torch.from_numpy(est.transform(a.x, a.domain, part="s")).double()
        return float(class_scatter_ratio(s, y))

    assert ratio(on) < ratio(base)


@pytest.mark.parametrize(
    ("value", "exc"),
    [(-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("1", TypeError)],
    ids=["negative", "nan", "inf", "str"],
)
def test_lambda_compact_rejects_bad_values(toy, value, exc):
    """CDHMClassifier.fit: a bad lambda_compact raises naming it."""
    a, _ = toy
    with pytest.raises(exc, match="lambda_compact"):
        CDHMClassifier(n_segments=4, epochs=1, lambda_compact=value).fit(a.x, a.y)


def test_s_dropout_off_changes_nothing_and_on_acts_on_the_s_path_only(toy):
    """s_dropout (session 25): at 0 (the default) no dropout module exists and the fit is the fit
    that does not pass it; at 0.5 the fit changes, in training mode two reads of the same windows
    give different q(s) but the same q(z) (the z path reads the features undropped), and in eval
    mode the read is deterministic and equals the read with the dropout module removed."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 3, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    base = CDHMClassifier(**kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    off = CDHMClassifier(s_dropout=0.0, **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert base.net_.s_drop is None and off.net_.s_drop is None
    np.testing.assert_array_equal(off.predict_proba(b.x), base.predict_proba(b.x))
    on = CDHMClassifier(s_dropout=0.5, **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert not np.array_equal(on.predict_proba(b.x), base.predict_proba(b.x))
    net = on.net_
    x, c = on.segments(a.x, a.domain)
    net.train()
    with torch.no_grad():
        one, two = net.encode(x, c), net.encode(x, c)
    assert not torch.equal(one["s_loc"], two["s_loc"])
    torch.testing.assert_close(one["z_loc"], two["z_loc"], rtol=0, atol=0)
    net.eval()
    with torch.no_grad():
        first, second = net.encode(x, c), net.encode(x, c)
        drop, net.s_drop = net.s_drop, None
        plain = net.encode(x, c)
        net.s_drop = drop
    torch.testing.assert_close(first["s_loc"], second["s_loc"], rtol=0, atol=0)
    torch.testing.assert_close(first["s_loc"], plain["s_loc"], rtol=0, atol=0)
    np.testing.assert_array_equal(on.predict_proba(b.x), on.predict_proba(b.x))


def test_s_dropout_scales_the_kept_features_of_q_s(toy):
    """In training mode the q(s) input is inverted dropout of the encoder features: each kept
    feature is divided by 1 - rate, each dropped one is 0 (float64)."""
    from cdhm.causal_hmm import CDHMNet

    net = CDHMNet(8, 2, 3, 2, s_dim=2, z_dim=2, hidden=8, feat_dim=16, s_dropout=0.25).double()
    net.train()
    e = torch.rand(64, 2, 16, dtype=torch.float64) + 0.5
    out = net.s_drop(e)
    kept = out != 0
    torch.testing.assert_close(out[kept], e[kept] / 0.75, rtol=1e-12, atol=0)
    assert 0.6 < float(kept.double().mean()) < 0.9


@pytest.mark.parametrize(
    ("option", "value", "exc"),
    [
        ("s_dropout", -0.1, ValueError),
        ("s_dropout", 1.0, ValueError),
        ("s_dropout", float("nan"), ValueError),
        ("s_dropout", "0.5", TypeError),
        ("s_dropout", True, TypeError),
        ("s_skip", "lin", ValueError),
        ("s_skip", "", ValueError),
        ("s_skip", None, TypeError),
        ("s_skip", 1, TypeError),
        ("s_skip", True, TypeError),
    ],
    ids=[
        "dropout-negative",
        "dropout-one",
        "dropout-nan",
        "dropout-str",
        "dropout-bool",
        "skip-unknown",
        "skip-empty",
        "skip-none",
        "skip-int",
        "skip-bool",
    ],  # fmt: skip
)
def test_s_path_options_reject_bad_values(toy, option, value, exc):
    """CDHMClassifier.fit and CDHMNet: a bad s_dropout or s_skip (the options of the path into
    q(s)) raises naming the option."""
    from cdhm.causal_hmm import CDHMNet

    a, _ = toy
    with pytest.raises(exc, match=option):
        CDHMClassifier(n_segments=4, epochs=1, **{option: value}).fit(a.x, a.y)
    with pytest.raises(exc, match=option):
        CDHMNet(8, 2, 3, 2, **{option: value})


def test_s_skip_default_is_linear_and_none_makes_no_module(toy):
    """s_skip (session 26): the default is "linear" (adopted on validation), and a fit with it is
    the fit that names it; at "none" (the behaviour before) no skip module exists, the target
    guide has no copy of one, and the fit differs from the default's."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    assert CDHMClassifier().s_skip == "linear"
    base = CDHMClassifier(**kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    named = CDHMClassifier(s_skip="linear", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    np.testing.assert_array_equal(named.predict_proba(b.x), base.predict_proba(b.x))
    assert "s_skip" in base.net_.target_guide
    off = CDHMClassifier(s_skip="none", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert not hasattr(off.net_, "s_skip") and "s_skip" not in off.net_.target_guide
    assert not np.array_equal(off.predict_proba(b.x), base.predict_proba(b.x))


@pytest.mark.parametrize("mode", ["linear", "linear-only"])
def test_s_skip_starts_from_the_model_without_it_and_reads_the_running_mean(mode):
    """At construction (same seed) every parameter of the net without the skip is unchanged and
    the skip is zero; the skip's output is W mean(x_1..x_t) (+ b) by hand (float64); with
    "linear" q(s_0)'s mean is the GRU's mean plus the skip's, with "linear-only" every step's mean
    is the skip's, and q(z) and q(s)'s scale at t = 0 are the off net's."""
    from cdhm.causal_hmm import CDHMNet

    args = (8, 3, 4, 2)
    kw = {"s_dim": 3, "z_dim": 2, "hidden": 8, "feat_dim": 16, "target_guide": True}
    torch.manual_seed(0)
    off = CDHMNet(*args, **kw).double()
    after_off = torch.rand(())  # the next random draw: the skip draws none
    torch.manual_seed(0)
    on = CDHMNet(*args, s_skip=mode, **kw).double()
    assert torch.rand(()) == after_off
    sd_off, sd_on = off.state_dict(), on.state_dict()
    assert set(sd_on) - set(sd_off) == {
        k for k in sd_on if k.startswith(("s_skip.", "target_guide.s_skip."))
    }
    for k, v in sd_off.items():
        torch.testing.assert_close(sd_on[k], v, rtol=0, atol=0)
    assert not bool(on.s_skip.weight.detach().any())
    assert (on.s_skip.bias is not None) == (mode == "linear-only")
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, 8, generator=gen, dtype=torch.float64)
    c = torch.tensor([0, 1, 0, 1, 1])
    with torch.no_grad():
        on.s_skip.weight.copy_(torch.randn(3, 8, generator=gen, dtype=torch.float64))
        if on.s_skip.bias is not None:
            on.s_skip.bias.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
        w, bias = on.s_skip.weight, on.s_skip.bias
        by_hand = torch.stack(
            [x[:, : t + 1].mean(1) @ w.T + (0 if bias is None else bias) for t in range(3)], 1
        )
        torch.testing.assert_close(on.s_skip(x), by_hand, rtol=1e-12, atol=1e-12)
        q_on, q_off = on.encode(x, c), off.encode(x, c)
    torch.testing.assert_close(q_on["z_loc"], q_off["z_loc"], rtol=0, atol=0)
    torch.testing.assert_close(q_on["s_scale"][:, 0], q_off["s_scale"][:, 0], rtol=0, atol=0)
    if mode == "linear":
        torch.testing.assert_close(
            q_on["s_loc"][:, 0], q_off["s_loc"][:, 0] + by_hand[:, 0], rtol=1e-12, atol=1e-12
        )
    else:
        torch.testing.assert_close(q_on["s_loc"], by_hand, rtol=1e-12, atol=1e-12)


def test_s_skip_is_trained_and_split_with_the_target_guide(toy):
    """With s_skip="linear" the fit changes, the skip is trained away from zero, the untied target
    guide holds its own copy (split from the source one, then adapted: the two differ) and the
    copy is what reads the target windows."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 3, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    base = CDHMClassifier(s_skip="none", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    on = CDHMClassifier(s_skip="linear", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    net = on.net_
    assert net.target_split and "s_skip" in net.target_guide
    src, tgt = net.s_skip.weight, net.target_guide["s_skip"].weight
    assert bool(src.detach().any()) and bool(tgt.detach().any())
    assert not torch.equal(src, tgt)
    assert not np.array_equal(on.predict_proba(b.x), base.predict_proba(b.x))
    x, c = on.segments(b.x, b.domain)
    with torch.no_grad():
        rows = net.encode(x, c, torch.ones(len(x), dtype=torch.bool))["s_loc"]
        saved = tgt.detach().clone()
        tgt.zero_()
        zeroed = net.encode(x, c, torch.ones(len(x), dtype=torch.bool))["s_loc"]
        tgt.copy_(saved)
    assert not torch.equal(rows, zeroed)


@pytest.mark.parametrize(
    ("kw", "exc"),
    [
        ({"target_skip": "src"}, ValueError),
        ({"target_skip": ""}, ValueError),
        ({"target_skip": None}, TypeError),
        ({"target_skip": 1}, TypeError),
        ({"target_skip": "source", "s_skip": "none"}, ValueError),
        ({"target_skip": "none", "s_skip": "linear-only"}, ValueError),
    ],
    ids=["unknown", "empty", "none-object", "int", "no-skip", "linear-only"],
)
def test_target_skip_rejects_bad_values(toy, kw, exc):
    """CDHMClassifier.fit and CDHMNet: a bad target_skip, or one its s_skip cannot serve, raises
    naming target_skip; the classifier also refuses "source" / "none" without the untied guide."""
    a, _ = toy
    with pytest.raises(exc, match="target_skip"):
        CDHMClassifier(n_segments=4, epochs=1, **kw).fit(a.x, a.y)
    with pytest.raises(exc, match="target_skip"):
        CDHMNet(8, 2, 3, 2, target_guide=True, **{"s_skip": "linear", **kw})
    for mode in ("source", "none"):
        with pytest.raises(ValueError, match="target_skip"):
            CDHMClassifier(n_segments=4, epochs=1, target_skip=mode, target_encoder="shared").fit(
                a.x, a.y
            )
        with pytest.raises(ValueError, match="target_skip"):
            CDHMNet(8, 2, 3, 2, s_skip="linear", target_skip=mode)  # no target guide


def _three_target_skips() -> tuple[dict, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One float64 net per target_skip, same weights, split, with distinct non-zero source and
    target skips; a batch x, c and its target rows (the last three windows)."""
    args = (8, 3, 4, 2)
    kw = {"s_dim": 3, "z_dim": 2, "hidden": 8, "feat_dim": 16, "target_guide": True}
    nets = {}
    for mode in ("adapted", "source", "none"):
        torch.manual_seed(0)
        nets[mode] = CDHMNet(*args, s_skip="linear", target_skip=mode, **kw).double()
    gen = torch.Generator().manual_seed(3)
    w_src = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    w_tgt = torch.randn(3, 8, generator=gen, dtype=torch.float64)
    for net in nets.values():
        with torch.no_grad():
            net.s_skip.weight.copy_(w_src)
            net.split_target()
            net.target_guide["s_skip"].weight.copy_(w_tgt)
    x = torch.randn(6, 3, 8, generator=gen, dtype=torch.float64)
    c = torch.tensor([0, 1, 0, 1, 1, 0])
    rows = torch.tensor([False, False, False, True, True, True])
    return nets, x, c, rows


def test_target_skip_reads_the_source_skip_or_none_on_target_windows_only():
    """float64, one set of weights: at t = 0 a target window's q(s) mean is the target GRU's plus
    the target copy's skip ("adapted"), plus the source guide's skip ("source"), or the GRU's
    alone ("none") (the skip terms by hand); at every step "source" is "adapted" with the target
    copy set to the source skip and "none" is "adapted" with it zeroed; source windows and q(z)
    are the same in all three."""
    nets, x, c, rows = _three_target_skips()
    ref = nets["adapted"]
    with torch.no_grad():
        q = {m: net.encode(x, c, rows) for m, net in nets.items()}
        w_src, w_tgt = ref.s_skip.weight.clone(), ref.target_guide["s_skip"].weight.clone()
        ref.target_guide["s_skip"].weight.copy_(w_src)
        as_source = ref.encode(x, c, rows)
        ref.target_guide["s_skip"].weight.zero_()
        as_none = ref.encode(x, c, rows)
        ref.target_guide["s_skip"].weight.copy_(w_tgt)
    gru0 = q["none"]["s_loc"][rows][:, 0]
    x0 = x[rows][:, 0]
    torch.testing.assert_close(
        q["adapted"]["s_loc"][rows][:, 0], gru0 + x0 @ w_tgt.T, rtol=1e-12, atol=1e-12
    )
    torch.testing.assert_close(
        q["source"]["s_loc"][rows][:, 0], gru0 + x0 @ w_src.T, rtol=1e-12, atol=1e-12
    )
    for m, same in (("source", as_source), ("none", as_none)):
        for k in ("s_loc", "s_scale", "z_loc", "z_scale"):
            torch.testing.assert_close(q[m][k], same[k], rtol=0, atol=0)
            torch.testing.assert_close(q[m][k][~rows], q["adapted"][k][~rows], rtol=0, atol=0)
        torch.testing.assert_close(q[m]["z_loc"], q["adapted"]["z_loc"], rtol=0, atol=0)
        assert not torch.allclose(q[m]["s_loc"][rows], q["adapted"]["s_loc"][rows]), m


def test_target_skip_source_sends_no_target_gradient_into_either_skip():
    """With "source" a loss on the target windows' s reaches the target GRU but neither skip's
    weight (the source's is read detached, the target copy unused); with "adapted" it reaches
    the target copy."""
    nets, x, c, rows = _three_target_skips()
    for mode in ("source", "adapted"):
        net = nets[mode]
        net.zero_grad()
        net.encode(x, c, rows)["s_loc"][rows].pow(2).sum().backward()
        assert net.target_guide["q_s"].weight_ih.grad.abs().sum() > 0
        assert net.s_skip.weight.grad is None or not net.s_skip.weight.grad.any()
        tgt_grad = net.target_guide["s_skip"].weight.grad
        reached = tgt_grad is not None and bool(tgt_grad.any())
        assert reached == (mode == "adapted"), mode


def test_target_skip_fit_keeps_the_split_copy_and_changes_the_fit(toy):
    """A fit with target_skip="adapted" is the default's; with "source" the target copy of the
    skip stays at its value at the split (never trained) while the source skip keeps training,
    and the target predictions differ from the default's; "none" differs from both."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 3, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    assert CDHMClassifier().target_skip == "adapted"
    base = CDHMClassifier(**kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    named = CDHMClassifier(target_skip="adapted", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    np.testing.assert_array_equal(named.predict_proba(b.x), base.predict_proba(b.x))
    src = CDHMClassifier(target_skip="source", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    none = CDHMClassifier(target_skip="none", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    w_t = src.net_.target_guide["s_skip"].weight
    assert bool(w_t.detach().any()) and not torch.equal(w_t, src.net_.s_skip.weight)
    p_base, p_src, p_none = (m.predict_proba(b.x) for m in (base, src, none))
    assert not np.array_equal(p_src, p_base)
    assert not np.array_equal(p_none, p_base) and not np.array_equal(p_none, p_src)


@pytest.mark.parametrize(
    ("kw", "exc"),
    [
        ({"s_transition": "AR1"}, ValueError),
        ({"s_transition": "AUTO"}, ValueError),
        ({"s_transition": ""}, ValueError),
        ({"s_transition": None}, TypeError),
        ({"s_transition": 1}, TypeError),
        ({"s_transition": "ar1", "temporal_prior": False}, ValueError),
        ({"s_transition": "ar1", "sticky_s": 0.25}, ValueError),
    ],
    ids=["unknown", "upper-auto", "empty", "none-object", "int", "no-temporal-prior", "sticky-s"],
)
def test_s_transition_rejects_bad_values(toy, kw, exc):
    """CDHMClassifier.fit and CDHMNet: a bad s_transition, or "ar1" where there is no Markov
    transition of s to parameterise (temporal_prior=False) or sticky_s sets it, raises naming
    s_transition."""
    a, _ = toy
    with pytest.raises(exc, match="s_transition"):
        CDHMClassifier(n_segments=4, epochs=1, **kw).fit(a.x, a.y)
    with pytest.raises(exc, match="s_transition"):
        CDHMNet(8, 2, 3, 2, **kw)


def test_s_transition_ar1_changes_the_s_prior_and_nothing_else():
    """s_transition="ar1" (session 28): same seed, the net's other parameters are those of the
    "learned" net and it draws no random number; with the same weights the guide is the same, every
    z and x site of the model is the same, and only the s sites change: p(s_0) = N(0, 1) and
    p(s_t | s_{t-1}) = N(rho s_{t-1}, 1 - rho^2) with rho = sigmoid(a) (log-density by hand,
    float64); rho -> 0 gives the no-temporal prior's N(0, I) at every step."""
    from pyro import poutine

    args = (8, 3, 4, 2)
    kw = {"s_dim": 3, "z_dim": 2, "hidden": 8, "feat_dim": 16, "s_skip": "linear"}
    torch.manual_seed(0)
    plain = CDHMNet(*args, **kw).double()
    after = torch.rand(())
    torch.manual_seed(0)
    ar = CDHMNet(*args, s_transition="ar1", **kw).double()
    assert torch.rand(()) == after
    sd_plain, sd_ar = plain.state_dict(), ar.state_dict()
    assert set(sd_ar) - set(sd_plain) == {"p_s_ar.logit_rho"}
    for k, v in sd_plain.items():
        torch.testing.assert_close(sd_ar[k], v, rtol=0, atol=0)
    assert not bool(ar.p_s_ar.logit_rho.detach().any())  # rho = 0.5 at the start
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        ar.p_s_ar.logit_rho.copy_(torch.randn(3, generator=gen, dtype=torch.float64))
        for net in (ar, plain):  # a non-zero skip, the same in both
            net.s_skip.weight.copy_(torch.ones(3, 8, dtype=torch.float64) * 0.1)
    x = torch.randn(5, 3, 8, generator=gen, dtype=torch.float64)
    c = torch.tensor([0, 1, 0, 1, 1])
    torch.manual_seed(0)
    guide = poutine.trace(ar.guide).get_trace(x, c)
    torch.manual_seed(0)
    guide_plain = poutine.trace(plain.guide).get_trace(x, c)
    for name, node in guide.nodes.items():
        if node["type"] == "sample":
            assert torch.equal(node["value"], guide_plain.nodes[name]["value"]), name
    tr = {
        k: poutine.trace(poutine.replay(net.model, trace=guide)).get_trace(x, c).nodes
        for k, net in (("ar", ar), ("plain", plain))
    }
    for site in [*(f"z_{t}" for t in range(3)), *(f"x_{t}" for t in range(3))]:
        a, b = (tr[k][site]["fn"].base_dist for k in ("ar", "plain"))
        assert torch.equal(a.loc, b.loc) and torch.equal(a.scale, b.scale), site
    rho = torch.sigmoid(ar.p_s_ar.logit_rho.detach())
    prev = torch.zeros(5, 3, dtype=torch.float64)
    for t in range(3):
        v = guide.nodes[f"s_{t}"]["value"]
        loc, var = (rho * prev, 1 - rho**2) if t else (prev, torch.ones(3, dtype=torch.float64))
        want = (-0.5 * (v - loc) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)
        got = tr["ar"][f"s_{t}"]["fn"].log_prob(v)
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
        assert not torch.equal(tr["plain"][f"s_{t}"]["fn"].log_prob(v), got)
        prev = v
    with torch.no_grad():
        ar.p_s_ar.logit_rho.fill_(-60.0)  # rho ~ 1e-26: the no-temporal prior
    loc, scale = ar.p_s_ar(prev, prev)
    torch.testing.assert_close(loc, torch.zeros_like(prev), rtol=0, atol=1e-20)
    torch.testing.assert_close(scale, torch.ones_like(prev), rtol=0, atol=1e-15)


def test_s_transition_ar1_is_trained_and_changes_the_fit(toy, tmp_path):
    """A fit with s_transition="ar1" trains rho (it leaves 0.5) and gives other probabilities than
    the "learned" fit of the same seed; the fitted net keeps the option through save / load."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    base = CDHMClassifier(s_transition="learned", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    ar = CDHMClassifier(s_transition="ar1", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert ar.net_.s_transition == "ar1" and not hasattr(base.net_, "p_s_ar")
    assert not torch.allclose(ar.net_.p_s_ar.rho(), torch.full((4,), 0.5))
    assert not np.array_equal(ar.predict_proba(b.x), base.predict_proba(b.x))
    ar.save(tmp_path / "m")
    again = CDHMClassifier.load(tmp_path / "m")
    assert again.s_transition == "ar1"
    np.testing.assert_array_equal(again.predict_proba(b.x), ar.predict_proba(b.x))


def test_s_transition_default_is_auto_ar1_with_the_markov_prior(toy):
    """s_transition (session 28): the default is "auto", adopted on validation: a default fit is
    the fit that names "ar1"; with temporal_prior=False (the no-temporal rung) or with sticky_s
    (which sets the transition itself) "auto" is "learned", and those fits raise nothing."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    assert CDHMClassifier().s_transition == "auto"
    base = CDHMClassifier(**kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    named = CDHMClassifier(s_transition="ar1", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert base.net_.s_transition == "ar1"
    np.testing.assert_array_equal(named.predict_proba(b.x), base.predict_proba(b.x))
    for extra in ({"temporal_prior": False}, {"sticky_s": 0.25}):
        est = CDHMClassifier(**kw, **extra).fit(a.x, a.y, b.x, a.domain, b.domain)
        assert est.net_.s_transition == "learned" and not hasattr(est.net_, "p_s_ar"), extra


def test_standardized_mmd_is_mk_mmd_of_z_scores_and_shift_scale_free():
    """standardized_mmd (session 30): mk_mmd of each domain's per-dimension z-scores (float64);
    invariant to a per-dimension shift and scale of either domain, not to a change of shape."""
    from cdhm.models import mk_mmd, standardized_mmd

    g = torch.Generator().manual_seed(1)
    a = torch.randn(9, 3, generator=g, dtype=torch.float64)
    b = torch.randn(7, 3, generator=g, dtype=torch.float64) ** 2
    za = (a - a.mean(0)) / torch.sqrt(a.var(0, unbiased=False) + 1e-5)
    zb = (b - b.mean(0)) / torch.sqrt(b.var(0, unbiased=False) + 1e-5)
    got = float(standardized_mmd(a, b))
    assert got == pytest.approx(float(mk_mmd(za, zb)), rel=1e-12)
    scale = torch.tensor([0.2, 3.0, 1.5], dtype=torch.float64)
    moved = b * scale + torch.tensor([5.0, -1.0, 0.3], dtype=torch.float64)
    assert float(standardized_mmd(a, moved)) == pytest.approx(got, rel=1e-4)
    assert float(mk_mmd(a, moved)) != pytest.approx(float(mk_mmd(a, b)), rel=1e-2)
    assert float(standardized_mmd(a, a * 2.0 + 1.0)) == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(ValueError, match="needs >= 2 rows per domain, got 9 and 1"):
        standardized_mmd(a, b[:1])


def test_soft_centroid_gap_and_class_balance_match_their_equations():
    """soft_centroid_gap: the mean squared gap between source class means and probability-weighted
    target centroids over the source's classes, in units of the source's mean squared class
    spacing; a class the target argmax never predicts keeps its term (float64).
    class_balance_gap: log K - H(mean prediction)."""
    from cdhm.models import class_balance_gap, soft_centroid_gap

    g = torch.Generator().manual_seed(2)
    a = torch.randn(8, 3, generator=g, dtype=torch.float64)
    b = torch.randn(6, 3, generator=g, dtype=torch.float64) + 0.5
    ya = torch.tensor([0, 0, 1, 1, 2, 2, 2, 0])  # class 3 absent from the source batch
    logits = torch.randn(6, 4, generator=g, dtype=torch.float64)
    logits[:, 2] -= 20.0  # class 2 is never the target argmax: it still counts
    p = torch.softmax(logits, -1)
    mu_s = [a[ya == k].mean(0) for k in range(3)]
    mu_t = [(p[:, k, None] * b).sum(0) / p[:, k].sum() for k in range(3)]
    spacing = np.mean(
        [float((mu_s[k] - mu_s[m]).pow(2).sum()) for k in range(3) for m in range(3) if k != m]
    )
    expected = np.mean([float((mu_t[k] - mu_s[k]).pow(2).sum()) for k in range(3)]) / spacing
    assert float(soft_centroid_gap(a, ya, b, p)) == pytest.approx(expected, rel=1e-12)
    # targets on their source centroids with one-hot probabilities: gap 0
    one_hot = torch.eye(4, dtype=torch.float64)[[0, 1, 2]]
    on = torch.stack(mu_s)
    assert float(soft_centroid_gap(a, ya, on, one_hot)) == pytest.approx(0.0, abs=1e-12)
    # one source class: nothing to measure the spacing by, so 0
    assert float(soft_centroid_gap(a, torch.zeros(8, dtype=torch.long), b, p)) == 0.0
    # the probabilities are constants; the gradient reaches the target features
    b_req, p_req = b.clone().requires_grad_(True), p.clone().requires_grad_(True)
    soft_centroid_gap(a, ya, b_req, p_req).backward()
    assert p_req.grad is None and b_req.grad is not None
    with pytest.raises(ValueError, match="a_labels holds a class >= the 4 columns"):
        soft_centroid_gap(a, torch.full((8,), 4), b, p)
    p_bar = p.mean(0)
    ent = -float((p_bar * p_bar.log()).sum())
    assert float(class_balance_gap(p)) == pytest.approx(np.log(4) - ent, rel=1e-12)
    assert float(class_balance_gap(torch.full((5, 4), 0.25, dtype=torch.float64))) == (
        pytest.approx(0.0, abs=1e-12)
    )
    drained = torch.eye(4, dtype=torch.float64)[[1, 1, 1]]
    assert float(class_balance_gap(drained)) == pytest.approx(np.log(4), rel=1e-9)
