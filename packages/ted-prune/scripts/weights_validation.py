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

from uniform_mix_validation import candidate_rule, main, summarize  # this folder, on sys.path

ARMS = {
    "default": "TED",
    "w1": "TED:prune_residual_sample_w1",
    "mw2": "TED:prune_residual_sample_mw2",
    "random_dynamic": "random_dynamic",
}
CANDIDATES = ("w1", "mw2")
SEEDS = list(range(130, 140))


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md (s25c): each candidate is adoptable iff `candidate_rule` holds for it; if both are,
    the one with the larger clean mean over default is adopted (a tie: mw2, the smaller change)."""
    pairs = {f"{c}-{b}": (c, b) for c in CANDIDATES for b in ("default", "random_dynamic")}
    pairs |= {"w1-mw2": ("w1", "mw2"), "default-random_dynamic": ("default", "random_dynamic")}
    out = summarize(rows, ARMS, seeds, pairs)
    rules = {c: candidate_rule(out, rows, c, len(seeds)) for c in CANDIDATES}
    ok = [c for c in CANDIDATES if rules[c]["adopt"]]
    clean = out["settings"].get("clean", {})
    best = max(ok, key=lambda c: (clean[f"{c}-default"]["mean"], c == "mw2")) if ok else None
    out["rule"] = {**rules, "adopt": best}
    return out


if __name__ == "__main__":
    main(arms=ARMS, seeds=SEEDS, decide=decide, control=None, doc=__doc__)
