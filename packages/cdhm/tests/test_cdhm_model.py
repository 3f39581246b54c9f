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


def test_sticky_z_reaches_the_net_and_survives_save_load(toy, tmp_path):
    """CDHMClassifier(sticky_z=...) builds the net with the slow z chain and save/load rebuilds
    it: same option, same probabilities; with entangled=True (no z) it changes nothing."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 1, "s_dim": 3, "z_dim": 2, "hidden": 8, "seed": 0}
    est = CDHMClassifier(sticky_z=0.25, progress=False, **kw).fit(a.x, a.y, b.x)
    assert est.net_.sticky_z == 0.25
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


@pytest.mark.parametrize("name", ["sticky_z"])
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
    """CDHMClassifier.fit: a bad sticky_z (or one without the Markov prior) raises naming it."""
    a, _ = toy
    with pytest.raises(exc, match=name):
        CDHMClassifier(n_segments=4, epochs=1, **{name: value}, **extra).fit(a.x, a.y)


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


@pytest.mark.parametrize(
    ("option", "value", "exc"),
    [
        ("s_skip", "lin", ValueError),
        ("s_skip", "linear-only", ValueError),
        ("s_skip", "", ValueError),
        ("s_skip", None, TypeError),
        ("s_skip", 1, TypeError),
        ("s_skip", True, TypeError),
    ],
    ids=[
        "skip-unknown",
        "skip-linear-only-retired",
        "skip-empty",
        "skip-none",
        "skip-int",
        "skip-bool",
    ],  # fmt: skip
)
def test_s_path_options_reject_bad_values(toy, option, value, exc):
    """CDHMClassifier.fit and CDHMNet: a bad s_skip (including the retired "linear-only") raises
    naming the option."""
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


@pytest.mark.parametrize("mode", ["linear"])
def test_s_skip_starts_from_the_model_without_it_and_reads_the_running_mean(mode):
    """At construction (same seed) every parameter of the net without the skip is unchanged and
    the skip is zero; the skip's output is W mean(x_1..x_t) by hand (float64); q(s_0)'s mean is
    the GRU's mean plus the skip's, and q(z) and q(s)'s scale at t = 0 are the off net's."""
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
    assert on.s_skip.bias is None
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
    torch.testing.assert_close(
        q_on["s_loc"][:, 0], q_off["s_loc"][:, 0] + by_hand[:, 0], rtol=1e-12, atol=1e-12
    )


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
        ({"s_transition": "AR1"}, ValueError),
        ({"s_transition": "AUTO"}, ValueError),
        ({"s_transition": ""}, ValueError),
        ({"s_transition": None}, TypeError),
        ({"s_transition": 1}, TypeError),
        ({"s_transition": "ar1", "temporal_prior": False}, ValueError),
    ],
    ids=["unknown", "upper-auto", "empty", "none-object", "int", "no-temporal-prior"],
)
def test_s_transition_rejects_bad_values(toy, kw, exc):
    """CDHMClassifier.fit and CDHMNet: a bad s_transition, or "ar1" where there is no Markov
    transition of s to parameterise (temporal_prior=False), raises naming s_transition."""
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
    the fit that names "ar1"; with temporal_prior=False (the no-temporal rung) "auto" is
    "learned", and that fit raises nothing."""
    a, b = toy
    kw = {"n_segments": 4, "epochs": 2, "s_dim": 4, "z_dim": 4, "hidden": 16, "seed": 0}
    kw["progress"] = False
    assert CDHMClassifier().s_transition == "auto"
    base = CDHMClassifier(**kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    named = CDHMClassifier(s_transition="ar1", **kw).fit(a.x, a.y, b.x, a.domain, b.domain)
    assert base.net_.s_transition == "ar1"
    np.testing.assert_array_equal(named.predict_proba(b.x), base.predict_proba(b.x))
    for extra in ({"temporal_prior": False},):
        est = CDHMClassifier(**kw, **extra).fit(a.x, a.y, b.x, a.domain, b.domain)
        assert est.net_.s_transition == "learned" and not hasattr(est.net_, "p_s_ar"), extra
