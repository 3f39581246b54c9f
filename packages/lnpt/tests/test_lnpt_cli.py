"""CLI entry point, the benchmark's report writer and its resume cache, the validation ablation."""

import json
from pathlib import Path

import lnpt
import pytest
from lnpt.ablation import DEFAULT_VARIANT, AblationConfig, run_ablation
from lnpt.bench import BenchConfig, run_bench
from lnpt.cli import build_parser, main
from maskloop import report
from maskloop.testing import options_without_help, relative_links


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == lnpt.__version__


def test_every_option_has_help(capsys):
    """lnpt bench --help: every option documented, --out defaults to ./lnpt-bench/."""
    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    for opt in ("--out", "--resume", "--budget-s", "--ablation", "--anatomy", "--timing"):
        assert opt in text
    assert "lnpt-bench" in text
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    assert "--summary-json" in capsys.readouterr().out


def test_parser_walk_every_action_has_help():
    """Every option and sub-command of `lnpt` has help text; the shared flags are there."""
    parser = build_parser()
    assert options_without_help(parser) == []
    for name in ("demo", "bench"):
        assert {"--seed", "--threads"} <= set(parser.subcommands[name]._option_string_actions)
    args = parser.parse_args(["bench"])
    assert (args.out, args.threads, args.resume, args.quick) == (
        Path("lnpt-bench"),
        2,
        False,
        False,
    )
    with pytest.raises(SystemExit) as exc:  # refused before any work
        main(["bench", "--seeds", "0", "--out", "never-written"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--arms", "lnpt+supervised", "magic+label-free", "--out", "never-written"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--report", "../x", "--out", "never-written"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--ablation", "--variants", "nope", "--out", "never-written"])
    assert exc.value.code == 2
    assert not Path("never-written").exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--variants", "one-shot"], "--variants only applies with --ablation"),
        (["--training-variants", "soft"], "--training-variants only applies with"),
        (["--ablation", "--report", "mine"], "--ablation write their own"),
        (["--timing", "--report", "mine"], "--timing write their own"),
        (
            ["--ablation", "--variants", "one-shot", "one-shot"],
            "--variants lists one-shot more than once",
        ),
        (["--models", "cnn", "mlp", "cnn"], "--models lists cnn more than once"),
        (["--ablation-training", "previous"], "--ablation-training only applies with"),
        (["--ablation", "--variants", "one-shot"], "--variants must include the current default"),
        (["--protocol-check", "--models", "cnn", "mlp"], "--protocol-check takes one model"),
        (["--protocol-check", "--report", "mine"], "--protocol-check write their own"),
        (["--epoch-budgets", "30", "60"], "--epoch-budgets only applies with --protocol-check"),
        (["--protocol-check", "--epoch-budgets", "60", "90"], "must include the benchmark's 30"),
        (["--protocol-check", "--epoch-budgets", "30", "0"], "budgets must be positive ints"),
        (["--protocol-check", "--epoch-budgets", "30", "30"], "--epoch-budgets lists 30 more"),
        (["--epochs", "cnn"], "--epochs takes MODEL=N"),
        (["--epochs", "vit=10"], "MODEL one of mlp, cnn, cnn1d, resnet, got 'vit=10'"),
        (["--epochs", "cnn=0"], "--epochs cnn=N needs N a positive int, got '0'"),
        (["--epochs", "cnn=1.5"], "--epochs cnn=N needs N a positive int"),
        (["--epochs", "cnn=120", "cnn=90"], "--epochs gives cnn more than once"),
        (["--ablation", "--epochs", "cnn=120"], "--epochs only applies to the test benchmark"),
        (["--score-epochs", "-1"], "--score-epochs must be an int >= 0, got -1"),
        (["--ablation", "--score-epochs", "5"], "--score-epochs applies to the test benchmark"),
        (["--score-rounds", "0"], "--score-rounds must be an int >= 1, got 0"),
        (["--anatomy", "--score-allocation", "mass"], "--score-allocation applies to the test"),
        (["--anatomy", "--score-standardize"], "--score-standardize applies to the test"),
        (["--score-average", "mean"], "argument --score-average: invalid choice: 'mean'"),
        (["--score-norm", "max"], "argument --score-norm: invalid choice: 'max'"),
        (["--score-gap", "relation"], "argument --score-gap: invalid choice: 'relation'"),
        (["--anatomy", "--score-norm", "mean"], "--score-norm applies to the test"),
        (["--score-checkpoints", "0"], "--score-checkpoints must be an int >= 1, got 0"),
        (["--score-checkpoints", "2.5"], "argument --score-checkpoints: invalid int value"),
        (["--ablation", "--score-checkpoints", "3"], "--score-checkpoints applies to the test"),
    ],
    ids=[
        "variants-without-ablation",
        "training-variants-without-mode",
        "report-with-ablation",
        "report-with-timing",
        "duplicate-variant",
        "duplicate-model",
        "ablation-training-without-ablation",
        "paired-rule-without-default",
        "protocol-check-two-models",
        "report-with-protocol-check",
        "epoch-budgets-without-protocol-check",
        "epoch-budgets-without-the-benchmarks",
        "epoch-budgets-not-positive",
        "epoch-budgets-twice",
        "epochs-without-value",
        "epochs-unknown-model",
        "epochs-not-positive",
        "epochs-not-int",
        "epochs-model-twice",
        "epochs-with-ablation",
        "score-epochs-negative",
        "score-epochs-with-ablation",
        "score-rounds-zero",
        "score-allocation-with-anatomy",
        "score-standardize-with-anatomy",
        "score-average-unknown",
        "score-norm-unknown",
        "score-gap-unknown",
        "score-norm-with-anatomy",
        "score-checkpoints-zero",
        "score-checkpoints-not-int",
        "score-checkpoints-with-ablation",
    ],
)
def test_bench_rejects_flags_it_would_ignore_or_double(argv, says, capsys):
    """lnpt bench: a flag its mode ignores, or a duplicated choice, exits 2 before any work."""
    with pytest.raises(SystemExit) as exc:
        main(["bench", *argv, "--out", "never-written"])
    assert exc.value.code == 2 and says in capsys.readouterr().err
    assert not Path("never-written").exists()


