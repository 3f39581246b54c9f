"""Session 25e: the readings `prune_residual_sample_mw1.5` / `_mw1` (the current defaults but
`max_weight`), the study's arms and rule (`scripts/cap_validation.py`) on made-up rows, and the
shared two-candidate `decide_two` reproducing sessions 25b / 25c / 25e's committed decisions. No benchmark
run is trained here."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import PRE_S26, READINGS, _pruner

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "docs" / "benchmarks"
# the defaults the study ran with (sessions 25d-26b: `TED_s25c`, importance weights, no tail)
DEFAULTS = {k: p.default for k, p in inspect.signature(TEDPruner).parameters.items()} | PRE_S26


@pytest.fixture
def mods(script):
    names = ("cap_validation", "rescore_validation", "weights_validation", "uniform_mix_validation")
    return tuple(script(m) for m in names)


@pytest.mark.parametrize(("name", "cap"), [("prune_residual_sample_mw1.5", 1.5),
                                           ("prune_residual_sample_mw1", 1.0)])  # fmt: skip
def test_cap_readings_are_the_current_defaults_but_max_weight(name, cap):
    reading = READINGS[name]
    assert reading["max_weight"] == cap < DEFAULTS["max_weight"] == 2.0
    assert all(DEFAULTS[k] == v for k, v in reading.items() if k != "max_weight")
    pruner = _pruner(f"TED:{name}", 600, 10, 0.7, 0, None)  # what the study's arm builds
    assert pruner.max_weight == cap and pruner.selection == "sample"


def test_incumbent_arm_runs_the_current_defaults(mods):
    cv = mods[0]
    assert cv.ARMS["default"] == "TED_s25c" and cv.CANDIDATES == ("mw1.5", "mw1")
    seeds = cv.SEEDS
    assert seeds == list(range(140, 150))  # fresh: every earlier rule used seeds <= 139
    pruner = _pruner(cv.ARMS["default"], 600, 10, 0.7, 0, None)
    assert pruner.max_weight == DEFAULTS["max_weight"] == 2.0
    old = _pruner("TED", 600, 10, 0.7, 0, None)  # the grid's `TED` pins the old 4.0
    assert old.max_weight == 4.0


def test_lower_cap_clips_more_weights():
    """Same made-up scores (float64), same seed: the cap leaves the kept set unchanged and only
    narrows the weights' spread (max / min ratio; a lower cap never widens it)."""
    out = {}
    for cap in (2.0, 1.5, 1.0):
        p = TEDPruner(400, 10, keep=0.5, warmup=1, ramp=0, seed=0, max_weight=cap, **PRE_S26)
        g = torch.Generator().manual_seed(0)
        p._obs.labels = torch.randint(0, 4, (400,), generator=g)
        p.scores = torch.rand(400, generator=g, dtype=torch.float64)
        p.has_score = torch.ones(400, dtype=torch.bool)
        p.epoch = 5
        s = p.select()
        out[cap] = (s.indices, p.weights(s.indices).double())
    assert torch.equal(out[2.0][0], out[1.5][0]) and torch.equal(out[2.0][0], out[1.0][0])
    ratio = {c: float(w.max() / w.min()) for c, (_, w) in out.items()}
    assert ratio[1.0] <= ratio[1.5] <= ratio[2.0]
    assert ratio[1.0] < ratio[2.0]


def _arms(a=(1.0, -0.1), b=(0.5, -1.0), rd=(1.2, 0.0)):
    """{arm: (clean delta, noise20 delta)} for `made_up_rows`."""
    return {"default": (0.0, 0.0), "mw1.5": a, "mw1": b, "random_dynamic": rd}


def test_cap_rule_adopts_only_a_candidate_meeting_every_criterion(mods, made_up_rows):
    cv = mods[0]
    seeds = cv.SEEDS
    res = cv.decide(made_up_rows(_arms(), seeds))
    assert res["split"] == "validation"
    assert res["rule"]["mw1"]["A1_clean_ci_above_0"]
    assert not res["rule"]["mw1"]["A2_noise20_mean_ge_-0.3"]
    assert res["rule"]["adopt"] == "mw1.5"
    assert res["settings"]["clean"]["mw1.5-random_dynamic"]["mean"] == pytest.approx(-0.2)
    assert res["settings"]["clean"]["mw1-mw1.5"]["mean"] == pytest.approx(-0.5)
    assert cv.decide(made_up_rows(_arms(b=(1.5, 0.0)), seeds))["rule"]["adopt"] == "mw1"
    assert cv.decide(made_up_rows(_arms(b=(1.0, 0.0)), seeds))["rule"]["adopt"] == "mw1.5"  # tie
    rows = made_up_rows(_arms(), seeds)
    next(r for r in rows if r["arm"] == "mw1.5")["min_class_kept"] = 0.0
    assert cv.decide(rows)["rule"]["adopt"] is None
    partial = [r for r in made_up_rows(_arms(), seeds) if r["seed"] != 149 or r["arm"] != "mw1"]
    assert cv.decide(partial)["rule"]["adopt"] is None
    flat = cv.decide(made_up_rows(_arms(a=(0.0, 0.0), b=(0.0, 0.0)), seeds))
    assert flat["rule"]["adopt"] is None
    json.dumps(flat)  # decision.json is written from it


@pytest.mark.parametrize(("i", "study"), [(0, "ted-prune-cap-s25e"),
                                          (1, "ted-prune-rescore-s25b"),
                                          (2, "ted-prune-weights-s25c")])  # fmt: skip
def test_decide_two_reproduces_the_committed_decisions(mods, i, study):
    rows = [json.loads(x) for x in (BENCH / study / "runs.jsonl").read_text().splitlines()]
    assert mods[i].decide(rows) == json.loads((BENCH / study / "decision.json").read_text())


def test_decide_two_rejects_a_tie_outside_the_candidates(mods):
    umv = mods[3]
    with pytest.raises(ValueError, match="tie"):
        umv.decide_two(
            [], mods[0].ARMS, [140], ("mw1.5", "mw1"), tie="mw2", between=("mw1", "mw1.5")
        )
