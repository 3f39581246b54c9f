"""The students' lr schedule after the warm-up (session 26's recipe reading): `WarmupCosine`,
`BenchConfig.student_schedule` (off every committed cache key while constant), the recipe option
`schedule=cosine` of the student-lr check and its name, key and rule tie-break."""

import math

import lnpt
import pytest
import torch
from lnpt.bench import BenchConfig, train_label_free, train_supervised
from lnpt.student_lr import (
    StudentLrCheckConfig,
    StudentRecipe,
    choose_student_recipe,
    parse_recipes,
    student_lr_check,
)
from lnpt.training import LinearWarmup, WarmupCosine
from maskloop import fit


def test_warmup_cosine_ramps_then_decays_to_zero_per_step_and_restores_the_lrs(tiny_lr_fit, lr_log):
    model, data = tiny_lr_fit()  # 3 steps per epoch
    opt = torch.optim.SGD(
        [{"params": [model.weight], "lr": 0.3}, {"params": [model.bias], "lr": 0.06}]
    )
    log = lr_log()
    fit(model, data, epochs=4, optimizer=opt, callbacks=[WarmupCosine(4, 1), log], progress=False)
    # 1 epoch x 3 steps of warm-up, then K = 9 steps of cosine from 1 towards 0
    want = [1 / 3, 2 / 3, 1.0] + [0.5 * (1 + math.cos(math.pi * k / 9)) for k in range(9)]
    assert [lr[0] for lr in log.lrs] == pytest.approx([0.3 * f for f in want], abs=1e-15)
    assert [lr[1] for lr in log.lrs] == pytest.approx([0.06 * f for f in want], abs=1e-15)
    assert log.lrs[3][0] == 0.3 and 0 < log.lrs[-1][0] < 0.3 * 0.04  # full after warm-up, ~0 last
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.06]  # restored at the end
    # the warm-up part is LinearWarmup's, factor for factor
    w, c = LinearWarmup(2), WarmupCosine(10, 2)
    w.steps_per_epoch = c.steps_per_epoch = 7
    assert [c.factor(t, 0) for t in range(14)] == [w.factor(t, 0) for t in range(14)]


def test_warmup_cosine_without_warmup_without_len_and_past_its_end(tiny_lr_fit):
    c = WarmupCosine(4)
    assert c.steps_per_epoch is None  # by epochs: 1, cos(pi/4) ..., then 0 from epoch 4 on
    assert [c.factor(99, e) for e in range(6)] == pytest.approx(
        [1.0, 0.5 * (1 + math.cos(math.pi / 4)), 0.5, 0.5 * (1 - math.cos(math.pi / 4)), 0, 0],
        abs=1e-15,
    )
    runs = []  # the schedule changes training (same seed, same data)
    for cbs in ([], [WarmupCosine(2)]):
        model, data = tiny_lr_fit()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        fit(model, data, epochs=2, optimizer=opt, callbacks=cbs, progress=False)
        runs.append(model.weight.detach().clone())
    assert not torch.equal(runs[0], runs[1])


@pytest.mark.parametrize(
    ("args", "error", "says"),
    [
        ((0,), ValueError, "epochs"),
        ((1.5,), TypeError, "epochs"),
        ((True,), TypeError, "epochs"),
        ((5, -1), ValueError, "warmup_epochs"),
        ((5, 2.0), TypeError, "warmup_epochs"),
        ((5, 5), ValueError, "warmup_epochs must be shorter than epochs"),
    ],
)
def test_warmup_cosine_rejects_bad_input(args, error, says):
    with pytest.raises(error, match=says):
        WarmupCosine(*args)


def _sub():
    data = lnpt.load_digits_split(0)
    return lnpt.DigitsSplit(*(t[:8] for t in (data.teacher_x, data.teacher_y)),
                            data.student_x[:8], data.student_y[:8],
                            data.test_x[:8], data.test_y[:8])  # fmt: skip


