"""Session 25b's re-scoring study: the readings `prune_residual_sample_re10` / `_re0` are TED's
defaults but for `rescore_every`, and less re-scoring leaves more of the budget to training. The
study's scripts and their tests were retired in session 32 (commit e375864 has them). No run is
trained here."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import PRE_S25C, READINGS, _pruner

ROOT = Path(__file__).resolve().parents[3]
MIX = ROOT / "docs" / "benchmarks" / "ted-prune-mix-s25"


@pytest.mark.parametrize(("name", "every"), [("prune_residual_sample_re10", 10),
                                             ("prune_residual_sample_re0", 0)])  # fmt: skip
def test_rescore_readings_are_the_defaults_but_rescore_every(name, every):
    # the grid's `TED` method: the defaults before session ted-25d (max_weight=4.0)
    defaults = {k: p.default for k, p in inspect.signature(TEDPruner).parameters.items()} | PRE_S25C
    reading = READINGS[name]
    assert reading["rescore_every"] == every != defaults["rescore_every"]
    assert all(defaults[k] == v for k, v in reading.items() if k != "rescore_every")
    pruner = _pruner(f"TED:{name}", 600, 10, 0.7, 0, None)  # what the study's arm builds
    assert pruner.rescore_every == every and pruner.selection == "sample"


def test_less_rescoring_leaves_more_of_the_budget_to_training():
    """At budget 0.7 (3,500 x 20) f stays 0.7; what re-scoring no longer spends is trained."""
    plans = [TEDPruner(3500, 20, budget=0.7, rescore_every=r).planned_budget() for r in (5, 10, 0)]
    assert all(abs(p["f"] - 0.7) < 1e-3 for p in plans)
    assert plans[0]["trained"] < plans[1]["trained"] < plans[2]["trained"]
    assert plans[0]["scored"] > plans[1]["scored"] > plans[2]["scored"] == 0.0
    assert abs(plans[2]["trained"] - 0.7) < 1e-3
