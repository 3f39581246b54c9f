"""Validation run of two `TEDPruner(tail=...)` readings with unit loss weights against the current
default (`max_weight=2`, the grid's `TED_s25c` method) and random-dynamic (issue 15, session 26;
the rule is `docs/benchmarks/ted-prune-tail-s26/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/tail_validation.py --out DIR [--resume]
        [--time-limit S] [--seeds 150 ... 159] [--settings clean noise20]
    python packages/ted-prune/scripts/tail_validation.py --out DIR --decide

The runs, cache and measurements are `uniform_mix_validation.py`'s (MNIST-1D 5,000 x 20, f = 0.7,
one thread, VALIDATION split, never test); only the arms, the seeds and the rule differ. The arm
`w1` (unit weights, no tail: session 25c's rejected reading) is reported only.
"""

from __future__ import annotations

from typing import Any

from uniform_mix_validation import decide_two, main  # this folder, on sys.path

ARMS = {
    "default": "TED_s25c",  # TEDPruner's current defaults (max_weight=2.0)
    "tmis": "TED:prune_residual_sample_w1_tmis",
    "tail10": "TED:prune_residual_sample_w1_tail10",
    "w1": "TED:prune_residual_sample_w1",  # reported only (loss_weights="none", no tail)
    "random_dynamic": "random_dynamic",
}
CANDIDATES = ("tmis", "tail10")
SEEDS = list(range(150, 160))


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s26): `decide_two` with a tie going to tmis (no free parameter); w1 reported."""
    return decide_two(rows, ARMS, seeds, CANDIDATES, tie="tmis", between=("tail10", "tmis"),
                      extra=(("tmis", "w1"), ("tail10", "w1"), ("w1", "default"),
                             ("w1", "random_dynamic")))  # fmt: skip


if __name__ == "__main__":
    main(arms=ARMS, seeds=SEEDS, decide=decide, control=None, doc=__doc__)
