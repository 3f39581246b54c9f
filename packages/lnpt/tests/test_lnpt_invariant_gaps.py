"""The basis-invariant readings of the learning gap: gap="relation" (similarity structure) and the
ridge-fitted linear adaptor at equal widths."""

import copy

import lnpt
import pytest
import torch
from lnpt.learning_gap import similarity_gap
from torch import nn


def _rotation(d, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


def _net(seed):
    """Linear-ReLU-Linear(features, no activation after)-Linear(head) in float64."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 6), nn.Linear(6, 3)).double()


def _rotated(student, q):
    """The same function with penultimate features f -> q^T f (logits unchanged)."""
    out = copy.deepcopy(student)
    with torch.no_grad():
        out[2].weight.copy_(q.T @ student[2].weight)
        out[2].bias.copy_(q.T @ student[2].bias)
        out[3].weight.copy_(student[3].weight @ q)
    return out


def _linear_raw_gap(student: nn.Module, teacher: nn.Module, x: torch.Tensor) -> lnpt.LearningGap:
    """The feature-only gap on layer "2" with a ridge-fitted linear adaptor on raw features."""
    return lnpt.LearningGap(
        student,
        teacher,
        feature_layer="2",
        which="output",
        adaptor="linear",
        normalize=False,
        kd_weight=0.0,
    ).setup(x)


def test_similarity_gap_is_invariant_to_rotation_and_scale_of_student_features():
    """similarity_gap: f_s -> c * f_s R (R orthogonal, c > 0) leaves every per-sample gap unchanged;
    a non-orthogonal map changes it (the check can fail)."""
    g = torch.Generator().manual_seed(1)
    f_s = torch.randn(12, 6, generator=g, dtype=torch.float64)
    f_t = torch.randn(12, 9, generator=g, dtype=torch.float64)  # widths may differ
    base = similarity_gap(f_s, f_t)
    assert base.shape == (12,)
    assert bool((base >= 0).all()) and bool((base <= 4).all())
    q = _rotation(6)
    # float64 round-off of a 6-wide product and two normalisations: ~1e-15 per entry
    torch.testing.assert_close(similarity_gap(3.7 * f_s @ q, f_t), base, rtol=0, atol=1e-12)
    torch.testing.assert_close(
        similarity_gap(f_s @ q, f_t, normalize=True),
        similarity_gap(f_s, f_t, normalize=True),
        rtol=0,
        atol=1e-12,
    )
    centred = similarity_gap(f_s, f_t, center=True)
    shift = torch.randn(1, 6, generator=g, dtype=torch.float64)
    torch.testing.assert_close(
        similarity_gap(2.0 * (f_s + shift) @ q, f_t, center=True), centred, rtol=0, atol=1e-12
    )
    assert (centred - base).abs().max() > 1e-3  # centring changes the structure compared
    skew = torch.eye(6, dtype=torch.float64)
    skew[0, 1] = 2.0
    assert (similarity_gap(f_s @ skew, f_t) - base).abs().max() > 1e-3
    assert float(similarity_gap(f_t, f_t).abs().max()) < 1e-12  # same structure: no gap


def test_relation_scores_invariant_to_rotating_the_student_basis():
    """lnpt.score(gap="relation"): scores of the layers before the feature layer are the same for a
    student whose penultimate basis is rotated (same function); with the default identity-adaptor
    gap they are not, which is what the relation gap fixes."""
    student, teacher = _net(0), _net(1)
    x = torch.randn(16, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    rot = _rotated(student, _rotation(6, seed=3))
    with torch.no_grad():
        torch.testing.assert_close(rot(x), student(x), rtol=0, atol=1e-12)
    opts = {"feature_layer": "2", "which": "output", "exclude": r"^3\."}
    for gap in ("relation", "relation-centered"):
        a = lnpt.score(student, teacher, [x], gap=gap, **opts)
        b = lnpt.score(rot, teacher, [x], gap=gap, **opts)
        scale = float(a["0.weight"].abs().max())
        assert scale > 0
        torch.testing.assert_close(b["0.weight"], a["0.weight"], rtol=0, atol=1e-10 * scale)
    spec = {"gap": "squared", "adaptor": "identity", "normalize": True}  # the spec's reading
    c = lnpt.score(student, teacher, [x], **spec, **opts)
    d = lnpt.score(rot, teacher, [x], **spec, **opts)
    assert (c["0.weight"] - d["0.weight"]).abs().max() > 1e-3 * float(c["0.weight"].max())


@pytest.mark.parametrize(
    "opts",
    [
        {"gap": "relation"},
        {"gap": "relation", "normalize": False},
        {"gap": "relation-centered", "normalize": False},
        {"adaptor": "linear"},
        {"adaptor": "linear", "normalize": False},
    ],
)
def test_invariant_gap_scores_finite_non_negative_and_bn_untouched(opts):
    """Scores of both readings on a BatchNorm CNN: finite, >= 0, some > 0; the student's BN
    statistics and train mode, and the teacher's, stay as they were."""
    torch.manual_seed(0)
    student, teacher = lnpt.CNN1d((4, 6, 8)), lnpt.CNN1d((4, 6, 8))
    teacher.eval()
    x = torch.randn(16, 1, 40)
    with torch.no_grad():
        student.train()
        student(x * 3 + 1)
    state = {k: v.clone() for k, v in student.state_dict().items()}
    t_state = {k: v.clone() for k, v in teacher.state_dict().items()}
    scores = lnpt.score(student, teacher, [x, x.flip(0)], **opts)
    mask = lnpt.prune(student, teacher, [x], 0.8, rounds=2, min_density=0, **opts)
    assert mask.sparsity == pytest.approx(0.8, abs=1e-3)
    for n, s in scores.items():
        assert bool(torch.isfinite(s).all()), n
        assert bool((s >= 0).all()), n
    assert any(bool((s > 0).any()) for s in scores.values())
    for k, v in student.state_dict().items():
        assert torch.equal(v, state[k]), k
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, t_state[k]), k
    assert all(m.training for m in student.modules())
    assert not teacher.training


