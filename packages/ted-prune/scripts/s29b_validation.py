"""Validation check of session 29's default at f = 0.6, a budget no rule has measured (issue 15;
rule `docs/benchmarks/ted-prune-s29b/RULE.md`, committed before the runs; nothing is adopted).

Usage::

    python packages/ted-prune/scripts/s29b_validation.py --out DIR --settings noise20 clean
        --fs 0.6 [--resume] [--time-limit S]
    python packages/ted-prune/scripts/s29b_validation.py --out DIR --decide

At 20 epochs and f = 0.6 the late plan with re-scoring keeps 0.47 (< the 0.5 floor), so the
default (`TED_s29`) runs the late plan *without* re-scoring (keep 0.50) once the epoch-0 detector
says noisy. Arms: `s29` (the default), `s28b` (the previous default: no switch at f = 0.6),
`late_rescore` (the late plan with re-scoring: `noise_min_keep=0.45`), InfoBatch and
random-dynamic (reported). `s27_validation.py`'s machinery (MNIST-1D 5,000 x 20, one thread,
VALIDATION split, never test) on fresh seeds 220-229.
"""

from __future__ import annotations

from typing import Any

import s27_validation
import s27b_validation as sv
from s27_validation import EPOCHS, NUM_SAMPLES
from ted_prune.ted import TEDPruner

ARMS = {
    "s29": "TED_s29",  # TEDPruner's defaults since session 29
    "s28b": "TED_s28b",  # the defaults of sessions 28b-29 (noise switch only above the 0.5 floor)
    "late_rescore": "TED_s29b_late045",  # the late plan with re-scoring down to keep 0.45
    "InfoBatch": "InfoBatch",
    "random_dynamic": "random_dynamic",
}
CELLS = {
    ("noise20", 0.6): tuple(ARMS),
    ("clean", 0.6): ("s29", "s28b"),
}
SEEDS = list(range(220, 230))


#: whether the study runs an arm in (setting, f) (`CELLS`)
plan = sv.cells_plan(CELLS)
_pruner = sv.extra_pruner({
    "TED_s29b_late045": lambda n, e, f, s: TEDPruner(
        n, e, budget=f, seed=s, noise_schedule="late_epoch0", noise_min_keep=0.45,
        noise_norescore_min_keep=None,
    )
})  # fmt: skip
#: the last run's detector state (InfoBatch, random-dynamic: None)
_fields = sv.last_fields("noisy", "noise_statistic", "rescore_every")


def summarize(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """Per cell, on the seeds where its arms finished: accuracy mean ± std, achieved f, min class
    kept, the detector per seed and the rule's paired differences (mean, 95% bootstrap CI)."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out: dict[str, Any] = {"split": "validation", "num_samples": NUM_SAMPLES, "epochs": EPOCHS,
                           "cells": {}}  # fmt: skip
    for (setting, f), arms in CELLS.items():
        got = s27_validation.cell_stats(by, {a: ARMS[a] for a in arms}, setting, f, seeds)
        if got is None:
            continue
        done, acc, cell = got
        cell["detector"] = {str(s): [by[("s29", setting, f, s)]["noisy"],
                                     by[("s29", setting, f, s)]["noise_statistic"]]
                            for s in done}  # fmt: skip
        pairs = [("s29", "s28b")]
        if setting == "noise20":
            pairs += [("s29", "InfoBatch"), ("s29", "random_dynamic"), ("late_rescore", "s29")]
        for x, y in pairs:
            d = acc[x] - acc[y]
            cell[f"{x}-{y}"] = sv.paired(d)
        out["cells"][f"{setting} f={f}"] = cell
    return out


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s29b): a check, nothing adopted. `harm` iff the noise20 f = 0.6 CI of s29 - s28b
    lies below 0; `clean_identical` iff every clean f = 0.6 difference is exactly 0."""
    out = summarize(rows, seeds)
    cells, r = sv.rule_start(out, CELLS, seeds)
    if r["complete"]:
        r["harm"] = cells["noise20 f=0.6"]["s29-s28b"]["ci95"][1] < 0
        r["clean_identical"] = cells["clean f=0.6"]["s29-s28b"]["all_zero"]
    out["rule"] = r
    return out


def main(argv: list[str] | None = None) -> None:
    """`s27_validation.main`'s loop with this check's arms, cells, seeds, pruner and fields."""
    s27_validation.main(argv, arms=ARMS, seeds=SEEDS, pruner=_pruner, decide_rows=decide,
                        row_extra=_fields, doc=__doc__, plan=plan)  # fmt: skip


if __name__ == "__main__":
    main()
