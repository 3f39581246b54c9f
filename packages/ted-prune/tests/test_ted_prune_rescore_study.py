"""Session 25b's re-scoring study: the readings `prune_residual_sample_re10` / `_re0` are TED's
defaults but for `rescore_every`, and the study's decision rule (`scripts/rescore_validation.py`)
on made-up rows; the shared validation code still reads session 25's committed runs as committed.
No run is trained here."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import PRE_S25C, READINGS, _pruner

ROOT = Path(__file__).resolve().parents[3]
MIX = ROOT / "docs" / "benchmarks" / "ted-prune-mix-s25"


@pytest.fixture
def scripts(script):
    return script("uniform_mix_validation"), script("rescore_validation")


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


def test_shared_code_reproduces_session_25s_committed_decision(scripts):
    umv, _ = scripts
    rows = [json.loads(x) for x in (MIX / "runs.jsonl").read_text().splitlines()]
    assert umv.decide(rows) == json.loads((MIX / "decision.json").read_text())


def _arms(re10=(0.5, -1.0), re0=(1.0, -0.1), rd=(1.2, 0.0)):
    """{arm: (clean delta, noise20 delta)} for `made_up_rows`."""
    return {"default": (0.0, 0.0), "re10": re10, "re0": re0, "random_dynamic": rd}


def test_rescore_rule_adopts_only_a_candidate_meeting_every_criterion(scripts, made_up_rows):
    _, rv = scripts
    seeds = rv.SEEDS
    assert seeds == list(range(120, 130))  # fresh: every earlier rule used seeds <= 119
    res = rv.decide(made_up_rows(_arms(), seeds))
    assert res["split"] == "validation"
    # re10: clean CI above 0, but noise20 -1.0 < -0.3; re0 meets all
    assert res["rule"]["re10"]["A1_clean_ci_above_0"]
    assert not res["rule"]["re10"]["A2_noise20_mean_ge_-0.3"]
    assert res["rule"]["re0"]["adopt"] and res["rule"]["adopt"] == "re0"
    assert res["settings"]["clean"]["re0-default"]["mean"] == pytest.approx(1.0)
    assert res["settings"]["clean"]["re0-random_dynamic"]["mean"] == pytest.approx(-0.2)
    assert not res["rule"]["re0"]["goal_read_clean_re0_ahead_of_random_dynamic"]
    # both pass: the larger clean gain wins; equal gains: re10
    both = rv.decide(made_up_rows(_arms(re10=(1.5, 0.0)), seeds))
    assert both["rule"]["adopt"] == "re10"
    tie = rv.decide(made_up_rows(_arms(re10=(1.0, 0.0)), seeds))
    assert tie["rule"]["re0"]["adopt"] and tie["rule"]["adopt"] == "re10"
    # a class dropping out in one re0 run, or a missing seed, blocks adoption
    rows = made_up_rows(_arms(), seeds)
    next(r for r in rows if r["arm"] == "re0")["min_class_kept"] = 0.0
    assert rv.decide(rows)["rule"]["adopt"] is None
    partial = [r for r in made_up_rows(_arms(), seeds) if r["seed"] != 129 or r["arm"] != "re0"]
    res = rv.decide(partial)
    assert not res["rule"]["re0"]["complete"] and res["rule"]["adopt"] is None
    assert res["settings"]["clean"]["n"] == 9
    # no candidate's clean CI above 0: nothing adopted
    assert (
        rv.decide(made_up_rows(_arms(re10=(0.0, 0.0), re0=(0.0, 0.0)), seeds))["rule"]["adopt"]
        is None
    )
