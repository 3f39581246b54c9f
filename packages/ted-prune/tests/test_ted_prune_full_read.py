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


@pytest.mark.parametrize("plan", ["paired", "noisy07"])
def test_committed_one_machine_result_rederived_byte_identical(fr, plan):
    """Rules s34b's and s34c's committed results (`ted-prune-s34/paired/`, `.../noisy07/`) are what
    `decide` derives from their committed runs."""
    d = S34 / plan
    res = fr.decide(fr.load_rows(d / "runs.jsonl"), fr.load_rows(fr.GRID), plan=plan)
    assert res["complete"] is True
    assert json.dumps(res, indent=1) + "\n" == (d / "result.json").read_text()
    assert fr.markdown(res) == (d / "RESULT.md").read_text()


def test_paired_plan_order_and_full_at_1(fr):
    order = fr.todo([], plan="paired")
    assert len(order) == 5 * (4 + 3 + 2 + 2)
    assert order[:4] == [("clean", 1.0, 0, "full"), ("clean", 0.7, 0, "TED_s29"),
                         ("clean", 0.7, 0, "random_dynamic"), ("clean", 0.7, 0, "epoch_matched")]  # fmt: skip
    assert {o[:2] for o in order[:20]} == {("clean", 1.0), ("clean", 0.7)}
    assert order[-1] == ("noise20", 0.3, 4, "InfoBatch")


def test_paired_decide_ignores_the_grid(fr):
    def acc(m, st, f, s):
        return {"full": 98.0, "TED_s29": 97.9, "epoch_matched": 97.0}.get(m, 97.0) + 0.1 * s

    rows = [_row(fr, m, st, f, s, acc(m, st, f, s)) for st, f, s, m in fr.todo([], plan="paired")]
    grid = _grid(fr, full=90.0, base=99.0)  # would flip every verdict if it were read
    res = fr.decide(rows, grid, plan="paired")
    g = res["goals"]
    assert res["complete"] is True and res["plan"] == "paired"
    assert g["clean f=0.7: within 0.3 of full data"]["difference"]["mean"] == pytest.approx(-0.1)
    assert g["clean f=0.7: within 0.3 of full data"]["verdict"] == "met"
    assert g["clean f=0.5: ahead of InfoBatch"]["verdict"] == "met"
    assert g["no class drops out"]["runs"] == 20
    cell = res["cells"]["clean f=0.7"]
    assert "TED_s29-TED(grid)" not in cell
    assert cell["control"]["epoch_matched-full"]["mean"] == pytest.approx(-1.0)
    assert "# Rule s34b: result" in fr.markdown(res)
    # the same rows read by the grid plan: the grid's baselines count (and its runs are missing)
    assert fr.decide(rows, grid)["goals"]["clean f=0.5: ahead of InfoBatch"]["verdict"] == "missed"


def test_bad_plan_raises(fr, tmp_path):
    with pytest.raises(ValueError, match="plan must be one of"):
        fr.todo([], plan="fresh")
    with pytest.raises(TypeError, match="plan must be a str"):
        fr.decide([], [], plan=1)
    with pytest.raises(ValueError, match="plan must be one of"):
        fr.run(tmp_path, resume=True, plan="all")


@pytest.mark.parametrize("plan", ["paired", "noisy07"])
def test_one_machine_plans_need_no_repro_gate(fr, tmp_path, monkeypatch, plan):
    """Plans "paired" and "noisy07" start without `repro.json`, record the machine, and stop at a
    time limit before training anything when the clock has already run out."""
    clock = iter([0.0, 1e9, 1e9, 1e9])
    monkeypatch.setattr(fr.time, "perf_counter", lambda: next(clock))
    assert fr.run(tmp_path, resume=True, time_limit=1.0, plan=plan) == 3
    env = fr.load_rows(tmp_path / "machine.jsonl")
    assert len(env) == 1 and {"utc", "torch", "platform"} <= set(env[0])
    assert not (tmp_path / "runs.jsonl").exists()


def test_committed_gate_found_the_grid_drifted(fr):
    """Rule s34 stopped at its gate: the grid's full-data and random-dynamic units (clean, seed 0)
    re-ran with the same sampling (achieved f, smallest kept class) but other accuracies."""
    rep = json.loads((S34 / "repro.json").read_text())
    assert rep["all_equal"] is False
    for u in rep["units"]:
        assert u["fields"]["f"]["cached"] == u["fields"]["f"]["now"]
        assert u["fields"]["min_class_kept"]["cached"] == u["fields"]["min_class_kept"]["now"]
        assert u["fields"]["accuracy"]["cached"] != u["fields"]["accuracy"]["now"]


def test_committed_old_code_rerun_matches_today_not_the_grid(fr):
    """The grid's own code (1517d37) re-run on today's machine gives today's random-dynamic value,
    not the grid's: the drift is the machine's (`repro_old_code.json`)."""
    old = json.loads((S34 / "repro_old_code.json").read_text())
    today = {u["method"]: u for u in json.loads((S34 / "repro.json").read_text())["units"]}
    rd = today["random_dynamic"]["fields"]
    assert old["now"]["accuracy"] == rd["accuracy"]["now"] != rd["accuracy"]["cached"]
    assert old["grid_cached"]["accuracy"] == rd["accuracy"]["cached"]
    assert old["now"]["f"] == rd["f"]["cached"]


