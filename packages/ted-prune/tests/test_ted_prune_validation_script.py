"""The validation driver (`scripts/validation.py`): rule s30's committed decision re-derived byte
for byte, `--resume` over every committed validation cache of sessions 27-30 re-running nothing,
and the driver's loop on a made-up study. No benchmark run is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
BENCH = ROOT / "docs" / "benchmarks"


@pytest.fixture
def val(script):
    return script("validation")


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_s30_decision_rederived_byte_identical(val):
    d = BENCH / "ted-prune-s30"
    res = val.STUDIES["s30"].decide(_rows(d / "runs.jsonl"), val.STUDIES["s30"].seeds)
    assert json.dumps(res, indent=1) == (d / "decision.json").read_text()
    assert res["rule"] == {"complete": True, "noise_gain": False, "clean_unaffected": True,
                           "adopt": False}  # fmt: skip


def test_s32_decision_rederived_byte_identical(val):
    """Rule s32's committed decision (validation runs + the wall-clock JSON): adopted."""
    d = BENCH / "ted-prune-s32"
    wall = json.loads((d / "wallclock" / "wallclock.json").read_text())
    res = val.decide_s32(_rows(d / "runs.jsonl"), wallclock=wall)
    assert json.dumps(res, indent=1) == (d / "decision.json").read_text()
    assert res["rule"]["adopt"] is True


def test_s30_decide_on_partial_rows_is_incomplete(val):
    rows = _rows(BENCH / "ted-prune-s30" / "runs.jsonl")
    assert val.decide_s30(rows[:-1])["rule"] == {"complete": False}


@pytest.mark.parametrize(
    "study",
    ["s27", "s27b", "s28", "s28b", "s29", "s29b", "s30", "s32", "s32/s32b", "s33/diagnosis"],
)
def test_resume_over_committed_validation_runs_reruns_nothing(study, val, tmp_path, monkeypatch):
    src = BENCH / f"ted-prune-{study}" / "runs.jsonl"
    rows = _rows(src)
    (tmp_path / "runs.jsonl").write_text(src.read_text())
    arms = {r["arm"]: r["method"] for r in rows}
    cells: dict = {}
    for r in rows:
        cells.setdefault((r["setting"], r["f_target"]), set()).add(r["arm"])
    st = val.Study(arms=arms, cells={k: tuple(v) for k, v in cells.items()},
                   seeds=sorted({r["seed"] for r in rows}), decide=lambda rows, seeds: {})  # fmt: skip

    def fail(*a, **k):
        raise AssertionError(f"run re-run: {a[0]}")

    monkeypatch.setattr(val, "train_mnist1d", fail)
    monkeypatch.setattr(val, "_splits", fail)
    settings = sorted({s for s, _ in cells})
    fs = sorted({f for _, f in cells})
    assert val.run(tmp_path, st, st.seeds, settings, fs, resume=True) == 0
    assert (tmp_path / "runs.jsonl").read_text() == src.read_text()


def test_loop_runs_only_missing_planned_runs_and_refuses_without_resume(val, tmp_path, monkeypatch):
    calls = []

    def train(method, train, val_, epochs, f, seed):
        calls.append((method, f, seed))
        val.bench_mnist1d._pruner(method, 1000, 20, f, seed, None)  # the study's factory
        return {"accuracy": 50.0 + seed, "f": f, "min_class_kept": 0.5, "sizes": [1],
                "seconds": 0.1}  # fmt: skip

    monkeypatch.setattr(val, "train_mnist1d", train)
    monkeypatch.setattr(val, "_splits", lambda *a: (None, None, None))
    st = val.Study(arms={"a": "TED_s29", "b": "random_dynamic"}, cells={("clean", 0.7): ("a", "b"),
                   ("clean", 0.5): ("a",)}, seeds=[1, 2], decide=lambda rows, seeds: {})  # fmt: skip
    assert val.run(tmp_path, st, [1], ["clean"], [0.7, 0.5], resume=False) == 0
    assert calls == [("TED_s29", 0.7, 1), ("random_dynamic", 0.7, 1), ("TED_s29", 0.5, 1)]
    with pytest.raises(SystemExit, match="--resume"):
        val.run(tmp_path, st, [1, 2], ["clean"], [0.7], resume=False)
    calls.clear()
    assert val.run(tmp_path, st, [1, 2], ["clean"], [0.7, 0.5], resume=True) == 0
    assert [c[2] for c in calls] == [2, 2, 2]
    assert len(_rows(tmp_path / "runs.jsonl")) == 6
    assert val.run(tmp_path, st, [3], ["clean"], [0.7], resume=True, time_limit=-1.0) == 3