def _tiny(**kw):
    return BenchConfig(
        models=("mlp",),
        seeds=2,
        sparsities=(0.9,),
        arms=("random+label-free", "lnpt+label-free", "lnpt+supervised"),
        epochs={"mlp": 1},
        teacher_epochs={"mlp": 1},
        synflow_rounds=2,
        diagnostic_sparsity=0.9,
        **kw,
    )


@pytest.mark.slow
def test_tiny_bench_writes_report_and_resumes(tmp_path):
    cfg = _tiny()
    res = run_bench(cfg, tmp_path, "test", progress=False, budget_s=0.0)
    # the budget stops after the first unit of work (teacher and dense student of seed 0)
    assert res.config["unfinished"] == ["mlp seed 0", "mlp seed 1"]
    partial = (tmp_path / "cache").glob("mlp-seed0-*.partial.jsonl")
    assert [len(p.read_text().splitlines()) for p in partial] == [1]
    res = run_bench(cfg, tmp_path, "test", progress=False, resume=True)
    assert res.config["unfinished"] == []
    md = (tmp_path / "lnpt.md").read_text()
    assert "lnpt+label-free" in md and "Scoring time per mask" in md
    doc = json.loads((tmp_path / "lnpt.json").read_text())
    assert doc["package"] == "lnpt" and len(doc["records"]) == len(res.records)
    assert "classifier head (last Linear) is left dense" in md
    # every mask keeps the same number of weights; the head is left out, no layer is emptied
    pruned = [r for r in res.records if "surviving" in r.metrics]
    assert len(pruned) == 2 * 3  # seeds x arms
    assert len({r.metrics["surviving"] for r in pruned}) == 1
    assert {r.metrics["masked_weights"] for r in pruned} == {64 * 300 + 300 * 100}
    assert min(r.metrics["min_layer_density"] for r in pruned) >= 0.01
    # resuming reuses the cached runs: the same records
    again = run_bench(cfg, tmp_path, "test", progress=False, resume=True)
    assert [r.metrics for r in again.records] == [r.metrics for r in res.records]


