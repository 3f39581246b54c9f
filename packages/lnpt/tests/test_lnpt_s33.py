"""Session 33: the denormal flush in lnpt's run set-up (`lnpt.runtime`), the label-free option
`LearningGap(target_snapshots=...)` / `label_free["teacher_snapshots"]`, and rule s33's script.
Float64 where exact, fixed seeds, no timing."""

import dataclasses
import math
from pathlib import Path

import lnpt
import lnpt.ablation
import lnpt.bench as bench
import lnpt.protocol
import lnpt.student_lr
import lnpt.teachers
import lnpt.training_ablation
import pytest
import torch
import torch.nn.functional as F
from lnpt.runtime import flush_denormal, flush_denormal_on, with_flush_denormal
from lnpt.training import TRAINING_DEFAULTS, LabelFreeObjective
from maskloop.report import PairedDifference

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(autouse=True)
def _flush_off():
    """Every test starts and ends with the flush off (the process default)."""
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(False)


# --------------------------------------------------------------------------- the flush


def test_flush_is_set_inside_and_restored_after_in_both_starting_states():
    assert not flush_denormal_on()
    with flush_denormal() as got:
        assert flush_denormal_on() and got
        assert float(torch.tensor([1e-39]) * 2) == 0.0  # denormals read as zero
    assert not flush_denormal_on()
    assert float(torch.tensor([1e-39]) * 2) != 0.0
    torch.set_flush_denormal(True)
    with flush_denormal(False):
        assert not flush_denormal_on()
    assert flush_denormal_on()  # restored to what it was, not to off


def test_flush_is_restored_when_the_run_raises():
    with pytest.raises(RuntimeError, match="boom"), flush_denormal():
        raise RuntimeError("boom")
    assert not flush_denormal_on()


@pytest.mark.parametrize("bad", [1, "yes", None])
def test_flush_refuses_a_non_bool(bad):
    with pytest.raises(TypeError, match="enabled must be a bool"), flush_denormal(bad):
        pass


class _Stop(Exception):
    pass


# (module, run function, the name its module calls to open a run, arguments)
RUNS = [
    (bench, "run_bench", "open_cached_run", (bench.BenchConfig(), "x", "c")),
    (lnpt.student_lr, "student_lr_check", "open_cached_run", (None, "x", "c")),
    (lnpt.teachers, "teacher_check", "open_cached_run", (None, "x", "c")),
    (lnpt.ablation, "run_ablation", "open_cached_run", (None, "x", "c")),
    (lnpt.training_ablation, "run_training_ablation", "open_cached_run", (None, "x", "c")),
    (lnpt.protocol, "protocol_check", "open_cached_run", (None, "x", "c")),
]


@pytest.mark.parametrize(("module", "fn", "opener", "args"), RUNS, ids=[r[1] for r in RUNS])
def test_every_run_function_flushes_during_the_run_and_restores(
    module, fn, opener, args, monkeypatch
):
    """The run's first step sees the flush on; after the run (here stopped by an exception) the
    state is what it was before."""
    seen = []

    def opened(*a, **k):
        seen.append(flush_denormal_on())
        raise _Stop

    monkeypatch.setattr(bench, opener, opened)  # where a run imports it from at call time
    if hasattr(module, opener):  # or its module's own name for it
        monkeypatch.setattr(module, opener, opened)
    with pytest.raises(_Stop):
        getattr(module, fn)(*args)
    assert seen == [True]
    assert not flush_denormal_on()


def test_the_decorator_keeps_name_and_result():
    @with_flush_denormal
    def f(x):
        """doc"""
        return x + int(flush_denormal_on())

    assert f(1) == 2 and f.__name__ == "f" and f.__doc__ == "doc"
    assert not flush_denormal_on()


def test_cache_keys_unchanged_by_the_flush_and_the_new_option():
    """The benchmark's fingerprints are the committed ones (the MLP's and MNIST-1D's test caches,
    `docs/benchmarks/cache/{mlp,cnn1d}-seed0-*.json`); the option is absent from every default."""
    cfg = bench.BenchConfig()
    assert cfg.fingerprint("mlp") == "2cea280fb19f115a"
    assert cfg.fingerprint("cnn1d") == "88503d026bf2f606"
    assert (
        "teacher_snapshots" not in cfg.label_free and "teacher_snapshots" not in TRAINING_DEFAULTS
    )
    assert bench.teacher_snapshot_count(cfg) == 1


# --------------------------------------------------------------------------- the option


def _pair64(snapshots=2):
    torch.manual_seed(0)
    student = lnpt.MLP(8, (16, 12), 3).double()
    teacher = lnpt.MLP(8, (16, 12), 3).double()
    snaps = [lnpt.MLP(8, (16, 12), 3).double() for _ in range(snapshots)]
    return student, teacher, snaps


