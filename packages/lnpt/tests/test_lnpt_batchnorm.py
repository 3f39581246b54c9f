"""BatchNorm: scores in eval mode as the reference code, the model's statistics and mode untouched;
an unmodified torchvision ResNet-18 prunes; the BN benchmark students; MNIST-1D generated offline."""

import copy
import math

import lnpt
import pytest
import torch
from lnpt.anatomy import dead_units, effective_density, layer_density, score_mass
from maskloop import WeightMask
from torch import nn


def _bn_pair():
    torch.manual_seed(0)
    student, teacher = lnpt.CNN1d((4, 6, 8)), lnpt.CNN1d((4, 6, 8))
    teacher.eval()
    x = torch.randn(16, 1, 40)
    with torch.no_grad():  # non-trivial running statistics in the student
        student.train()
        student(x * 3 + 1)
    return student, teacher, x


def _bn_state(model):
    return {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "tracked" in k}


@pytest.mark.parametrize("train_mode", [True, False])
def test_score_leaves_bn_statistics_and_mode_as_they_were(train_mode):
    """lnpt.score / lnpt.prune: BatchNorm running statistics and train/eval mode unchanged."""
    student, teacher, x = _bn_pair()
    student.train(train_mode)
    before, t_before = _bn_state(student), _bn_state(teacher)
    lnpt.score(student, teacher, [x])
    lnpt.prune(student, teacher, [x], 0.9, rounds=2, min_density=0)  # the guard is not the point
    for k, v in _bn_state(student).items():
        assert torch.equal(v, before[k]), k
    for k, v in _bn_state(teacher).items():
        assert torch.equal(v, t_before[k]), k
    assert all(m.training == train_mode for m in student.modules())
    assert not teacher.training


def test_scores_use_eval_mode_batchnorm_by_default():
    """lnpt.score: bn="eval" equals scoring an eval-mode copy; train-mode scores differ."""
    student, teacher, x = _bn_pair()
    student.train()
    default = lnpt.score(student, teacher, [x])
    evalled = lnpt.score(copy.deepcopy(student).eval(), teacher, [x])
    train = lnpt.score(student, teacher, [x], bn="train")
    for n in default:
        torch.testing.assert_close(default[n], evalled[n], rtol=0, atol=0)
    assert any(not torch.allclose(default[n], train[n]) for n in default)
    with pytest.raises(ValueError, match="bn must be"):
        lnpt.score(student, teacher, [x], bn="batch")


def test_baseline_masks_use_eval_mode_and_leave_the_model_alone():
    """baseline_mask snip / grasp: eval-mode BN (maskloop.scores), statistics and mode untouched."""
    student, _, x = _bn_pair()
    student.train()
    y = torch.randint(0, 10, (16,))
    before = _bn_state(student)
    for method in ("snip", "grasp"):
        default = lnpt.baseline_mask(method, student, 0.9, data=[(x, y)])
        evalled = lnpt.baseline_mask(method, copy.deepcopy(student).eval(), 0.9, data=[(x, y)])
        assert default == evalled
    for k, v in _bn_state(student).items():
        assert torch.equal(v, before[k]), k
    assert student.training


def test_label_free_setup_does_not_update_running_statistics():
    """LearningGap.setup: the adaptor fit reads BN in eval mode, statistics unchanged."""
    student, teacher, x = _bn_pair()
    student.train()
    before = _bn_state(student)
    lnpt.LearningGap(student, teacher, adaptor="linear").setup(x)
    for k, v in _bn_state(student).items():
        assert torch.equal(v, before[k]), k
    assert student.training


def test_prune_an_unmodified_torchvision_resnet18_at_32x32():
    """lnpt.prune: works on torchvision resnet18 (built from its config, no download)."""
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    student = torchvision.models.resnet18(num_classes=10)
    teacher = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.randn(4, 3, 32, 32)
    before = _bn_state(student)
    # two iterative rounds (the default is 10): the BN-mode round trip is the same in every round
    mask = lnpt.prune(student, teacher, [x], 0.9, rounds=2, exclude=lnpt.head_pattern(student))
    convs = [n for n, m in student.named_modules() if isinstance(m, nn.Conv2d)]
    assert set(mask.names) == {f"{n}.weight" for n in convs}
    assert mask.num_pruned == math.floor(0.9 * mask.numel + 0.5)
    for k, v in _bn_state(student).items():
        assert torch.equal(v, before[k]), k
    mask.apply_(student)
    assert student(x).shape == (4, 10)


