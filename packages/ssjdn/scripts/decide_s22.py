"""Issue 19, twenty-second session: the pre-registered decision on fresh validation seeds 25..29,
read from the bench's cache. Rule: ``docs/benchmarks/ssjdn_validation_s22_rule.md`` (committed
before any run it decides).

- B1 (the bidirectional rung with the passes averaged): ``+bidirectional mean`` -
  ``+SGS (one direction)``, CI lower bound > 0.
- B2 (the full model is not worse): ``BSD mean`` - ``+STL (full SSJDN)``, mean >= 0 and CI lower
  bound > -0.5.
- Adopted on validation (``sgs_fusion="mean"`` the default) iff B1 and B2 pass.

Reported, not deciding: today's rung (``+bidirectional`` - ``+SGS (one direction)``), the mean
against the concatenation on both rungs, full - dual encoder, the pass-redundancy probes.
Prints every comparison it can form and the decision (``partial`` while a check lacks seeds).
Writes nothing. Run (seconds, reads JSON only):
``.venv/bin/python packages/ssjdn/scripts/decide_s22.py [--metric hard_mR]``.
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

FULL, DUAL = "+STL (full SSJDN)", "dual-encoder"
SGS, BI = "+SGS (one direction)", "+bidirectional"
BI_M, FULL_M = "+bidirectional mean", "BSD mean"
DIAG = ("pass_feat_cos", "pass_r2_c2f_from_f2c", "pass_r2_f2c_from_c2f", "sgs_damp_overlap")
SEEDS = range(25, 30)


def main() -> int:
    args = cache_parser(__doc__).parse_args()
    methods = [SGS, BI_M, FULL, FULL_M, BI, DUAL]
    cache, runs = load_runs(args.cache, methods, args.metric, SEEDS)
    b1 = contrast(runs, BI_M, SGS, SEEDS)
    b2 = contrast(runs, FULL_M, FULL, SEEDS)
    rows = [
        ("B1", BI_M, SGS, b1),
        ("B2", FULL_M, FULL, b2),
        ("today rung", BI, SGS, contrast(runs, BI, SGS, SEEDS)),
        ("mean-concat", BI_M, BI, contrast(runs, BI_M, BI, SEEDS)),
        ("goal +10", FULL, DUAL, contrast(runs, FULL, DUAL, SEEDS)),
        ("goal +10", FULL_M, DUAL, contrast(runs, FULL_M, DUAL, SEEDS)),
    ]
    for tag, a, b, d in rows:
        print(f"{tag:11s} {a} - {b}:".ljust(60) + f" {args.metric}: " + (d.format() if d else "-"))
    print_probes(cache, (BI, BI_M, FULL, FULL_M), DIAG, SEEDS, "probe", 22)
    if args.metric != "mR":
        return 0
    verdict = decide(
        [
            ("B1", b1, lambda d: d.low > 0, "the bidirectional rung's CI is not above 0"),
            ("B2", b2, not_worse, "the full model with the mean is not shown to be no worse"),
        ],
        "ADOPTED on validation: B1 and B2 pass",
    )
    print(f"decision: sgs_fusion='mean'; {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
