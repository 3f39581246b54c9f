"""Session 27b's validation script (`scripts/s27b_validation.py`): its arms and its rule on made-up
rows. No benchmark run is trained here."""

from __future__ import annotations

import pytest


@pytest.fixture
def sv(script):
    return script("s27b_validation")


def _rows(sv, gain_noise, clean_delta, noisy_clean=False):
    rows = []
    for seed in sv.SEEDS:
        for setting in sv.SETTINGS:
            for f in sv.FS:
                for arm in sv.ARMS:
                    acc = 80.0 + (seed % 3)
                    if arm == "noise_late":
                        acc += gain_noise(seed) if setting == "noise20" else clean_delta(seed)
                    noisy = setting == "noise20" or noisy_clean if arm == "noise_late" else None
                    rows.append({"arm": arm, "setting": setting, "seed": seed, "f_target": f,
                                 "val_accuracy": acc, "f": f, "min_class_kept": 0.3,
                                 "noisy": noisy, "noise_statistic": 0.3 if noisy else 0.1})  # fmt: skip
    return rows


def test_arms_and_seeds(sv):
    assert list(sv.ARMS) == ["default", "noise_late", "random_dynamic", "InfoBatch"]
    assert list(range(180, 190)) == sv.SEEDS and sv.FS == [0.7, 0.5]
    p = sv._pruner("TED_s26_noise_late", 3500, 20, 0.7, 0, None)
    assert p.noise_schedule == "late" and sv._LAST[0] is p
    assert sv._pruner("TED_s26", 3500, 20, 0.7, 0, None).noise_schedule == "off"


def test_identical_clean_runs_pass_b3_but_not_its_literal_reading(sv):
    res = sv.decide(_rows(sv, lambda s: 2.0 + (s % 2), lambda s: 0.0))
    r = res["rule"]
    assert r["adopt"] is True and r["B3_literal_ci_upper_above_0"] is False
    assert r["clean_false_positives"] == 0 and r["noise20_detected"] == 20
    assert res["cells"]["noise20 f=0.7"]["detector_says_noisy"] == 10


def test_a_clean_loss_or_an_unsure_noise_gain_is_not_adopted(sv):
    assert not sv.decide(_rows(sv, lambda s: 2.0, lambda s: -1.0 + (s % 2)))["rule"]["adopt"]
    assert not sv.decide(_rows(sv, lambda s: 3.0 * (s % 2) - 1.0, lambda s: 0.0))["rule"]["adopt"]
    assert not sv.decide(_rows(sv, lambda s: 2.0, lambda s: 0.0)[:-1])["rule"]["adopt"]
