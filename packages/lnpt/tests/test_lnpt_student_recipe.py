"""Student recipes beyond the lr: the linear lr warm-up (`LinearWarmup`, `student_warmup_epochs`),
its cache keys, recipes in the student-lr check and the recipe rule."""

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
from lnpt.training import LinearWarmup
from maskloop import fit


def test_linear_warmup_ramps_per_step_and_restores_the_lrs(tiny_lr_fit, lr_log):
    model, data = tiny_lr_fit()  # 3 steps per epoch
    opt = torch.optim.SGD(
        [{"params": [model.weight], "lr": 0.3}, {"params": [model.bias], "lr": 0.06}]
    )
    log = lr_log()
    fit(model, data, epochs=3, optimizer=opt, callbacks=[LinearWarmup(2), log], progress=False)
    want = [min(1.0, (t + 1) / 6) for t in range(9)]  # 2 epochs x 3 steps, then flat
    assert [lr[0] for lr in log.lrs] == pytest.approx([0.3 * f for f in want], abs=1e-15)
    assert [lr[1] for lr in log.lrs] == pytest.approx([0.06 * f for f in want], abs=1e-15)
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.06]  # restored at the end


def test_linear_warmup_changes_training_and_counts_by_epoch_without_len(tiny_lr_fit):
    runs = []
    for cbs in ([], [LinearWarmup(1)]):
        model, data = tiny_lr_fit()
        opt = torch.optim.SGD(model.parameters(), lr=0.5)
        fit(model, data, epochs=2, optimizer=opt, callbacks=cbs, progress=False)
        runs.append(model.weight.detach().clone())
    assert not torch.equal(runs[0], runs[1])
    w = LinearWarmup(4)
    assert w.steps_per_epoch is None and [w.factor(99, e) for e in range(5)] == [
        0.25,
        0.5,
        0.75,
        1.0,
        1.0,
    ]
    for bad, error in ((0, ValueError), (-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="epochs"):
            LinearWarmup(bad)


def test_bench_training_applies_the_warmup(monkeypatch):
    seen = []
    real = LinearWarmup.__init__

    def init(self, epochs):
        seen.append(epochs)
        real(self, epochs)

    monkeypatch.setattr(LinearWarmup, "__init__", init)
    torch.manual_seed(0)
    data = lnpt.load_digits_split(0)
    sub = lnpt.DigitsSplit(*(t[:8] for t in (data.teacher_x, data.teacher_y)),
                           data.student_x[:8], data.student_y[:8],
                           data.test_x[:8], data.test_y[:8])  # fmt: skip
    student, teacher = lnpt.MLP(), lnpt.MLP().eval()
    mask = lnpt.prune(student, teacher, [sub.student_x], 0.5, rounds=1)
    cfg = BenchConfig()
    train_supervised(student, sub, "student", 2, cfg, 0, mask, batch_size=8, warmup_epochs=1)
    train_label_free(student, teacher, sub, 2, cfg, 0, mask, batch_size=8, warmup_epochs=1)
    train_supervised(student, sub, "student", 1, cfg, 0, mask, batch_size=8)  # none by default
    assert seen == [1, 1]
    for bad in (-1, 1.0, True):
        with pytest.raises(ValueError, match="warmup_epochs"):
            train_supervised(student, sub, "student", 1, cfg, 0, batch_size=8, warmup_epochs=bad)


def test_student_warmup_keeps_every_committed_cache_key():
    """Absent or 0, the option leaves every key as it was before it existed (the values are the
    committed caches' own: lnpt_cnn_goal95, the 30 epoch record and the 120 epoch one)."""
    goal95 = BenchConfig(
        models=("cnn",),
        seeds=10,
        sparsities=(0.95,),
        arms=("lnpt+label-free", "snip+supervised"),
        student_lr={},
        student_warmup_epochs={},  # the committed runs: no warm-up, 120 epochs
    ).with_epochs({"cnn": 120})
    assert goal95.fingerprint("cnn") == "cac917904dd9d2bc"
    zero = goal95.with_student_warmup("cnn", 0)
    assert zero.student_warmup_epochs == {}
    zero.student_warmup_epochs = {"cnn": 0}
    assert zero.fingerprint("cnn") == "cac917904dd9d2bc"
    assert "student_warmup_epochs" not in zero.key_dict()
    rec = BenchConfig.validation_record()
    assert "student_warmup_epochs" not in rec.key_dict()
    assert rec.fingerprint("cnn") == "7a8b2caa8a932fce"
    assert rec.with_epochs({"cnn": 120}).fingerprint("cnn") == "cd00382fea180e87"
    warm = goal95.with_student_warmup("cnn", 5)
    assert warm.student_warmup_of("cnn") == 5 and warm.student_warmup_of("mlp") == 0
    assert warm.fingerprint("cnn") != goal95.fingerprint("cnn")
    assert warm.fingerprint("mlp") == goal95.fingerprint("mlp")
    assert warm.key_dict()["student_warmup_epochs"] == {"cnn": 5}
    assert warm.with_student_warmup("cnn", 0).fingerprint("cnn") == "cac917904dd9d2bc"


@pytest.mark.parametrize(
    "bad", [{"cnn": -1}, {"cnn": 2.0}, {"cnn": True}, {"vit": 3}, {"cnn": 480}, {"mlp": 500}]
)
def test_student_warmup_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="student_warmup_epochs"):
        BenchConfig(student_warmup_epochs=bad).check()
    with pytest.raises(TypeError, match="student_warmup_epochs"):
        BenchConfig(student_warmup_epochs=[("cnn", 5)]).check()