def test_snapshot_targets_are_the_averaged_distribution():
    """Soft term = tau^2 KL(p_bar^tau || p_S^tau), p_bar^tau = mean_k softmax(z_k / tau), with
    z_0 the teacher's logits, computed by hand in float64."""
    student, teacher, snaps = _pair64()
    x = torch.randn(10, 8, dtype=torch.float64)
    tau = 3.0
    gap = lnpt.LearningGap(
        student, teacher, feature_weight=0.0, temperature=tau, target_snapshots=snaps
    ).setup(x)
    with torch.no_grad():
        p = torch.stack([F.softmax(m(x) / tau, -1) for m in (teacher, *snaps)]).mean(0)
        q = F.softmax(student(x) / tau, -1)
        expected = tau**2 * (p * (p.log() - q.log())).sum(-1)
    torch.testing.assert_close(gap.per_sample(x), expected, rtol=1e-12, atol=1e-12)
    plain = lnpt.LearningGap(student, teacher, feature_weight=0.0, temperature=tau).setup(x)
    assert not torch.allclose(plain.per_sample(x), expected)  # the snapshots change the targets


def test_copies_of_the_teacher_as_snapshots_change_nothing():
    student, teacher, _ = _pair64()
    x = torch.randn(10, 8, dtype=torch.float64)
    copies = [lnpt.MLP(8, (16, 12), 3).double() for _ in range(2)]
    for c in copies:
        c.load_state_dict(teacher.state_dict())
    a = lnpt.LearningGap(student, teacher, target_snapshots=copies).setup(x).per_sample(x)
    b = lnpt.LearningGap(student, teacher).setup(x).per_sample(x)
    torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_hard_and_confidence_read_the_averaged_distribution():
    """Two snapshots that agree on class 2 outvote the teacher's class 0: the hard target is 2;
    the confidence filter reads the averaged top probability."""
    teacher, s1, s2, student = (torch.nn.Linear(1, 3, bias=True).double() for _ in range(4))
    with torch.no_grad():
        for m, b in ((teacher, [3.0, 0.0, 2.9]), (s1, [0.0, 0.0, 3.0]), (s2, [0.0, 0.0, 3.0])):
            m.weight.zero_()
            m.bias.copy_(torch.tensor(b, dtype=torch.float64))
    x = torch.ones(4, 1, dtype=torch.float64)
    hard = lnpt.LearningGap(
        student, teacher, feature_weight=0.0, targets="hard", target_snapshots=[s1, s2]
    ).setup(x)
    with torch.no_grad():
        expected = F.cross_entropy(student(x), torch.full((4,), 2), reduction="none")
    torch.testing.assert_close(hard.per_sample(x), expected, rtol=1e-12, atol=1e-12)
    with torch.no_grad():
        top = torch.stack([F.softmax(m(x), -1) for m in (teacher, s1, s2)]).mean(0).amax(-1)[0]
    for c, kept in ((float(top) - 1e-6, True), (float(top) + 1e-6, False)):
        g = lnpt.LearningGap(
            student, teacher, feature_weight=0.0, confidence=c, target_snapshots=[s1, s2]
        ).setup(x)
        assert bool((g.per_sample(x) > 0).all()) is kept


