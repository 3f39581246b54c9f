"""Session 29's exploration (post hoc, decides nothing): under 20% label noise at f = 0.5, how much
does thinning TED's suspect tail (`tail_rate`) help, on the default schedule and on the late shape?

Usage::

    python packages/ted-prune/scripts/s29_explore.py --out DIR [--resume] [--time-limit S]
    python packages/ted-prune/scripts/s29_explore.py --out DIR --decide   # summary only

Run on the ALREADY-USED validation seeds 170-179 (rule s27's seeds, whose `default`, `thin`,
`late` and `random_late` rows are cached in `docs/benchmarks/ted-prune-s27/runs.jsonl`), noise20,
f = 0.5 only, to choose the candidate and its rate that rule s29
(`docs/benchmarks/ted-prune-s29/RULE.md`) then decides on FRESH seeds 210-219. The machinery of
`s27_validation.py` (MNIST-1D 5,000 x 20, one thread, VALIDATION split, never test). Arms are
explicit `TEDPruner` options with the noise switch off (on noise20 the epoch-0 detector fired on
every validation seed so far, so "switched to X" runs X from epoch 1 on; epoch 0 is full data).
"""

from __future__ import annotations

from typing import Any

import s27_validation
from s27_validation import _ORIG_PRUNER, _ci
from ted_prune.ted import TEDPruner

LATE = {"warmup": 1, "ramp": 0, "anneal": 3}
OPTIONS: dict[str, dict[str, Any]] = {
    "default": {},  # TED_s26 (= the current default at f = 0.5: the floor keeps it)
    "thin50": {"tail_rate": 0.5},  # rule s27's `thin` (re-run: checks the cached rows)
    "thin25": {"tail_rate": 0.25},
    "thin10": {"tail_rate": 0.1},
    "late_thin50": {**LATE, "tail_rate": 0.5},
    "late_thin25": {**LATE, "tail_rate": 0.25},
    # the late shape without re-scoring (keep 0.375 instead of 0.333, random_late's sizes): how much
    # of late - random_late (-2.76 on these seeds) is the budget re-scoring takes from training
    "late_re0": {**LATE, "rescore_every": 0},
}
ARMS = {a: f"s29x_{a}" for a in OPTIONS}
SEEDS = list(range(170, 180))


def _pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
    if method.startswith("s29x_"):
        opts = OPTIONS[method[5:]]
        return TEDPruner(n, epochs, budget=f, seed=seed, noise_schedule="off", **opts)
    return _ORIG_PRUNER(method, n, epochs, f, seed, sizes)


def summarize(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """noise20 f = 0.5: each arm's mean ± std and its paired difference to `default`."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    got = s27_validation.cell_stats(by, ARMS, "noise20", 0.5, seeds)
    if got is None:
        return {"cells": {}}
    done, acc, cell = got
    for a in ARMS:
        if a != "default":
            d = acc[a] - acc["default"]
            cell[f"{a}-default"] = {"mean": float(d.mean()), "ci95": _ci(d)}
    return {"split": "validation", "post_hoc": True, "cells": {"noise20 f=0.5": cell}}


def main(argv: list[str] | None = None) -> None:
    s27_validation.main(argv, arms=ARMS, seeds=SEEDS, pruner=_pruner, decide_rows=summarize,
                        doc=__doc__)  # fmt: skip


if __name__ == "__main__":
    import sys

    main([*sys.argv[1:], "--settings", "noise20", "--fs", "0.5"])
