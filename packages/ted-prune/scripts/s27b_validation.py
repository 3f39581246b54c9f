"""Validation run of session 27b's noise-conditional schedule (`TEDPruner(noise_schedule="late")`)
against TED's default, random-dynamic and InfoBatch (issue 15; the rule is
`docs/benchmarks/ted-prune-s27b/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/s27b_validation.py --out DIR [--resume] [--time-limit S]
        [--seeds 180 ... 189] [--settings clean noise20] [--fs 0.7 0.5]
    python packages/ted-prune/scripts/s27b_validation.py --out DIR --decide

The machinery of `s27_validation.py` (MNIST-1D 5,000 x 20, one thread, VALIDATION split, never
test; seeds in order, all settings, fractions and arms of a seed together; `DIR/runs.jsonl`,
`--resume`, `--time-limit` exit code 3) with four arms; each `noise_late` run also records the
detector's decision (`noisy`) and statistic. `--decide` writes `DIR/decision.json`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import s27_validation
from s27_validation import _ORIG_PRUNER, EPOCHS, FS, NUM_SAMPLES, SETTINGS, _ci
from ted_prune.ted import TEDPruner

CANDIDATE = "noise_late"
ARMS = {
    "default": "TED_s26",  # TEDPruner's current defaults (loss_weights="none", tail=0.2)
    "noise_late": "TED_s26_noise_late",  # the defaults plus noise_schedule="late"
    "random_dynamic": "random_dynamic",  # reported: TED's schedule, random draws
    "InfoBatch": "InfoBatch",  # reported: the goal read
}
SEEDS = list(range(180, 190))
_LAST: list[Any] = []


def extra_pruner(builders: dict[str, Callable[[int, int, float, int], Any]]) -> Callable[..., Any]:
    """A `pruner` for `s27_validation.main` (the sessions 27b-30 validation scripts): a method named
    in `builders` is built by it from (n, epochs, f, seed), any other as the benchmark builds it
    (`_ORIG_PRUNER`); the pruner is kept in `_LAST` for the run's row fields (`last_fields`)."""

    def pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
        build = builders.get(method)
        p = (
            _ORIG_PRUNER(method, n, epochs, f, seed, sizes)
            if build is None
            else build(n, epochs, f, seed)
        )
        _LAST[:] = [p]
        return p

    return pruner


def last_fields(*names: str) -> Callable[[], dict[str, Any]]:
    """A `row_extra` for `s27_validation.main`: the named attributes of the last run's pruner, in
    this order (None where the pruner has none: InfoBatch, random-dynamic)."""

    def fields() -> dict[str, Any]:
        p = _LAST[0]
        return {k: getattr(p, k, None) for k in names}

    return fields


def cells_plan(
    cells: dict[tuple[str, float], tuple[str, ...]],
) -> Callable[[str, str, float], bool]:
    """A `plan` for `s27_validation.main`: whether a study runs `arm` in (setting, f) (`cells`)."""

    def plan(arm: str, setting: str, f: float) -> bool:
        return arm in cells.get((setting, f), ())

    return plan


def paired(d: np.ndarray) -> dict[str, Any]:
    """A paired difference over seeds: mean, 95% percentile bootstrap CI (`_ci`), whether every
    difference is exactly 0."""
    return {"mean": float(d.mean()), "ci95": _ci(d), "all_zero": bool(np.all(d == 0))}


