"""maskloop.scores against hand-derived values (float64) and the reference's conventions."""

import pytest
import torch
from maskloop import WeightMask, scores
from torch import nn

pytestmark = pytest.mark.usefixtures("float64")


def linear_batches(seed: int = 0):  # float64 through the autouse fixture
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(3, 4, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.randn(4, 3, generator=g))
    batches = [
        (torch.randn(5, 3, generator=g), torch.randint(0, 4, (5,), generator=g)) for _ in range(2)
    ]
    return model, batches


def ce_grad(W, x, y, T=1.0):
    """d/dW of mean_b CE(W x_b / T, y_b) = (1/B) sum_b (p_b - e_yb) x_b^T / T."""
    p = torch.softmax(x @ W.T / T, dim=1)
    e = nn.functional.one_hot(y, W.shape[0]).to(W.dtype)
    return (p - e).T @ x / (T * len(x))


def test_magnitude_and_random() -> None:
    model, _ = linear_batches()
    assert torch.equal(scores.magnitude(model)["weight"], model.weight.detach().abs())
    a = scores.random(model, generator=torch.Generator().manual_seed(3))["weight"]
    b = torch.rand(4, 3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    n = scores.random(model, generator=torch.Generator().manual_seed(3), distribution="normal")
    assert torch.equal(n["weight"], torch.randn(4, 3, generator=torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="distribution"):
        scores.random(model, distribution="beta")


def test_snip_matches_hand_derived_gradient() -> None:
    model, batches = linear_batches()
    W = model.weight.detach()
    g = sum(ce_grad(W, x, y) for x, y in batches)
    expected = (W * g).abs()
    got = scores.snip(model, batches)["weight"]
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)
    normed = scores.snip(model, batches, normalize=True)["weight"]
    torch.testing.assert_close(normed, expected / expected.sum(), rtol=1e-12, atol=1e-14)
    one = scores.snip(model, batches, max_batches=1)["weight"]
    torch.testing.assert_close(one, (W * ce_grad(W, *batches[0])).abs(), rtol=1e-12, atol=1e-14)


def test_snip_with_a_label_free_objective() -> None:
    model, batches = linear_batches()
    W = model.weight.detach()

    def half_sq(m, batch):  # l_i = ||W x_i||^2 / 2, dL/dW = (1/B) sum_i (W x_i) x_i^T
        return 0.5 * (m(batch[0]) ** 2).sum(-1)

    got = scores.snip(model, batches, objective=half_sq)["weight"]
    expected = (W * sum((x @ W.T).T @ x / len(x) for x, _ in batches)).abs()
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-14)


def test_grasp_matches_hand_derived_hessian_gradient_product() -> None:
    model, batches = linear_batches()
    W, T = model.weight.detach(), 200.0
    g = sum(ce_grad(W, x, y, T) for x, y in batches)
    hg = torch.zeros_like(W)
    for (
        x,
        _,
    ) in batches:  # H g for mean_b CE(W x_b / T): (1/B) sum_b (diag p - p p^T)(g x_b) x_b^T / T^2
        p = torch.softmax(x @ W.T / T, dim=1)
        for pb, xb in zip(p, x):
            J = torch.diag(pb) - torch.outer(pb, pb)
            hg += torch.outer(J @ (g @ xb), xb) / (T**2 * len(x))
    got = scores.grasp(model, batches)["weight"]
    torch.testing.assert_close(got, W * hg, rtol=1e-9, atol=1e-20)
    normed = scores.grasp(model, batches, normalize=True)["weight"]
    torch.testing.assert_close(normed, W * hg / ((W * hg).sum().abs() + 1e-10), rtol=1e-9, atol=0)
    with pytest.raises(ValueError, match="temperature"):
        scores.grasp(model, batches, temperature=0)


