"""The student-lr check's `first_seed` (a later range of validation seeds) and `prefix_epochs`
(the shorter budgets' students read from a longer run's own epochs): the prefix readings must be
the separately trained students, unit for unit, and bad values must be refused by name."""

import json

import pytest
from lnpt.bench import BenchConfig
from lnpt.student_lr import StudentLrCheckConfig, StudentRecipe, parse_recipes, student_lr_check

READINGS = ("val_accuracy", "train_accuracy", "dead_fraction")
ARMS = ("dense+supervised", "lnpt+label-free")


def _bench() -> BenchConfig:
    return BenchConfig(
        models=("mlp",), epochs={"mlp": 2}, teacher_epochs={"mlp": 1}, score_batches=1
    )


def _by_method(res):
    return {(r.method, r.seed): r.metrics for r in res.records}


def test_prefix_readings_are_the_separately_trained_students(tmp_path):
    """One 5-epoch run per arm, read at epochs 2 (the benchmark's budget: its key) and 3, gives
    exactly the students of separate 2- and 3-epoch runs (supervised and label-free)."""
    long = parse_recipes(["1e-2,epochs=5,warmup=1"])
    sc = StudentLrCheckConfig(
        model="mlp", seeds=1, recipes=long, arms=ARMS, bench=_bench(), prefix_epochs=(3, 2)
    )
    two, three = StudentRecipe(1e-2, None, 1), StudentRecipe(1e-2, 3, 1)
    assert sc.candidates == (long[0], three, two)  # in the order of prefix_epochs
    res, chosen = student_lr_check(sc, tmp_path / "prefix", "t", progress=False)
    by = _by_method(res)
    alone = StudentLrCheckConfig(
        model="mlp", seeds=1, recipes=(two, three), arms=ARMS, bench=_bench()
    )
    ref = _by_method(student_lr_check(alone, tmp_path / "alone", "t", progress=False)[0])
    for r in (two, three):
        for arm in ARMS:
            got, want = by[(f"{r.name} {arm}", 0)], ref[(f"{r.name} {arm}", 0)]
            assert [got[k] for k in READINGS] == [want[k] for k in READINGS], (r.name, arm)
            assert got["read_from_epochs"] == 5.0 and "read_from_epochs" not in want
            assert 0 < got["train_seconds"] <= by[(f"{long[0].name} {arm}", 0)]["train_seconds"]
    # the readings move with the budget (else the equality above would prove nothing)
    for arm in ARMS:
        seen = {tuple(by[(f"{r.name} {arm}", 0)][k] for k in READINGS) for r in (two, long[0])}
        assert len(seen) == 2, arm
    assert chosen in sc.candidates
    keys = [
        json.loads(line)["key"]
        for f in (tmp_path / "prefix" / "cache").glob("*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert sorted(keys) == sorted(
        f"{r.key}/{arm}" for r in (long[0], two, three) for arm in ARMS
    )  # one unit each, the 2-epoch one under the benchmark's key `lr=0.01,warmup=1`
    text = (tmp_path / "prefix" / "lnpt_student_recipe_mlp.md").read_text()
    assert "Students at 3, 2 epochs are read from the longer recipes' own runs" in text


def test_the_session_27_check_pairs_480_epochs_with_the_current_recipe():
    """On the digits CNN at session 27's bench budget (240 epochs, warm-up 5; the default became
    480 after it), `1e-2,epochs=480,warmup=5` read at 240 gives that recipe, under its committed
    key, as the rule's base."""
    sc = StudentLrCheckConfig(
        model="cnn", seeds=7, first_seed=7, recipes=parse_recipes(["1e-2,epochs=480,warmup=5"]),
        prefix_epochs=(240,), bench=BenchConfig().with_epochs({"cnn": 240}),
    )  # fmt: skip
    sc.check()
    assert sc.current == StudentRecipe(1e-2, None, 5) == sc.candidates[1]
    assert sc.current.key == "lr=0.01,warmup=5" and list(sc.seed_range) == list(range(7, 14))
    # at today's default (480) the same 240-epoch students carry an explicit budget in their key
    now = StudentLrCheckConfig(model="cnn", recipes=(StudentRecipe(1e-2, None, 5),),
                               prefix_epochs=(240,))  # fmt: skip
    now.check()
    assert [r.key for r in now.candidates] == ["lr=0.01,warmup=5", "lr=0.01,epochs=240,warmup=5"]


def test_first_seed_runs_the_later_seeds_and_shares_their_cache(tmp_path):
    bench = _bench()
    kw = {"model": "mlp", "lrs": (1e-2,), "arms": ("dense+supervised",), "bench": bench}
    later = StudentLrCheckConfig(seeds=1, first_seed=1, **kw)
    assert list(later.seed_range) == [1]
    res, _ = student_lr_check(later, tmp_path, "t", progress=False)
    assert [r.seed for r in res.records] == [1]
    assert [f.name.split("-")[3] for f in (tmp_path / "cache").glob("*.jsonl")] == ["seed1"]
    both, _ = student_lr_check(
        StudentLrCheckConfig(seeds=2, **kw), tmp_path, "t", progress=False, resume=True
    )
    assert sorted(r.seed for r in both.records) == [0, 1]
    seed1 = [r.metrics for r in both.records if r.seed == 1]
    assert seed1 == [res.records[0].metrics]  # reused (train_seconds too), not retrained
    text = (tmp_path / "lnpt_student_lr_mlp.md").read_text()
    assert "Seeds 1-1" not in text  # the second run started at 0: no range note


@pytest.mark.parametrize(
    ("kw", "error", "says"),
    [
        ({"first_seed": -1}, ValueError, "first_seed must be >= 0, got -1"),
        ({"first_seed": True}, TypeError, "first_seed must be an int"),
        ({"first_seed": 1.5}, TypeError, "first_seed must be an int"),
        ({"prefix_epochs": [1]}, TypeError, "prefix_epochs must be a tuple of ints"),
        ({"prefix_epochs": (0,)}, ValueError, "prefix_epochs must be >= 1, got 0"),
        ({"prefix_epochs": (True,)}, TypeError, "prefix_epochs must be an int"),
        ({"prefix_epochs": (2.0,)}, TypeError, "prefix_epochs must be an int"),
        ({"prefix_epochs": (2, 2)}, ValueError, "prefix_epochs lists an epoch more than once"),
        ({"prefix_epochs": (4,)}, ValueError, "below the epochs (4) of recipe"),
        ({"prefix_epochs": (1,)}, ValueError, "prefix_epochs must lie above the warm-up (1)"),
        (
            {"prefix_epochs": (2,), "recipes": parse_recipes(["1e-2,warmup=1,schedule=cosine"])},
            ValueError,
            "prefix_epochs needs a constant lr after the warm-up",
        ),
    ],
)
def test_check_config_refuses_bad_first_seed_and_prefix_epochs(kw, error, says):
    base = {"recipes": parse_recipes(["1e-2,epochs=4,warmup=1"])}
    sc = StudentLrCheckConfig(model="mlp", seeds=1, bench=_bench(), **{**base, **kw})
    with pytest.raises(error, match=says.replace("(", r"\(").replace(")", r"\)")):
        sc.check()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--first-seed", "7"], "--first-seed only applies with --student-lr-check"),
        (["--prefix-epochs", "240"], "--prefix-epochs only applies with --student-lr-check"),
        (["--student-lr-check", "--first-seed", "-1"], "--first-seed must be >= 0, got -1"),
        (
            ["--student-lr-check", "--student-recipes", "1e-2,epochs=480,warmup=5",
             "--prefix-epochs", "240", "240"],
            "--prefix-epochs lists 240 more than once",
        ),
        (
            ["--student-lr-check", "--student-recipes", "1e-2,warmup=5,schedule=cosine",
             "--prefix-epochs", "120"],
            "--prefix-epochs needs a constant lr after the warm-up",
        ),
    ],
)  # fmt: skip
def test_cli_refuses_first_seed_and_prefix_epochs_misuse(argv, says, bench_refuses):
    bench_refuses(argv, says)


def test_the_480_epoch_default_and_the_committed_240_epoch_keys():
    """Session 27's rule made 480 the digits CNN's default; the committed 240-epoch goal units
    (`lnpt_cnn_goal95_240ep`, cache `cnn-seed*-c280ccfa1b4d78f5`) keep their key under
    `--epochs cnn=240`, and the default's key is another."""
    from lnpt.bench import DEFAULT_EPOCHS

    assert DEFAULT_EPOCHS["cnn"] == 480
    goal = BenchConfig(
        models=("cnn",), seeds=10, sparsities=(0.95,), arms=("lnpt+label-free", "snip+supervised")
    )
    assert goal.with_epochs({"cnn": 240}).fingerprint("cnn") == "c280ccfa1b4d78f5"
    assert goal.fingerprint("cnn") != "c280ccfa1b4d78f5"
    assert goal.fingerprint("mlp") == goal.with_epochs({"cnn": 240}).fingerprint("mlp")
