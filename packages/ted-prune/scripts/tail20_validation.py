"""Validation run of `TEDPruner(tail=0.2)` with unit loss weights against the current default
(`max_weight=2`, the grid's `TED_s25c` method) and random-dynamic (issue 15, session 26b; the rule is
`docs/benchmarks/ted-prune-tail-s26/RULE-s26b.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/tail20_validation.py --out DIR [--resume]
        [--time-limit S] [--seeds 160 ... 169] [--settings clean noise20]
    python packages/ted-prune/scripts/tail20_validation.py --out DIR --decide

The runs, cache and measurements are `uniform_mix_validation.py`'s (MNIST-1D 5,000 x 20, f = 0.7,
one thread, VALIDATION split, never test); only the arms, the seeds and the rule differ. The arm
`tail10` (session 26's rejected candidate) is reported only.
"""

from __future__ import annotations

from typing import Any

from uniform_mix_validation import candidate_rule, main, summarize  # this folder, on sys.path

ARMS = {
    "default": "TED_s25c",  # TEDPruner's current defaults (max_weight=2.0)
    "tail20": "TED:prune_residual_sample_w1_tail20",
    "tail10": "TED:prune_residual_sample_w1_tail10",  # reported only
    "random_dynamic": "random_dynamic",
}
SEEDS = list(range(160, 170))


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE-s26b.md: `candidate_rule` for tail20 (one candidate); tail10 reported only."""
    pairs = {f"{x}-{y}": (x, y) for x, y in (
        ("tail20", "default"), ("tail20", "random_dynamic"), ("default", "random_dynamic"),
        ("tail10", "default"), ("tail10", "random_dynamic"), ("tail20", "tail10"))}  # fmt: skip
    out = summarize(rows, ARMS, seeds, pairs)
    rule = candidate_rule(out, rows, "tail20", len(seeds))
    out["rule"] = {"tail20": rule, "adopt": "tail20" if rule["adopt"] else None}
    return out


if __name__ == "__main__":
    main(arms=ARMS, seeds=SEEDS, decide=decide, control=None, doc=__doc__)