def test_synflow_matches_hand_derived_path_norms() -> None:
    g = torch.Generator().manual_seed(1)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    W1, b1 = model[0].weight.detach().abs(), model[0].bias.detach().abs()
    W2 = model[2].weight.detach().abs()
    # R = 1^T (|W2| (|W1| 1 + |b1|) + |b2|): dR/dW1_ij = sum_k |W2_ki|, dR/dW2_ki = (|W1| 1 + |b1|)_i
    s = scores.synflow(model, input_shape=(3,))
    torch.testing.assert_close(s["0.weight"], W1 * W2.sum(0)[:, None], rtol=1e-12, atol=0)
    torch.testing.assert_close(s["2.weight"], W2 * (W1.sum(1) + b1)[None, :], rtol=1e-12, atol=0)
    assert s["0.weight"].dtype == torch.float64
    # the input shape can come from the batches; the mask zeroes pruned weights' paths
    x = torch.randn(7, 3, generator=g)
    assert all(torch.equal(s[k], v) for k, v in scores.synflow(model, [(x, x)]).items())
    keep = torch.ones(4, 3, dtype=torch.bool)
    keep[1] = False  # hidden unit 1 loses all its inputs (its bias still flows)
    mask = WeightMask({"0.weight": keep, "2.weight": torch.ones(2, 4, dtype=torch.bool)})
    sm = scores.synflow(model, input_shape=(3,), mask=mask)
    assert torch.all(sm["0.weight"][1] == 0)
    W1m = W1 * keep
    torch.testing.assert_close(sm["2.weight"], W2 * (W1m.sum(1) + b1)[None, :], rtol=1e-12, atol=0)
    single = scores.synflow(model.float(), input_shape=(3,), double=False)
    assert single["0.weight"].dtype == torch.float32
    with pytest.raises(ValueError, match="input_shape"):
        scores.synflow(model)


def bn_net() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(3, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Dropout(0.5), nn.Linear(6, 3)
    )
    model.train()
    with torch.no_grad():  # non-trivial running statistics
        model(torch.randn(32, 3) * 3 + 1)
    return model


@pytest.mark.parametrize("name", ["snip", "grasp", "synflow", "magnitude", "random"])
def test_scorers_leave_mode_statistics_parameters_and_grads_untouched(name) -> None:
    model = bn_net()
    model[4].eval()  # a mixed-mode model: each module's own mode comes back
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g))]
    scores.SCORERS[name](model, batches)
    assert [m.training for m in model.modules()] == [True, True, True, True, True, False]
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_snip_scores_in_eval_mode_like_the_reference() -> None:
    model = bn_net()
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, generator=g), torch.randint(0, 3, (8,), generator=g))]
    got = scores.snip(model, batches)
    ref = bn_net().eval()  # what the reference computes: eval mode, |theta * grad|
    x, y = batches[0]
    grads = torch.autograd.grad(
        nn.functional.cross_entropy(ref(x), y), [ref[0].weight, ref[4].weight]
    )
    torch.testing.assert_close(got["0.weight"], (ref[0].weight * grads[0]).abs().detach())
    torch.testing.assert_close(got["4.weight"], (ref[4].weight * grads[1]).abs().detach())
    torch.manual_seed(0)
    train = scores.snip(model, batches, train_mode=True)  # BN batch stats + dropout: different
    assert not torch.allclose(train["0.weight"], got["0.weight"])


def test_scorer_bad_inputs() -> None:
    model, batches = linear_batches()
    with pytest.raises(TypeError, match="snip needs batches"):
        scores.snip(model, None)
    with pytest.raises(ValueError, match="batches is empty"):
        scores.grasp(model, [])
    with pytest.raises(ValueError, match="does not have"):
        scores.magnitude(model, params={"nope": model.weight})
    with pytest.raises(TypeError, match="model"):
        scores.magnitude("model")
    with pytest.raises(ValueError, match="max_batches must be >= 1"):
        scores.snip(model, batches, max_batches=0)


def test_floor_rounding_prunes_the_reference_count() -> None:
    s = {"w": torch.arange(10.0)}
    assert WeightMask.from_scores(s, 0.25).num_pruned == 3  # floor(2.5 + 0.5)
    ref = WeightMask.from_scores(s, 0.25, rounding="floor")  # int(0.25 * 10)
    assert ref.num_pruned == 2 and ref["w"].tolist() == [False] * 2 + [True] * 8
    with pytest.raises(ValueError, match="rounding"):
        WeightMask.from_scores(s, 0.25, rounding="up")