def test_bench_training_uses_the_cosine_only_when_named(monkeypatch):
    seen = []
    real = WarmupCosine.__init__

    def init(self, epochs, warmup_epochs=0):
        seen.append((epochs, warmup_epochs))
        real(self, epochs, warmup_epochs)

    monkeypatch.setattr(WarmupCosine, "__init__", init)
    torch.manual_seed(0)
    sub = _sub()
    student, teacher = lnpt.MLP(), lnpt.MLP().eval()
    mask = lnpt.prune(student, teacher, [sub.student_x], 0.5, rounds=1)
    cfg = BenchConfig()
    train_supervised(student, sub, "student", 2, cfg, 0, mask, batch_size=8, warmup_epochs=1)
    train_label_free(student, teacher, sub, 2, cfg, 0, mask, batch_size=8, warmup_epochs=1)
    assert seen == []  # constant by default: LinearWarmup alone, as before the option
    train_supervised(
        student, sub, "student", 3, cfg, 0, mask, batch_size=8, warmup_epochs=1, schedule="cosine"
    )
    train_label_free(
        student, teacher, sub, 2, cfg, 0, mask, batch_size=8, schedule="cosine", schedule_epochs=6
    )
    assert seen == [(3, 1), (6, 0)]
    with pytest.raises(ValueError, match="schedule must be one of"):
        train_supervised(student, sub, "student", 1, cfg, 0, batch_size=8, schedule="step")


def test_constant_schedule_is_bit_for_bit_the_run_before_the_option():
    """float64: the constant schedule adds nothing to a run; the cosine changes it."""
    sub = _sub()
    finals = []
    for kw in ({}, {"schedule": "constant"}, {"schedule": "cosine"}):
        torch.manual_seed(0)
        student = lnpt.MLP().double()
        sub64 = lnpt.DigitsSplit(sub.teacher_x.double(), sub.teacher_y, sub.student_x.double(),
                                 sub.student_y, sub.test_x.double(), sub.test_y)  # fmt: skip
        train_supervised(student, sub64, "student", 3, BenchConfig(), 0, batch_size=4,
                         warmup_epochs=1, **kw)  # fmt: skip
        finals.append(torch.cat([p.detach().flatten() for p in student.parameters()]))
    assert torch.equal(finals[0], finals[1])
    assert not torch.equal(finals[0], finals[2])


def test_student_schedule_keeps_every_committed_cache_key():
    """Absent or "constant", the option leaves every key as it was (values as in
    test_lnpt_student_recipe: lnpt_cnn_goal95, the validation record, the 120-epoch one)."""
    goal95 = BenchConfig(
        models=("cnn",),
        seeds=10,
        sparsities=(0.95,),
        arms=("lnpt+label-free", "snip+supervised"),
        student_lr={},
        student_warmup_epochs={},
    ).with_epochs({"cnn": 120})
    assert goal95.fingerprint("cnn") == "cac917904dd9d2bc"
    const = goal95.with_student_schedule("cnn", "constant")
    assert const.student_schedule == {}
    const.student_schedule = {"cnn": "constant"}
    assert const.fingerprint("cnn") == "cac917904dd9d2bc"
    assert "student_schedule" not in const.key_dict()
    rec = BenchConfig.validation_record()
    assert "student_schedule" not in rec.key_dict()
    assert rec.fingerprint("cnn") == "7a8b2caa8a932fce"
    cos = goal95.with_student_schedule("cnn", "cosine")
    assert (
        cos.student_schedule_of("cnn") == "cosine" and cos.student_schedule_of("mlp") == "constant"
    )
    assert cos.fingerprint("cnn") != goal95.fingerprint("cnn")
    assert cos.fingerprint("mlp") == goal95.fingerprint("mlp")
    assert cos.key_dict()["student_schedule"] == {"cnn": "cosine"}
    assert cos.with_student_schedule("cnn", "constant").fingerprint("cnn") == "cac917904dd9d2bc"


@pytest.mark.parametrize("bad", [{"cnn": "linear"}, {"cnn": None}, {"vit": "cosine"}])
def test_student_schedule_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="student_schedule"):
        BenchConfig(student_schedule=bad).check()
    with pytest.raises(TypeError, match="student_schedule"):
        BenchConfig(student_schedule=[("cnn", "cosine")]).check()
    with pytest.raises(ValueError, match="student_schedule"):
        BenchConfig().with_student_schedule("cnn", "step")


