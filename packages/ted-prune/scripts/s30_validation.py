"""Session 30's validation check: above the 0.625 boundary (f = 0.7, 20 epochs), would the late
plan *without* re-scoring also beat the default's late plan *with* re-scoring under label noise?
(issue 15; rule `docs/benchmarks/ted-prune-s30/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/s30_validation.py --out DIR --settings noise20 clean
        --fs 0.7 [--resume] [--time-limit S]
    python packages/ted-prune/scripts/s30_validation.py --out DIR --decide

Arms: `s29` (`TED_s29`, the default: at f = 0.7 a noisy epoch 0 switches to the late plan with
re-scoring, keep 0.600) and `norescore` (`noise_min_keep=0.99`: the late plan with re-scoring is
below that floor at any budget this benchmark runs, so a noisy epoch 0 switches to the late plan
without re-scoring, keep 0.625; the detector and everything else as the default's). Both in
noise20 and clean at f = 0.7. `s27_validation.py`'s machinery (MNIST-1D 5,000 x 20, one thread,
VALIDATION split, never test) on fresh seeds 230-239.
"""

from __future__ import annotations

from typing import Any

import s27_validation
import s27b_validation as sv
from s27_validation import EPOCHS, NUM_SAMPLES
from ted_prune.ted import TEDPruner

ARMS = {
    "s29": "TED_s29",  # TEDPruner's defaults since session 29
    "norescore": "TED_s30_norescore",  # the late plan without re-scoring above 0.625 too
}
CELLS = {
    ("noise20", 0.7): ("s29", "norescore"),
    ("clean", 0.7): ("s29", "norescore"),
}
SEEDS = list(range(230, 240))
NORESCORE_FLOOR = 0.99  # `noise_min_keep` of the `norescore` arm


#: whether the study runs an arm in (setting, f) (`CELLS`)
plan = sv.cells_plan(CELLS)
_pruner = sv.extra_pruner({
    "TED_s30_norescore": lambda n, e, f, s: TEDPruner(
        n, e, budget=f, seed=s, noise_min_keep=NORESCORE_FLOOR
    )
})  # fmt: skip
_detector = sv.last_fields("noisy", "noise_statistic", "rescore_every")


def _fields() -> dict[str, Any]:
    """The last run's detector and plan state."""
    return {**_detector(), "keep": float(sv._LAST[0].schedule.keep)}


def summarize(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """Per cell, on the seeds where both arms finished: accuracy mean ± std, achieved f, min class
    kept, the detector per seed and norescore - s29 (mean, 95% bootstrap CI, all zero)."""
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
        d = acc["norescore"] - acc["s29"]
        cell["norescore-s29"] = sv.paired(d)
        out["cells"][f"{setting} f={f}"] = cell
    return out


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s30): `adopt` iff complete, the noise20 f = 0.7 CI of norescore - s29 lies wholly
    above 0, and clean f = 0.7 is unaffected (every difference exactly 0, or else the clean CI's
    lower end > -0.3)."""
    out = summarize(rows, seeds)
    cells, r = sv.rule_start(out, CELLS, seeds)
    if r["complete"]:
        noisy = cells["noise20 f=0.7"]["norescore-s29"]
        clean = cells["clean f=0.7"]["norescore-s29"]
        r["noise_gain"] = noisy["ci95"][0] > 0
        r["clean_unaffected"] = clean["all_zero"] or clean["ci95"][0] > -0.3
        r["adopt"] = r["noise_gain"] and r["clean_unaffected"]
    out["rule"] = r
    return out


def main(argv: list[str] | None = None) -> None:
    """`s27_validation.main`'s loop with this check's arms, cells, seeds, pruner and fields."""
    s27_validation.main(argv, arms=ARMS, seeds=SEEDS, pruner=_pruner, decide_rows=decide,
                        row_extra=_fields, doc=__doc__, plan=plan)  # fmt: skip


if __name__ == "__main__":
    main()
