"""`lnpt_options={"checkpoints": k}` / `lnpt bench --score-checkpoints K`: LNPT's mask scored against
k snapshots of the teacher's run (session 21's reading), while the students still train against the
final teacher."""

import copy

import lnpt
import lnpt.bench
import lnpt.student_lr
import pytest
import torch
from lnpt.bench import (
    PREVIOUS_TEACHER_EPOCHS,
    BenchConfig,
    Progress,
    make_mask,
    teacher_checkpoints,
    train_teacher,
)
from lnpt.cli import main
from lnpt.student_lr import StudentLrCheckConfig


@pytest.fixture(scope="module")
def setup(tiny_mlp_split):
    spec, data = tiny_mlp_split
    teachers = [spec.build().eval() for _ in range(3)]
    init = spec.build()
    cfg = BenchConfig(models=("mlp",), score_batches=1, lnpt_options={"rounds": 1})
    return spec, data, teachers, init, cfg


def test_checkpoints_score_the_last_k_snapshots(setup):
    """checkpoints=2 with three snapshots is the mask scored against the last two (the mean of
    their scores, `lnpt.score`), not the final teacher's mask; the init is untouched."""
    spec, data, teachers, init, cfg = setup
    before = copy.deepcopy(init.state_dict())
    opts = {"rounds": 1, "checkpoints": 2}
    two = make_mask("lnpt", init, teachers, data, 0.9, cfg, 0, spec, lnpt_options=opts)
    ref = make_mask("lnpt", init, teachers[-2:], data, 0.9, cfg, 0, spec)
    last = make_mask("lnpt", init, teachers[-1], data, 0.9, cfg, 0, spec)
    assert all(torch.equal(two[n], ref[n]) for n in two.names)
    assert any(not torch.equal(two[n], last[n]) for n in two.names)
    assert two.num_pruned == last.num_pruned
    one = make_mask(
        "lnpt", init, teachers[-1], data, 0.9, cfg, 0, spec, {"rounds": 1, "checkpoints": 1}
    )
    assert all(torch.equal(one[n], last[n]) for n in one.names)
    for k, v in init.state_dict().items():
        assert torch.equal(v, before[k]), k


@pytest.mark.parametrize(
    ("value", "error", "says"),
    [
        (0, ValueError, "checkpoints must be an int >= 1, got 0"),
        (2.0, TypeError, "checkpoints must be an int >= 1, got float"),
        (True, TypeError, "checkpoints must be an int >= 1, got bool"),
        (4, ValueError, "checkpoints=4 needs a list of at least 4 teacher snapshots"),
    ],
)
def test_checkpoints_bad_value_names_it(setup, value, error, says):
    """A bad `checkpoints`, or more than the snapshots given, is refused naming it; so is a bad
    value in `BenchConfig.check` (before any training)."""
    spec, data, teachers, init, cfg = setup
    with pytest.raises(error, match=says):
        make_mask("lnpt", init, teachers, data, 0.9, cfg, 0, spec, {"checkpoints": value})
    if value != 4:
        with pytest.raises(error, match="checkpoints must be an int >= 1"):
            BenchConfig(lnpt_options={"checkpoints": value}).check()
    with pytest.raises(ValueError, match="checkpoints=2 needs a list of at least 2 .* got 1"):
        make_mask("lnpt", init, teachers[0], data, 0.9, cfg, 0, spec, {"checkpoints": 2})


def test_checkpoints_off_by_default_and_in_the_cache_key():
    """The default config carries no `checkpoints` (its fingerprint is the committed runs'); a set
    one changes it, so its units are never mixed with the final-teacher units on --resume."""
    a = BenchConfig(models=("cnn",))
    assert "checkpoints" not in a.lnpt_options and teacher_checkpoints(a) == 1
    b = BenchConfig(models=("cnn",), lnpt_options={"checkpoints": 3})
    assert teacher_checkpoints(b) == 3
    assert b.fingerprint("cnn") != a.fingerprint("cnn")
    assert b.key_dict() != a.key_dict()


def test_snapshots_end_with_the_teacher_of_a_single_run(setup):
    """train_teacher(checkpoints=3) returns 3 eval-mode snapshots whose last equals, bit for bit,
    the teacher checkpoints=1 trains (so the students' guide is unchanged by the option)."""
    data = setup[1]
    cfg = BenchConfig(teacher_epochs={**PREVIOUS_TEACHER_EPOCHS, "mlp": 3})
    snaps = train_teacher("mlp", data, cfg, 0, checkpoints=3)
    (one,) = train_teacher("mlp", data, cfg, 0)
    assert len(snaps) == 3 and not any(t.training for t in snaps)
    final = snaps[-1].state_dict()
    assert all(torch.equal(v, final[k]) for k, v in one.state_dict().items())
    first = snaps[0].state_dict()
    assert any(not torch.equal(v, final[k]) for k, v in first.items())


class _Stop(Exception):
    pass


def _fakes(monkeypatch, module, seen):
    teachers = [torch.nn.Linear(2, 2).eval() for _ in range(3)]

    def fake_teacher(model, data, cfg, seed, checkpoints=1, at=()):
        seen.append(("teacher", checkpoints))
        return teachers[-checkpoints:]

    monkeypatch.setattr(module, "train_teacher", fake_teacher)
    return teachers