@pytest.mark.slow
def test_tiny_ablation_chooses_on_validation(tmp_path):
    acfg = AblationConfig(
        models=("mlp",),
        seeds=1,
        sparsities=(0.9,),
        variants=("one-shot", "layer-sum", "checkpoints-3"),
        references=("random+label-free",),
        bench=_tiny(),
    )
    acfg.rule, acfg.report = "mean", "lnpt_ablation"  # the first ablation's rule
    res, chosen = run_ablation(acfg, tmp_path, "test", progress=False)
    assert chosen in acfg.variants
    assert all("val_accuracy" in r.metrics for r in res.records)
    assert len(res.records) == 4
    assert "Chosen (highest mean" in (tmp_path / "lnpt_ablation.md").read_text()
    # arms are cached one by one: adding a variant reuses the others (same records, 1 new arm)
    acfg.variants = ("one-shot", "layer-sum", "checkpoints-3", "relation")
    again, chosen = run_ablation(acfg, tmp_path, "test", progress=False, resume=True, budget_s=0.0)
    assert len(again.records) == 5 and chosen in acfg.variants
    assert [r.metrics for r in again.records if "relation" not in r.method] == [
        r.metrics for r in res.records
    ]
    # the paired rule reads the same cached arms (no budget for new work) into its own report
    acfg.rule, acfg.report, acfg.incumbent = "paired", "lnpt_ablation_kd", "one-shot"
    paired, chosen = run_ablation(acfg, tmp_path, "t", progress=False, resume=True, budget_s=0.0)
    assert [r.metrics for r in paired.records] == [r.metrics for r in again.records]
    assert chosen in acfg.variants
    assert "Chosen by the paired rule" in (tmp_path / "lnpt_ablation_kd.md").read_text()


@pytest.mark.slow
def test_tiny_anatomy_writes_report_and_resumes(tmp_path):
    """anatomy: per-layer density / effective density / score mass, a report, resumable JSON."""
    from lnpt.ablation import anatomy

    doc = anatomy("mlp", tmp_path, cfg=_tiny(), sparsities=(0.9,), variants=("one-shot",))
    assert set(doc["masks"]) == {f"{m}@0.9" for m in ("random", "snip", "synflow", "grasp")} | {
        "lnpt:one-shot@0.9"
    }
    for d in doc["masks"].values():
        assert all(0 <= d["effective"][n] <= d["density"][n] for n in d["density"])
    assert set(doc["score_mass"]) == {"snip", "lnpt:one-shot"}
    md = (tmp_path / "lnpt_layers_mlp.md").read_text()
    assert "effective %" in md and "share of score mass" in md
    again = anatomy(
        "mlp", tmp_path, cfg=_tiny(), sparsities=(0.9,), variants=("one-shot",), resume=True
    )
    assert again["masks"] == json.loads(json.dumps(doc["masks"]))  # reloaded, not recomputed


