"""Session 28b's validation script (`scripts/s28b_validation.py`): its arms, its pruner, rule
s28b (C1-C4) on made-up rows, and the committed decision recomputed from the committed runs; the
test-read script's summary on made-up rows. No benchmark run is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def s28b(script):
    return script("s28b_validation")


def _rows(s28b, gain7, gain5=lambda s: 0.0, clean=lambda s: 0.0, drop=False):
    rows = []
    for seed in s28b.SEEDS:
        for setting in ("clean", "noise20"):
            for f in (0.7, 0.5):
                for arm in s28b.ARMS:
                    acc = 80.0 + (seed % 3)
                    cand = arm == "floor50"
                    if cand:
                        g = clean if setting == "clean" else gain7 if f == 0.7 else gain5
                        acc += g(seed)
                    active = cand and f == 0.7
                    noisy = (setting == "noise20") if active else None
                    rows.append({"arm": arm, "setting": setting, "seed": seed, "f_target": f,
                                 "val_accuracy": acc, "f": f,
                                 "min_class_kept": 0.0 if drop and cand else 0.3,
                                 "noise_active": active if cand else None,
                                 "noise_late_keep": (0.6 if f == 0.7 else 0.333) if cand else None,
                                 "noisy": noisy,
                                 "noise_statistic": None if noisy is None else 0.03})  # fmt: skip
    return rows


def test_arms_seeds_and_pruner(s28b):
    assert list(s28b.ARMS) == ["default", "floor50"] and list(range(200, 210)) == s28b.SEEDS
    p = s28b._pruner("TED_s26_noise_e0_floor50", 4500, 20, 0.7, 0, None)
    assert (p.noise_schedule, p.noise_min_keep, p.noise_active) == ("late_epoch0", 0.5, True)
    q = s28b._pruner("TED_s26_noise_e0_floor50", 4500, 20, 0.5, 0, None)
    assert q.noise_active is False and s28b._fields()["noise_active"] is False
    assert s28b._pruner("TED_s26", 4500, 20, 0.7, 0, None).noise_schedule == "off"


def test_rule_c1_to_c4(s28b):
    r = s28b.decide(_rows(s28b, lambda s: 2.0 + (s % 2)))["rule"]
    assert r["adopt"] is True and r["noise20_switched"] == 10 and r["clean_switched"] == 0
    r = s28b.decide(_rows(s28b, lambda s: 0.1 * (s % 3) - 0.1))["rule"]  # C1: CI not above 0
    assert r["adopt"] is False and not r["C1_noise20_f0.7_ci_above_0"]
    r = s28b.decide(_rows(s28b, lambda s: 2.0, gain5=lambda s: -0.4))["rule"]
    assert r["adopt"] is False and not r["C2_noise20_f0.5_identical_or_mean_ge_-0.3"]
    r = s28b.decide(_rows(s28b, lambda s: 2.0, gain5=lambda s: -0.2))["rule"]  # mean >= -0.3
    assert r["adopt"] is True
    r = s28b.decide(_rows(s28b, lambda s: 2.0, clean=lambda s: -0.5))["rule"]
    assert r["adopt"] is False and not r["C3_clean_identical_or_mean_ge_-0.3"]
    r = s28b.decide(_rows(s28b, lambda s: 2.0, drop=True))["rule"]
    assert r["adopt"] is False and not r["C4_no_class_drops"]
    rows = [x for x in _rows(s28b, lambda s: 2.0) if x["seed"] != 209 or x["arm"] != "floor50"]
    assert s28b.decide(rows)["rule"] == {"complete": False, "adopt": False}


def test_committed_decision_reproduces(s28b):
    d = ROOT / "docs/benchmarks/ted-prune-s28b"
    rows = [json.loads(x) for x in (d / "runs.jsonl").read_text().splitlines()]
    got = json.loads(json.dumps(s28b.decide(rows)))
    assert got == json.loads((d / "decision.json").read_text()) and got["rule"]["adopt"] is True


def test_test_read_summary_on_made_up_rows(script):
    s28b_test = script("s28b_test_read")

    def row(method, f, seed, acc, **kw):
        return {"setting": "noise20", "seed": seed, "f_target": f, "method": method,
                "metrics": {"accuracy": acc, "min_class_kept": 0.2}, **kw}  # fmt: skip

    grid = [row("full", 1.0, s, 80.0) for s in range(5)]
    grid += [row(m, f, s, 70.0) for m in ("InfoBatch", "random_dynamic") for f in (0.7, 0.5, 0.3)
             for s in range(5)]  # fmt: skip
    new = [row("TED_s28b", f, s, 70.0 + (2.0 + s % 2 if f == 0.7 else 0.0), arm="new")
           for f in (0.7, 0.5, 0.3) for s in range(5)]  # fmt: skip
    new += [row("TED_s26", f, s, 70.0, arm="old_rerun") for f in (0.7, 0.5, 0.3) for s in range(5)]
    new += [row("random_dynamic", f, s, 70.0, arm="rd_rerun") for f in (0.7, 0.5, 0.3)
            for s in range(5)]  # fmt: skip
    out = s28b_test.summarize(grid, new)
    goals = {g[0]: g[1] for g in out["goals"]}
    assert goals["noise20, f=0.7: TED ahead of InfoBatch (CI > 0)"] == "met"
    assert goals["noise20, f=0.5: TED ahead of InfoBatch (CI > 0)"] == "missed"
    assert goals["noise20, f=0.7: TED within 0.3 points of full data"] == "missed"
    assert out["per_f"]["0.5"]["new==old_rerun (seeds)"] == 5
    assert out["per_f"]["0.7"]["new==old_rerun (seeds)"] == 0


def test_test_read_summary_reads_one_setting(script):
    """`--setting clean`: the summary names the setting and ignores the other settings' rows."""
    s28b_test = script("s28b_test_read")

    def row(setting, method, f, seed, acc, **kw):
        return {"setting": setting, "seed": seed, "f_target": f, "method": method,
                "metrics": {"accuracy": acc, "min_class_kept": 0.2}, **kw}  # fmt: skip

    grid, new = [], []
    for st, base in (("clean", 80.0), ("noise20", 60.0)):
        grid += [row(st, "full", 1.0, s, base + 1.0) for s in range(5)]
        grid += [row(st, m, f, s, base) for m in ("InfoBatch", "random_dynamic")
                 for f in (0.7, 0.5, 0.3) for s in range(5)]  # fmt: skip
        new += [row(st, "TED_s28b", f, s, base + (0.5 + s % 2 if st == "clean" else -5.0),
                    arm="new") for f in (0.7, 0.5, 0.3) for s in range(5)]  # fmt: skip
        new += [row(st, "TED_s26", f, s, base, arm="old_rerun") for f in (0.7, 0.5, 0.3)
                for s in range(5)]  # fmt: skip
    out = s28b_test.summarize(grid, new, "clean")
    goals = {g[0]: g[1] for g in out["goals"]}
    assert out["setting"] == "clean" and not any(k.startswith("noise20") for k in goals)
    assert goals["clean, f=0.7: TED ahead of InfoBatch (CI > 0)"] == "met"  # noise20's -5 unseen
    assert goals["clean, f=0.7: TED within 0.3 points of full data"] == "met"  # 80.9 vs 81.0
    assert out["per_f"]["0.7"]["new==old_rerun (seeds)"] == 0
    with pytest.raises(SystemExit):
        s28b_test.main(["--out", "x", "--setting", "noise30"])