def test_s30_norescore_arm_builds_the_plan_without_rescoring(val):
    st = val.STUDIES["s30"]
    p = st.pruner("TED_s30_norescore", 4500, 20, 0.7, 230, None)
    assert p._late_norescore and p._late.keep == pytest.approx(0.625, abs=1e-6)
    d = st.pruner("TED_s29", 4500, 20, 0.7, 230, None)
    assert not d._late_norescore and [d] == val._LAST


def _s32_rows(val, delta):
    return [{"arm": arm, "setting": "clean", "f_target": 0.7, "seed": s, "f": 0.7,
             "min_class_kept": 0.5, "val_accuracy": 80.0 + (s % 3) + (delta(s) if arm == "every4"
                                                                      else 0.0)}
            for s in val.STUDIES["s32"].seeds for arm in ("s29", "every4")]  # fmt: skip


def _wall(every4, s29=0.76, partial=0, seeds=(0, 1, 2)):
    arms = {"full": {"ratio": [1.0, 0.0], "ratio_ci": [1.0, 1.0]},
            "TED_s32_every4": {"ratio": [every4, 0.01], "ratio_ci": [every4 - 0.01, every4 + 0.01]},
            "TED_s29": {"ratio": [s29, 0.01], "ratio_ci": [s29 - 0.01, s29 + 0.01]}}  # fmt: skip
    return {"partial": partial, "summary": {"seeds": list(seeds), "arms": arms, "paired": {}}}


def test_s32_rule_needs_both_criteria(val):
    assert val.STUDIES["s32"].seeds == [240, 241, 242, 243, 244]  # fresh: s30 used 230-239
    small = _s32_rows(val, lambda s: -0.1 + 0.05 * (s % 2))
    r = val.decide_s32(small, wallclock=_wall(0.74))["rule"]
    assert r["a_ci_lower_above_-0.3"] and r["b_ratio_at_most_0.75"] and r["adopt"] is True
    assert r["wallclock_ratio"] == {"TED_s32_every4": [0.74, 0.01], "TED_s29": [0.76, 0.01]}
    assert val.decide_s32(small, wallclock=_wall(0.751))["rule"]["adopt"] is False
    assert val.decide_s32(small)["rule"]["adopt"] is False  # no wall-clock read: no adoption
    partial_wall = val.decide_s32(small, wallclock=_wall(0.70, partial=1))["rule"]
    assert "b_ratio_at_most_0.75" not in partial_wall and partial_wall["adopt"] is False
    loses = val.decide_s32(_s32_rows(val, lambda s: -0.2 - 0.3 * (s % 2)), wallclock=_wall(0.7))
    assert loses["rule"]["a_ci_lower_above_-0.3"] is False and loses["rule"]["adopt"] is False
    assert loses["cells"]["clean f=0.7"]["every4-s29"]["mean"] == pytest.approx(-0.32)
    incomplete = val.decide_s32(small[:-1], wallclock=_wall(0.7))["rule"]
    assert incomplete["complete"] is False and incomplete["adopt"] is False


def test_s32_arms_build_the_default_and_the_candidate(val):
    st = val.STUDIES["s32"]
    assert st.plan("every4", "clean", 0.7) and not st.plan("every4", "noise20", 0.7)
    c = st.pruner("TED_s32_every4", 4500, 20, 0.7, 240, None)
    assert st.fields(c) == {"keep": pytest.approx(c.schedule.keep), "score_every": 4}
    assert st.fields(st.pruner("TED_s29", 4500, 20, 0.7, 240, None))["score_every"] == 1


def _s32b_rows(val, delta, drop=0):
    rows = [{"arm": arm, "setting": st, "f_target": f, "seed": s, "f": f, "min_class_kept": 0.5,
             "val_accuracy": 80.0 + (s % 3) + (delta(st, f, s) if arm == "every4" else 0.0)}
            for (st, f) in val.S32B_CELLS for s in val.STUDIES["s32b"].seeds
            for arm in ("s29", "every4")]  # fmt: skip
    return rows[: len(rows) - drop]


def test_s32b_harm_check_reverts_only_on_a_cell_shown_worse(val):
    """Rule s32b: eight cells (the grid less clean f = 0.7), fresh seeds 245-249; the default is
    kept iff complete and no cell's CI of every4 - s29 lies wholly below 0."""
    st = val.STUDIES["s32b"]
    assert st.seeds == [245, 246, 247, 248, 249] and len(val.S32B_CELLS) == 8
    assert ("clean", 0.7) not in val.S32B_CELLS and st.plan("every4", "noise20", 0.5)
    noisy = val.decide_s32b(_s32b_rows(val, lambda st, f, s: (-1.0) ** s))["rule"]
    assert noisy == {"complete": True, "harm_cells": [], "keep_default": True}
    worse = val.decide_s32b(_s32b_rows(val, lambda st, f, s: -0.5 - 0.1 * (s % 2)
                                       if (st, f) == ("noise20", 0.5) else 0.0))["rule"]  # fmt: skip
    assert worse["harm_cells"] == ["noise20 f=0.5"] and worse["keep_default"] is False
    partial = val.decide_s32b(_s32b_rows(val, lambda st, f, s: 0.0, drop=1))["rule"]
    assert partial["complete"] is False and partial["keep_default"] is False