def test_relation_gap_needs_no_adaptor_for_unequal_widths():
    """gap="relation" compares a 6-wide student with a 9-wide teacher directly (no adaptor fit)."""
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 3)).double()
    teacher = nn.Sequential(nn.Linear(5, 9), nn.ReLU(), nn.Linear(9, 3)).double()
    x = torch.randn(10, 5, dtype=torch.float64)
    gap = lnpt.LearningGap(student, teacher, gap="relation", kd_weight=0.0).setup(x)
    assert gap.adaptor is not None and gap.adaptor.map is None
    f_s = torch.relu(student[0](x))
    f_t = torch.relu(teacher[0](x))
    expected = similarity_gap(f_s, f_t, normalize=True).mean()
    torch.testing.assert_close(gap(x), expected, rtol=1e-12, atol=0)


def test_linear_adaptor_at_equal_widths_sits_at_its_least_squares_optimum():
    """adaptor="linear", widths equal: after setup, the gradient of the raw gap (1) in the adaptor is
    exactly the ridge term -(2 * ridge / N) W of the normal equations (ridge 1e-3), i.e. the adaptor's
    own gradient vanishes up to the ridge; and its residual is unchanged by a rotation of the
    student's basis (the fitted map absorbs it) up to the same ridge term."""
    student, teacher = _net(0), _net(1)
    x = torch.randn(40, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    gap = _linear_raw_gap(student, teacher, x)
    assert isinstance(gap.adaptor.map, nn.Linear)
    w = gap.adaptor.map.weight
    (gw,) = torch.autograd.grad(gap(x), [w])
    torch.testing.assert_close(gw, -(2 * 1e-3 / 40) * w.detach(), rtol=1e-6, atol=1e-12)
    rot = _rotated(student, _rotation(6, seed=5))
    gap_r = _linear_raw_gap(rot, teacher, x)
    # a rotation keeps the least-squares residual exactly; the ridge term moves it by < 1e-3 relative
    assert gap_r(x).item() == pytest.approx(gap(x).item(), rel=1e-3)


def test_relation_with_linear_adaptor_is_rejected():
    """LearningGap(gap="relation", adaptor="linear") raises ValueError naming adaptor."""
    student, teacher = _net(0), _net(1)
    with pytest.raises(ValueError, match="adaptor='linear' does not apply to gap='relation'"):
        lnpt.LearningGap(student, teacher, gap="relation", adaptor="linear")
    with pytest.raises(
        ValueError,
        match="gap must be 'squared', 'norm', 'relation' or 'relation-centered', got 'cka'",
    ):
        lnpt.score(student, teacher, [torch.randn(4, 5, dtype=torch.float64)], gap="cka")
    with pytest.raises(ValueError, match="adaptor must be"):
        lnpt.prune(student, teacher, [torch.randn(4, 5, dtype=torch.float64)], 0.5, adaptor="cka")
