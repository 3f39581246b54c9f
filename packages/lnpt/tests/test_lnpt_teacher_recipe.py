"""The teacher as part of a students' recipe: `BenchConfig.teacher_warmup_epochs` and
`with_teacher`, teacher fields in `--student-recipes`, shared supervised units in the recipe check,
and the rule's tie-break."""

import pytest
from lnpt.bench import BenchConfig
from lnpt.student_lr import (
    StudentLrCheckConfig,
    StudentRecipe,
    choose_student_recipe,
    parse_recipes,
    student_lr_check,
)


def test_teacher_warmup_keeps_every_committed_cache_key():
    """Absent or 0, the option is off every key (the values are those the student-recipe tests
    pin: the committed lnpt_cnn_goal95_recipe and lnpt_cnn_goal95 units)."""
    cfg = BenchConfig(
        models=("cnn",), seeds=10, sparsities=(0.95,), arms=("lnpt+label-free", "snip+supervised")
    ).with_epochs({"cnn": 120})
    assert cfg.fingerprint("cnn") == "01f2930af0476b99"
    zero = cfg.with_teacher("cnn", warmup_epochs=0)
    zero.teacher_warmup_epochs = {"cnn": 0}
    assert zero.fingerprint("cnn") == "01f2930af0476b99"
    assert "teacher_warmup_epochs" not in zero.key_dict()
    assert "teacher_warmup_epochs" not in BenchConfig.validation_record().key_dict()
    warm = cfg.with_teacher("cnn", 1e-2, 120, 5)
    assert (warm.teacher_lr_of("cnn"), warm.teacher_epochs["cnn"]) == (1e-2, 120)
    assert warm.teacher_warmup_of("cnn") == 5 and warm.teacher_warmup_of("mlp") == 0
    assert "cnn" not in warm.teacher_lr  # the students' lr: off the key, as before the option
    assert warm.fingerprint("cnn") != cfg.fingerprint("cnn")
    assert warm.fingerprint("mlp") == cfg.fingerprint("mlp")
    assert warm.key_dict()["teacher_warmup_epochs"] == {"cnn": 5}
    back = warm.with_teacher("cnn", 3e-3, 80, 0)
    assert back.fingerprint("cnn") == "01f2930af0476b99"
    assert cfg.with_teacher("cnn").fingerprint("cnn") == "01f2930af0476b99"  # None: unchanged


@pytest.mark.parametrize(
    "bad", [{"cnn": -1}, {"cnn": 2.0}, {"cnn": True}, {"vit": 3}, {"cnn": 80}, {"mlp": 60}]
)
def test_teacher_warmup_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="teacher_warmup_epochs"):
        BenchConfig(teacher_warmup_epochs=bad).check()
    with pytest.raises(TypeError, match="teacher_warmup_epochs"):
        BenchConfig(teacher_warmup_epochs=[("cnn", 5)]).check()
    with pytest.raises(ValueError, match="teacher_lr"):
        BenchConfig().with_teacher("cnn", lr=-1.0)
    with pytest.raises(ValueError, match="teacher_epochs"):
        BenchConfig().with_teacher("cnn", epochs=0)


