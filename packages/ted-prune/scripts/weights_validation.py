"""Validation run of TED's loss weights: `TEDPruner(loss_weights="none")` (weight 1 on every kept
sample) and `max_weight=2` against the default (importance weights min(k / p_i, 4)) and
random-dynamic (issue 15, session 25c; the rule is `docs/benchmarks/ted-prune-weights-s25c/RULE.md`,
committed before the runs).

Usage::

    python packages/ted-prune/scripts/weights_validation.py --out DIR [--resume]
        [--time-limit S] [--seeds 130 ... 139] [--settings clean noise20]
    python packages/ted-prune/scripts/weights_validation.py --out DIR --decide

The runs, cache and measurements are `uniform_mix_validation.py`'s (MNIST-1D 5,000 x 20, f = 0.7,
one thread, VALIDATION split, never test); only the arms, the seeds and the rule differ.
"""

from __future__ import annotations

from typing import Any

from uniform_mix_validation import decide_two, main  # this folder, on sys.path

ARMS = {
    "default": "TED",
    "w1": "TED:prune_residual_sample_w1",
    "mw2": "TED:prune_residual_sample_mw2",
    "random_dynamic": "random_dynamic",
}
CANDIDATES = ("w1", "mw2")
SEEDS = list(range(130, 140))


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s25c): `decide_two` with a tie going to mw2 (the smaller change)."""
    return decide_two(rows, ARMS, seeds, CANDIDATES, tie="mw2", between=("w1", "mw2"))


if __name__ == "__main__":
    main(arms=ARMS, seeds=SEEDS, decide=decide, control=None, doc=__doc__)
