"""The wall-clock script (`scripts/wallclock.py`, plan s30-A's protocol): it re-derives the
committed s30 reading from its runs, its verdicts and pairs on made-up rows, and bad `--arms`
raise. No benchmark run is trained here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
S30 = ROOT / "docs" / "benchmarks" / "ted-prune-s30" / "wallclock"


@pytest.fixture
def wall(script):
    return script("wallclock")


def test_rederives_the_committed_s30_reading(wall):
    rows = [json.loads(x) for x in (S30 / "runs.jsonl").read_text().splitlines()]
    want = json.loads((S30 / "wallclock.json").read_text())
    arms = tuple(want["config"]["arms"])
    got = json.loads(json.dumps(wall.summarize(rows, 30, arms)))  # as written to the JSON
    assert got["arms"] == want["summary"]["arms"]
    assert got["paired"] == want["summary"]["paired"]
    assert {k: got[k] for k in ("seeds", "rounds", "full_epoch_seconds")} == {
        k: want["summary"][k] for k in ("seeds", "rounds", "full_epoch_seconds")}  # fmt: skip
    v = wall.verdicts(got)
    assert v["TED_s29"]["wallclock_met"] is False and v["TED_s29"]["scoring_met"] is True
    assert "TED_s29: wall-clock goal (f = 0.7 <= 0.75x, mean over seeds) **missed** (0.762x)" in (
        wall.report_md(got, "cmd", arms)
    )


def _made_up(wall, arms, secs):
    return [{"seed": s, "round": r, "method": m, "metrics": {
             "seconds": secs[m] + 0.1 * s, "accuracy": 90.0, "f": 0.7, "sizes": [1],
             "score_seconds": 0.3 * m.startswith("TED")}}
            for s in range(3) for r in range(-1, 1)
            for m in (["full"] if r < 0 else wall.order(s + r, arms))]  # fmt: skip


def test_pairs_and_verdicts_on_made_up_rows(wall):
    arms = ("full", "TED_s32_skip", "TED_s29")
    s = wall.summarize(_made_up(wall, arms, {"full": 10.0, "TED_s32_skip": 7.4, "TED_s29": 7.6}),
                       30, arms)  # fmt: skip
    assert list(s["paired"]) == [
        "TED_s32_skip - TED_s29 (ratio)",
        "TED_s32_skip - TED_s29 (score_ms)",
    ]
    assert s["paired"]["TED_s32_skip - TED_s29 (ratio)"]["mean"] < 0
    v = wall.verdicts(s)
    assert v["TED_s32_skip"]["wallclock_met"] and not v["TED_s29"]["wallclock_met"]
    assert 0.028 < s["arms"]["TED_s29"]["score_share"][0] < 0.031
    assert wall.order(1, arms) == ["TED_s32_skip", "TED_s29", "full"]
    two = [r for r in _made_up(wall, arms, {"full": 10.0, "TED_s32_skip": 7.4, "TED_s29": 7.6})
           if r["seed"] < 2]  # fmt: skip
    assert wall.verdicts(wall.summarize(two, 30, arms)) == {}
    assert "**Partial**" in wall.report_md(wall.summarize(two, 30, arms), "cmd", arms)


@pytest.mark.parametrize("arms", [["TED_s29", "random_dynamic"], ["full", "TED_s29", "TED_s29"],
                                  ["full", "TED_s29@old"]])  # fmt: skip
def test_bad_arms_raise_naming_the_option(wall, arms):
    with pytest.raises(ValueError, match="--arms"):
        wall.check_arms(arms)


def test_resume_over_the_committed_s32_run_reruns_nothing(wall, tmp_path, monkeypatch):
    """Rule s32 (b)'s committed cache: `--resume` trains nothing and rewrites the same summary."""
    s32 = ROOT / "docs" / "benchmarks" / "ted-prune-s32" / "wallclock"
    (tmp_path / "runs.jsonl").write_text((s32 / "runs.jsonl").read_text())

    def fail(*a, **k):
        raise AssertionError(f"run re-run: {a[0]}")

    monkeypatch.setattr(wall.bm, "train_mnist1d", fail)
    argv = ["--out", str(tmp_path), "--arms", "full", "TED_s32_every4", "TED_s29", "--resume"]
    assert wall.main(argv) == 0
    got = json.loads((tmp_path / "wallclock.json").read_text())
    want = json.loads((s32 / "wallclock.json").read_text())
    assert got["summary"] == want["summary"] and got["verdicts"] == want["verdicts"]
    assert want["verdicts"]["TED_s32_every4"]["wallclock_met"] is True


