"""CDHM: ELBO behaviour, disentanglement probes, persistence and input validation."""

import numpy as np
import pytest
import torch
from cdhm import CDHMClassifier, CDHMNet, simulate_domain
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
    est = CDHMClassifier(n_segments=4, epochs=25, s_dim=4, z_dim=4, hidden=32, seed=0)
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
    est = CDHMClassifier(n_segments=4, epochs=4, s_dim=4, z_dim=4, hidden=16, align_warmup=0.5)
    est.fit(a.x, a.y, b.x, a.domain, b.domain)
    w = est.history_["align_weight"]
    assert w[0] == 0.0 and w[1] == 0.0 and 0.0 < w[2] < w[3] < 1.0
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="align_warmup must be in"):
            CDHMClassifier(align_warmup=bad).fit(a.x, a.y)
