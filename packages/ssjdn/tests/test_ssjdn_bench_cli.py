"""The benchmark writes its report files, caches and resumes runs; the CLI parses its commands."""

import argparse
import json
from pathlib import Path

import pytest
from ssjdn.bench import BenchSettings, evaluation_seconds, run_bench
from ssjdn.cli import build_parser, main

TINY = BenchSettings(n_train=12, n_test=8, image_size=32, epochs=1, batch_size=6)
METHODS = ["dual-encoder", "+STL (full SSJDN)", "AMFMN-style"]


def test_bench_tiny_writes_report_and_resumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    out = run_bench(
        tmp_path, seeds=2, settings=TINY, methods=METHODS, progress=False, time_evaluation=False
    )
    for name in ("ssjdn.md", "ssjdn.json", "ssjdn.png", "ssjdn_retrievals.png", "ssjdn_sgs.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    doc = json.loads((tmp_path / "ssjdn.json").read_text())
    assert doc["schema"] == "maskloop.results/1"
    assert {r["method"] for r in doc["records"]} == set(METHODS)
    full = next(r["metrics"] for r in doc["records"] if r["method"] == "+STL (full SSJDN)")
    assert {"mR", "hard_mR", "hard_small_mR", "lsd_img_acc", "corr_s1", "sal_std_s1"} <= set(full)
    probes = {"small_z_p0_s1", "damp_small_ratio", "pass_feat_cos", "pass_cancel", "sem_var_share"}
    assert probes <= set(full)
    md = (tmp_path / "ssjdn.md").read_text()
    assert "## Goals" in md and "metrics of 1,000 x 5,000" in md and "AMFMN-style" in md
    assert out["missing"] == [] and "mR" in capsys.readouterr().out
    # a resumed call trains nothing: the cached runs are reused as they are
    cached = sorted((tmp_path / "cache").glob("*/*/*.json"))
    assert len(cached) == 6
    stamps = [p.stat().st_mtime_ns for p in cached]

    def resume() -> dict:
        return run_bench(
            tmp_path,
            seeds=2,
            settings=TINY,
            methods=METHODS,
            progress=False,
            resume=True,
            time_evaluation=False,
        )

    again = resume()
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert again["results"].values("mR", "AMFMN-style") == out["results"].values(
        "mR", "AMFMN-style"
    )
    # a fresh clone has the cached runs but not the saved model's weights (*.safetensors are not
    # committed): resuming skips the example figures' model instead of failing
    for weights in (tmp_path / "cache").glob("*/*/*.model/model.safetensors"):
        weights.unlink()
    third = resume()
    assert [p.stat().st_mtime_ns for p in cached] == stamps
    assert third["results"].values("mR", "+SFE") == out["results"].values("mR", "+SFE")
    # a time limit leaves the rest for --resume and says so
    part = run_bench(
        tmp_path,
        seeds=2,
        settings=TINY,
        methods=[*METHODS, "+SFE"],
        progress=False,
        resume=True,
        time_limit=1e-9,
        time_evaluation=False,
    )
    assert part["missing"] == ["+SFE seed 0", "+SFE seed 1"]
    assert "Not run (time limit): +SFE seed 0, +SFE seed 1" in (tmp_path / "ssjdn.md").read_text()


def test_bench_cache_is_keyed_by_the_method_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run cached under other defaults is not reused: its file name holds the config's hash."""
    from ssjdn.baselines import ABLATION_LADDER
    from ssjdn.bench import cache_stem, method_key

    keys = {
        m: method_key(m) for m in ["+SFE", "+STL (full SSJDN)", "SGS chain (v1)", "AMFMN-style"]
    }
    assert len(set(keys.values())) == len(keys) and method_key("+SFE") == keys["+SFE"]
    assert cache_stem("+SFE", 3) == f"SFE__{keys['+SFE']}__seed3"
    # a rung whose options change (as when a default is switched) gets another key
    monkeypatch.setitem(ABLATION_LADDER, "+SFE", {"multiscale": True, "sfe": False})
    assert method_key("+SFE") != keys["+SFE"]
    # options without effect do not: the SGS options of a model without SGS
    monkeypatch.setitem(ABLATION_LADDER, "+SFE", {"multiscale": True, "sfe": True, "sgs_beta": 0.9})
    assert method_key("+SFE") == keys["+SFE"]


def test_bench_bad_args(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seeds"):
        run_bench(tmp_path, seeds=0)
    with pytest.raises(ValueError, match="methods must be among"):
        run_bench(tmp_path, methods=["+nothing"])
    with pytest.raises(ValueError, match="split must be"):
        run_bench(tmp_path, split="train")
    with pytest.raises(ValueError, match="time_limit"):
        run_bench(tmp_path, time_limit=0)


def test_evaluation_seconds_small() -> None:
    assert evaluation_seconds(50, 250, repeats=1) < 5.0


def test_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == "0.1.0"
    with pytest.raises(SystemExit):  # a command is required (the shared maskloop.cli layout)
        main([])
    assert "{demo,bench}" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", "--seeds", "0"])
    with pytest.raises(SystemExit):
        main(["bench", "--time-limit", "-1"])
    with pytest.raises(SystemExit):
        main(["bench", "--methods", "+nothing"])
    with pytest.raises(SystemExit):
        main(["bench", "--quick", "--full"])


def _walk(
    parser: argparse.ArgumentParser, path: str = "ssjdn"
) -> list[tuple[str, argparse.Action]]:
    """Every option of ``parser`` and of its subcommands, with the command it belongs to."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += _walk(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction):
            found.append((path, action))
    return found


def test_cli_every_option_has_help_and_shared_flags() -> None:
    """Walk the parser: every option has help text; demo and bench take the shared --seed and
    --threads, bench the shared --quick/--out/--resume with --out defaulting to ./ssjdn-bench/."""
    parser = build_parser()
    actions = _walk(parser)
    missing = [f"{cmd} {a.option_strings or a.dest}" for cmd, a in actions if not a.help]
    assert missing == []
    options = {(cmd, o) for cmd, a in actions for o in a.option_strings}
    for cmd in ("ssjdn demo", "ssjdn bench"):
        assert {(cmd, "--seed"), (cmd, "--threads")} <= options
    for opt in ("--quick", "--out", "--resume", "--seeds", "--split", "--time-limit", "--cache"):
        assert ("ssjdn bench", opt) in options
    args = parser.parse_args(["bench", "--seeds", "2", "--split", "val", "--threads", "1"])
    assert args.out == Path("ssjdn-bench") and not args.out_given
    assert (args.command, args.seeds, args.split, args.threads, args.seed) == (
        "bench",
        2,
        "val",
        1,
        0,
    )
    assert parser.parse_args(["demo", "--out", "d"]).demo_out == "d"


def test_bench_first_seed_names_the_runs(tmp_path: Path) -> None:
    """--seed shifts the seeds the bench runs (and caches) without changing a run's result."""
    pytest.importorskip("matplotlib")
    kw = dict(settings=TINY, methods=["dual-encoder"], progress=False, time_evaluation=False)
    both = run_bench(tmp_path / "a", seeds=2, **kw)
    second = run_bench(tmp_path / "b", seeds=1, first_seed=1, **kw)
    from ssjdn.bench import method_key

    assert sorted(p.name for p in (tmp_path / "b" / "cache").glob("*/*/*.json")) == [
        f"dual_encoder__{method_key('dual-encoder')}__seed1.json"
    ]
    assert second["results"].values("mR", "dual-encoder") == {
        1: both["results"].values("mR", "dual-encoder")[1]
    }


def test_bench_cache_key_of_added_options(monkeypatch: pytest.MonkeyPatch) -> None:
    """An option added after the cache was made changes a method's key only when switched on,
    and its sub-option only when the value that uses it is chosen."""
    from ssjdn.baselines import ABLATION_LADDER
    from ssjdn.bench import method_key

    rung = "+SGS (one direction)"
    base = {**ABLATION_LADDER[rung], "sgs_guide": "learned"}
    monkeypatch.setitem(ABLATION_LADDER, rung, base)
    before = method_key(rung)
    monkeypatch.setitem(ABLATION_LADDER, rung, {**base, "sgs_contrast_kernel": 5})
    assert method_key(rung) == before  # neutral: the model cached before the option existed
    monkeypatch.setitem(ABLATION_LADDER, rung, {**base, "sgs_guide": "contrast"})
    contrast = method_key(rung)
    assert contrast != before
    monkeypatch.setitem(
        ABLATION_LADDER, rung, {**base, "sgs_guide": "contrast", "sgs_contrast_kernel": 5}
    )
    assert method_key(rung) not in (before, contrast)


def test_bench_epochs_override(tmp_path: Path) -> None:
    """epochs= trains every method that long, caches it apart and names the report by it."""
    pytest.importorskip("matplotlib")
    kw = dict(settings=TINY, methods=["dual-encoder"], progress=False, time_evaluation=False)
    one = run_bench(tmp_path, seeds=1, split="val", **kw)
    two = run_bench(tmp_path, seeds=1, split="val", epochs=2, resume=True, **kw)
    folders = sorted(p.name for p in (tmp_path / "cache" / "val").iterdir())
    assert len(folders) == 2  # one cache folder per budget: the 1-epoch run is not reused
    assert (tmp_path / "ssjdn_validation.md").is_file()
    md = (tmp_path / "ssjdn_validation_e2.md").read_text()
    assert "; 2 epochs, batch" in md
    assert not one["curves"].values("mR", "dual-encoder", epoch=2)
    assert set(two["curves"].values("mR", "dual-encoder", epoch=2)) == {0}
    with pytest.raises(ValueError, match="epochs"):
        run_bench(tmp_path, seeds=1, epochs=0, **kw)
    # report_name: another file stem, the cached run reused (nothing trained)
    stamps = [p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*/*/*.json")]
    run_bench(tmp_path, seeds=1, split="val", resume=True, report_name="extra-runs_1", **kw)
    assert (tmp_path / "extra-runs_1.md").read_text().startswith("# SSJDN benchmark (validation")
    assert [p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*/*/*.json")] == stamps
    for bad in ("../up", "a b", ""):
        with pytest.raises(ValueError, match="report_name must be a file stem"):
            run_bench(tmp_path, seeds=1, report_name=bad, **kw)
    args = build_parser().parse_args(["bench", "--epochs", "20"])
    assert args.epochs == 20 and build_parser().parse_args(["bench"]).epochs is None
    assert build_parser().parse_args(["bench", "--report-name", "x"]).report_name == "x"
    with pytest.raises(SystemExit):
        main(["bench", "--epochs", "0"])