def test_score_norm_and_teacher_checkpoints():
    """lnpt.score: score_norm "mean"/"sum" per tensor; a list of teachers averages their scores."""
    student, teacher, x = _bn_pair()
    raw = lnpt.score(student, teacher, [x])
    for how in ("mean", "sum"):
        normed = lnpt.score(student, teacher, [x], score_norm=how)
        for n, t in normed.items():
            value = t.mean() if how == "mean" else t.sum()
            assert float(value) == pytest.approx(1.0, rel=1e-5)
            torch.testing.assert_close(
                t, raw[n] / (raw[n].mean() if how == "mean" else raw[n].sum())
            )
    other = lnpt.CNN1d((4, 6, 8)).eval()
    both = lnpt.score(student, [teacher, other], [x])
    one = lnpt.score(student, other, [x])
    for n in both:
        torch.testing.assert_close(both[n], (raw[n] + one[n]) / 2)
    with pytest.raises(ValueError, match="score_norm must be"):
        lnpt.score(student, teacher, [x], score_norm="max")
    with pytest.raises(TypeError, match=r"teacher\[1\] must be"):
        lnpt.score(student, [teacher, "ckpt"], [x])


def test_spatial_and_norm_gap_on_1d_maps():
    """LearningGap: unpooled (N, C, L) maps with a 1x1 Conv1d adaptor; gap="norm" is the root."""
    student, teacher, x = _bn_pair()
    student.eval()
    sq = lnpt.LearningGap(
        student, teacher, feature_layer="features", which="output", pool=None, kd_weight=0.0
    ).setup(x)
    nm = lnpt.LearningGap(
        student,
        teacher,
        feature_layer="features",
        which="output",
        pool=None,
        kd_weight=0.0,
        gap="norm",
    ).setup(x)
    lin = lnpt.LearningGap(
        student, teacher, feature_layer="features", which="output", pool=None, adaptor="linear"
    ).setup(x)
    assert isinstance(lin.adaptor.map, nn.Conv1d)
    with torch.no_grad():
        f_s, _ = sq.student_features(x)
        f_t, _ = sq.teacher_outputs(x)
        z = torch.nn.functional.normalize(f_s, dim=1) - torch.nn.functional.normalize(f_t, dim=1)
        expected = z.pow(2).sum(1).mean(-1).mean()
        expected_norm = z.pow(2).sum(1).sqrt().mean(-1).mean()
        assert sq(x).item() == pytest.approx(expected.item(), rel=1e-5)
        assert nm(x).item() == pytest.approx(expected_norm.item(), rel=1e-5)
    with pytest.raises(ValueError, match="gap must be"):
        lnpt.LearningGap(student, teacher, gap="abs")


def test_anatomy_counts_disconnected_weights():
    """anatomy: a kept weight whose input unit is cut off is not effective; dead units counted."""
    model = nn.Sequential(nn.Linear(3, 2, bias=False), nn.ReLU(), nn.Linear(2, 2, bias=False))
    mask = WeightMask(
        {
            "0.weight": torch.tensor([[True, True, True], [False, False, False]]),
            "2.weight": torch.tensor([[True, True], [False, True]]),
        }
    )
    assert layer_density(mask) == {"0.weight": 0.5, "2.weight": 0.75}
    eff = effective_density(model, mask, (3,))
    assert eff == {"0.weight": 0.5, "2.weight": 0.25}  # unit 1 of layer 0 receives nothing
    assert dead_units(model, mask, (3,)) == {"0.weight": (1, 2), "2.weight": (1, 2)}
    mass = score_mass({"a": torch.ones(3), "b": torch.ones(1)})
    assert mass == {"a": (0.75, 1.0), "b": (0.25, 1.0)}


def test_mnist1d_is_generated_offline_and_split_disjointly(monkeypatch):
    """load_mnist1d_split: make_dataset only (download helpers raise), disjoint halves."""
    mnist1d_data = pytest.importorskip("mnist1d.data")

    def no_download(*args, **kwargs):
        raise AssertionError("download helper called")

    for name in ("get_dataset", "download_mnist1d"):
        if hasattr(mnist1d_data, name):
            monkeypatch.setattr(mnist1d_data, name, no_download)
    import numpy as np

    state = np.random.get_state()
    data = lnpt.load_mnist1d_split(0, num_samples=500)
    assert np.array_equal(np.random.get_state()[1], state[1])  # caller's RNG left alone
    assert data.teacher_x.shape == (200, 1, 40) and data.student_x.shape == (200, 1, 40)
    assert data.test_x.shape == (100, 1, 40)
    t = {tuple(r) for r in data.teacher_x.flatten(1).tolist()}
    s = {tuple(r) for r in data.student_x.flatten(1).tolist()}
    assert not t & s
    val = data.validation(0.25, 0)
    assert val.student_x.shape[0] == 150 and val.test_x.shape[0] == 50
    assert torch.equal(val.teacher_x, data.teacher_x)
    with pytest.raises(ValueError, match="num_samples"):
        lnpt.load_mnist1d_split(0, num_samples=5)
