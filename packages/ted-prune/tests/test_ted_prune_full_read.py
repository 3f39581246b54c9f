"""Rule s34's driver (`scripts/full_read.py`): the exact reproduction check, the run order (the
clean f = 0.7 cell first), the rule's verdicts on made-up rows, the gate that refuses a read
without a reproduced `repro.json`, bad arguments, and the committed result re-derived byte for
byte. No benchmark run is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
S34 = ROOT / "docs" / "benchmarks" / "ted-prune-s34"


@pytest.fixture
def fr(script):
    return script("full_read")


def _row(fr, method, setting, f, seed, acc, mck=0.5, fa=None):
    return {"stage": "test", "setting": setting, "seed": seed, "method": method, "f_target": f,
            "metrics": {"accuracy": acc, "f": f if fa is None else fa, "seconds": 1.0,
                        "min_class_kept": mck}, "config": dict(fr.CONFIG)}  # fmt: skip


def _grid(fr, full=97.0, base=96.5):
    rows = []
    for s in fr.SEEDS:
        for st in ("clean", "noise20"):
            rows.append(_row(fr, "full", st, 1.0, s, full + 0.1 * s))
            for f in (0.7, 0.5, 0.3):
                for m in ("TED", "random_dynamic", "InfoBatch", "EL2N"):
                    rows.append(_row(fr, m, st, f, s, base + 0.1 * s))
    return rows


def _read(fr, acc_of, mck=0.5):
    return [_row(fr, m, st, f, s, acc_of(m, st, f, s), mck) for st, f, s, m in fr.todo([])]


def test_compare_units_is_exact(fr):
    a = {"accuracy": 97.58, "f": 0.699991452991453, "min_class_kept": 0.6051179126944305}
    assert fr.compare_units(a, dict(a))["equal"] is True
    b = dict(a, f=0.699991452991453 + 1e-15)
    res = fr.compare_units(a, b)
    assert res["equal"] is False and res["fields"]["f"]["now"] == b["f"]


def test_plan_order_clean_07_first_and_resume_skips_done(fr):
    order = fr.todo([])
    assert len(order) == 25
    assert order[:10] == [
        ("clean", 0.7, s, m) for s in fr.SEEDS for m in ("TED_s29", "epoch_matched")
    ]
    assert {o[:2] for o in order[10:]} == {("clean", 0.5), ("noise20", 0.5), ("noise20", 0.3)}
    done = [_row(fr, "TED_s29", "clean", 0.7, 0, 97.0)]
    assert fr.todo(done)[0] == ("clean", 0.7, 0, "epoch_matched") and len(fr.todo(done)) == 24


def test_grid_row_lookup_uses_config(fr):
    grid = _grid(fr)
    assert fr.grid_row(grid, "full", "clean", 1.0, 2)["metrics"]["accuracy"] == pytest.approx(97.2)
    other = [dict(r, config={"num_samples": 5000, "epochs": 20, "lr": 1e-2}) for r in grid]
    with pytest.raises(KeyError, match="no grid row"):
        fr.grid_row(other, "full", "clean", 1.0, 2)


def test_decide_verdicts_on_made_up_rows(fr):
    grid = _grid(fr)  # full 97.0 + 0.1 s, every baseline 96.5 + 0.1 s

    def acc(m, st, f, s):  # the default 0.2 below full at clean 0.7 (within 0.3), else +1 / -1
        if m == "epoch_matched":
            return 96.0 + 0.1 * s
        if (st, f) == ("clean", 0.7):
            return 96.8 + 0.1 * s + (0.01 if s % 2 else -0.01)
        return 96.5 + 0.1 * s + (1.0 if st == "clean" else -1.0)

    res = fr.decide(_read(fr, acc), grid)
    g = res["goals"]
    assert res["complete"] is True
    within = g["clean f=0.7: within 0.3 of full data"]
    assert within["verdict"] == "met" and within["ci_lower_above_-0.3"] is True
    assert within["difference"]["mean"] == pytest.approx(-0.2 - 0.002, abs=1e-9)
    assert g["clean f=0.7: ahead of random-dynamic"]["verdict"] == "met"
    assert g["clean f=0.5: ahead of InfoBatch"]["verdict"] == "met"
    assert g["clean f=0.5: ahead of EL2N"]["verdict"] == "met"
    assert g["noise20 f=0.5: ahead of InfoBatch"]["verdict"] == "missed"
    assert g["noise20 f=0.3: ahead of InfoBatch"]["verdict"] == "missed"
    assert g["no class drops out"] == {
        "smallest_kept_class_fraction": 0.5,
        "runs": 20,
        "verdict": "met",
    }
    ctl = res["cells"]["clean f=0.7"]["control"]
    assert ctl["epoch_matched-full"]["mean"] == pytest.approx(-1.0)
    assert ctl["TED_s29-epoch_matched"]["mean"] == pytest.approx(0.798)
    assert "control" not in res["cells"]["clean f=0.5"]
    md = fr.markdown(res)
    assert "| clean f=0.7: within 0.3 of full data | met |" in md


def test_decide_gap_beyond_0_3_and_a_dropped_class_miss(fr):
    grid = _grid(fr)
    rows = _read(fr, lambda m, st, f, s: 96.6 + 0.1 * s, mck=0.1)
    rows[-1]["metrics"]["min_class_kept"] = 0.0
    res = fr.decide(rows, grid)
    assert res["goals"]["clean f=0.7: within 0.3 of full data"]["verdict"] == "missed"
    assert res["goals"]["no class drops out"]["verdict"] == "missed"


def test_decide_partial_gives_no_verdict(fr):
    rows = _read(fr, lambda m, st, f, s: 99.0)[:3]  # clean 0.7: seeds 0 (both arms) and 1 (TED)
    res = fr.decide(rows, _grid(fr))
    assert res["complete"] is False
    assert res["goals"]["clean f=0.7: within 0.3 of full data"]["verdict"] == "partial"
    assert res["goals"]["clean f=0.5: ahead of InfoBatch"]["verdict"] == "not run"
    assert res["goals"]["no class drops out"]["verdict"] == "partial"


def test_run_refuses_without_reproduced_units(fr, tmp_path):
    with pytest.raises(SystemExit, match="repro.json"):
        fr.run(tmp_path, resume=True)
    (tmp_path / "repro.json").write_text(json.dumps({"all_equal": False, "units": []}))
    with pytest.raises(SystemExit, match="not reproduced"):
        fr.run(tmp_path, resume=True)


@pytest.mark.parametrize("bad", [0, -5.0])
def test_run_rejects_bad_time_limit(fr, tmp_path, bad):
    with pytest.raises(ValueError, match="time_limit"):
        fr.run(tmp_path, resume=True, time_limit=bad)


def test_committed_result_rederived_byte_identical(fr):
    if not (S34 / "result.json").exists():
        pytest.skip("rule s34's result not committed yet")
    res = fr.decide(fr.load_rows(S34 / "runs.jsonl"), fr.load_rows(fr.GRID))
    assert json.dumps(res, indent=1) + "\n" == (S34 / "result.json").read_text()
    assert fr.markdown(res) == (S34 / "RESULT.md").read_text()
    rep = json.loads((S34 / "repro.json").read_text())
    assert rep["all_equal"] is True and len(rep["units"]) == len(fr.REPRO_UNITS)
