"""Session 33: the denormal flush in lnpt's run set-up (`lnpt.runtime`) and rule s33's script.
The option rule s33 rejected (`label_free["teacher_snapshots"]`) was retired in session 34; its
own tests are at 7b1d953 (`git show 7b1d953:packages/lnpt/tests/test_lnpt_s33.py`), the
retirement's in `test_lnpt_s34.py`. Fixed seeds, no timing."""

import dataclasses
import filecmp
import json
import math
import shutil
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
from lnpt.runtime import flush_denormal, flush_denormal_on, with_flush_denormal
from lnpt.training import TRAINING_DEFAULTS
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


def test_cache_keys_unchanged_by_the_flush():
    """The benchmark's fingerprints are the committed ones (the MLP's and MNIST-1D's test caches,
    `docs/benchmarks/cache/{mlp,cnn1d}-seed0-*.json`)."""
    cfg = bench.BenchConfig()
    assert cfg.fingerprint("mlp") == "2cea280fb19f115a"
    assert cfg.fingerprint("cnn1d") == "88503d026bf2f606"


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


def test_rule_s33_current_is_rule_s31s_key_and_the_candidate_is_retired(rule):
    """The current arm's configuration is rule s31's and keeps its committed cache name
    (`lnpt_s33_rule/current/cache/*-5e066fc188e3ef3d.jsonl`); the candidate's option was retired
    in session 34, so configuring it raises, naming the last commit with its code, while its
    committed units keep their name (`candidate/cache/*-50a09333e0d0c3f1.jsonl`: the key builder
    reads the label-free dict as it is)."""
    import validation_at_test_sizes as s31
    from lnpt.ablation import report_hash
    from lnpt.student_lr import cache_fields

    cur = rule.config(rule.S33, "current", ("lnpt+label-free", "snip+supervised"), 24)
    assert cur.bench.key_dict() == s31.config(("lnpt+label-free",)).bench.key_dict()

    def name(scfg):
        return report_hash(json.dumps(cache_fields(scfg), sort_keys=True, default=str))

    assert name(cur) == "5e066fc188e3ef3d"
    with pytest.raises(ValueError, match="teacher_snapshots=3 was retired.*7b1d953"):
        rule.config(rule.S33, "candidate", ("lnpt+label-free",), 24)
    cand = s31.config(("lnpt+label-free",), seeds=1)  # as `config` built it, unchecked
    cand.first_seed = 24
    cand.bench.label_free = dict(rule.S33.candidate)
    assert name(cand) == "50a09333e0d0c3f1"
    assert rule.S33.candidate == {**TRAINING_DEFAULTS, "teacher_snapshots": 3}  # the record
    assert rule.S33.seeds == (24, 25, 26, 27, 28)  # fresh: 7-23 are used
    repo = Path(__file__).resolve().parents[3] / "docs/benchmarks/lnpt_s33_rule"
    for which, h in (("current", "5e066fc188e3ef3d"), ("candidate", "50a09333e0d0c3f1")):
        files = sorted(p.name for p in (repo / which / "cache").glob("*.jsonl"))
        assert files == [f"student-lr-cnn-seed{s}-{h}.jsonl" for s in range(24, 29)]


def test_rule_s33_rederives_byte_for_byte_after_the_retirement(rule, tmp_path, monkeypatch):
    """`label_free_rule_s33.py rule` writes rule s33's committed JSON and result.md again, byte
    for byte, from the committed caches (the candidate's option no longer exists)."""
    root = Path(__file__).resolve().parents[3] / "docs/benchmarks"
    shutil.copytree(root / "lnpt_s33_rule", tmp_path / "lnpt_s33_rule")
    (tmp_path / "lnpt_s33_rule" / "result.md").unlink()
    monkeypatch.setattr(rule, "ROOT", tmp_path)
    rule.rule(dataclasses.replace(rule.S33, run=tmp_path / "lnpt_s33_rule"))
    assert filecmp.cmp(tmp_path / "lnpt_s33_rule.json", root / "lnpt_s33_rule.json", shallow=False)
    assert filecmp.cmp(
        tmp_path / "lnpt_s33_rule" / "result.md", root / "lnpt_s33_rule/result.md", shallow=False
    )


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
