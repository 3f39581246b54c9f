"""Baseline masks from `maskloop.scores` (whose formulas the core tests): exact sparsity, the same
masks as the scores select into, SynFlow's iteration, errors."""

import math

import lnpt
import pytest
import torch
from torch import nn


def _data(n=12, d=4, c=3):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g, dtype=torch.float64), torch.randint(
        0, c, (n,), generator=g
    )


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
    with pytest.raises(ValueError, match=r"batch must be \(inputs, targets\)"):
        lnpt.baseline_mask("snip", model, 0.5, data=[torch.randn(2, 4)])
    with pytest.raises(ValueError, match="sparsity must be in"):
        lnpt.baseline_mask("random", model, 1.0)


@pytest.mark.parametrize("method", ["snip", "grasp", "magnitude"])
def test_baseline_mask_is_the_core_scores_selected(method):
    """baseline_mask: the global top of maskloop.scores' scores (no floor, nothing excluded)."""
    from maskloop import WeightMask
    from maskloop import scores as ml_scores

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    x, y = _data()
    batches = [(x.float(), y)]
    mask = lnpt.baseline_mask(method, model, 0.6, data=batches)
    fn = getattr(ml_scores, method)
    scores = fn(model, None if method == "magnitude" else batches)
    expected = WeightMask.from_scores(scores, 0.6, min_density=0)
    assert mask == expected
