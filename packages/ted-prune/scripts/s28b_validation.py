"""Validation run of session 28b's keep floor (`TEDPruner(noise_schedule="late_epoch0",
noise_min_keep=0.5)`) against TED's default (issue 15; the rule is
`docs/benchmarks/ted-prune-s28b/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/s28b_validation.py --out DIR [--resume] [--time-limit S]
        [--seeds 200 ... 209] [--settings clean noise20] [--fs 0.7 0.5]
    python packages/ted-prune/scripts/s28b_validation.py --out DIR --decide

The machinery of `s27_validation.py` (MNIST-1D 5,000 x 20, one thread, VALIDATION split, never
test; `DIR/runs.jsonl`, `--resume`, `--time-limit` exit code 3) with two arms, `default` and
`floor50`; each `floor50` run records whether the detector was active (`noise_active`), the late
plan's keep ratio and the detector's decision. `--decide` applies the rule (`decide`, C1-C4) and
writes `DIR/decision.json`.
"""

from __future__ import annotations

from typing import Any

import s27_validation
import s27b_validation as sv
from s27_validation import EPOCHS, FS, NUM_SAMPLES, SETTINGS
from ted_prune.ted import NOISE_MIN_KEEP_S28B, TEDPruner

CANDIDATE = "floor50"
ARMS = {
    "default": "TED_s26",  # TEDPruner's defaults of session 26c (noise_schedule="off")
    "floor50": "TED_s26_noise_e0_floor50",  # + noise_schedule="late_epoch0", noise_min_keep=0.5
}
SEEDS = list(range(200, 210))


_pruner = sv.extra_pruner({
    "TED_s26_noise_e0_floor50": lambda n, e, f, s: TEDPruner(
        n, e, budget=f, seed=s, noise_schedule="late_epoch0", noise_min_keep=NOISE_MIN_KEEP_S28B
    )
})  # fmt: skip
#: the last run's detector state (None for the default arm)
_fields = sv.last_fields("noise_active", "noise_late_keep", "noisy", "noise_statistic")


def summarize(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """Per (setting, f), on the seeds where both arms finished: accuracy mean ± std, achieved f,
    min class kept, the candidate's detector state per seed, and candidate - default paired
    (mean, 95% percentile bootstrap CI over seeds, whether every difference is exactly 0)."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out: dict[str, Any] = {"split": "validation", "num_samples": NUM_SAMPLES, "epochs": EPOCHS,
                           "cells": {}}  # fmt: skip
    for setting in SETTINGS:
        for f in FS:
            got = s27_validation.cell_stats(by, ARMS, setting, f, seeds)
            if got is None:
                continue
            done, acc, cell = got
            rc = {s: by[(CANDIDATE, setting, f, s)] for s in done}
            cell["detector"] = {str(s): [r["noise_active"], r["noisy"], r["noise_statistic"]]
                                for s, r in rc.items()}  # fmt: skip
            cell["late_keep"] = sorted({r["noise_late_keep"] for r in rc.values()})
            cell["switched"] = sum(bool(r["noisy"]) for r in rc.values())
            d = acc[CANDIDATE] - acc["default"]
            cell[f"{CANDIDATE}-default"] = sv.paired(d)
            out["cells"][f"{setting} f={f}"] = cell
    return out


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s28b): `floor50` is adoptable iff the data are complete and
    C1 noise20, f=0.7: c - default CI lower end > 0;
    C2 noise20, f=0.5: every paired difference exactly 0, or mean >= -0.3;
    C3 clean, f=0.7 and f=0.5: every paired difference exactly 0, or mean >= -0.3;
    C4 no class drops out in any run of c (min class kept > 0)."""
    out = summarize(rows, seeds)
    cells = out["cells"]
    keys = [f"{s} f={f}" for s in SETTINGS for f in FS]
    complete = all(k in cells and cells[k]["n"] == len(seeds) for k in keys)
    r: dict[str, Any] = {"complete": complete}
    if complete:
        key = f"{CANDIDATE}-default"

        def ok(d: dict[str, Any]) -> bool:
            return d["all_zero"] or d["mean"] >= -0.3

        r["C1_noise20_f0.7_ci_above_0"] = cells["noise20 f=0.7"][key]["ci95"][0] > 0
        r["C2_noise20_f0.5_identical_or_mean_ge_-0.3"] = ok(cells["noise20 f=0.5"][key])
        r["C3_clean_identical_or_mean_ge_-0.3"] = all(ok(cells[f"clean f={f}"][key]) for f in FS)
        r["C4_no_class_drops"] = all(
            row["min_class_kept"] > 0 for row in rows if row["arm"] == CANDIDATE
        )
        r["adopt"] = all(v for k, v in r.items() if k.startswith("C"))
        r["clean_switched"] = sum(cells[f"clean f={f}"]["switched"] for f in FS)
        r["noise20_switched"] = sum(cells[f"noise20 f={f}"]["switched"] for f in FS)
    else:
        r["adopt"] = False
    out["rule"] = r
    return out


def main(argv: list[str] | None = None) -> None:
    """`s27_validation.main`'s loop with this study's arms, seeds, pruner, rule and fields."""
    s27_validation.main(argv, arms=ARMS, seeds=SEEDS, pruner=_pruner, decide_rows=decide,
                        row_extra=_fields, doc=__doc__)  # fmt: skip


if __name__ == "__main__":
    main()
