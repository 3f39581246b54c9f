"""Session 31: `DigitsSplit.validation(reading="teacher-held-out")`, the validation split at the
test protocol's student sizes, its disjointness from the test read set, the check's option
`validation_split` (the default keeps the committed cache keys) and the rule's verdict."""

import json
from pathlib import Path

import lnpt.student_lr as sl
import numpy as np
import pytest
import torch
from lnpt.bench import BenchConfig
from lnpt.data import VALIDATION_READINGS, DigitsSplit, load_digits_split
from lnpt.student_lr import StudentLrCheckConfig, student_lr_check
from maskloop.report import PairedDifference

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def script(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import validation_at_test_sizes

    return validation_at_test_sizes


def _ids(x: torch.Tensor) -> set[bytes]:
    """Each digit as its bytes (the 1,797 digits are pairwise distinct rows, tested below)."""
    return {r.tobytes() for r in x.reshape(x.shape[0], -1).numpy()}


def test_digits_rows_are_distinct_so_rows_identify_samples():
    from sklearn.datasets import load_digits

    x = load_digits().data
    assert len(np.unique(x, axis=0)) == len(x) == 1797


@pytest.mark.parametrize("seed", [0, 9, 14, 18])
def test_teacher_held_out_is_disjoint_from_the_test_read_set(seed):
    """At the test protocol's split of `seed`: the student keeps its whole half (the very 719
    digits the test protocol trains on), the read set is 360 digits of the teacher's half, the
    teacher keeps the other 358; no part shares a digit with the test part or with another."""
    full = load_digits_split(seed, image=True)
    val = full.validation(seed=seed, reading="teacher-held-out")
    assert [t.shape[0] for t in (full.teacher_y, full.student_y, full.test_y)] == [718, 719, 360]
    assert [t.shape[0] for t in (val.teacher_y, val.student_y, val.test_y)] == [358, 719, 360]
    assert torch.equal(val.student_x, full.student_x) and torch.equal(val.student_y, full.student_y)
    test, teach, stud, read = (
        _ids(t) for t in (full.test_x, val.teacher_x, val.student_x, val.test_x)
    )
    assert len(read) == 360 and len(teach) == 358 and len(stud) == 719
    assert not read & _ids(full.test_x)  # the test read set is never read
    assert not (teach | stud) & test  # nor trained on
    assert not read & teach and not read & stud and not teach & stud
    assert read | teach == _ids(full.teacher_x)  # the teacher's half, split in two
    # stratified: every class 35-37 times among the 360
    assert set(torch.bincount(val.test_y, minlength=10).tolist()) <= {35, 36, 37}


def test_teacher_held_out_on_tagged_rows():
    """The same on made-up data whose inputs carry their row id (exact, float64)."""
    n_t, n_s, n_te = 40, 30, 10
    x = torch.arange(n_t + n_s + n_te, dtype=torch.float64)[:, None]
    y = torch.arange(n_t + n_s + n_te) % 2
    split = DigitsSplit(
        x[:n_t], y[:n_t], x[n_t : n_t + n_s], y[n_t : n_t + n_s], x[-n_te:], y[-n_te:]
    )
    val = split.validation(seed=3, reading="teacher-held-out")
    ids = {
        k: set(getattr(val, f"{k}_x").flatten().tolist()) for k in ("teacher", "student", "test")
    }
    assert len(ids["test"]) == n_te and len(ids["teacher"]) == n_t - n_te
    assert ids["test"] | ids["teacher"] == set(range(n_t))
    assert not ids["test"] & ids["teacher"]
    assert ids["student"] == set(range(n_t, n_t + n_s))
    assert not (ids["test"] | ids["teacher"] | ids["student"]) & set(
        range(n_t + n_s, n_t + n_s + n_te)
    )
    # the default reading is unchanged: a quarter of the student's half, the teacher untouched
    old = split.validation(0.25, seed=3)
    assert torch.equal(old.teacher_x, split.teacher_x) and old.test_x.shape[0] == 8  # fmt: skip


@pytest.mark.parametrize("bad", ["teacher", "", None, "Teacher-Held-Out"])
def test_bad_validation_reading_is_refused(bad):
    split = load_digits_split(0)
    with pytest.raises(ValueError, match="reading must be one of"):
        split.validation(seed=0, reading=bad)
    with pytest.raises(ValueError, match="validation_split must be one of"):
        StudentLrCheckConfig(validation_split=bad).check()
    assert VALIDATION_READINGS == ("student-quarter", "teacher-held-out")


def test_teacher_held_out_needs_a_test_part_smaller_than_the_teachers_half():
    x, y = torch.zeros(4, 1), torch.zeros(4, dtype=torch.long)
    split = DigitsSplit(x, y, x, y, torch.zeros(5, 1), torch.zeros(5, dtype=torch.long))
    with pytest.raises(ValueError, match="teacher-held-out"):
        split.validation(reading="teacher-held-out")


def test_check_trains_the_teacher_on_what_the_split_leaves(tmp_path, monkeypatch):
    """Under `validation_split="teacher-held-out"` the teacher trains on the 358 digits left of its
    half (never the read set), students on the whole 719-digit student half, and the cache key
    differs from the default's; the default's teacher still trains on the whole half (718)."""
    seen = []
    real = sl.train_teacher

    def spy(model, data, cfg, seed, *a, **kw):
        seen.append((data.teacher_x.shape[0], data.student_x.shape[0], data.test_x.shape[0]))
        return real(model, data, cfg, seed, *a, **kw)

    monkeypatch.setattr(sl, "train_teacher", spy)
    bench = BenchConfig(
        models=("mlp",), epochs={"mlp": 1}, teacher_epochs={"mlp": 1}, score_batches=1
    )
    names = []
    for split in VALIDATION_READINGS:
        sc = StudentLrCheckConfig(
            model="mlp", seeds=1, lrs=(1e-2,), arms=("lnpt+label-free",), bench=bench,
            validation_split=split,
        )  # fmt: skip
        student_lr_check(sc, tmp_path / split, "t", progress=False)
        names += [p.name for p in (tmp_path / split / "cache").glob("*.jsonl")]
    assert seen == [(718, 539, 180), (358, 719, 360)]
    assert len(set(n.rsplit("-", 1)[1] for n in names)) == 2  # two cache keys


def test_script_config_is_session_30s_check_at_the_new_split(script):
    sc = script.config(sl.STUDENT_LR_ARMS)
    assert sc.validation_split == "teacher-held-out"
    assert list(sc.seed_range) == [14, 15, 16, 17, 18]
    assert [r.key for r in sc.candidates] == ["lr=0.01,epochs=480,warmup=5", "lr=0.01,warmup=5"]
    assert sc.bench.epochs["cnn"] == 240 and sc.bench.teacher_epochs["cnn"] == 80


def _d(mean, low, high, n=5):
    return PairedDifference(mean, low, high, n)


def test_rule_verdict_on_made_up_numbers(script):
    v = script.verdict
    assert v(_d(-0.01, -0.02, -0.001)) == "reproduced"
    assert v(_d(-0.004, -0.012, 0.003)) == "missed, sign not shown"
    assert v(_d(-0.004, -0.005, 0.003)) == "missed, sign not shown"  # at the bound: not > -0.5
    assert v(_d(0.002, -0.0049, 0.01)) == "met"
    assert v(_d(-0.01, -0.02, -0.001, n=4)).startswith("partial")
    assert v(None).startswith("partial")
    f = script.factor_verdict
    assert f(_d(0.01, 0.001, 0.02), None) == "mask"
    assert f(_d(0.0, -0.01, 0.01), _d(-0.01, -0.02, -0.001)) == "training"
    assert f(None, None) == "not run on 5 seeds"


def test_committed_rule_json_matches_the_rule_if_present(script):
    """The committed result (when present) is what the verdict function gives on its numbers."""
    path = Path(__file__).resolve().parents[3] / "docs/benchmarks/lnpt_s31_rule.json"
    if not path.exists():
        pytest.skip("no committed result yet")
    doc = json.loads(path.read_text())
    g = doc["480 epochs (the default)"]["paired"]["goal: LNPT label-free - SNIP supervised"]
    got = script.verdict(None if g is None else _d(g["mean"], g["low"], g["high"], g["n"]))
    assert got == doc["verdict"]
