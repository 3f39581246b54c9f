"""LNPT scores against autograd / finite differences, exact mask sparsity, iterative pruning."""

import copy
import math

import lnpt
import pytest
import torch
from lnpt.learning_gap import score_options
from maskloop import WeightMask
from torch import nn


def _pair(dtype=torch.float64):
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 4), nn.Tanh(), nn.Linear(4, 3))
    teacher = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 4), nn.Tanh(), nn.Linear(4, 3))
    return student.to(dtype), teacher.to(dtype)


@pytest.mark.parametrize(
    "opts",
    [
        {"kd_weight": 0.0},
        {"kd_weight": 1.0, "normalize": True},
        {"kd_weight": 1.0, "adaptor": "auto", "normalize": True, "gap": "squared"},
        {"kd_weight": 1.0, "gap": "relation-centered"},
    ],
)
def test_score_equals_finite_difference(opts):
    """|theta * dJ/dtheta| against central differences of J, where J is the objective `lnpt.score`
    reads (the call's options over the chosen defaults) with the adaptor held at its fit at the
    unperturbed student (the score is the partial derivative in the student's weights)."""
    student, teacher = _pair()
    x = torch.randn(8, 5, dtype=torch.float64)
    params = {n: student.get_parameter(n) for n in ("0.weight", "2.weight")}
    scores = lnpt.score(student, teacher, [x], params=params, **opts)
    assert set(scores) == set(params)
    gap = lnpt.LearningGap(student, teacher, **score_options(opts)).setup(x)
    eps = 1e-6
    for name in ("0.weight", "2.weight"):
        p = student.get_parameter(name)
        for idx in [(0, 0), (1, 2), (3, 4)]:
            with torch.no_grad():
                old = p[idx].item()
                p[idx] = old + eps
                up = gap(x).item()
                p[idx] = old - eps
                down = gap(x).item()
                p[idx] = old
            fd = (up - down) / (2 * eps)
            assert scores[name][idx].item() == pytest.approx(abs(old * fd), rel=1e-5, abs=1e-10)


def test_learning_gap_formula_identity_and_unnormalised():
    student, teacher = _pair()
    teacher = copy.deepcopy(student)
    with torch.no_grad():
        teacher[4].weight.add_(0.1)  # same features, different head
    x = torch.randn(4, 5, dtype=torch.float64)
    gap = lnpt.LearningGap(student, teacher, kd_weight=0.0, normalize=False).setup(x)
    assert gap(x).item() == pytest.approx(0.0, abs=1e-12)
    with torch.no_grad():
        teacher[2].bias.add_(1.0)
    f_s = student[:4](x)
    f_t = teacher[:4](x)
    assert gap(x).item() == pytest.approx((f_t - f_s).pow(2).sum(1).mean().item(), rel=1e-10)


def test_scores_average_over_batches_and_ignore_labels():
    student, teacher = _pair()
    x1, x2 = torch.randn(4, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    y = torch.zeros(4, dtype=torch.long)
    with_labels = lnpt.score(student, teacher, [(x1, y), (x2, y + 1)])
    inputs_only = lnpt.score(student, teacher, [x1, x2])
    for n in with_labels:
        torch.testing.assert_close(with_labels[n], inputs_only[n])


@pytest.mark.filterwarnings("ignore:the plain global selection:UserWarning")
@pytest.mark.parametrize("min_density", [None, 0])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.97])
def test_prune_has_exact_sparsity_and_keeps_student_untouched(sparsity, min_density):
    """With the default collapse guard and without it (min_density=0) the sparsity is exact."""
    student, teacher = _pair()
    before = copy.deepcopy(student.state_dict())
    x = torch.randn(16, 5, dtype=torch.float64)
    if min_density is None and sparsity == 0.97:  # 2 weights kept, 3 tensors: the guard refuses
        with pytest.raises(ValueError, match="pass min_density=0"):
            lnpt.prune(student, teacher, [x], sparsity)
        return
    mask = lnpt.prune(student, teacher, [x], sparsity, min_density=min_density)
    assert isinstance(mask, WeightMask)
    assert mask.num_pruned == math.floor(sparsity * mask.numel + 0.5)
    for k, v in student.state_dict().items():
        torch.testing.assert_close(v, before[k])


