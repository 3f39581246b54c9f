"""Issue 19, twenty-first session: the pre-registered decision on fresh validation seeds 20..24,
read from the bench's cache. Rule: ``docs/benchmarks/ssjdn_validation_s21_rule.md`` (committed
before any run it decides).

- W1 (the full model is not worse at the wider width): ``+STL proj 64 (full SSJDN)`` -
  ``+STL (full SSJDN)``, mean >= 0 and CI lower bound > -0.5.
- W2 (the bidirectional rung at the wider width): ``+bidirectional proj 64`` -
  ``+SGS proj 64 (one direction)``, CI lower bound > 0.
- Adopted (``proj_dim`` 64 for the whole ladder) iff W1 and W2 pass.

Reported, not deciding: every rung of the wide ladder against the one below, full - dual encoder
at each width, each wide rung against today's where both ran, the pass-redundancy probes.
Prints every comparison it can form and the decision (``partial`` while a check lacks seeds).
Writes nothing. Run (seconds, reads JSON only):
``.venv/bin/python packages/ssjdn/scripts/decide_s21.py [--metric hard_mR]``.
"""

from __future__ import annotations

from decide_s17 import (  # this folder: on sys.path
    cache_parser,
    contrast,
    decide,
    load_runs,
    not_worse,
    print_probes,
)
from ssjdn.baselines import WIDE_LADDER

FULL, DUAL = "+STL (full SSJDN)", "dual-encoder"
SGS, BI = "+SGS (one direction)", "+bidirectional"
DIAG = ("pass_feat_cos", "pass_r2_c2f_from_f2c", "pass_r2_f2c_from_c2f", "sgs_damp_overlap")
SEEDS = range(20, 25)


def main() -> int:
    args = cache_parser(__doc__).parse_args()
    methods = [*WIDE_LADDER, *WIDE_LADDER.values()]
    cache, runs = load_runs(args.cache, methods, args.metric, SEEDS)
    w = WIDE_LADDER
    w1 = contrast(runs, w[FULL], FULL, SEEDS)
    w2 = contrast(runs, w[BI], w[SGS], SEEDS)
    rows = [("W1", w[FULL], FULL, w1), ("W2", w[BI], w[SGS], w2)]
    names = list(w)
    for lower, upper in zip(names, names[1:], strict=False):
        rows.append(("wide rung", w[upper], w[lower], contrast(runs, w[upper], w[lower], SEEDS)))
    for lower, upper in zip(names, names[1:], strict=False):
        rows.append(("today rung", upper, lower, contrast(runs, upper, lower, SEEDS)))
    rows.append(("goal +10", w[FULL], w[DUAL], contrast(runs, w[FULL], w[DUAL], SEEDS)))
    rows.append(("goal +10", FULL, DUAL, contrast(runs, FULL, DUAL, SEEDS)))
    for rung in names[:-1]:
        rows.append(("width", w[rung], rung, contrast(runs, w[rung], rung, SEEDS)))
    for tag, a, b, d in rows:
        print(f"{tag:10s} {a} - {b}:".ljust(72) + f" {args.metric}: " + (d.format() if d else "-"))
    print_probes(cache, (BI, w[BI]), DIAG, SEEDS, "probe", 22)
    if args.metric != "mR":
        return 0
    verdict = decide(
        [
            ("W1", w1, not_worse, "the full model at proj_dim 64 is not shown to be no worse"),
            ("W2", w2, lambda d: d.low > 0, "the bidirectional rung's CI is not above 0"),
        ],
        "ADOPTED on validation: W1 and W2 pass",
    )
    print(f"decision: proj_dim 64 for the whole ladder; {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