def rule_start(
    summary: dict[str, Any], cells: Iterable[tuple[str, float]], seeds: list[int]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The start of a `decide` (sessions 29-30's rules): the summary's cells and the rule's dict
    {"complete": whether every (setting, f) of `cells` is in the summary with all `seeds`}."""
    got = summary["cells"]
    complete = all(f"{s} f={f}" in got and got[f"{s} f={f}"]["n"] == len(seeds) for s, f in cells)
    return got, {"complete": complete}


_pruner = extra_pruner(
    {
        "TED_s26_noise_late": lambda n, e, f, s: TEDPruner(
            n, e, budget=f, seed=s, noise_schedule="late"
        )
    }
)


def summarize(
    rows: list[dict[str, Any]],
    seeds: list[int] = SEEDS,
    *,
    candidate: str = CANDIDATE,
    arms: dict[str, str] = ARMS,
) -> dict[str, Any]:
    """Per (setting, f), on the seeds where every arm finished: accuracy mean ± std per arm, paired
    differences, and the detector's decisions per seed (`candidate`'s rows carry them; session 28
    passes its own candidate and arms)."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out: dict[str, Any] = {"split": "validation", "num_samples": NUM_SAMPLES, "epochs": EPOCHS,
                           "cells": {}}  # fmt: skip
    for setting in SETTINGS:
        for f in FS:
            got = s27_validation.cell_stats(by, arms, setting, f, seeds)
            if got is None:
                continue
            done, acc, cell = got
            cell["detector"] = {
                str(s): [by[(candidate, setting, f, s)]["noisy"],
                         round(by[(candidate, setting, f, s)]["noise_statistic"], 4)]
                for s in done
            }  # fmt: skip
            cell["detector_says_noisy"] = sum(v[0] for v in cell["detector"].values())
            pairs = [(candidate, b) for b in ("default", "random_dynamic", "InfoBatch")]
            pairs += [("default", "random_dynamic"), ("default", "InfoBatch")]
            for x, y in pairs:
                d = acc[x] - acc[y]
                cell[f"{x}-{y}"] = {"mean": float(d.mean()), "ci95": _ci(d),
                                    "all_zero": bool(np.all(d == 0))}  # fmt: skip
            out["cells"][f"{setting} f={f}"] = cell
    return out


def decide(
    rows: list[dict[str, Any]],
    seeds: list[int] = SEEDS,
    *,
    candidate: str = CANDIDATE,
    arms: dict[str, str] = ARMS,
) -> dict[str, Any]:
    """RULE.md: `noise_late` (or session 28's `candidate`) is adoptable iff the data are complete and
    B1 noise20, f=0.7: c - default CI lower end > 0;
    B2 noise20, f=0.5: c - default mean > 0;
    B3 clean, f=0.7 and f=0.5: c - default mean >= -0.3 and (CI upper end > 0, or every paired
    difference exactly 0: the detector said no and the runs are the default's);
    B4 no class drops out in any run of c.
    B3_literal (the brief's wording, CI upper end > 0 only) is reported beside it."""
    out = summarize(rows, seeds, candidate=candidate, arms=arms)
    cells = out["cells"]
    keys = [f"{s} f={f}" for s in SETTINGS for f in FS]
    complete = all(k in cells and cells[k]["n"] == len(seeds) for k in keys)
    r: dict[str, Any] = {"complete": complete}
    if complete:
        c = candidate
        n7, n5 = cells["noise20 f=0.7"][f"{c}-default"], cells["noise20 f=0.5"][f"{c}-default"]
        r["B1_noise20_f0.7_ci_above_0"] = n7["ci95"][0] > 0
        r["B2_noise20_f0.5_mean_above_0"] = n5["mean"] > 0
        clean = [cells[f"clean f={f}"][f"{c}-default"] for f in FS]
        r["B3_clean_does_not_lose"] = all(
            d["mean"] >= -0.3 and (d["ci95"][1] > 0 or d["all_zero"]) for d in clean
        )
        r["B4_no_class_drops"] = all(row["min_class_kept"] > 0 for row in rows if row["arm"] == c)
        r["adopt"] = all(v for k, v in r.items() if k.startswith("B"))
        r["B3_literal_ci_upper_above_0"] = all(
            d["mean"] >= -0.3 and d["ci95"][1] > 0 for d in clean
        )
        r["clean_false_positives"] = sum(cells[f"clean f={f}"]["detector_says_noisy"] for f in FS)
        r["noise20_detected"] = sum(cells[f"noise20 f={f}"]["detector_says_noisy"] for f in FS)
    else:
        r["adopt"] = False
    out["rule"] = r
    return out


#: the last run's detector decision and statistic (None for arms without a detector)
_detector_fields = last_fields("noisy", "noise_statistic")


def main(argv: list[str] | None = None) -> None:
    """`s27_validation.main`'s loop with this study's arms, seeds, pruner, rule and the
    detector's fields in every row."""
    s27_validation.main(argv, arms=ARMS, seeds=SEEDS, pruner=_pruner, decide_rows=decide,
                        row_extra=_detector_fields, doc=__doc__)  # fmt: skip


if __name__ == "__main__":
    main()