def test_recipes_parse_the_teacher_fields():
    got = parse_recipes(
        ["1e-2,warmup=5", "1e-2,warmup=5,teacher_lr=1e-2,teacher_epochs=120,teacher_warmup=5"]
    )
    base, strong = got
    assert strong == StudentRecipe(1e-2, None, 5, 1e-2, 120, 5)
    assert strong.has_teacher and not base.has_teacher and not strong.plain
    assert strong.students_only == base
    assert strong.key == "lr=0.01,warmup=5,teacher_lr=0.01,teacher_epochs=120,teacher_warmup=5"
    assert strong.name == "lr=0.01 warmup=5 teacher_lr=0.01 teacher_epochs=120 teacher_warmup=5"
    assert base.key == "lr=0.01,warmup=5"  # the committed units' key
    cfg = strong.config(BenchConfig(), "cnn")
    assert (cfg.teacher_lr_of("cnn"), cfg.teacher_epochs["cnn"]) == (1e-2, 120)
    assert (cfg.teacher_warmup_of("cnn"), cfg.student_warmup_of("cnn"), cfg.epochs["cnn"]) == (
        5,
        5,
        480,
    )
    assert base.config(BenchConfig(), "cnn").teacher_epochs["cnn"] == 80
    for bad, says in (
        (["1e-2,teacher_lr=x"], "--student-recipes: teacher_lr takes positive"),
        (["1e-2,teacher_lr=0"], "--student-recipes: teacher_lr takes positive"),
        (["1e-2,teacher_epochs=1.5"], "teacher_epochs must be a whole number"),
        (["1e-2,teacher_epochs=0"], "teacher_epochs must be a positive int"),
        (["1e-2,teacher_warmup=-1"], "teacher_warmup must be a whole number"),
        (["1e-2,teacher_epochs=5,teacher_epochs=6"], "each at most once"),
        (["1e-2,teacher=5"], "teacher_lr=LR"),
    ):
        with pytest.raises(ValueError, match=says):
            parse_recipes(bad)
    with pytest.raises(ValueError, match="teacher_warmup_epochs must be shorter"):  # 80 epochs
        StudentLrCheckConfig(recipes=(StudentRecipe(1e-2, None, 5, None, None, 80),)).check()


def test_choose_student_recipe_prefers_the_benchmarks_teacher_on_a_tie():
    cur = StudentRecipe(1e-2, None, 5)
    teach, long = StudentRecipe(1e-2, None, 5, 1e-2, 120, 5), StudentRecipe(1e-2, 240, 5)
    acc = {
        cur: {"a": {0: 0.90, 1: 0.90}},
        teach: {"a": {0: 0.95, 1: 0.95}},
        long: {"a": {0: 0.951, 1: 0.95}},
    }
    assert choose_student_recipe(acc, cur, 120) is teach  # tied with long: fewer epochs
    other = StudentRecipe(1e-2, None, 5, 3e-3, 160, None)
    acc[other] = {"a": {0: 0.951, 1: 0.951}}
    acc[teach] = {"a": {0: 0.95, 1: 0.95}}
    acc[long] = {"a": {0: 0.0, 1: 0.0}}  # below the floor: out
    acc[cur] = {"a": {0: 0.9, 1: 0.9}}
    plain = StudentRecipe(1e-2, None, 6)  # tied, same epochs, the benchmark's teacher: first
    acc[plain] = {"a": {0: 0.949, 1: 0.949}}
    assert choose_student_recipe(acc, cur, 120) is plain


def test_recipe_check_shares_supervised_units_across_teachers(tmp_path):
    bench = BenchConfig(
        models=("mlp",), epochs={"mlp": 2}, teacher_epochs={"mlp": 2}, score_batches=1
    )
    arms = ("dense+supervised", "lnpt+label-free")
    recipes = parse_recipes(["1e-2", "1e-2,teacher_lr=3e-3,teacher_epochs=3,teacher_warmup=1"])
    sc = StudentLrCheckConfig(model="mlp", seeds=1, recipes=recipes, arms=arms, bench=bench)
    res, chosen = student_lr_check(sc, tmp_path, "t", progress=False)
    by = {r.method: r.metrics for r in res.records}
    assert set(by) == {f"{r.name} {a}" for r in recipes for a in arms}
    base, strong = (f"{r.name} " for r in recipes)
    assert by[strong + "dense+supervised"] == by[base + "dense+supervised"]  # one unit, shared
    cache = next((tmp_path / "cache").glob("student-lr-mlp-seed0-*.jsonl")).read_text()
    assert cache.count('/dense+supervised"') == 1  # one unit key: trained once
    assert by[strong + "lnpt+label-free"] != by[base + "lnpt+label-free"]  # another teacher
    assert 0.0 <= by[strong + "lnpt+label-free"]["teacher_val_accuracy"] <= 1.0
    assert "teacher_val_accuracy" not in by[base + "lnpt+label-free"]
    assert chosen in recipes
    text = (tmp_path / "lnpt_student_recipe_mlp.md").read_text()
    assert "teacher lr 0.003 3 epochs warm-up 1" in text and "teacher val %" in text