def test_noisy07_plan_order_and_full_at_1(fr):
    """Rule s34c: the noise20 f = 0.7 cell only, seed by seed, `full` at f = 1.0 on noise20."""
    order = fr.todo([], plan="noisy07")
    assert len(order) == 20
    assert order[:4] == [("noise20", 1.0, 0, "full"), ("noise20", 0.7, 0, "TED_s29"),
                         ("noise20", 0.7, 0, "random_dynamic"),
                         ("noise20", 0.7, 0, "epoch_matched")]  # fmt: skip
    assert {o[0] for o in order} == {"noise20"}
    assert order[-1] == ("noise20", 0.7, 4, "epoch_matched")
    done = [_row(fr, "full", "noise20", 1.0, 0, 96.0)]
    assert len(fr.todo(done, plan="noisy07")) == 19
    # a clean row (rule s34b's) does not count as done here
    assert len(fr.todo([_row(fr, "full", "clean", 1.0, 0, 96.0)], plan="noisy07")) == 20


def _noisy07_rows(fr, acc):
    return [_row(fr, m, st, f, s, acc(m, s)) for st, f, s, m in fr.todo([], plan="noisy07")]


def test_noisy07_decide_verdicts_on_made_up_rows(fr):
    def acc(m, s):  # the default 0.25 below full, 0.5 ahead of random-dynamic (+- jitter)
        base = {"full": 96.0, "TED_s29": 95.75, "random_dynamic": 95.25, "epoch_matched": 95.0}
        return base[m] + 0.1 * s + (0.01 if s % 2 and m == "TED_s29" else 0.0)

    rows = _noisy07_rows(fr, acc)
    # clean rows (and a grid) that would flip every verdict if they were read
    clean = [_row(fr, m, "clean", 1.0 if m == "full" else 0.7, s, 90.0 if m == "TED_s29" else 99.0)
             for s in fr.SEEDS for m in ("full", "TED_s29", "random_dynamic")]  # fmt: skip
    res = fr.decide(rows + clean, _grid(fr, full=99.0, base=99.0), plan="noisy07")
    g = res["goals"]
    assert res["plan"] == "noisy07" and res["complete"] is True
    assert set(g) == {"noise20 f=0.7: within 0.3 of full data",
                      "noise20 f=0.7: ahead of random-dynamic", "no class drops out"}  # fmt: skip
    within = g["noise20 f=0.7: within 0.3 of full data"]
    assert within["difference"]["mean"] == pytest.approx(-0.25 + 0.004, abs=1e-9)
    assert within["verdict"] == "met" and within["ci_lower_above_-0.3"] is True
    ahead = g["noise20 f=0.7: ahead of random-dynamic"]
    assert ahead["verdict"] == "met" and ahead["difference"]["mean"] == pytest.approx(0.504)
    # only the plan's own TED_s29 runs count for "no class drops out" (not the clean ones)
    assert g["no class drops out"]["verdict"] == "met" and g["no class drops out"]["runs"] == 5
    cell = res["cells"]["noise20 f=0.7"]
    assert set(res["cells"]) == {"noise20 f=0.7"}
    assert cell["arms"]["full"]["accuracy_mean_std"][0] == pytest.approx(96.2)
    ctl = cell["control"]
    assert ctl["epoch_matched-full"]["mean"] == pytest.approx(-1.0)  # noise20's own full arm
    assert ctl["TED_s29-full"]["mean"] == pytest.approx(-0.246)
    md = fr.markdown(res)
    assert md.startswith("# Rule s34c: result") and "no grid row read" in md
    assert "| noise20 f=0.7: within 0.3 of full data | met |" in md


def test_noisy07_decide_misses_and_partial(fr):
    def acc(m, s):  # the default 0.4 below full and level with random-dynamic
        return {"full": 96.0, "epoch_matched": 95.0}.get(m, 95.6) + 0.1 * s

    rows = _noisy07_rows(fr, acc)
    rows[1]["metrics"]["min_class_kept"] = 0.0  # seed 0's TED_s29 run loses a class
    g = fr.decide(rows, [], plan="noisy07")["goals"]
    assert g["noise20 f=0.7: within 0.3 of full data"]["verdict"] == "missed"
    assert g["noise20 f=0.7: within 0.3 of full data"]["ci_lower_above_-0.3"] is False
    assert g["noise20 f=0.7: ahead of random-dynamic"]["verdict"] == "missed"
    assert g["no class drops out"]["verdict"] == "missed"
    part = fr.decide(rows[:7], [], plan="noisy07")  # seeds 0 (all arms) and 1 (full, TED_s29, rd)
    assert part["complete"] is False
    assert part["goals"]["noise20 f=0.7: within 0.3 of full data"]["verdict"] == "partial"
    assert part["goals"]["noise20 f=0.7: within 0.3 of full data"]["seeds"] == [0, 1]
    assert part["goals"]["no class drops out"]["verdict"] == "partial"
    empty = fr.decide([], [], plan="noisy07")["goals"]
    assert empty["noise20 f=0.7: ahead of random-dynamic"]["verdict"] == "not run"


def test_plans_keep_their_goals(fr):
    """Adding plan "noisy07" left rules s34/s34b's goals and order as they were."""
    assert fr.PLAN_GOALS["grid"] is fr.GOALS and fr.PLAN_GOALS["paired"] is fr.GOALS
    assert [g[0] for g in fr.GOALS][:2] == ["clean f=0.7: within 0.3 of full data",
                                            "clean f=0.7: ahead of random-dynamic"]  # fmt: skip
    assert len(fr.todo([], plan="paired")) == 55 and len(fr.todo([])) == 25
    assert fr.RULE_NAMES == {"grid": "s34", "paired": "s34b", "noisy07": "s34c"}
