"""SNIP, GraSP and SynFlow against direct computations of their formulas on tiny nets."""

import math

import lnpt
import pytest
import torch
import torch.nn.functional as F
from torch import nn


def _data(n=12, d=4, c=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(
        0, c, (n,), generator=g
    )


def test_snip_matches_softmax_regression_gradient():
    torch.manual_seed(0)
    model = nn.Linear(4, 3, bias=False).double()
    x, y = _data()
    scores = lnpt.snip_scores(model, [(x, y)])
    p = torch.softmax(x @ model.weight.T, dim=1)
    grad = (p - F.one_hot(y, 3).double()).T @ x / len(x)
    torch.testing.assert_close(scores["weight"], (model.weight.detach() * grad).abs())


def test_grasp_matches_full_hessian():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(4, 3, bias=False), nn.Tanh(), nn.Linear(3, 3, bias=False)
    ).double()
    x, y = _data()
    temp = 2.0
    w1, w2 = model[0].weight.detach().clone(), model[2].weight.detach().clone()

    def loss(flat):
        a, b = flat[:12].reshape(3, 4), flat[12:].reshape(3, 3)
        return F.cross_entropy(torch.tanh(x @ a.T) @ b.T / temp, y)

    theta = torch.cat([w1.flatten(), w2.flatten()])
    g = torch.autograd.functional.jacobian(loss, theta)
    h = torch.autograd.functional.hessian(loss, theta)
    expected = theta * (h @ g)
    scores = lnpt.grasp_scores(model, [(x, y)], temperature=temp)
    got = torch.cat([scores["0.weight"].flatten(), scores["2.weight"].flatten()])
    torch.testing.assert_close(got, expected)


def test_synflow_matches_path_formula():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.ReLU(), nn.Linear(5, 3, bias=False))
    scores = lnpt.synflow_scores(model, (4,))
    a1, a2 = model[0].weight.detach().abs().double(), model[2].weight.detach().abs().double()
    # R = 1^T |W2| |W1| 1 ; dR/d|W1_ij| = sum_k |W2_ki| ; dR/d|W2_ki| = sum_j |W1_ij|
    exp1 = a1 * a2.sum(0)[:, None]
    exp2 = a2 * a1.sum(1)[None, :]
    torch.testing.assert_close(scores["0.weight"].double(), exp1, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(scores["2.weight"].double(), exp2, rtol=1e-5, atol=1e-6)


def test_synflow_is_data_free_and_does_not_touch_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mask = lnpt.synflow_prune(model, (4,), 0.7, rounds=5)
    assert mask.num_pruned == math.floor(0.7 * mask.numel + 0.5)
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


@pytest.mark.parametrize("method", lnpt.BASELINES)
def test_every_baseline_gives_exact_sparsity(method):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = _data()
    mask = lnpt.baseline_mask(
        method,
        model,
        0.75,
        data=[(x.float(), y)],
        input_shape=(4,),
        generator=torch.Generator().manual_seed(0),
        synflow_rounds=3,
    )
    assert mask.num_pruned == math.floor(0.75 * mask.numel + 0.5)


def test_magnitude_keeps_largest():
    torch.manual_seed(0)
    model = nn.Linear(6, 6, bias=False)
    mask = lnpt.baseline_mask("magnitude", model, 0.5)
    w = model.weight.detach().abs()
    assert w[mask["weight"]].min() >= w[~mask["weight"]].max()


def test_baseline_bad_inputs():
    model = nn.Linear(4, 3)
    with pytest.raises(ValueError, match="method must be one of"):
        lnpt.baseline_mask("obd", model, 0.5)
    with pytest.raises(ValueError, match="needs labelled data"):
        lnpt.baseline_mask("snip", model, 0.5)
    with pytest.raises(ValueError, match="needs input_shape"):
        lnpt.baseline_mask("synflow", model, 0.5)
    with pytest.raises(ValueError, match="labelled batches"):
        lnpt.snip_scores(model, [torch.randn(2, 4)])
    with pytest.raises(ValueError, match="sparsity must be in"):
        lnpt.baseline_mask("random", model, 1.0)
