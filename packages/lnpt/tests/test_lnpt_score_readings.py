"""Session 19's two further scoring readings for the digits CNN: the per-feature standardised gap
(`standardize=True`) and the score averaged over the scoring batches (`average="scores"`); session
20's `lnpt bench` flags for two more (`--score-norm`, `--score-gap`)."""

import copy

import lnpt
import lnpt.student_lr
import pytest
import torch
from lnpt.bench import BenchConfig
from lnpt.cli import main
from lnpt.learning_gap import LearningGap, normalize_scores, select_mask
from torch import nn


def _pair():
    torch.manual_seed(0)
    student = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 4), nn.ReLU(), nn.Linear(4, 3))
    teacher = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 4), nn.ReLU(), nn.Linear(4, 3))
    return student.double(), teacher.double()


def test_standardized_gap_reads_z_scores_and_ignores_a_teacher_features_scale():
    """The gap is read on per-feature z-scores of the setup batch, so blowing one teacher feature
    up 100x (logits unchanged) leaves the standardised scores as they were while it moves the raw
    default's."""
    student, teacher = _pair()
    x = torch.randn(32, 5, dtype=torch.float64)
    gap = LearningGap(student, teacher, adaptor="identity", normalize=False, standardize=True)
    gap.setup(x)
    with torch.no_grad():
        f_s, _ = gap.student_features(x)
        f_t, _ = gap.teacher_outputs(x)
    z_s = torch.nan_to_num((f_s - f_s.mean(0)) / f_s.std(0, unbiased=False))  # constant: 0
    z_t = torch.nan_to_num((f_t - f_t.mean(0)) / f_t.std(0, unbiased=False))
    assert gap.feature_gap([x]) == pytest.approx(
        float((z_s - z_t).pow(2).sum(1).mean().detach()), 1e-12
    )

    big = copy.deepcopy(teacher)
    with torch.no_grad():  # ReLU is positively homogeneous: feature 2 x100, head column / 100
        big[2].weight[2] *= 100.0
        big[2].bias[2] *= 100.0
        big[4].weight[:, 2] /= 100.0
    assert torch.allclose(big(x), teacher(x), atol=1e-10)
    a = lnpt.score(student, teacher, [x], standardize=True)
    b = lnpt.score(student, big, [x], standardize=True)
    assert all(torch.allclose(a[n], b[n], rtol=1e-7, atol=1e-14) for n in a)
    raw_a, raw_b = lnpt.score(student, teacher, [x]), lnpt.score(student, big, [x])
    assert not all(torch.allclose(raw_a[n], raw_b[n], rtol=1e-3) for n in raw_a)


def test_average_scores_is_the_mean_of_each_batchs_own_score():
    """`average="scores"` = mean over batches of |theta * g_b| (adaptor fitted on all batches:
    identity here, so each batch scored alone gives the same per-batch score); it differs from the
    default score of the mean gradient on two batches and equals it on one."""
    student, teacher = _pair()
    xs = [torch.randn(8, 5, dtype=torch.float64) for _ in range(2)]
    opts = {"adaptor": "identity"}
    per = [lnpt.score(student, teacher, [x], **opts) for x in xs]
    avg = lnpt.score(student, teacher, xs, average="scores", **opts)
    assert all(torch.allclose(avg[n], (per[0][n] + per[1][n]) / 2, atol=1e-14) for n in avg)
    grad = lnpt.score(student, teacher, xs, **opts)
    assert not all(torch.allclose(avg[n], grad[n]) for n in avg)
    assert all((avg[n] >= grad[n] - 1e-14).all() for n in avg)  # mean |.| >= |mean|
    one = lnpt.score(student, teacher, xs[:1], average="scores", **opts)
    assert all(torch.equal(one[n], per[0][n]) for n in one)
    mask = lnpt.prune(
        student, teacher, xs, 0.7, rounds=2, average="scores", standardize=True, min_density=0
    )
    assert mask.num_pruned == round(0.7 * mask.numel)


def test_reading_bad_values_name_the_argument():
    student, teacher = _pair()
    x = torch.randn(4, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="average must be one of"):
        lnpt.score(student, teacher, [x], average="mean")
    with pytest.raises(ValueError, match="average must be one of"):
        lnpt.prune(student, teacher, [x], 0.5, average="median")
    with pytest.raises(TypeError, match="standardize must be a bool"):
        LearningGap(student, teacher, standardize=1)
    with pytest.raises(ValueError, match="standardize=True applies to the squared or norm gap"):
        LearningGap(student, teacher, standardize=True, gap="relation")
    with pytest.raises(ValueError, match="standardize=True needs pooled features"):
        LearningGap(student, teacher, standardize=True, pool=None)


def test_reading_options_change_only_their_own_cache_keys():
    """The default config carries neither option (committed keys stay); each, set, changes it."""
    a = BenchConfig(models=("cnn",))
    assert not {"standardize", "average", "score_norm", "gap"} & set(a.lnpt_options)
    for opts in ({"standardize": True}, {"average": "scores"}, {"score_norm": "mean"},
                 {"gap": "norm"}):  # fmt: skip
        b = BenchConfig(models=("cnn",), lnpt_options=opts)
        assert b.fingerprint("cnn") != a.fingerprint("cnn")


def test_score_norm_and_gap_flags_reach_lnpt_options_and_the_command(monkeypatch, tmp_path):
    """`lnpt bench --score-norm mean --score-gap norm` sets exactly those `lnpt_options` (and the
    report's command); without them neither key is there (the default mask's cache keys stay)."""
    seen = []

    def fake(sc, out, command, **kw):
        seen.append((dict(sc.bench.lnpt_options), command))
        return None, None

    monkeypatch.setattr(lnpt.student_lr, "student_lr_check", fake)
    base = ["bench", "--student-lr-check", "--seeds", "1", "--out", str(tmp_path)]
    assert main([*base, "--score-norm", "mean", "--score-gap", "norm"]) == 0
    assert main([*base, "--score-gap", "squared"]) == 0
    assert seen[0][0] == {"score_norm": "mean", "gap": "norm"}
    assert seen[0][1].endswith(" --score-norm mean --score-gap norm")
    assert seen[1] == ({}, "lnpt bench --student-lr-check --seeds 1")


def test_prune_score_norm_ranks_within_each_layer_scale():
    """One round of `prune(score_norm="mean")` keeps the global top-k of the scores over their
    tensor's mean, not of the raw scores (whose mask differs here: the layers' scales differ)."""
    student, teacher = _pair()
    xs = [torch.randn(16, 5, dtype=torch.float64)]
    opts = {"rounds": 1, "min_density": 0, "adaptor": "identity"}
    m = lnpt.prune(student, teacher, xs, 0.6, score_norm="mean", **opts)
    scores = lnpt.score(student, teacher, xs, adaptor="identity")
    ref = select_mask(normalize_scores(scores, "mean"), 0.6)
    assert all(torch.equal(m[n], ref[n]) for n in m.names)
    raw = lnpt.prune(student, teacher, xs, 0.6, **opts)
    assert not all(torch.equal(m[n], raw[n]) for n in m.names)
    assert m.num_pruned == raw.num_pruned == round(0.6 * m.numel)