def test_readme_links_are_absolute() -> None:
    """README links and images must work on PyPI: absolute URLs only (no repository paths)."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert relative_links(text) == []


def _val_results(rows):
    """Results with one validation accuracy per (model, variant, seed) row."""
    res = report.Results("lnpt", "t")
    for model, variant, seed, acc in rows:
        res.add(f"lnpt:{variant}+label-free", seed, {"val_accuracy": acc}, model=model)
    return res


def test_choose_paired_keeps_the_default_unless_a_variant_is_ahead_and_not_worse():
    """choose_paired: a higher mean is not enough; ahead (CI above 0) on one model, not worse on
    any (mean Δ >= -1 point, CI not below 0); the best qualifying mean Δ wins."""
    from lnpt.ablation import applies, choose_paired, paired_readings

    d = DEFAULT_VARIANT
    base = {"mlp": [0.90, 0.92, 0.94], "cnn": [0.80, 0.70, 0.90]}
    rows = [(m, d, s, a) for m, accs in base.items() for s, a in enumerate(accs)]
    # noisy: +10 points mean on cnn, but one seed behind: CI reaches below 0 -> stays default
    noisy = {"mlp": [0.90, 0.92, 0.94], "cnn": [0.99, 0.99, 0.72]}
    rows += [(m, "relation", s, a) for m, accs in noisy.items() for s, a in enumerate(accs)]
    res = _val_results(rows)
    assert choose_paired(res, ("mlp", "cnn"), (d, "relation"), d) == d
    # consistently +2 on cnn, level on mlp -> qualifies
    steady = {"mlp": [0.90, 0.92, 0.94], "cnn": [0.82, 0.72, 0.92]}
    rows += [(m, "layer-sum", s, a) for m, accs in steady.items() for s, a in enumerate(accs)]
    # +5 on cnn but -2 on every mlp seed -> worse on mlp, never chosen
    trade = {"mlp": [0.88, 0.90, 0.92], "cnn": [0.85, 0.75, 0.95]}
    rows += [(m, "gap-norm", s, a) for m, accs in trade.items() for s, a in enumerate(accs)]
    res = _val_results(rows)
    variants = (d, "relation", "layer-sum", "gap-norm")
    assert choose_paired(res, ("mlp", "cnn"), variants, d) == "layer-sum"
    got = {c.variant: c for c in paired_readings(res, ("mlp", "cnn"), variants, d)}
    assert got["gap-norm"].worse_on == ("mlp",) and got["gap-norm"].ahead_on == ("cnn",)
    assert not got["gap-norm"].qualifies and got["layer-sum"].qualifies
    assert abs(got["layer-sum"].mean_delta - 0.01) < 1e-12  # (0 + 2) / 2 points
    # a variant not run on every model is not a candidate
    res = _val_results([*rows, *[("mlp", "one-shot", s, 0.99) for s in range(3)]])
    readings = paired_readings(res, ("mlp", "cnn"), (*variants, "one-shot"), d)
    assert "one-shot" not in {c.variant for c in readings}
    # ... unless it does not apply there: `spatial` (unpooled maps) is read on the CNN only
    res = _val_results(
        [*rows, *[("cnn", "spatial", s, a + 0.03) for s, a in enumerate(base["cnn"])]]
    )
    assert (
        not applies("spatial", "mlp") and applies("spatial", "cnn") and applies("one-shot", "mlp")
    )
    (sp,) = [c for c in paired_readings(res, ("mlp", "cnn"), ("spatial",), d)]
    assert set(sp.deltas) == {"cnn"} and sp.qualifies and abs(sp.mean_delta - 0.03) < 1e-12
    assert choose_paired(res, ("mlp", "cnn"), (*variants, "spatial"), d) == "spatial"


def test_ablation_configs_current_training_and_the_record():
    """AblationConfig() trains as the benchmark does now and reads by the paired rule; the first
    ablation's config pins the previous objective and keeps its cache files (same key)."""
    from lnpt.ablation import PREVIOUS_VARIANTS, VARIANTS, cache_key, report_hash
    from lnpt.learning_gap import DEFAULT_ROUNDS, SCORE_DEFAULTS
    from lnpt.training import TRAINING_DEFAULTS

    now = AblationConfig()
    assert now.bench.label_free == TRAINING_DEFAULTS and now.rule == "paired"
    assert now.report == "lnpt_ablation_kd" and now.incumbent in now.variants
    old = AblationConfig.previous_training()
    assert old.bench.label_free == {} and old.report == "lnpt_ablation" and old.rule == "mean"
    assert old.variants == PREVIOUS_VARIANTS
    # the committed first-ablation cache (docs/benchmarks/cache/ablation-cnn-seed*-565117ab...)
    assert report_hash(cache_key(old) + "cnn") == "565117ab0dc5d0a9"
    assert report_hash(cache_key(now) + "cnn") != "565117ab0dc5d0a9"
    # how results are read is not part of the key
    assert cache_key(AblationConfig(rule="mean", report="x", incumbent="one-shot")) == cache_key(
        now
    )
    # the incumbent is the package's scoring default
    incumbent = dict(VARIANTS[DEFAULT_VARIANT])
    assert incumbent.pop("rounds") == DEFAULT_ROUNDS
    assert all(incumbent[k] == v for k, v in SCORE_DEFAULTS.items())