def test_pooled_reads_judge_the_mean_and_say_when_the_ci_straddles(wall):
    """Rule s33's pool: met iff the pooled mean <= 0.75; robust iff the CI's upper end is too."""
    low = wall.pooled([("a", "T", [0.70, 0.72, 0.71]), ("b", "T", [0.73, 0.74, 0.72])])
    assert low["n"] == 6 and low["met"] and low["robust"] and not low["ci_straddles_goal"]
    edge = wall.pooled([("a", "T", [0.70, 0.80]), ("b", "T", [0.74])])
    assert edge["ratio"][0] == pytest.approx(0.74666666666666)
    assert edge["met"] and not edge["robust"] and edge["ci_straddles_goal"]
    high = wall.pooled([("a", "T", [0.76, 0.80, 0.77])])
    assert not high["met"] and not high["robust"] and not high["ci_straddles_goal"]
    with pytest.raises(ValueError, match="--pool"):
        wall.pooled([])
    with pytest.raises(ValueError, match="--pool"):
        wall.pooled([("a", "T", [])])


def test_pool_of_the_two_committed_reads(wall, tmp_path):
    """Sessions 30 and 32's reads of the default (`TED_s29`, seeds 0-2 each) pooled: 0.754x, the
    CI straddling 0.75, before this session's seeds 3-5."""
    b = ROOT / "docs" / "benchmarks"
    out = tmp_path / "pool.json"
    argv = ["--pool", f"{b}/ted-prune-s30/wallclock:TED_s29",
            f"{b}/ted-prune-s32/wallclock:TED_s29", "--out", str(out)]  # fmt: skip
    assert wall.main(argv) == 0
    res = json.loads(out.read_text())
    assert res["n"] == 6 and res["ratio"][0] == pytest.approx(0.75367, abs=1e-5)
    assert res["met"] is False and res["ci_straddles_goal"] is True
    with pytest.raises(ValueError, match="DIR:ARM"):
        wall.main(["--pool", "no-arm", "--out", str(out)])


def test_first_seed_times_later_seeds_and_keeps_earlier_configs(wall, tmp_path, monkeypatch):
    seen = []

    def run_seed(seed, *a):
        seen.append(seed)
        return [{"seed": seed, "round": r, "method": m, "metrics": {"seconds": 10.0 - 3 * (m != "full"),
                 "accuracy": 90.0, "f": 0.7, "sizes": [1], "score_seconds": 0.1}}
                for r in (-1, 0) for m in (["full"] if r < 0 else ["full", "TED_s29"])]  # fmt: skip

    monkeypatch.setattr(wall, "run_seed", run_seed)
    argv = ["--out", str(tmp_path), "--arms", "full", "TED_s29", "--first-seed", "3"]
    assert wall.main(argv) == 0 and seen == [3, 4, 5]
    got = json.loads((tmp_path / "wallclock.json").read_text())
    assert got["config"]["first_seed"] == 3 and "--first-seed 3" in got["command"]
    assert got["summary"]["seeds"] == [3, 4, 5]
    assert wall.main([*argv, "--resume"]) == 0 and seen == [3, 4, 5]  # nothing re-run
    with pytest.raises(ValueError, match="--first-seed"):
        wall.main(["--out", str(tmp_path / "x"), "--first-seed", "-1"])


def test_committed_partial_pool_rederived_byte_identical(wall):
    """`docs/benchmarks/ted-prune-s33/pooled_partial_s30_s32.json` (rule s33 not run: sessions 30
    and 32's reads only, no verdict) re-derived from the two committed reads."""
    b = ROOT / "docs" / "benchmarks"
    reads = [(f"docs/benchmarks/ted-prune-{s}/wallclock", "TED_s29", json.loads(
              (b / f"ted-prune-{s}" / "wallclock" / "wallclock.json").read_text())["summary"]
              ["arms"]["TED_s29"]["per_seed_ratio"]) for s in ("s30", "s32")]  # fmt: skip
    text = json.dumps(wall.pooled(reads), indent=1) + "\n"
    assert text == (b / "ted-prune-s33" / "pooled_partial_s30_s32.json").read_text()
