"""Session 28's validation script (`scripts/s28_validation.py`): its arms, its pruner, s27b's rule
applied to its candidate on made-up rows, and the committed decision recomputed from the
committed runs. No benchmark run is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def s28(script):
    return script("s28_validation")


def _rows(s28, gain_noise, gain_noise5=None):
    rows = []
    for seed in s28.SEEDS:
        for setting in ("clean", "noise20"):
            for f in (0.7, 0.5):
                for arm in s28.ARMS:
                    acc = 80.0 + (seed % 3)
                    if arm == "noise_e0" and setting == "noise20":
                        g = gain_noise if f == 0.7 or gain_noise5 is None else gain_noise5
                        acc += g(seed)
                    noisy = setting == "noise20" if arm == "noise_e0" else None
                    rows.append({"arm": arm, "setting": setting, "seed": seed, "f_target": f,
                                 "val_accuracy": acc, "f": f, "min_class_kept": 0.3,
                                 "noisy": noisy, "noise_statistic": 0.04 if noisy else 0.01})  # fmt: skip
    return rows


def test_arms_seeds_and_pruner(s28):
    assert list(s28.ARMS) == ["default", "noise_e0", "random_dynamic", "InfoBatch"]
    assert list(range(190, 200)) == s28.SEEDS and s28.CANDIDATE == "noise_e0"
    p = s28._pruner("TED_s26_noise_e0", 4500, 20, 0.7, 0, None)
    assert p.noise_schedule == "late_epoch0" and p.noise_threshold == 0.025
    assert s28.sv._LAST[0] is p
    assert s28._pruner("TED_s26", 4500, 20, 0.7, 0, None).noise_schedule == "off"


def test_rule_adopts_a_sure_noise_gain_and_rejects_a_loss_at_f05(s28):
    r = s28.decide(_rows(s28, lambda s: 2.0 + (s % 2)))["rule"]
    assert r["adopt"] is True and r["noise20_detected"] == 20 and r["clean_false_positives"] == 0
    r = s28.decide(_rows(s28, lambda s: 2.0 + (s % 2), lambda s: -1.0))["rule"]
    assert r["adopt"] is False and r["B1_noise20_f0.7_ci_above_0"]
    assert not r["B2_noise20_f0.5_mean_above_0"]


def test_committed_decision_reproduces(s28):
    d = ROOT / "docs/benchmarks/ted-prune-s28"
    rows = [json.loads(x) for x in (d / "runs.jsonl").read_text().splitlines()]
    assert json.loads(json.dumps(s28.decide(rows))) == json.loads((d / "decision.json").read_text())