@pytest.mark.parametrize(
    ("kw", "says"),
    [
        ({"models": ("vgg",)}, "models"),
        ({"variants": ("nope", DEFAULT_VARIANT)}, "variants"),
        ({"rule": "best"}, "rule"),
        ({"variants": ("one-shot",)}, "incumbent"),
        ({"report": "../x"}, "report"),
        ({"seeds": 0}, "seeds"),
    ],
    ids=["model", "variant", "rule", "incumbent-missing", "report-path", "seeds"],
)
def test_ablation_config_rejects_bad_fields(kw, says):
    with pytest.raises(ValueError, match=says):
        AblationConfig(**kw).check()


def test_a_run_at_another_thread_count_is_cached_apart(tmp_path):
    """The thread count changes every trained network (summation order), so a unit run at 1 thread
    is never reused by, or mixed into, a resumed run at the committed 2 threads."""
    from lnpt.bench import threads_tag

    assert threads_tag(2) == "" and threads_tag(1) == "-threads1"
    with pytest.raises(ValueError, match="threads"):
        threads_tag(0)
    cfg = _tiny()
    cfg.seeds = 1
    run_bench(cfg, tmp_path, "t", progress=False, budget_s=0.0, threads=1)
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 1 and names[0].endswith("-threads1.partial.jsonl")
    res = run_bench(cfg, tmp_path, "t", progress=False, resume=True, budget_s=0.0, threads=2)
    assert res.config["unfinished"] == ["mlp seed 0"]  # the 1-thread unit was not reused
    names = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(names) == 2 and sum("threads" in n for n in names) == 1


def test_epochs_option_runs_another_budget_cached_apart(tmp_path):
    """`lnpt bench --epochs cnn=120`: the budget is part of the cache key, so the committed 30-epoch
    units keep their names and a run at another budget never reuses or mixes into them."""
    from lnpt.bench import parse_epochs

    assert parse_epochs(["cnn=120"]) == {"cnn": 120}
    assert parse_epochs(["mlp=5", "cnn=7"]) == {"mlp": 5, "cnn": 7}
    assert parse_epochs([]) == {}
    base = BenchConfig.validation_record()
    # the key of the committed lnpt_cnn_more_seeds / lnpt.json digits CNN units (30 epochs)
    assert base.fingerprint("cnn") == "7a8b2caa8a932fce"
    long = base.with_epochs({"cnn": 120})
    assert long.epochs == {**base.epochs, "cnn": 120} and base.epochs["cnn"] == 30
    assert long.fingerprint("cnn") == "cd00382fea180e87"  # the committed lnpt_cnn_120ep units
    assert long.teacher_epochs == base.teacher_epochs
    assert long.fingerprint("cnn") != base.fingerprint("cnn")
    assert long.fingerprint("mlp") == base.fingerprint("mlp")  # other models keep their keys
    with pytest.raises(ValueError, match="epochs must be positive ints"):
        base.with_epochs({"cnn": 0})
    cfg = _tiny()
    cfg.seeds = 1
    run_bench(cfg, tmp_path, "t", progress=False, budget_s=0.0)
    res = run_bench(
        cfg.with_epochs({"mlp": 2}), tmp_path, "t", progress=False, resume=True, budget_s=0.0
    )
    assert res.config["unfinished"] == ["mlp seed 0"]  # the 1-epoch unit was not reused
    assert res.config["epochs"] == {"mlp": 2}
    assert len(list((tmp_path / "cache").glob("mlp-seed0-*.partial.jsonl"))) == 2