def test_the_training_objective_reads_the_snapshots():
    student, teacher, snaps = _pair64()
    x = torch.randn(6, 8, dtype=torch.float64)
    with_s = LabelFreeObjective(
        lnpt.LearningGap(student, teacher, feature_weight=0.0, target_snapshots=snaps).setup(x)
    )
    without = LabelFreeObjective(lnpt.LearningGap(student, teacher, feature_weight=0.0).setup(x))
    a, _ = with_s(student, x)
    b, _ = without(student, x)
    direct = with_s.gap.per_sample(x)
    torch.testing.assert_close(a, direct, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(a, b)


def test_snapshots_keep_their_mode_and_get_no_gradient():
    student, teacher, snaps = _pair64()
    snaps[0].train()
    x = torch.randn(6, 8, dtype=torch.float64)
    gap = lnpt.LearningGap(student, teacher, target_snapshots=snaps).setup(x)
    gap(x).backward()
    assert snaps[0].training and all(p.grad is None for m in snaps for p in m.parameters())
    assert not any(n.startswith("target") for n, _ in gap.named_parameters())


@pytest.mark.parametrize(
    ("bad", "err", "says"),
    [
        (torch.nn.Linear(8, 3), TypeError, "target_snapshots must be a list or tuple"),
        ("teacher", TypeError, "target_snapshots must be a list or tuple"),
        ([torch.nn.Linear(8, 3), 3], TypeError, "target_snapshots must hold"),
    ],
)
def test_bad_snapshots_are_refused(bad, err, says):
    student, teacher, _ = _pair64()
    with pytest.raises(err, match=says):
        lnpt.LearningGap(student, teacher, target_snapshots=bad)


def test_snapshots_of_another_shape_are_refused():
    student, teacher, _ = _pair64()
    other = torch.nn.Linear(8, 5).double()
    x = torch.randn(4, 8, dtype=torch.float64)
    gap = lnpt.LearningGap(student, teacher, target_snapshots=[other]).setup(x)
    with pytest.raises(ValueError, match="target_snapshots must give"):
        gap.per_sample(x)


@pytest.mark.parametrize(
    ("value", "err"), [(0, ValueError), (-2, ValueError), (True, TypeError), (2.0, TypeError)]
)
def test_teacher_snapshots_option_is_checked(value, err):
    with pytest.raises(err, match="teacher_snapshots"):
        bench.check_teacher_snapshots(value)
    cfg = bench.BenchConfig(label_free={**TRAINING_DEFAULTS, "teacher_snapshots": value})
    with pytest.raises(err, match="teacher_snapshots"):
        cfg.check()


def test_scoring_checkpoints_and_training_snapshots_must_agree():
    cfg = bench.BenchConfig(
        lnpt_options={"checkpoints": 2}, label_free={**TRAINING_DEFAULTS, "teacher_snapshots": 3}
    )
    with pytest.raises(ValueError, match="must agree"):
        cfg.check()
    cfg.lnpt_options = {"checkpoints": 3}
    cfg.check()
    assert bench.teacher_snapshot_count(cfg) == 3


def test_train_label_free_passes_the_snapshots_and_needs_all_of_them(monkeypatch):
    seen = {}

    class Fake:
        def __init__(self, student, teacher, mask, **kwargs):
            seen.update(kwargs, teacher=teacher)

        def fit(self, *args, **kwargs):
            return None

    monkeypatch.setattr(bench, "LabelFreeTrainer", Fake)
    cfg = bench.BenchConfig(label_free={**TRAINING_DEFAULTS, "teacher_snapshots": 3})
    data = bench.MODELS["mlp"].data(0)
    t = [torch.nn.Linear(1, 1) for _ in range(3)]
    bench.train_label_free(torch.nn.Linear(1, 1), t, data, 1, cfg, 0, None)
    assert seen["teacher"] is t[-1] and seen["target_snapshots"] == t[:2]
    assert "teacher_snapshots" not in seen
    with pytest.raises(ValueError, match="teacher_snapshots=3 needs"):
        bench.train_label_free(torch.nn.Linear(1, 1), t[0], data, 1, cfg, 0, None)
    seen.clear()
    plain = bench.BenchConfig()  # the default: the final snapshot alone, no option passed
    bench.train_label_free(torch.nn.Linear(1, 1), t, data, 1, plain, 0, None)
    assert seen["teacher"] is t[-1] and "target_snapshots" not in seen


def test_the_final_snapshot_is_the_teacher_itself():
    """`train_teacher(checkpoints=3)`'s last network equals `checkpoints=1`'s bit for bit (the
    candidate's mask and the current's are scored against the same teacher)."""
    cfg = bench.BenchConfig.quick()
    cfg.teacher_epochs = {**cfg.teacher_epochs, "mlp": 3}
    data = bench.MODELS["mlp"].data(0)
    one = bench.train_teacher("mlp", data, cfg, 0)
    three = bench.train_teacher("mlp", data, cfg, 0, checkpoints=3)
    assert len(one) == 1 and len(three) == 3
    for a, b in zip(one[-1].state_dict().values(), three[-1].state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not all(
        torch.equal(a, b)
        for a, b in zip(three[0].state_dict().values(), three[-1].state_dict().values())
    )


# --------------------------------------------------------------------------- rule s33's script


@pytest.fixture
def rule(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import label_free_rule as lfr

    return lfr


def test_rule_s33_current_is_rule_s31s_key_and_the_candidate_differs_in_label_free(rule):
    import validation_at_test_sizes as s31

    cur = rule.config(rule.S33, "current", ("lnpt+label-free", "snip+supervised"), 24)
    cand = rule.config(rule.S33, "candidate", ("lnpt+label-free",), 24)
    assert cur.bench.key_dict() == s31.config(("lnpt+label-free",)).bench.key_dict()
    a, b = cur.bench.key_dict(), cand.bench.key_dict()
    assert {k for k in a if a[k] != b[k]} == {"label_free"}
    assert b["label_free"] == {**TRAINING_DEFAULTS, "teacher_snapshots": 3}
    assert rule.S33.seeds == (24, 25, 26, 27, 28)  # fresh: 7-23 are used
    assert bench.teacher_snapshot_count(cand.bench) == 3
    assert bench.teacher_snapshot_count(cur.bench) == 1


def test_rule_s33_left_lists_every_unit_in_run_order(rule, tmp_path):
    todo = rule.left(dataclasses.replace(rule.S33, run=tmp_path))
    assert len(todo) == 15
    assert todo[:3] == [
        (24, "current", "lnpt+label-free"),
        (24, "current", "snip+supervised"),
        (24, "candidate", "lnpt+label-free"),
    ]


def _d(mean, low, high, n=5):
    return PairedDifference(mean, low, high, n)


def test_rule_s33_never_adopts(rule):
    v = rule.verdict_s33
    passed, goal = v(_d(0.01, 0.001, 0.02), _d(0.0, -0.004, 0.004))
    assert passed == rule.PASSED_S33 and "not adopted" in passed and goal == "met"
    assert v(_d(0.01, 0.0, 0.02), _d(0.0, -0.005, 0.004)) == ("rejected", "missed")
    assert v(_d(0.01, 0.001, 0.02, n=4), None)[0].startswith("partial")
    assert v(None, None) == ("partial: fewer than 5 paired seeds, no verdict", "no reading")
    assert not math.isnan(rule.GOAL_LOW)
