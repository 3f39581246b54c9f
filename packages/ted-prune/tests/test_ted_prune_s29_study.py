"""Session 29's scripts (`scripts/s29_validation.py`, `scripts/s29_explore.py`): arms, cells,
pruners, rule s29 (D1-D4) on made-up rows; the `plan` filter of `s27_validation.main`'s loop.
No benchmark run is trained here."""

from __future__ import annotations

import sys

import pytest


@pytest.fixture
def s29(script):
    return script("s29_validation")


def _rows(s29, gain5, clean=lambda s: 0.0, drop=False):
    rows = []
    for seed in s29.SEEDS:
        for (setting, f), arms in s29.CELLS.items():
            for arm in arms:
                acc = 60.0 + (seed % 4)
                cand = arm == s29.CANDIDATE
                if cand:
                    acc += (clean if setting == "clean" else gain5)(seed)
                noisy = (setting == "noise20") if cand else None
                rows.append({"arm": arm, "setting": setting, "seed": seed, "f_target": f,
                             "val_accuracy": acc, "f": f,
                             "min_class_kept": 0.0 if drop and cand else 0.3,
                             "noisy": noisy, "noise_statistic": 0.03 if cand else None,
                             "rescore_every": (0 if noisy else 5) if cand else None})  # fmt: skip
    return rows


def test_arms_cells_seeds_and_pruner(s29):
    assert list(range(210, 220)) == s29.SEEDS and s29.HARM_CI == 1.0
    assert s29.plan("InfoBatch", "noise20", 0.5) and not s29.plan("InfoBatch", "clean", 0.5)
    assert not s29.plan("default", "clean", 0.7) and not s29.plan(s29.CANDIDATE, "noise20", 0.7)
    assert s29.plan("thin25", "noise20", 0.5) and not s29.plan("thin25", "clean", 0.5)
    p = s29._pruner("TED_s28b_lowre0", 3500, 20, 0.5, 0, None)
    assert p._late_norescore is True and p.noise_norescore_min_keep == s29.MIN_KEEP0 == 0.35
    assert s29._fields()["noise_norescore_keep"] == pytest.approx(0.375)
    t = s29._pruner("TED_s28b_thin25", 3500, 20, 0.5, 0, None)
    assert t.noise_thin_active is True and t.noise_tail_rate == s29.RATE == 0.25
    q = s29._pruner("TED_s28b", 4500, 20, 0.5, 0, None)
    assert q.noise_thin_active is False and q.noise_schedule == "late_epoch0"


def test_rule_d1_to_d4(s29):
    r = s29.decide(_rows(s29, lambda s: 1.0 + 0.5 * (s % 2)))["rule"]
    assert r["adopt"] is True and r["noise20_f0.5_switched"] == 10 and r["clean_switched"] == 0
    r = s29.decide(_rows(s29, lambda s: 0.5 * (s % 3) - 0.4))["rule"]  # D1: CI reaches below 0
    assert r["adopt"] is False and not r["D1_noise20_f0.5_ci_above_0"]
    r = s29.decide(_rows(s29, lambda s: 1.0, clean=lambda s: -1.5 if s < 213 else 0.0))["rule"]
    assert r["D2_clean_f0.5_no_harm"] is True  # harm mean 0.45, CI upper end 0.9 < 1.0
    r = s29.decide(_rows(s29, lambda s: 1.0, clean=lambda s: -3.0 if s < 214 else 0.0))["rule"]
    assert r["adopt"] is False and not r["D2_clean_f0.5_no_harm"]
    r = s29.decide(_rows(s29, lambda s: 1.0, drop=True))["rule"]
    assert r["adopt"] is False and not r["D4_no_class_drops"]
    rows = [x for x in _rows(s29, lambda s: 1.0) if x["seed"] != 219 or x["arm"] != "InfoBatch"]
    assert s29.decide(rows)["rule"] == {"complete": False, "adopt": False}
    cell = s29.decide(_rows(s29, lambda s: 1.0))["cells"]["noise20 f=0.5"]
    assert cell["lowre0-InfoBatch"]["mean"] == pytest.approx(1.0) and cell["n"] == 10
    assert cell["thin25-default"]["all_zero"] is True


def test_the_loop_runs_only_the_planned_cells(s29, tmp_path, monkeypatch):
    loop = sys.modules["s27_validation"]
    ran = []

    def fake(method, train, val, epochs, f, seed):
        ran.append((method, f, seed))
        return {"accuracy": 60.0, "f": f, "min_class_kept": 0.3, "sizes": [1], "seconds": 0.0}

    monkeypatch.setattr(loop, "train_mnist1d", fake)
    monkeypatch.setattr(loop, "_splits", lambda *a: (None, None, None))
    monkeypatch.setattr(s29, "_fields", dict)
    s29.main(["--out", str(tmp_path), "--seeds", "210"])
    want = [(s29.ARMS[a], f, 210) for (st, f), arms in s29.CELLS.items() for a in arms]
    assert sorted(ran) == sorted(want) and len(ran) == 6


def test_explore_arms(script):
    s29_explore = script("s29_explore")

    assert list(range(170, 180)) == s29_explore.SEEDS
    p = s29_explore._pruner("s29x_late_thin25", 4500, 20, 0.5, 0, None)
    assert (p.schedule.warmup, p.schedule.ramp, p.schedule.anneal) == (1, 0, 3)
    assert p.tail_rate == 0.25 and p.noise_schedule == "off"
    assert s29_explore._pruner("s29x_default", 4500, 20, 0.5, 0, None).tail_rate == 1.0


def test_test_read_script_names_its_arms_and_report(monkeypatch, tmp_path, script):
    """`s29_test_read.py` (pending, not run in session 29): `s28b_test_read`'s machinery with
    new = TED_s29, old = TED_s28b; the report is `s29-test.md`."""
    base = script("s28b_test_read")

    monkeypatch.setattr(base, "ARMS", dict(base.ARMS))
    monkeypatch.setattr(base, "STUDY", base.STUDY)
    import s29_test_read  # noqa: F401  (sets base.ARMS / base.STUDY)

    if base.STUDY != "s29":  # already imported by an earlier test: set them again
        import importlib

        importlib.reload(s29_test_read)
    assert base.ARMS == {"new": "TED_s29", "old_rerun": "TED_s28b", "rd_rerun": "random_dynamic"}
    base.write(tmp_path, {"setting": "noise20", "per_f": {}, "goals": []}, 0)
    text = (tmp_path / "s29-test.md").read_text()
    assert "TED = the s29 default" in text and "TED_s28b" in text
