"""CLI entry point, the benchmark's report writer and its resume cache, the validation ablation."""

import json
from pathlib import Path

import lnpt
import pytest
from lnpt.ablation import AblationConfig, run_ablation
from lnpt.bench import BenchConfig, run_bench
from lnpt.cli import build_parser, main
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
    ],
    ids=[
        "variants-without-ablation",
        "training-variants-without-mode",
        "report-with-ablation",
        "report-with-timing",
        "duplicate-variant",
        "duplicate-model",
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