def test_prune_keeps_top_scores():
    student, teacher = _pair()
    x = torch.randn(16, 5, dtype=torch.float64)
    scores = lnpt.score(student, teacher, [x])
    mask = lnpt.prune(student, teacher, [x], 0.6, rounds=1, min_density=0)  # plain global top-k
    kept = torch.cat([scores[n][mask[n]] for n in mask.names])
    pruned = torch.cat([scores[n][~mask[n]] for n in mask.names])
    assert kept.min() >= pruned.max()


@pytest.mark.filterwarnings("ignore:the plain global selection:UserWarning")
def test_iterative_pruning_schedule_and_nesting():
    assert lnpt.density_schedule(0.99, 2) == pytest.approx([0.9, 0.99])
    student, teacher = _pair()
    x = torch.randn(16, 5, dtype=torch.float64)
    mask = lnpt.prune(student, teacher, [x], 0.8, rounds=4)
    assert mask.num_pruned == math.floor(0.8 * mask.numel + 0.5)
    first = lnpt.prune(student, teacher, [x], lnpt.density_schedule(0.8, 4)[0], rounds=1)
    # every weight pruned in round 1 stays pruned
    for n in mask.names:
        assert not (mask[n] & ~first[n]).any()


def test_prune_defaults_are_the_validation_choice():
    """lnpt.prune with no options = the chosen variant written out (linear adaptor on raw features,
    10 rounds); a relation gap drops the default linear adaptor."""
    student, teacher = _pair()
    x = torch.randn(16, 5, dtype=torch.float64)
    default = lnpt.prune(student, teacher, [x], 0.8, min_density=0)
    explicit = lnpt.prune(
        student, teacher, [x], 0.8, rounds=10, adaptor="linear", normalize=False, min_density=0
    )
    one_shot = lnpt.prune(student, teacher, [x], 0.8, rounds=1, min_density=0)
    assert default == explicit and default != one_shot
    assert score_options({"gap": "relation"}) == {"gap": "relation", "normalize": False}
    assert score_options({"normalize": True})["normalize"] is True


def test_linear_adaptor_for_different_widths_is_least_squares():
    torch.manual_seed(1)
    student = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    teacher = nn.Sequential(nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 3)).double()
    x = torch.randn(40, 5, dtype=torch.float64)
    gap = lnpt.LearningGap(student, teacher, kd_weight=0.0, normalize=False).setup(x)
    assert isinstance(gap.adaptor.map, nn.Linear)
    f_s, f_t = student[:2](x), teacher[:2](x)
    a = torch.cat([f_s, torch.ones(40, 1, dtype=torch.float64)], 1)
    reg = 1e-3 * torch.eye(7, dtype=torch.float64)
    reg[-1, -1] = 0.0  # ridge on the weights, not the bias
    sol = torch.linalg.solve(a.T @ a + reg, a.T @ f_t)
    torch.testing.assert_close(gap.adaptor.map.weight.T, sol[:-1])
    torch.testing.assert_close(gap.adaptor.map.bias, sol[-1])
    lstsq = torch.linalg.lstsq(a, f_t).solution
    assert (a @ sol - f_t).pow(2).sum() <= (a @ lstsq - f_t).pow(2).sum() * 1.01 + 1e-9


def test_feature_layer_by_name_and_by_module_agree():
    student, teacher = _pair()
    x = torch.randn(8, 5, dtype=torch.float64)
    by_name = lnpt.score(
        student, teacher, [x], feature_layer="3", teacher_layer="3", which="output"
    )
    by_module = lnpt.score(
        student, teacher, [x], feature_layer=student[3], teacher_layer=teacher[3], which="output"
    )
    default = lnpt.score(student, teacher, [x])  # input of the last Linear = output of module 3
    for n in by_name:
        torch.testing.assert_close(by_name[n], by_module[n])
        torch.testing.assert_close(by_name[n], default[n])


def test_head_without_logit_term_warns():
    student, teacher = _pair()
    x = torch.randn(8, 5, dtype=torch.float64)
    with pytest.warns(UserWarning, match="do not influence"):
        lnpt.score(student, teacher, [x], kd_weight=0.0)
