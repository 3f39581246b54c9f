"""The benchmark writes its report files; the CLI parses its commands."""

import json
from pathlib import Path

import pytest
from ssjdn.bench import BenchSettings, evaluation_seconds, run_bench
from ssjdn.cli import main


def test_bench_tiny_writes_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("matplotlib")
    s = BenchSettings(n_train=24, n_test=12, image_size=32, epochs=2, batch_size=8)
    out = run_bench(tmp_path, seeds=2, settings=s, methods=["dual-encoder", "+SFE"], progress=False)
    for name in ("ssjdn.md", "ssjdn.json", "ssjdn.png", "ssjdn_retrievals.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    doc = json.loads((tmp_path / "ssjdn.json").read_text())
    assert doc["schema"] == "maskloop.results/1"
    assert {r["method"] for r in doc["records"]} == {"dual-encoder", "+SFE"}
    assert all({"mR", "small_mR", "epochs_to_90"} <= set(r["metrics"]) for r in doc["records"])
    md = (tmp_path / "ssjdn.md").read_text()
    assert "## Goals" in md and "evaluation of 1,000 x 5,000" in md
    assert set(out["goals"]) and "mR" in capsys.readouterr().out


def test_bench_bad_args(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="seeds"):
        run_bench(tmp_path, seeds=0)
    with pytest.raises(ValueError, match="rungs of the ladder"):
        run_bench(tmp_path, methods=["+nothing"])


def test_evaluation_seconds_small() -> None:
    assert evaluation_seconds(50, 250, repeats=1) < 5.0


def test_cli_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == "0.1.0"
    assert main([]) == 0
    assert "demo" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["bench", "--seeds", "0"])