@pytest.mark.parametrize("k", [1, 3])
def test_student_lr_check_scores_lnpt_on_the_snapshots_and_trains_on_the_final(
    monkeypatch, tmp_path, k
):
    """The validation protocol (`_check_one`): one teacher run with `checkpoints=k`; LNPT's mask
    gets all k snapshots (k > 1) or the final teacher (k = 1), SNIP's the final teacher, and the
    label-free student trains against the final teacher."""
    seen: list = []
    teachers = _fakes(monkeypatch, lnpt.student_lr, seen)

    def fake_mask(method, init, teacher, *a, **kw):
        seen.append((method, teacher))
        return None

    def fake_train(arm, init, teacher, *a):
        seen.append((arm, teacher))
        raise _Stop

    monkeypatch.setattr(lnpt.student_lr, "make_mask", fake_mask)
    monkeypatch.setattr(lnpt.student_lr, "_train", fake_train)
    opts = {"checkpoints": k} if k > 1 else {}
    for arm in ("lnpt+label-free", "snip+supervised"):
        scfg = StudentLrCheckConfig(
            model="mlp", seeds=1, lrs=(1e-2,), arms=(arm,), bench=BenchConfig(lnpt_options=opts)
        )
        with pytest.raises(_Stop):
            lnpt.student_lr._check_one(0, scfg, Progress(tmp_path / "c.jsonl", False, None))
    guide = teachers if k > 1 else teachers[-1]
    assert seen[:3] == [("teacher", k), ("lnpt", guide), ("lnpt+label-free", teachers[-1])]
    assert seen[3:] == [("teacher", k), ("snip", teachers[-1]), ("snip+supervised", teachers[-1])]


def test_bench_scores_lnpt_on_the_snapshots(monkeypatch, tmp_path):
    """The test benchmark (`_run_one`) trains its teacher with `checkpoints=k` and gives LNPT's
    mask every snapshot, SNIP's the final teacher."""
    seen: list = []
    teachers = _fakes(monkeypatch, lnpt.bench, seen)

    def fake_mask(method, init, teacher, *a, **kw):
        seen.append((method, teacher))
        raise _Stop

    monkeypatch.setattr(lnpt.bench, "make_mask", fake_mask)
    for arm in ("lnpt+label-free", "snip+supervised"):
        cfg = BenchConfig(
            models=("mlp",), arms=(arm,), sparsities=(0.9,), lnpt_options={"checkpoints": 3}
        )
        progress = Progress(tmp_path / "b.jsonl", False, None)
        progress.done["references"] = {"records": [], "curves": {}}
        with pytest.raises(_Stop):
            lnpt.bench._run_one("mlp", 0, cfg, progress)
    assert seen == [("teacher", 3), ("lnpt", teachers), ("teacher", 3), ("snip", teachers[-1])]


def test_score_checkpoints_flag_reaches_lnpt_options_and_the_command(monkeypatch, tmp_path):
    """`lnpt bench --score-checkpoints 3` sets `lnpt_options={'checkpoints': 3}` (and the report's
    command); `--score-checkpoints 1` is the default: no key, the committed cache keys."""
    got = []

    def fake(sc, out, command, **kw):
        got.append((dict(sc.bench.lnpt_options), command))
        return None, None

    monkeypatch.setattr(lnpt.student_lr, "student_lr_check", fake)
    base = ["bench", "--student-lr-check", "--seeds", "1", "--out", str(tmp_path)]
    assert main([*base, "--score-checkpoints", "3"]) == 0
    assert main([*base, "--score-checkpoints", "1"]) == 0
    assert got[0] == (
        {"checkpoints": 3},
        "lnpt bench --student-lr-check --seeds 1 --score-checkpoints 3",
    )
    assert got[1] == ({}, "lnpt bench --student-lr-check --seeds 1")


def test_bench_score_seconds_leave_out_a_resumed_seeds_teacher(monkeypatch, tmp_path):
    """On a seed resumed after its references unit, `_run_one` retrains the teacher for the first
    mask; that training is not part of the mask's `score_seconds` (the scoring clock starts after
    the guide is ready). A fake clock that the fake teacher advances by 1000 s shows where the
    clock is read."""
    seen: list = []
    clock = [0.0]
    reads: list = []
    teachers = [torch.nn.Linear(2, 2).eval()]

    def fake_teacher(model, data, cfg, seed, checkpoints=1, at=()):
        clock[0] += 1000.0
        return teachers

    def perf_counter():
        reads.append(clock[0])
        return clock[0]

    def fake_mask(method, init, teacher, *a, **kw):
        seen.append((method, teacher))
        raise _Stop

    monkeypatch.setattr(lnpt.bench, "train_teacher", fake_teacher)
    monkeypatch.setattr(
        lnpt.bench, "time", type("T", (), {"perf_counter": staticmethod(perf_counter)})
    )
    monkeypatch.setattr(lnpt.bench, "make_mask", fake_mask)
    cfg = BenchConfig(models=("mlp",), arms=("random+label-free",), sparsities=(0.9,))
    progress = Progress(tmp_path / "b.jsonl", False, None)
    progress.done["references"] = {"records": [], "curves": {}}
    with pytest.raises(_Stop):
        lnpt.bench._run_one("mlp", 0, cfg, progress)
    assert seen == [("random", teachers[0])]
    assert reads == [1000.0]  # the scoring clock starts after the teacher's training
