"""The students' learning rate: the `student_lr` option, its cache keys, the check and its rule."""

import lnpt
import pytest
import torch
from lnpt.bench import DEFAULT_STUDENT_LR, BenchConfig, train_label_free
from lnpt.student_lr import (
    StudentLrCheckConfig,
    StudentRecipe,
    choose_student_lr,
    parse_lrs,
    student_lr_check,
)


def test_student_lr_keeps_every_committed_cache_key():
    """Absent (or equal to `lr`), the option leaves every fingerprint as it was before it existed:
    the committed units of lnpt_cnn_goal95 / goal98 / 120ep_teacher / 120ep and the validation
    record's keys."""
    goal95 = BenchConfig(
        models=("cnn",),
        seeds=10,
        arms=("lnpt+label-free", "snip+supervised"),
        sparsities=(0.95,),
        student_lr={},  # the committed runs: every student at `lr`, no warm-up, 120 epochs
        student_warmup_epochs={},
    ).with_epochs({"cnn": 120})
    assert goal95.fingerprint("cnn") == "cac917904dd9d2bc"  # committed lnpt_cnn_goal95 units
    goal98 = BenchConfig(
        models=("cnn",),
        seeds=10,
        arms=("lnpt+label-free", "random+label-free"),
        sparsities=(0.98,),
        student_lr={},
        student_warmup_epochs={},
    ).with_epochs({"cnn": 120})
    assert goal98.fingerprint("cnn") == "5a31aa461195857f"  # committed lnpt_cnn_goal98 units
    unwarmed = BenchConfig(student_lr={}, student_warmup_epochs={}).with_epochs({"cnn": 120})
    assert unwarmed.fingerprint("cnn") == "6c8559dbf6d3c479"  # 120ep_teacher
    # the default moves only the models the rule moved; the others keep their keys
    for model in ("mlp", "cnn1d", "resnet"):
        assert model not in DEFAULT_STUDENT_LR
        assert BenchConfig().fingerprint(model) == BenchConfig(student_lr={}).fingerprint(model)
    rec = BenchConfig.validation_record()
    assert rec.student_lr == {} and "student_lr" not in rec.key_dict()
    assert rec.fingerprint("cnn") == "7a8b2caa8a932fce"
    assert rec.with_epochs({"cnn": 120}).fingerprint("cnn") == "cd00382fea180e87"
    assert rec.fingerprint("mlp") == "2cea280fb19f115a"
    # an explicit entry equal to `lr` is the same run, so the same key
    same = goal95.with_student_lr("cnn", goal95.lr)
    assert "cnn" not in same.student_lr and same.fingerprint("cnn") == "cac917904dd9d2bc"
    # another lr is another run: another key, for that model only
    other = goal95.with_student_lr("cnn", 3e-3)
    assert other.student_lr_of("cnn") == 3e-3 and other.student_lr_of("mlp") == other.lr
    assert other.fingerprint("cnn") != goal95.fingerprint("cnn")
    assert other.fingerprint("mlp") == goal95.fingerprint("mlp")


@pytest.mark.parametrize(
    "bad", [{"vit": 1e-3}, {"cnn": 0.0}, {"cnn": -1e-3}, {"cnn": True}, {"cnn": "1e-3"}]
)
def test_student_lr_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="student_lr"):
        BenchConfig(student_lr=bad).check()
    with pytest.raises(TypeError, match="student_lr"):
        BenchConfig(student_lr=[("cnn", 1e-3)]).check()


