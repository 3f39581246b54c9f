"""CLI entry point and the benchmark's report writer on a tiny configuration."""

import json

import lnpt
import pytest
from lnpt.bench import BenchConfig, run_bench
from lnpt.cli import main


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == lnpt.__version__


@pytest.mark.slow
def test_tiny_bench_writes_report(tmp_path):
    cfg = BenchConfig(
        models=("mlp",),
        seeds=2,
        sparsities=(0.9,),
        masks=("random", "lnpt"),
        epochs={"mlp": 1},
        teacher_epochs={"mlp": 1},
        synflow_rounds=2,
        diagnostic_sparsity=0.9,
    )
    res = run_bench(cfg, tmp_path, "test", progress=False)
    md = (tmp_path / "lnpt.md").read_text()
    assert "lnpt+label-free" in md and "snip" not in md.split("## MLP")[0]
    doc = json.loads((tmp_path / "lnpt.json").read_text())
    assert doc["package"] == "lnpt" and len(doc["records"]) == len(res.records)
    assert "classifier head (last Linear) is left dense" in md
    # every mask keeps the same number of weights; the head is left out, no layer is emptied
    pruned = [r for r in res.records if "surviving" in r.metrics]
    assert len(pruned) == 2 * 2 * 2  # seeds x masks x trainings
    assert len({r.metrics["surviving"] for r in pruned}) == 1
    assert {r.metrics["masked_weights"] for r in pruned} == {64 * 300 + 300 * 100}
    assert min(r.metrics["min_layer_density"] for r in pruned) >= 0.01
