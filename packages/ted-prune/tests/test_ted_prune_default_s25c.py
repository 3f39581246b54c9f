"""Session ted-25d: TEDPruner's default max_weight is 2.0 (rule s25c, validation); every reading and
cached benchmark row measured before keeps max_weight=4.0 and its cache key."""

import inspect
import shutil
from pathlib import Path

import ted_prune.bench_mnist1d as bm
import torch
from ted_prune import TED, TEDPruner

GRID = Path(__file__).resolve().parents[3] / "docs/benchmarks/ted-prune-mnist1d-runs.jsonl"


def test_default_max_weight_is_two_and_old_rows_pin_four():
    assert inspect.signature(TEDPruner).parameters["max_weight"].default == 2.0
    assert TEDPruner(100, 10).max_weight == 2.0
    data = TED(torch.utils.data.TensorDataset(torch.zeros(20, 3)), epochs=4, budget=0.7)
    assert data.pruner.max_weight == 2.0
    mw = {m: bm._pruner(m, 200, 10, 0.7, 0, None).max_weight
          for m in ("TED", "TED+fresh", "TED=prune_residual_sample", "TED_s25c",
                    "TED:prune_residual_sample_mw2")}  # fmt: skip
    assert mw == {"TED": 4.0, "TED+fresh": 4.0, "TED=prune_residual_sample": 4.0,
                  "TED_s25c": 2.0, "TED:prune_residual_sample_mw2": 2.0}  # fmt: skip
    # the explicit-cap readings (s25c, s25e) and session 26's tail readings (current defaults)
    caps = {
        "_mw2": 2.0,
        "_mw1.5": 1.5,
        "_mw1": 1.0,
        "_w1_tmis": 2.0,
        "_w1_tail10": 2.0,
        "_w1_tail20": 2.0,
        "_w1_tail20_late": 2.0,  # session 27: the current default plus one change each
        "_w1_tail20_thin": 2.0,
    }
    assert all(
        r["max_weight"] == next((c for k, c in caps.items() if n.endswith(k)), 4.0)
        for n, r in bm.READINGS.items()
    )
    assert {n for n in bm.READINGS if bm.READINGS[n]["max_weight"] != 4.0} == {
        f"prune_residual_sample{k}" for k in caps
    }
    # the grid's `TED` rows (reading prune_residual_sample) are still the `TED` method's runs
    assert bm._is_default_reading("prune_residual_sample")
    assert not bm._is_default_reading("prune_residual_sample_mw2")


def test_committed_grid_cache_keys_unchanged(tmp_path, monkeypatch):
    """--resume over the committed grid cache finds every group done: nothing is re-run."""
    shutil.copy(GRID, tmp_path / GRID.name)

    def fail(*a, **k):
        raise AssertionError(f"group re-run: {a}")

    monkeypatch.setattr(bm, "_run_group", fail)
    monkeypatch.setattr(bm, "train_mnist1d", fail)
    assert bm.run_mnist1d(tmp_path, stage="all", seeds=5, num_samples=5000, epochs=20,
                          resume=True, threads=1, progress=False)  # fmt: skip
    assert "Δ -1.04 [-1.40, -0.58] (n=5)" in (tmp_path / "ted-prune-mnist1d.md").read_text()
