"""scikit-learn idioms, the public Pyro model/guide and fresh-process persistence."""

import json
import subprocess
import sys

import numpy as np
import pyro
import pytest
import torch
from cdhm import AlignedCNNClassifier, CDHMClassifier, PhysicsReference, simulate_domain
from pyro.infer import Predictive, TraceMeanField_ELBO
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning:pyro.*")

#: tiny settings for scikit-learn's checks (tabular X of 1-10 features, one segment each).
_CHECK_KW = {"n_segments": 1, "epochs": 4, "hidden": 16, "standardize": "none", "lr": 1e-2}


@parametrize_with_checks(
    [
        CDHMClassifier(s_dim=4, z_dim=2, **_CHECK_KW),
        AlignedCNNClassifier(**_CHECK_KW),
        PhysicsReference(rpm=1797.0),
    ]
)
def test_sklearn_estimator_checks(estimator, check):
    """scikit-learn's check_estimator, every check (none is expected to fail)."""
    torch.set_num_threads(1)
    check(estimator)


@pytest.fixture(scope="module")
def small():
    kw = {"recordings_per_class": 2, "windows_per_recording": 6, "window": 256}
    a = simulate_domain("L0", 0, tier="mild", seed=0, **kw)
    b = simulate_domain("L3", 1, tier="mild", seed=0, **kw)
    return a, b


def _tiny(**kw):
    return CDHMClassifier(n_segments=4, epochs=2, s_dim=2, z_dim=2, hidden=8, **kw)


def test_constructor_stores_arguments_unchanged_and_fit_validates():
    est = CDHMClassifier(lambda_y=-1.0, classes=("a", "b"), alignment="nope")
    assert est.lambda_y == -1.0 and est.classes == ("a", "b") and est.alignment == "nope"
    assert est.get_params()["lambda_y"] == -1.0
    with pytest.raises(ValueError, match="alignment must be"):
        est.fit(np.zeros((4, 16)), [0, 1, 0, 1])


def test_clone_and_set_params(small):
    a, b = small
    est = _tiny(lambda_c=0.25)
    est.fit(a.x, a.y, b.x)
    c = clone(est)
    assert c.get_params() == est.get_params() and not hasattr(c, "net_")
    c.set_params(lambda_c=0.0, elbo="meanfield")
    assert c.lambda_c == 0.0 and c.elbo == "meanfield"


def test_cross_val_score_gridsearch_pipeline(small):
    a, _ = small
    torch.set_num_threads(1)
    scores = cross_val_score(_tiny(), a.x, a.y, cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))
    grid = GridSearchCV(_tiny(), {"lambda_c": [0.0, 0.5]}, cv=2).fit(a.x, a.y)
    assert grid.best_params_["lambda_c"] in (0.0, 0.5)
    assert grid.predict(a.x).shape == (len(a),)
    pipe = make_pipeline(FunctionTransformer(lambda x: 2.0 * x), _tiny()).fit(a.x, a.y)
    assert set(pipe.predict(a.x)) <= set(a.y)
    # target windows go to fit as a fit parameter, through a pipeline too
    pipe.fit(a.x, a.y, cdhmclassifier__target_x=a.x[:8])


def test_predictive_on_public_model_and_guide(small):
    a, b = small
    est = _tiny().fit(a.x, a.y, b.x, a.domain, b.domain)
    x, c = est.segments(b.x[:6], 1)
    assert x.shape == (6, 4, 64) and c.tolist() == [1] * 6
    pyro.set_rng_seed(0)
    samples = Predictive(est.model, guide=est.guide, num_samples=5)(x, c)
    assert samples["s_0"].shape == (5, 6, 2) and samples["z_3"].shape == (5, 6, 2)
    assert samples["y"].shape == (5, 6)
    assert set(samples["y"].unique().tolist()) <= set(range(len(est.classes_)))
    assert samples["x_2"].shape == (5, 6, 64)
    # the guide takes the model's arguments (Pyro calls both alike) and rejects others
    trace = pyro.poutine.trace(est.guide).get_trace(x, c, None, None, 0.5, 2.0, 3.0)
    assert trace.nodes["s_0"]["scale"] == 0.5
    with pytest.raises(TypeError):
        est.guide(x, c, bogus=1)
    with pytest.raises(NotFittedError):
        _tiny().model  # noqa: B018


def test_trains_with_trace_mean_field_elbo(small):
    a, b = small
    torch.manual_seed(0)
    est = _tiny(alignment=None).fit(a.x, a.y)
    x, c = est.segments(a.x)
    y = torch.as_tensor(np.searchsorted(est.classes_, a.y))
    elbo = TraceMeanField_ELBO(max_plate_nesting=1)
    opt = torch.optim.Adam(est.net_.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = elbo.differentiable_loss(est.model, est.guide, x, c, y) / len(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert np.isfinite(losses).all() and losses[-1] < losses[0]
    # the same ELBO as a named option of the estimator
    m = _tiny(elbo="meanfield").fit(a.x, a.y, b.x)
    assert np.isfinite(m.history_["loss_pyro"]).all()


def test_fresh_process_reload_gives_identical_predictions(small, tmp_path):
    """CDHMClassifier.load: a new Python process reproduces the saved model's outputs exactly."""
    a, b = small
    est = _tiny().fit(a.x, a.y, b.x)
    est.save(tmp_path / "model")
    np.save(tmp_path / "x.npy", b.x)
    code = (
        "import json, sys, numpy as np, torch; torch.set_num_threads(1);"
        "from cdhm import CDHMClassifier;"
        f"m = CDHMClassifier.load({str(tmp_path / 'model')!r});"
        f"x = np.load({str(tmp_path / 'x.npy')!r});"
        "print(json.dumps({'proba': m.predict_proba(x).tolist(), 'pred': m.predict(x).tolist(),"
        " 's': m.transform(x, 1, part='s').tolist()}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    torch.set_num_threads(1)
    np.testing.assert_array_equal(
        np.asarray(got["proba"], dtype=np.float32), est.predict_proba(b.x)
    )
    np.testing.assert_array_equal(got["pred"], est.predict(b.x))
    np.testing.assert_array_equal(
        np.asarray(got["s"], dtype=np.float32), est.transform(b.x, 1, part="s")
    )
