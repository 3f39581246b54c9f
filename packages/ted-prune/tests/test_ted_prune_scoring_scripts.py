"""The scoring-timing scripts: `scoring_paired.py` (one script for the s21/s22/s23 rules, folded
from two copies) must still read the committed caches as committed, and `scoring_speed.py`'s
elasticity must read 1 for a part that slows as training does and 0 for a fixed cost. No timing
is measured here: the rows are the committed ones or made up."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
SCRIPTS = ROOT / "packages" / "ted-prune" / "scripts"
RESULTS = ROOT / "docs" / "benchmarks" / "ted-prune-score-rows"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_ted_{name}", SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up
    spec.loader.exec_module(mod)
    return mod


sp = _script("scoring_paired")
ss = _script("scoring_speed")


def _same(committed: Any, new: Any, path: str = "") -> list[str]:
    """Where `new` differs from `committed` on `committed`'s keys (the command aside)."""
    if isinstance(committed, dict):
        return [d for k, v in committed.items() if k != "command"
                for d in (_same(v, new[k], f"{path}{k}.") if k in new else [f"{path}{k} missing"])]  # fmt: skip
    if isinstance(committed, list):
        if len(committed) != len(new):
            return [f"{path} length"]
        return [
            d for i, (a, b) in enumerate(zip(committed, new)) for d in _same(a, b, f"{path}{i}.")
        ]
    if isinstance(committed, float):
        return [] if new == pytest.approx(committed, rel=1e-12, abs=1e-15) else [path]
    return [] if committed == new else [path]


@pytest.mark.parametrize(("study", "rounds"), [("s21", 3), ("s22", 2)])
def test_fold_reproduces_committed_decisions(study: str, rounds: int) -> None:
    from ted_prune.runcache import load_cache

    committed = json.loads((RESULTS / study / "scoring-paired.json").read_text())
    cfg = sp.config(study, 25000, 30, rounds)
    assert cfg == committed["config"]  # the caches written before the fold still match
    rows = [r for r in load_cache(RESULTS / study / sp.CACHE) if r.get("config") == cfg]
    res = sp.decide(sp.STUDIES[study], rows, rounds, cfg)
    assert _same(committed, res) == []


def test_arm_order_alternates_pairs_and_keeps_a_single_arm() -> None:
    s22, s23 = sp.STUDIES["s22"], sp.STUDIES["s23"]
    assert sp.arm_order(s22, 0, 0, 0) == ["b256", "b1024"]
    assert sp.arm_order(s22, 1, 0, 0) == ["b1024", "b256"]
    assert sp.arm_order(s22, 0, 1, 1) == ["b256", "b1024"]
    assert sp.arm_order(s23, 1, 2, 0) == ["default"]
    firsts = [sp.arm_order(s22, r, s, j)[0] for r in range(2) for s in range(3) for j in range(3)]
    assert firsts.count("b256") == firsts.count("b1024")


def test_plan_and_config() -> None:
    lines = sp.plan(sp.STUDIES["s23"], 2)
    assert len(lines) == 2 * 3 * (1 + 3)
    assert lines[1] == "round 0 clean: f = 0.7 default (TED, re-scoring batch 1024)"
    assert len(sp.plan(sp.STUDIES["s21"], 1)) == 3 * (1 + 6)
    assert "study" not in sp.config("s22", 25000, 30, 2)
    assert sp.config("s23", 25000, 30, 3)["study"] == "s23"


def _rows(shares: list[float], arm: str = "default") -> list[dict[str, Any]]:
    rows = []
    settings, budgets = list(sp.SETTINGS), list(sp.BUDGETS)
    for i, v in enumerate(shares):
        r, rest = divmod(i, len(settings) * len(budgets))
        s, j = divmod(rest, len(budgets))
        rows.append({"round": r, "setting": settings[s], "f_target": budgets[j], "arm": arm,
                     "overhead": v, "rescore": v / 4, "full_epoch_seconds": 0.5,
                     "loadavg_after": [1.0, 1.0, 1.0]})  # fmt: skip
    return rows


@pytest.mark.parametrize(
    ("level", "goal"), [(0.04, "met"), (0.06, "missed"), (0.05, "not shown either way")]
)
def test_s23_reads_the_goal_on_the_ci(level: float, goal: str) -> None:
    rng = np.random.default_rng(1)
    shares = list(level + rng.normal(0, 0.002, 9))
    res = sp.decide(sp.STUDIES["s23"], _rows(shares), 1, {"num_samples": 1, "epochs": 1})
    assert res["goal"] == goal
    lo, hi = res["default"]["ci95"]
    assert lo <= float(np.mean(shares)) <= hi
    text = sp._markdown(sp.STUDIES["s23"], res, "cmd")
    assert f"**{goal}**" in text and "load average" in text