def test_recipes_parse_name_and_keep_the_plain_cache_keys():
    got = parse_recipes(["1e-2", "1e-2,warmup=5", "3e-3,epochs=240"])
    assert got == (StudentRecipe(1e-2), StudentRecipe(1e-2, None, 5), StudentRecipe(3e-3, 240))
    assert [r.key for r in got] == ["lr=0.01", "lr=0.01,warmup=5", "lr=0.003,epochs=240"]
    assert [r.name for r in got] == ["lr=0.01", "lr=0.01 warmup=5", "lr=0.003 epochs=240"]
    cfg = got[2].config(BenchConfig(), "cnn")
    assert (cfg.epochs["cnn"], cfg.student_lr_of("cnn"), cfg.epochs["mlp"]) == (240, 3e-3, 40)
    assert got[1].config(BenchConfig(), "cnn").student_warmup_of("cnn") == 5
    for bad, says in (
        (["x"], "--student-recipes takes positive"),
        (["1e-2,warm=5"], "LR\\[,epochs=N\\]"),
        (["1e-2,epochs=5,epochs=6"], "each at most once"),
        (["1e-2,epochs=-5"], "epochs must be a whole number"),
        (["1e-2,epochs=0"], "epochs must be a positive int"),
        (["1e-2", "0.01"], "lists lr=0.01 more than once"),
        ([], "needs at least one recipe"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_recipes(bad)
    with pytest.raises(ValueError, match="student_warmup_epochs must be shorter"):
        StudentLrCheckConfig(recipes=(StudentRecipe(1e-2, 5, 5),)).check()
    with pytest.raises(TypeError, match="recipes"):
        StudentLrCheckConfig(recipes=(1e-2,)).check()


def _acc(per_arm):
    return {arm: dict(enumerate(v)) for arm, v in per_arm.items()}


def test_choose_student_recipe_floor_mean_then_cheapest():
    cur, warm, long = StudentRecipe(1e-2), StudentRecipe(1e-2, None, 5), StudentRecipe(3e-3, 240)
    acc = {  # current has the best LNPT mean but one student under the floor
        cur: _acc({"lnpt": [0.99, 0.99], "snip": [0.97, 0.57]}),
        warm: _acc({"lnpt": [0.93, 0.93], "snip": [0.93, 0.93]}),
        long: _acc({"lnpt": [0.93, 0.931], "snip": [0.93, 0.93]}),
    }
    assert choose_student_recipe(acc, cur, 120) is warm  # tied with long: fewer epochs
    acc[long] = _acc({"lnpt": [0.95, 0.95], "snip": [0.93, 0.93]})  # 1 point ahead
    assert choose_student_recipe(acc, cur, 120) is long
    acc[cur] = _acc({"lnpt": [0.94, 0.94], "snip": [0.935, 0.935]})  # within 0.3: current
    assert choose_student_recipe(acc, cur, 120) is cur
    with pytest.raises(ValueError, match="same arms and seeds"):
        choose_student_recipe({cur: _acc({"a": [0.9]}), warm: _acc({"a": [0.9, 0.9]})}, cur, 9)


def test_recipe_check_reuses_plain_units_and_trains_the_new_ones(tmp_path):
    bench = BenchConfig(
        models=("mlp",), epochs={"mlp": 2}, teacher_epochs={"mlp": 1}, score_batches=1
    )
    arms = ("dense+supervised",)
    plain = StudentLrCheckConfig(model="mlp", seeds=1, lrs=(1e-2,), arms=arms, bench=bench)
    first, _ = student_lr_check(plain, tmp_path, "t", progress=False)
    recipes = parse_recipes(["1e-2", "1e-2,warmup=1", "1e-2,epochs=3"])
    sc = StudentLrCheckConfig(model="mlp", seeds=1, recipes=recipes, arms=arms, bench=bench)
    assert sc.report_name == "lnpt_student_recipe_mlp" and plain.report_name.endswith("lr_mlp")
    res, chosen = student_lr_check(sc, tmp_path, "t", progress=False, resume=True)
    by = {r.method: r.metrics for r in res.records}
    assert set(by) == {f"{r.name} dense+supervised" for r in recipes}
    old = first.records[0].metrics
    assert by["lr=0.01 dense+supervised"] == old  # the plain unit was reused, not retrained
    assert "train_seconds" in by["lr=0.01 warmup=1 dense+supervised"]
    keys = ("val_accuracy", "train_accuracy", "dead_fraction")
    readings = {tuple(by[m][k] for k in keys) for m in by}
    assert len(readings) == 3  # the warm-up and the epochs each change the student
    assert chosen in recipes
    text = (tmp_path / "lnpt_student_recipe_mlp.md").read_text()
    assert "lr 0.01, bench epochs, warm-up 1" in text and "Chosen: **student recipe" in text


def test_the_digits_cnn_default_is_the_warmup_the_rule_chose():
    """DEFAULT_STUDENT_WARMUP_EPOCHS = {"cnn": 5} (chosen on validation); the default config's
    goal-arm run has the key of the committed lnpt_cnn_goal95_recipe units; other models keep
    theirs."""
    from lnpt.bench import DEFAULT_STUDENT_WARMUP_EPOCHS

    assert DEFAULT_STUDENT_WARMUP_EPOCHS == {"cnn": 5}
    cfg = BenchConfig(
        models=("cnn",), seeds=10, sparsities=(0.95,), arms=("lnpt+label-free", "snip+supervised")
    ).with_epochs({"cnn": 120})  # the budget of that run (the default is now 480)
    assert cfg.student_warmup_of("cnn") == 5 and cfg.student_lr_of("cnn") == 1e-2
    assert cfg.fingerprint("cnn") == "01f2930af0476b99"
    for model in ("mlp", "cnn1d", "resnet"):
        assert cfg.fingerprint(model) == cfg.with_student_warmup("cnn", 0).fingerprint(model)
    sc = StudentLrCheckConfig(recipes=parse_recipes(["1e-2", "1e-2,warmup=5"]))
    assert sc.current == StudentRecipe(1e-2, None, 5)
