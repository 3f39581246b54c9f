"""Validation run of TED's re-scoring frequency: `TEDPruner(rescore_every=10)` and
`rescore_every=0` (never) against the default (5) and random-dynamic (issue 15, session 25b; the
rule is `docs/benchmarks/ted-prune-rescore-s25b/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/rescore_validation.py --out DIR [--resume]
        [--time-limit S] [--seeds 120 ... 129] [--settings clean noise20]
    python packages/ted-prune/scripts/rescore_validation.py --out DIR --decide

The runs, cache and measurements are `uniform_mix_validation.py`'s (MNIST-1D 5,000 x 20, f = 0.7,
one thread, VALIDATION split, never test); only the arms, the seeds and the rule differ.
"""

from __future__ import annotations

from typing import Any

from uniform_mix_validation import decide_two, main  # this folder, on sys.path

ARMS = {
    "default": "TED",
    "re10": "TED:prune_residual_sample_re10",
    "re0": "TED:prune_residual_sample_re0",
    "random_dynamic": "random_dynamic",
}
CANDIDATES = ("re10", "re0")
SEEDS = list(range(120, 130))


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s25b): `decide_two` with a tie going to re10 (the smaller change)."""
    return decide_two(rows, ARMS, seeds, CANDIDATES, tie="re10", between=("re0", "re10"))


if __name__ == "__main__":
    main(arms=ARMS, seeds=SEEDS, decide=decide, control=None, doc=__doc__)