def test_s23_without_a_complete_round_reads_nothing() -> None:
    # two of the three settings' groups in (a group is cached whole or not at all)
    res = sp.decide(sp.STUDIES["s23"], _rows([0.04] * 6), 1, {})
    assert res["decision"].startswith("no decision")


def test_main_rejects_bad_arguments() -> None:
    with pytest.raises(SystemExit):
        sp.main(["--study", "s99", "--dry-run"])
    with pytest.raises(SystemExit):
        sp.main(["--study", "s23", "--rounds", "0", "--dry-run"])
    with pytest.raises(SystemExit):
        sp.main(["--study", "s23"])  # neither --out nor --dry-run


def _chunk(fe_ms: float, rescore_ms: float, rest_ms: float, n: int = 6) -> dict[str, np.ndarray]:
    rows = [{"arm": "a", "full_epoch_seconds": fe_ms / 1e3 * (1 + 0.01 * k),
             "overhead": (rescore_ms + rest_ms) / (fe_ms * (1 + 0.01 * k)),
             "rescore": rescore_ms / (fe_ms * (1 + 0.01 * k))} for k in range(n)]  # fmt: skip
    return ss.chunk_parts(rows, "a")


def test_speed_elasticity_is_one_for_training_like_and_zero_for_fixed_parts() -> None:
    ref, slow = _chunk(300.0, 5.0, 15.0), _chunk(600.0, 10.0, 15.0)
    e, lo, hi = ss.elasticity(ref, slow, "rescore_ms", n_boot=200)
    assert e == pytest.approx(1.0, abs=0.01) and lo <= e <= hi
    assert ss.elasticity(ref, slow, "rest_ms", n_boot=200)[0] == pytest.approx(0.0, abs=1e-12)
    whole = ss.elasticity(ref, slow, "score_ms", n_boot=200)[0]
    assert whole == pytest.approx(math.log(25 / 20) / math.log(2), abs=0.01)
    assert slow["share"].mean() < ref["share"].mean()  # a fixed part: the share falls when slow
    assert "elasticity" in ss.summary({"ref": ref, "slow": slow})


def test_speed_rejects_a_missing_arm_and_equal_speeds() -> None:
    with pytest.raises(ValueError, match="arm 'b'"):
        ss.chunk_parts([{"arm": "a"}], "b")
    ref = _chunk(300.0, 5.0, 15.0)
    with pytest.raises(ValueError, match="same mean full-data epoch"):
        ss.elasticity(ref, ref, "score_ms", n_boot=10)


def _s24_rows(new_ms: tuple[float, float], main_ms: tuple[float, float], fe: float) -> list[dict]:
    """Both s24 arms over one complete round: (re-scoring, rest) ms per epoch each, epochs `fe` s."""
    rows = []
    for arm, (resc, rest) in (("new", new_ms), ("main", main_ms)):
        for r in _rows([(resc + rest) / (1e3 * fe)] * 9, arm):
            r.update(full_epoch_seconds=fe, score_ms=resc + rest, rescore_ms=resc)
            rows.append(r)
    return rows


def test_s24_projects_to_s21_speed_and_needs_both_readings() -> None:
    study = sp.STUDIES["s24"]
    assert list(study.arms) == ["new", "main"] and study.arms["main"].method == "TED@main"
    # at s21's own speed the elasticities change nothing: P1 = this chunk's share
    res = sp.decide(
        study, _s24_rows((4.0, 12.0), (4.0, 16.0), 0.342), 1, {"num_samples": 1, "epochs": 1}
    )
    pr = res["projection"]
    assert pr["p1"] == pytest.approx(16.0 / 342) and pr["p1_pessimistic"] == pytest.approx(
        16.0 / 342
    )
    assert pr["rest_ratio"] == pytest.approx(0.75)
    assert pr["p2"] == pytest.approx((4.6 + 16.9 * 0.75) / 342)
    assert res["goal_in_chunk"] == "met" and res["goal"] == "missed"  # P2 = 0.0505
    assert res["delta_ms_new_minus_main"]["mean"] == pytest.approx(-4.0)
    # a slow chunk: the fixed-cost rest shrinks less than the epoch going to s21's speed
    res = sp.decide(
        study, _s24_rows((8.0, 18.0), (8.0, 30.0), 0.684), 1, {"num_samples": 1, "epochs": 1}
    )
    k = 0.342 / 0.684
    assert res["projection"]["p1"] == pytest.approx((8.0 * k**0.83 + 18.0 * k**0.42) / 342)
    assert res["goal"] == (
        "met" if max(res["projection"]["p1"], res["projection"]["p2"]) < 0.05 else "missed"
    )
    text = sp._markdown(study, res, "cmd")
    assert "Paired new - main" in text and "Goal by RULE-s24" in text
