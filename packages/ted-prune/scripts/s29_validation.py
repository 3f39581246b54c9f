"""Validation run of session 29's low-budget noise plan (`TEDPruner(noise_norescore_min_keep=0.35)`
on top of the current default: below the keep floor, the late shape without re-scoring once the
epoch-0 detector says noisy) against TED's default (issue 15; the rule is
`docs/benchmarks/ted-prune-s29/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/s29_validation.py --out DIR [--resume] [--time-limit S]
    python packages/ted-prune/scripts/s29_validation.py --out DIR --decide

The machinery of `s27_validation.py` (MNIST-1D 5,000 x 20, one thread, VALIDATION split, never
test; `DIR/runs.jsonl`, `--resume`, `--time-limit` exit code 3) on fresh seeds 210-219, with the
cells of the rule only (`CELLS`): noise20 f = 0.5 (default, candidate, and reported only: `thin25`
= the default with `noise_tail_rate=0.25`, InfoBatch), clean f = 0.5 (default, candidate). Each
TED run records the detector's state. `--decide` applies the rule (`decide`, D1, D2, D4) and
writes `DIR/decision.json`.
"""

from __future__ import annotations

from typing import Any

import s27_validation
import s27b_validation as sv
from s27_validation import EPOCHS, NUM_SAMPLES
from ted_prune.ted import NOISE_MIN_KEEP_S28B, TEDPruner

MIN_KEEP0 = 0.35  # the candidate's m2, fixed by the rule
RATE = 0.25  # the reported arm's noise_tail_rate (from `s29_explore.py` on seeds 170-179)
CANDIDATE = "lowre0"
ARMS = {
    "default": "TED_s28b",  # TEDPruner's current defaults (noise_schedule=None, rule s28b)
    CANDIDATE: "TED_s28b_lowre0",  # + noise_norescore_min_keep=MIN_KEEP0
    "thin25": "TED_s28b_thin25",  # reported only: + noise_tail_rate=RATE
    "InfoBatch": "InfoBatch",  # reported only (the goal read)
}
CELLS = {  # (setting, f): the arms run there
    ("noise20", 0.5): ("default", CANDIDATE, "thin25", "InfoBatch"),
    ("clean", 0.5): ("default", CANDIDATE),
}
SEEDS = list(range(210, 220))
# s28b's default written out (bit for bit `noise_schedule=None`, tested), so the arms keep their
# meaning whatever the default becomes
S28B = {"noise_schedule": "late_epoch0", "noise_min_keep": NOISE_MIN_KEEP_S28B}
HARM_CI = 1.0  # D2: the upper end of the harm's (default - candidate) CI must lie below this


#: whether the study runs an arm in (setting, f) (`CELLS`)
plan = sv.cells_plan(CELLS)
_pruner = sv.extra_pruner({
    "TED_s28b_lowre0": lambda n, e, f, s: TEDPruner(
        n, e, budget=f, seed=s, **S28B, noise_norescore_min_keep=MIN_KEEP0
    ),
    "TED_s28b_thin25": lambda n, e, f, s: TEDPruner(
        n, e, budget=f, seed=s, **S28B, noise_tail_rate=RATE
    ),
})  # fmt: skip
#: the last run's detector state (InfoBatch: None)
_fields = sv.last_fields("noise_active", "noise_thin_active", "noisy", "noise_statistic",
                         "tail_rate", "rescore_every", "noise_norescore_keep")  # fmt: skip
_diff = sv.paired


def summarize(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """Per cell, on the seeds where its arms finished: accuracy mean ± std, achieved f, min class
    kept, the detector per seed, candidate - default (and, at noise20 f = 0.5, each against
    InfoBatch) paired: mean, 95% percentile bootstrap CI over seeds, whether all are exactly 0."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out: dict[str, Any] = {"split": "validation", "num_samples": NUM_SAMPLES, "epochs": EPOCHS,
                           "rate": RATE, "cells": {}}  # fmt: skip
    for (setting, f), arms in CELLS.items():
        got = s27_validation.cell_stats(by, {a: ARMS[a] for a in arms}, setting, f, seeds)
        if got is None:
            continue
        done, acc, cell = got
        rc = {s: by[(CANDIDATE, setting, f, s)] for s in done}
        cell["detector"] = {str(s): [r["noisy"], r["noise_statistic"], r["rescore_every"]]
                            for s, r in rc.items()}  # fmt: skip
        cell["switched"] = sum(bool(r["noisy"]) for r in rc.values())
        cell[f"{CANDIDATE}-default"] = _diff(acc[CANDIDATE] - acc["default"])
        if "InfoBatch" in arms:
            for x, y in ((CANDIDATE, "InfoBatch"), ("default", "InfoBatch"),
                         ("thin25", "default"), ("thin25", "InfoBatch")):  # fmt: skip
                cell[f"{x}-{y}"] = _diff(acc[x] - acc[y])
        out["cells"][f"{setting} f={f}"] = cell
    return out


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s29): the candidate is adoptable iff the data are complete and
    D1 noise20, f=0.5: candidate - default CI lower end > 0;
    D2 clean, f=0.5: every paired difference exactly 0, or the CI of the harm (default -
       candidate) has its upper end < HARM_CI;
    D4 no class drops out in any candidate run (min class kept > 0)."""
    out = summarize(rows, seeds)
    cells, r = sv.rule_start(out, CELLS, seeds)
    if r["complete"]:
        key = f"{CANDIDATE}-default"

        def no_harm(d: dict[str, Any]) -> bool:  # harm = -d: its CI upper end is -d's lower end
            return d["all_zero"] or -d["ci95"][0] < HARM_CI

        r["D1_noise20_f0.5_ci_above_0"] = cells["noise20 f=0.5"][key]["ci95"][0] > 0
        r["D2_clean_f0.5_no_harm"] = no_harm(cells["clean f=0.5"][key])
        r["D4_no_class_drops"] = all(
            row["min_class_kept"] > 0 for row in rows if row["arm"] == CANDIDATE
        )
        r["adopt"] = all(v for k, v in r.items() if k.startswith("D"))
        r["clean_switched"] = cells["clean f=0.5"]["switched"]
        r["noise20_f0.5_switched"] = cells["noise20 f=0.5"]["switched"]
    else:
        r["adopt"] = False
    out["rule"] = r
    return out


def main(argv: list[str] | None = None) -> None:
    """`s27_validation.main`'s loop with this study's arms, cells, seeds, pruner, rule, fields."""
    s27_validation.main(argv, arms=ARMS, seeds=SEEDS, pruner=_pruner, decide_rows=decide,
                        row_extra=_fields, doc=__doc__, plan=plan)  # fmt: skip


if __name__ == "__main__":
    main()
