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
