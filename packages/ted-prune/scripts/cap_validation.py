"""Validation run of lower loss-weight caps, `TEDPruner(max_weight=1.5)` and `max_weight=1`, against
the current default (`max_weight=2`, the grid's `TED_s25c` method) and random-dynamic (issue 15,
session 25e; the rule is `docs/benchmarks/ted-prune-cap-s25e/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/cap_validation.py --out DIR [--resume]
        [--time-limit S] [--seeds 140 ... 149] [--settings clean noise20]
    python packages/ted-prune/scripts/cap_validation.py --out DIR --decide

The runs, cache and measurements are `uniform_mix_validation.py`'s (MNIST-1D 5,000 x 20, f = 0.7,
one thread, VALIDATION split, never test); only the arms, the seeds and the rule differ.
"""

from __future__ import annotations

from typing import Any

from uniform_mix_validation import decide_two, main  # this folder, on sys.path

ARMS = {
    "default": "TED_s25c",  # TEDPruner's current defaults (max_weight=2.0)
    "mw1.5": "TED:prune_residual_sample_mw1.5",
    "mw1": "TED:prune_residual_sample_mw1",
    "random_dynamic": "random_dynamic",
}
CANDIDATES = ("mw1.5", "mw1")
SEEDS = list(range(140, 150))


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s25e): `decide_two` with a tie going to mw1.5 (the smaller change)."""
    return decide_two(rows, ARMS, seeds, CANDIDATES, tie="mw1.5", between=("mw1", "mw1.5"))


if __name__ == "__main__":
    main(arms=ARMS, seeds=SEEDS, decide=decide, control=None, doc=__doc__)
