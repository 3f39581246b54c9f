"""The session-29 lead's f = 0.6 check (`scripts/s29b_validation.py`, rule s29b): arms, cells,
the three plans' pruners at f = 0.6, and the check's read (harm, clean identity) on made-up rows.
No benchmark run is trained here."""

from __future__ import annotations

import pytest


@pytest.fixture
def s29b(script):
    return script("s29b_validation")


def _rows(s29b, gain, clean=0.0):
    rows = []
    for seed in s29b.SEEDS:
        for (setting, f), arms in s29b.CELLS.items():
            for arm in arms:
                acc = 60.0 + (seed % 4) + ((clean if setting == "clean" else gain(seed))
                                           if arm == "s29" else 0.0)  # fmt: skip
                rows.append({"arm": arm, "setting": setting, "seed": seed, "f_target": f,
                             "val_accuracy": acc, "f": f, "min_class_kept": 0.3,
                             "noisy": setting == "noise20", "noise_statistic": 0.03})  # fmt: skip
    return rows


def test_arms_cells_and_the_three_plans_at_f06(s29b):
    assert list(range(220, 230)) == s29b.SEEDS
    assert s29b.plan("late_rescore", "noise20", 0.6) and not s29b.plan("late_rescore", "clean", 0.6)
    assert not s29b.plan("s29", "noise20", 0.5)
    new = s29b._pruner("TED_s29", 5000, 20, 0.6, 0, None)
    old = s29b._pruner("TED_s28b", 5000, 20, 0.6, 0, None)
    late = s29b._pruner("TED_s29b_late045", 5000, 20, 0.6, 0, None)
    assert new.noise_norescore_keep == pytest.approx(0.5, abs=1e-3) and new.noise_active
    assert not old.noise_active and old.noise_norescore_keep is None
    assert late.noise_active and late.noise_norescore_keep is None
    assert late.noise_late_keep == pytest.approx(0.4667, abs=1e-3)
    assert s29b._fields() == {
        "noisy": None,
        "noise_statistic": None,
        "rescore_every": late.rescore_every,
    }


def test_the_check_reads_harm_and_clean_identity(s29b):
    r = s29b.decide(_rows(s29b, lambda s: 1.0 + 0.5 * (s % 2)))["rule"]
    assert r == {"complete": True, "harm": False, "clean_identical": True}
    r = s29b.decide(_rows(s29b, lambda s: -1.0 - 0.5 * (s % 2), clean=0.5))["rule"]
    assert r == {"complete": True, "harm": True, "clean_identical": False}
    rows = [x for x in _rows(s29b, lambda s: 1.0) if x["seed"] != 229 or x["arm"] != "InfoBatch"]
    assert s29b.decide(rows)["rule"] == {"complete": False}