def test_parse_lrs_validates_and_names_the_argument():
    assert parse_lrs(["1e-2", "3e-3"]) == (1e-2, 3e-3)
    for bad, says in (
        (["x"], "--student-lrs takes positive"),
        (["0"], "--student-lrs takes positive"),
        (["-1e-3"], "--student-lrs takes positive"),
        (["inf"], "--student-lrs takes positive"),
        ([True], "--student-lrs takes positive"),
        (["1e-2", "0.01"], "--student-lrs lists 0.01 more than once"),
        ([], "--student-lrs needs"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_lrs(bad)
    with pytest.raises(ValueError, match="^lrs "):
        StudentLrCheckConfig(lrs=(1e-2, 0.0)).check()
    for kw, says in (
        ({"model": "vit"}, "model"),
        ({"arms": ("random+label-free",)}, "arms"),
        ({"arms": ("dense+supervised", "dense+supervised")}, "arms"),
        ({"sparsity": 1.0}, "sparsity"),
        ({"validation_fraction": 0.0}, "validation_fraction"),
    ):
        with pytest.raises(ValueError, match=says):
            StudentLrCheckConfig(**kw).check()


def _acc(per_arm: dict[str, list[float]]) -> dict[str, dict[int, float]]:
    return {arm: dict(enumerate(v)) for arm, v in per_arm.items()}


def test_choose_student_lr_rule_on_synthetic_numbers():
    """Floor first (any arm, any seed), then the mean over arms with equal weight, ties within 0.3
    points go to the current lr, else the larger lr."""
    # 1e-2 has the best LNPT mean but one collapsed SNIP student: 3e-3 wins
    acc = {
        1e-2: _acc({"lnpt": [0.99, 0.99], "snip": [0.97, 0.57]}),
        3e-3: _acc({"lnpt": [0.93, 0.93], "snip": [0.93, 0.93]}),
    }
    assert choose_student_lr(acc) == 3e-3
    # arms weigh equally (not students): a mean 0.2 points ahead is a tie -> the current 1e-2
    acc = {
        1e-2: _acc({"lnpt": [0.90, 0.90], "snip": [0.94, 0.94]}),
        3e-3: _acc({"lnpt": [0.924, 0.924], "snip": [0.92, 0.92]}),
    }
    assert choose_student_lr(acc) == 1e-2
    # 0.4 points ahead: not a tie
    acc[3e-3] = _acc({"lnpt": [0.928, 0.928], "snip": [0.92, 0.92]})
    assert choose_student_lr(acc) == 3e-3
    # no candidate qualifies: the fewest students below the floor, then the mean
    acc = {
        1e-2: _acc({"lnpt": [0.70, 0.70], "snip": [0.99, 0.99]}),
        3e-3: _acc({"lnpt": [0.79, 0.95], "snip": [0.90, 0.90]}),
        1e-3: _acc({"lnpt": [0.75, 0.95], "snip": [0.93, 0.93]}),  # 0.5 points ahead
    }
    assert choose_student_lr(acc) == 1e-3
    # a tie between two new candidates goes to the larger lr
    acc = {
        1e-2: _acc({"lnpt": [0.5, 0.5]}),
        3e-3: _acc({"lnpt": [0.95, 0.95]}),
        1e-3: _acc({"lnpt": [0.951, 0.951]}),
    }
    assert choose_student_lr(acc) == 3e-3
    with pytest.raises(ValueError, match="acc is empty"):
        choose_student_lr({})
    with pytest.raises(ValueError, match="same arms and seeds"):
        choose_student_lr({1e-2: _acc({"lnpt": [0.9, 0.9]}), 3e-3: _acc({"lnpt": [0.9]})})


def test_label_free_training_uses_the_given_lr(monkeypatch):
    seen = []
    real = lnpt.training.LabelFreeTrainer.__init__

    def init(self, *a, lr, **kw):
        seen.append(lr)
        real(self, *a, lr=lr, **kw)

    monkeypatch.setattr(lnpt.training.LabelFreeTrainer, "__init__", init)
    torch.manual_seed(0)
    data = lnpt.load_digits_split(0)
    student, teacher = lnpt.MLP(), lnpt.MLP().eval()
    mask = lnpt.prune(student, teacher, [data.student_x[:32]], 0.5, rounds=1)
    cfg = BenchConfig()
    sub = lnpt.DigitsSplit(*(t[:8] for t in (data.teacher_x, data.teacher_y)),
                                data.student_x[:8], data.student_y[:8],
                                data.test_x[:8], data.test_y[:8])  # fmt: skip
    train_label_free(student, teacher, sub, 1, cfg, 0, mask, batch_size=8, lr=3e-3)
    train_label_free(student, teacher, sub, 1, cfg, 0, mask, batch_size=8)
    assert seen == [3e-3, cfg.lr]


def test_student_lr_check_runs_resumes_and_writes_report(tmp_path):
    bench = BenchConfig(
        models=("mlp",), epochs={"mlp": 1}, teacher_epochs={"mlp": 1}, score_batches=1
    )
    sc = StudentLrCheckConfig(
        model="mlp", seeds=1, lrs=(1e-2, 3e-3), arms=("dense+supervised",), bench=bench
    )
    res, chosen = student_lr_check(sc, tmp_path, "t", progress=False)
    names = {r.method for r in res.records}
    assert names == {"lr=0.01 dense+supervised", "lr=0.003 dense+supervised"}
    assert chosen in (StudentRecipe(1e-2), StudentRecipe(3e-3))
    # the two lrs train different students from the same init
    vals = sorted(r.metrics["train_accuracy"] for r in res.records)
    assert vals[0] != vals[1]
    assert all(0.0 <= r.metrics["dead_fraction"] <= 1.0 for r in res.records)
    assert (tmp_path / "lnpt_student_lr_mlp.md").exists()
    again, chosen2 = student_lr_check(sc, tmp_path, "t", progress=False, resume=True, budget_s=0.0)
    assert chosen2 == chosen
    assert {(r.method, r.metrics["val_accuracy"]) for r in again.records} == {
        (r.method, r.metrics["val_accuracy"]) for r in res.records
    }


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--student-lrs", "1e-2"], "--student-lrs only applies with --student-lr-check"),
        (["--student-lr-check", "--student-lrs", "1e-2", "abc"], "--student-lrs takes positive"),
        (["--student-lr-check", "--student-lrs", "0.01", "1e-2"], "--student-lrs lists 0.01"),
        (["--student-lr-check", "--models", "cnn", "mlp"], "takes one model"),
        (
            ["--student-lr-check", "--student-lr-arms", "dense+supervised", "dense+supervised"],
            "--student-lr-arms lists",
        ),
    ],
)
def test_student_lr_cli_rejects_bad_input(argv, says, capsys, tmp_path):
    from lnpt.cli import main

    with pytest.raises(SystemExit) as exc:  # refused before any work
        main(["bench", *argv, "--out", str(tmp_path / "never")])
    assert exc.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "never").exists()