def test_s32b_decision_rederived_byte_identical(val):
    """Rule s32b's committed decision: five of the eight cells show harm, so the default reverts."""
    d = BENCH / "ted-prune-s32" / "s32b"
    res = val.decide_s32b(_rows(d / "runs.jsonl"))
    assert json.dumps(res, indent=1) == (d / "decision.json").read_text()
    assert res["rule"]["complete"] and res["rule"]["keep_default"] is False
    assert res["rule"]["harm_cells"] == ["clean f=0.3", "dup30 f=0.5", "noise20 f=0.3",
                                         "noise20 f=0.5", "noise20 f=0.7"]  # fmt: skip


def _s33_rows(val, acc):
    """Made-up rows of diagnosis s33: `acc(arm, f, seed)` per planned (arm, f, seed)."""
    return [{"arm": arm, "setting": "clean", "f_target": f, "seed": s, "f": f,
             "min_class_kept": 1.0, "val_accuracy": acc(arm, f, s)}
            for s in val.STUDIES["s33"].seeds for (_, f), arms in val.S33_CELLS.items()
            for arm in arms]  # fmt: skip


def test_s33_plans_full_once_and_three_arms_per_fraction(val):
    st = val.STUDIES["s33"]
    assert st.seeds == [245, 246, 247, 248, 249]  # USED (rule s32b's): a diagnosis, no rule
    assert st.plan("full", "clean", 1.0) and not st.plan("full", "clean", 0.7)
    for f in (0.3, 0.5, 0.7):
        assert all(st.plan(a, "clean", f) for a in ("epoch_matched", "random_dynamic", "s29"))
    assert not st.plan("s29", "noise20", 0.7)
    assert st.pruner("epoch_matched", 3500, 14, 0.7, 245, None).epochs == 14  # full data, E'


def test_s33_diagnosis_pairs_each_arm_with_full_and_the_control(val):
    base = {"full": 90.0, "epoch_matched": 88.0, "random_dynamic": 87.5, "s29": 87.0}
    rows = _s33_rows(val, lambda a, f, s: base[a] - (1 - f) * (a != "full") + 0.1 * (s % 2))
    ref = [{**r, "arm": "s29"} for r in rows if r["arm"] == "s29" and r["f_target"] < 0.7]
    out = val.diagnose_s33(rows, reference=ref)
    c = out["cells"]["clean f=0.7"]
    assert c["n"] == 5 and c["accuracy_mean_std"]["full"][0] == pytest.approx(90.06)
    assert c["epoch_matched-full"]["mean"] == pytest.approx(-2.3)
    assert c["s29-epoch_matched"]["mean"] == pytest.approx(-1.0)
    assert c["s29-random_dynamic"]["mean"] == pytest.approx(-0.5)
    assert c["epoch_matched-full"]["ci_lower_above_-0.3"] is False
    assert out["cells"]["clean f=0.3"]["s29-full"]["mean"] == pytest.approx(-3.7)
    assert out["reproduces_s32b"] == {"n": 10, "all_equal": True}
    ref[0] = {**ref[0], "val_accuracy": ref[0]["val_accuracy"] + 0.2}
    assert val.diagnose_s33(rows, reference=ref)["reproduces_s32b"]["all_equal"] is False
    no_full = [r for r in rows if not (r["arm"] == "full" and r["seed"] == 245)]
    assert val.diagnose_s33(no_full, reference=[])["cells"]["clean f=0.5"]["n"] == 4


def test_s33_diagnosis_rederived_byte_identical(val):
    """Diagnosis s33's committed summary (used seeds 245-249): the epoch-matched control is itself
    ~3.5 points behind full data at f = 0.7, and the default's re-runs reproduce rule s32b's rows."""
    d = BENCH / "ted-prune-s33" / "diagnosis"
    res = val.diagnose_s33(_rows(d / "runs.jsonl"))
    assert json.dumps(res, indent=1) == (d / "decision.json").read_text()
    assert res["reproduces_s32b"] == {"n": 10, "all_equal": True}
    c = res["cells"]["clean f=0.7"]
    assert c["n"] == 5 and c["epoch_matched-full"]["ci95"][1] < -0.3
    assert c["s29-full"]["ci_lower_above_-0.3"] is False
