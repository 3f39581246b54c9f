"""Validation run of session 28's epoch-0 noise detector (`TEDPruner(noise_schedule="late_epoch0")`)
against TED's default, random-dynamic and InfoBatch (issue 15; the rule is
`docs/benchmarks/ted-prune-s28/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/s28_validation.py --out DIR [--resume] [--time-limit S]
        [--seeds 190 ... 199] [--settings clean noise20] [--fs 0.7 0.5]
    python packages/ted-prune/scripts/s28_validation.py --out DIR --decide

The machinery of `s27_validation.py` (MNIST-1D 5,000 x 20, one thread, VALIDATION split, never
test; seeds in order, all settings, fractions and arms of a seed together; `DIR/runs.jsonl`,
`--resume`, `--time-limit` exit code 3) with four arms; each `noise_e0` run also records the
detector's decision (`noisy`) and statistic. `--decide` applies s27b's rule (B1-B4, the same
thresholds) to `noise_e0` and writes `DIR/decision.json`.
"""

from __future__ import annotations

from typing import Any

import s27_validation
import s27b_validation as sv
from ted_prune.ted import TEDPruner

CANDIDATE = "noise_e0"
ARMS = {
    "default": "TED_s26",  # TEDPruner's defaults of session 26c (noise_schedule="off")
    "noise_e0": "TED_s26_noise_e0",  # the same plus noise_schedule="late_epoch0"
    "random_dynamic": "random_dynamic",  # reported: TED's schedule, random draws
    "InfoBatch": "InfoBatch",  # reported: the goal read
}
SEEDS = list(range(190, 200))


_pruner = sv.extra_pruner(
    {
        "TED_s26_noise_e0": lambda n, e, f, s: TEDPruner(
            n, e, budget=f, seed=s, noise_schedule="late_epoch0"
        )
    }
)


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """s27b's rule (`s27b_validation.decide`: B1-B4, same thresholds) with `noise_e0` as the
    candidate, on this study's arms and seeds."""
    return sv.decide(rows, seeds, candidate=CANDIDATE, arms=ARMS)


def main(argv: list[str] | None = None) -> None:
    """`s27_validation.main`'s loop with this study's arms, seeds, pruner, rule and the
    detector's fields in every row."""
    s27_validation.main(argv, arms=ARMS, seeds=SEEDS, pruner=_pruner, decide_rows=decide,
                        row_extra=sv._detector_fields, doc=__doc__)  # fmt: skip


if __name__ == "__main__":
    main()
