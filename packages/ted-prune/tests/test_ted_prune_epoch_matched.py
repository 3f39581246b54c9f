"""The epoch-matched control (session ted-33, `bench_mnist1d.EPOCH_MATCHED`): full data for
E' = floor(f E + 1/2) epochs with the cosine schedule over E'. Bad values raise naming the
argument; a run is full data's run of E' epochs bit for bit, its budget E' / E; every other
method trains `epochs` epochs as before. Fixed seeds, one thread (root conftest)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from ted_prune.bench_mnist1d import EPOCH_MATCHED, matched_epochs, train_mnist1d
from ted_prune.mnist1d import mnist1d_splits


@pytest.mark.parametrize(
    ("f", "epochs", "want"),
    [(0.7, 20, 14), (0.5, 20, 10), (0.3, 20, 6), (0.7, 30, 21), (0.5, 25, 13), (0.02, 20, 1),
     (1.0, 30, 30), (1, 4, 4)],
)  # fmt: skip
def test_matched_epochs_rounds_halves_up_and_keeps_one(f, epochs, want):
    assert matched_epochs(f, epochs) == want


@pytest.mark.parametrize("f", [0.0, -0.5, 1.5, float("nan")])
def test_bad_f_raises_value_error_naming_it(f):
    with pytest.raises(ValueError, match=r"f must be in \(0, 1\]"):
        matched_epochs(f, 20)


@pytest.mark.parametrize("f", ["0.5", None, True])
def test_non_number_f_raises_type_error_naming_it(f):
    with pytest.raises(TypeError, match="f must be a number"):
        matched_epochs(f, 20)


@pytest.mark.parametrize("epochs", [0, -3, 2.5])
def test_bad_epochs_raise_naming_them(epochs):
    with pytest.raises((ValueError, TypeError), match="epochs"):
        matched_epochs(0.5, epochs)


def test_run_is_full_data_for_the_matched_epochs_with_its_budget():
    tr, va, _ = mnist1d_splits(600, val_size=100, seed=0)
    em = train_mnist1d(EPOCH_MATCHED, tr, va, 4, 0.5, 3)
    full2 = train_mnist1d("full", tr, va, 2, 1.0, 3)
    full4 = train_mnist1d("full", tr, va, 4, 1.0, 3)
    n = len(tr.tensors[1])
    assert em["sizes"] == full2["sizes"] == [n, n] and full4["sizes"] == [n] * 4
    assert em["accuracy"] == full2["accuracy"]  # the same training, bit for bit
    assert em["f"] == 0.5 and full2["f"] == full4["f"] == 1.0
    assert em["min_class_kept"] == 1.0
    odd = train_mnist1d(EPOCH_MATCHED, tr, va, 4, 0.3, 3)  # 1.2 -> 1 epoch: f = 1 / 4
    assert odd["sizes"] == [n] and odd["f"] == 0.25


GRID = Path(__file__).resolve().parents[3] / "docs/benchmarks/ted-prune-mnist1d-runs.jsonl"


def test_control_stage_adds_its_own_groups_and_leaves_the_grid_alone(tmp_path, monkeypatch):
    """`--stage control` over the committed grid: only epoch-matched runs, in new groups; the
    grid's rows and report lines stay; `--resume` of either stage then re-runs nothing."""
    import ted_prune.bench_mnist1d as bm

    cache = tmp_path / GRID.name
    shutil.copy(GRID, cache)
    calls = []

    def train(method, train, evalset, epochs, f, seed, *a, **k):
        calls.append((method, f, seed))
        return {"accuracy": 80.0 + 10 * f + 0.1 * seed, "f": f, "seconds": 1.0,
                "min_class_kept": 1.0}  # fmt: skip

    monkeypatch.setattr(bm, "train_mnist1d", train)
    monkeypatch.setattr(bm, "mnist1d_splits", lambda *a, **k: (None, None, None))
    kw = {"seeds": 5, "num_samples": 5000, "epochs": 20, "threads": 1, "progress": False}
    assert bm.run_mnist1d(tmp_path, stage="control", resume=True, **kw)
    runs = [c for c in calls if c[0] == EPOCH_MATCHED]
    assert len(runs) == 45 and {c[0] for c in calls} <= {EPOCH_MATCHED, "TED"}  # + the warm-up
    assert cache.read_text().startswith(GRID.read_text())  # the grid's rows untouched
    text = (tmp_path / "ted-prune-mnist1d.md").read_text()
    assert "## The epoch-matched control" in text and "epoch_matched - full" in text
    assert "Δ -1.04 [-1.40, -0.58] (n=5)" in text  # the grid's goal line as before

    def fail(*a, **k):
        raise AssertionError(f"re-run: {a}")

    monkeypatch.setattr(bm, "train_mnist1d", fail)
    monkeypatch.setattr(bm, "_run_group", fail)
    for stage in ("control", "all"):
        assert bm.run_mnist1d(tmp_path, stage=stage, resume=True, **kw)
    with pytest.raises(ValueError, match="stage must be"):
        bm.run_mnist1d(tmp_path, stage="controls", resume=True, **kw)