def test_schedule_recipes_parse_name_key_and_config():
    base, cos = parse_recipes(["1e-2,warmup=5", "1e-2,warmup=5,schedule=cosine"])
    assert cos == StudentRecipe(1e-2, None, 5, schedule="cosine")
    assert base == StudentRecipe(1e-2, None, 5) and base.schedule == "constant"
    assert (base.key, cos.key) == ("lr=0.01,warmup=5", "lr=0.01,warmup=5,schedule=cosine")
    assert cos.name == "lr=0.01 warmup=5 schedule=cosine"
    assert parse_recipes(["1e-2,schedule=constant"])[0].key == "lr=0.01"  # the plain unit's key
    assert not cos.plain and cos.students_only == cos
    cfg = cos.config(BenchConfig(), "cnn")
    assert cfg.student_schedule_of("cnn") == "cosine" and cfg.student_warmup_of("cnn") == 5
    assert base.config(cfg, "cnn").student_schedule_of("cnn") == "constant"
    with pytest.raises(ValueError, match="schedule must be one of"):
        parse_recipes(["1e-2,schedule=step"])
    with pytest.raises(ValueError, match="each at most once"):
        parse_recipes(["1e-2,schedule=cosine,schedule=cosine"])
    with pytest.raises(ValueError, match="recipes: schedule must be one of"):
        StudentLrCheckConfig(recipes=(StudentRecipe(1e-2, schedule="cos"),)).check()
    sc = StudentLrCheckConfig(recipes=(base, cos))
    assert sc.current == base
    sc.bench = sc.bench.with_student_schedule("cnn", "cosine")
    assert sc.current == cos


def _acc(per_arm):
    return {arm: dict(enumerate(v)) for arm, v in per_arm.items()}


def test_rule_keeps_the_constant_lr_within_the_tie_and_takes_a_clear_lead():
    cur = StudentRecipe(1e-2, None, 5)
    cos = StudentRecipe(1e-2, None, 5, schedule="cosine")
    acc = {
        cur: _acc({"lnpt": [0.95, 0.95], "snip": [0.95, 0.95]}),
        cos: _acc({"lnpt": [0.955, 0.955], "snip": [0.95, 0.95]}),  # +0.25 points: a tie
    }
    assert choose_student_recipe(acc, cur, 240) is cur
    acc[cos] = _acc({"lnpt": [0.96, 0.96], "snip": [0.955, 0.955]})  # +0.75 points: past the tie
    assert choose_student_recipe(acc, cur, 240) is cos
    acc[cos]["snip"][1] = 0.79  # one student below the floor: disqualified
    assert choose_student_recipe(acc, cur, 240) is cur
    other = StudentRecipe(2e-2, None, 5)  # both tied, current absent: larger lr, then constant
    acc = {cos: _acc({"a": [0.9]}), StudentRecipe(1e-2, None, 5, schedule="constant"): _acc(
        {"a": [0.9]})}  # fmt: skip
    assert choose_student_recipe(acc, other, 240) == cur


def test_recipe_check_trains_the_cosine_units_and_reuses_the_constant_ones(tmp_path):
    bench = BenchConfig(
        models=("mlp",), epochs={"mlp": 3}, teacher_epochs={"mlp": 1}, score_batches=1
    )
    arms = ("dense+supervised", "snip+label-free")
    one = StudentLrCheckConfig(
        model="mlp", seeds=1, recipes=parse_recipes(["1e-2,warmup=1"]), arms=arms, bench=bench
    )
    first, _ = student_lr_check(one, tmp_path, "t", progress=False)
    recipes = parse_recipes(["1e-2,warmup=1", "1e-2,warmup=1,schedule=cosine"])
    sc = StudentLrCheckConfig(model="mlp", seeds=1, recipes=recipes, arms=arms, bench=bench)
    res, chosen = student_lr_check(sc, tmp_path, "t", progress=False, resume=True)
    by = {r.method: r.metrics for r in res.records}
    old = {r.method: r.metrics for r in first.records}
    for arm in arms:  # the constant units were reused, not retrained
        assert by[f"lr=0.01 warmup=1 {arm}"] == old[f"lr=0.01 warmup=1 {arm}"]
    keys = ("train_accuracy", "dead_fraction", "val_accuracy")  # the cosine changes every arm
    for arm in arms:
        a, b = by[f"lr=0.01 warmup=1 {arm}"], by[f"lr=0.01 warmup=1 schedule=cosine {arm}"]
        assert "train_seconds" in b and any(a[k] != b[k] for k in keys)
    assert chosen in recipes
    text = (tmp_path / "lnpt_student_recipe_mlp.md").read_text()
    assert "lr 0.01, bench epochs, warm-up 1, cosine decay" in text
