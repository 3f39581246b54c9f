"""Against layer collapse: `exclude` (e.g. the head) and the per-tensor floor `min_density`."""

import math

import lnpt
import pytest
import torch
from maskloop import WeightMask


def test_select_mask_floor_prevents_a_collapse_that_global_selection_makes():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(10, 10, generator=g) + 10.0, "b": torch.rand(50, generator=g)}
    plain = lnpt.select_mask(scores, 0.8, min_density=0)  # the explicit opt-out
    assert plain == WeightMask.from_scores(scores, 0.8, min_density=0)
    assert not plain["b"].any()  # global selection empties b
    with pytest.warns(UserWarning, match="would have emptied 'b'"):
        guarded = lnpt.select_mask(scores, 0.8)  # the default: the core guard, 1% per tensor
    with pytest.warns(UserWarning, match="'b'"):
        assert guarded == WeightMask.from_scores(scores, 0.8)
    assert guarded.num_pruned == 120 and int(guarded["b"].sum()) == 1  # ceil(0.01 * 50)
    with pytest.warns(UserWarning, match="'b'"):
        mask = lnpt.select_mask(scores, 0.8, min_density=0.1)
    assert mask.num_pruned == 120  # the overall sparsity stays exact
    assert int(mask["b"].sum()) == 5  # ceil(0.1 * 50)
    assert scores["b"][mask["b"]].min() >= scores["b"][~mask["b"]].max()  # its own top 5
    assert scores["a"][mask["a"]].min() >= scores["a"][~mask["a"]].max()
    # entries a previous round pruned stay pruned, the floor is taken among the survivors
    prev = WeightMask({"a": torch.ones(10, 10, dtype=torch.bool), "b": torch.arange(50) % 2 == 0})
    with pytest.warns(UserWarning, match="'b'"):
        again = lnpt.select_mask(scores, 0.8, previous=prev, min_density=0.1)
    assert not (again["b"] & ~prev["b"]).any() and int(again["b"].sum()) == 5


def test_min_density_errors():
    scores = {"a": torch.rand(100), "b": torch.rand(100)}
    even = lnpt.select_mask(scores, 0.95, min_density=0.05)  # floors 5 + 5 = the whole budget
    assert int(even["a"].sum()) == int(even["b"].sum()) == 5
    with pytest.raises(ValueError, match="lower min_density"):
        lnpt.select_mask(scores, 0.95, min_density=0.06)  # floors 6 + 6 > budget 10
    with pytest.raises(ValueError, match="min_density must be in"):
        lnpt.select_mask(scores, 0.5, min_density=1.0)
    with pytest.raises(TypeError, match="min_density must be a real number"):
        lnpt.select_mask(scores, 0.5, min_density="0.1")


@pytest.mark.filterwarnings("ignore:the plain global selection:UserWarning")
@pytest.mark.parametrize("method", ["lnpt", "lnpt-iterative", *lnpt.BASELINES])
def test_at_95_percent_no_layer_is_fully_pruned_with_the_option_on(method):
    torch.manual_seed(0)
    student, teacher = lnpt.SmallCNN((4, 8, 16)), lnpt.SmallCNN((8, 8, 16))
    x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 10, (16,))
    head = lnpt.head_pattern(student)
    assert head == r"^fc\.weight$"
    opts = {"exclude": head, "min_density": 0.01}
    if method.startswith("lnpt"):
        rounds = 4 if method == "lnpt-iterative" else 1
        mask = lnpt.prune(student, teacher, [x], 0.95, rounds=rounds, **opts)
    else:
        mask = lnpt.baseline_mask(
            method, student, 0.95, data=[(x, y)], input_shape=(1, 8, 8), synflow_rounds=10, **opts
        )
    assert set(mask.names) == {"features.0.weight", "features.2.weight", "features.5.weight"}
    assert mask.num_pruned == math.floor(0.95 * mask.numel + 0.5)
    for name, m in mask.items():
        assert int(m.sum()) >= math.ceil(0.01 * m.numel()), name
    if method == "lnpt":  # without the guards, the spec's one-shot scores empty the head here
        spec = {"rounds": 1, "gap": "squared", "normalize": True, "adaptor": "auto"}
        plain = lnpt.prune(student, teacher, [x], 0.95, min_density=0, **spec)
        assert not plain["fc.weight"].any()
        with pytest.warns(UserWarning, match="'fc.weight'"):  # the default guard keeps it alive
            guarded = lnpt.prune(student, teacher, [x], 0.95, **spec)
        assert all(int(m.sum()) >= math.ceil(0.01 * m.numel()) for _, m in guarded.items())
        assert guarded.num_pruned == plain.num_pruned


def test_exclude_with_params_and_errors():
    student, teacher = lnpt.MLP(8, (16, 12), 3), lnpt.MLP(8, (16, 12), 3)
    x = torch.randn(8, 8)
    scores = lnpt.score(student, teacher, [x], exclude=lnpt.head_pattern(student))
    assert set(scores) == {"0.weight", "2.weight"}
    params = {n: student.get_parameter(n) for n in ("0.weight", "0.bias", "4.weight")}
    scores = lnpt.score(student, teacher, [x], params=params, exclude=[r"bias$"])
    assert set(scores) == {"0.weight", "4.weight"}
    with pytest.raises(ValueError, match="leaves none of params"):
        lnpt.score(student, teacher, [x], params={"4.weight": None}, exclude="4")
    with pytest.raises(ValueError, match="no prunable parameters"):
        lnpt.prune(student, teacher, [x], 0.5, exclude="weight")
    with pytest.raises(TypeError, match="exclude must be"):
        lnpt.score(student, teacher, [x], params=params, exclude=[3])
