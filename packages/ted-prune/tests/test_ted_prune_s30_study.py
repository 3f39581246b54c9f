"""Session 30's scripts: the validation check's arms and rule (`scripts/s30_validation.py`) on
made-up rows, the `norescore` arm's plan, and the wall-clock script's summary
(`scripts/s30_wallclock.py`) on made-up rows. No benchmark run is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def s30(script):
    return script("s30_validation")


@pytest.fixture
def wall(script):
    return script("s30_wallclock")


def _rows(s30, noisy_gain, clean_delta=lambda s: 0.0):
    rows = []
    for seed in s30.SEEDS:
        for (setting, f), arms in s30.CELLS.items():
            for arm in arms:
                acc = 60.0 + (seed % 4)
                if arm == "norescore":
                    acc += noisy_gain(seed) if setting == "noise20" else clean_delta(seed)
                rows.append({"arm": arm, "setting": setting, "f_target": f, "seed": seed,
                             "val_accuracy": acc, "f": f, "min_class_kept": 0.4,
                             "noisy": setting == "noise20", "noise_statistic": 0.04})  # fmt: skip
    return rows


def test_fresh_seeds_and_cells(s30):
    assert list(range(230, 240)) == s30.SEEDS
    assert s30.plan("norescore", "noise20", 0.7) and s30.plan("s29", "clean", 0.7)
    assert not s30.plan("s29", "noise20", 0.5)


def test_rule_adopts_only_a_gain_with_clean_unaffected(s30):
    r = s30.decide(_rows(s30, lambda s: 1.0 + 0.1 * (s % 3)))["rule"]
    assert r == {"complete": True, "noise_gain": True, "clean_unaffected": True, "adopt": True}
    r = s30.decide(_rows(s30, lambda s: 1.0 if s % 2 else -1.2))["rule"]
    assert r["noise_gain"] is False and r["adopt"] is False
    r = s30.decide(_rows(s30, lambda s: 2.0, clean_delta=lambda s: -1.0 + 0.1 * (s % 2)))["rule"]
    assert r["clean_unaffected"] is False and r["adopt"] is False
    r = s30.decide(_rows(s30, lambda s: 2.0)[:-1])["rule"]
    assert r == {"complete": False}


def test_norescore_arm_runs_the_plan_without_rescoring_at_f07(s30):
    p = s30._pruner("TED_s30_norescore", 4500, 20, 0.7, 230, None)
    assert p.noise_late_keep == pytest.approx(0.6, abs=1e-3)  # below the arm's 0.99 floor
    assert p._late_norescore and p._late.keep == pytest.approx(0.625, abs=1e-6)
    d = s30._pruner("TED_s29", 4500, 20, 0.7, 230, None)
    assert not d._late_norescore and d._late.keep == pytest.approx(0.6, abs=1e-3)
    assert d.schedule.keep == p.schedule.keep  # clean data: the same default schedule


def test_wallclock_summary(wall):
    rows = []
    for seed in range(3):
        for rnd in range(-1, 2):
            for m in ["full"] if rnd < 0 else wall.order(rnd):
                sec = {"full": 10.0, "TED_s29": 7.2, "TED_s29@old": 7.3,
                       "random_dynamic": 7.0}[m] + 0.1 * seed  # fmt: skip
                rows.append({"seed": seed, "round": rnd, "method": m, "metrics": {
                    "seconds": sec, "accuracy": 90.0, "f": 0.7, "sizes": [1, 2],
                    "score_seconds": 0.3 if m.startswith("TED") else 0.0}})  # fmt: skip
    s = wall.summarize(rows, epochs=30)
    assert s["arms"]["full"]["ratio"][0] == 1.0
    assert s["new_equals_old"] == [6, 6]
    assert s["arms"]["TED_s29"]["ratio"][0] < s["arms"]["TED_s29@old"]["ratio"][0]
    assert 0.025 < s["arms"]["TED_s29"]["score_share"][0] < 0.031
    text = wall.report_md(s, "cmd")
    assert "**met**" in text
    assert wall.order(1) == ["TED_s29", "TED_s29@old", "random_dynamic", "full"]


def test_wallclock_old_arm_refuses_but_committed_cache_reports(wall, tmp_path):
    """ted-31 removed the `TED_s29@old` arm's code: a run that would train refuses, naming the
    commit that produced the committed results; `--resume` over a complete cache trains nothing."""
    with pytest.raises(wall.OldArmRemoved, match="2c66bcb"):
        wall.main(["--out", str(tmp_path), "--seeds", "1", "--resume"])
    with pytest.raises(wall.OldArmRemoved, match="2c66bcb"):
        wall.main(["--out", str(tmp_path), "--seeds", "1"])
    committed = ROOT / "docs/benchmarks/ted-prune-s30/wallclock"
    (tmp_path / "runs.jsonl").write_text((committed / "runs.jsonl").read_text())
    assert wall.main(["--out", str(tmp_path), "--seeds", "3", "--rounds", "1", "--resume"]) == 0
    got = json.loads((tmp_path / "wallclock.json").read_text())
    want = json.loads((committed / "wallclock.json").read_text())
    assert got["summary"] == want["summary"]


def test_wallclock_summary_without_the_old_arm(wall):
    arms = ("full", "TED_s29", "random_dynamic")
    rows = [{"seed": s, "round": 0, "method": m, "metrics": {"seconds": sec + 0.1 * s,
             "accuracy": 90.0, "f": 0.7, "sizes": [1], "score_seconds": 0.3 * (m == "TED_s29")}}
            for s in range(3) for m, sec in zip(arms, (10.0, 7.6, 7.0))]  # fmt: skip
    s = wall.summarize(rows, epochs=30, arms=arms)
    assert "new_equals_old" not in s and list(s["paired"]) == ["TED_s29 - random_dynamic (ratio)"]
    assert wall.order(1, arms) == ["TED_s29", "random_dynamic", "full"]
    assert "**missed**" in wall.report_md(s, "cmd", arms)
