"""Issue 19, twentieth session: the pre-registered decision on validation seeds 15..19, read from
the bench's cache. Rule: ``docs/benchmarks/ssjdn_validation_s20_rule.md`` (committed before any
run it decides).

- Candidate: of ``sgs_sequence="sequential"`` (S) and ``sgs_decorrelate=1`` (D), the one with the
  larger mean Δ mR of ``+bidirectional X`` - ``+SGS (one direction)``.
- R1: that Δ has CI lower bound > 0. RW (width control): ``+bidirectional X`` -
  ``+SGS proj 64 (one direction)`` (one pass, the same fusion width, more weights) CI lower
  bound > 0. RP (parameter control): ``+bidirectional X`` - ``+bidirectional`` (two passes, the
  identical weights) CI lower bound > 0. Then R2: ``BSD X`` - ``STL kappa 1`` (today's full
  model), mean >= 0 and CI lower bound > -0.5. Adopted iff all four pass.

Prints every comparison it can form, the probes and the decision (``partial`` while a check
lacks seeds). Writes nothing. Run (seconds, reads JSON only):
``.venv/bin/python packages/ssjdn/scripts/decide_s20.py [--metric hard_mR]``.
"""

from __future__ import annotations

from decide_s17 import (  # this folder: scripts run with it on sys.path
    cache_parser,
    contrast,
    decide,
    load_runs,
    not_worse,
    print_probes,
)

SGS, BI, FULL = "+SGS (one direction)", "+bidirectional", "STL kappa 1"
WIDE = "+SGS proj 64 (one direction)"
READINGS = {
    "S (sgs_sequence='sequential')": ("+bidirectional sequential", "BSD sequential"),
    "D (sgs_decorrelate=1)": ("+bidirectional decorrelated", "BSD decorrelated"),
}
DIAG = (
    "pass_feat_cos",
    "pass_r2_c2f_from_f2c",
    "pass_r2_f2c_from_c2f",
    "sgs_damp_overlap",
    "pass_contrib_cos",
    "mR_without_f2c",
    "mR_without_c2f",
    "mR",
    "hard_mR",
)
SEEDS = range(15, 20)


def main() -> int:
    args = cache_parser(__doc__).parse_args()
    methods = [SGS, BI, WIDE, FULL, *(m for pair in READINGS.values() for m in pair)]
    cache, runs = load_runs(args.cache, methods, args.metric, SEEDS)
    checks = {
        r: {
            "R1": contrast(runs, bi, SGS, SEEDS),
            "RW": contrast(runs, bi, WIDE, SEEDS),
            "RP": contrast(runs, bi, BI, SEEDS),
            "R2": contrast(runs, full, FULL, SEEDS),
        }
        for r, (bi, full) in READINGS.items()
    }
    against = {"R1": SGS, "RW": WIDE, "RP": BI, "R2": FULL}
    for r, (bi, full) in READINGS.items():
        for c, d in checks[r].items():
            label = f"{c} {r}: {full if c == 'R2' else bi} - {against[c]}"
            print(f"{label:88s} {args.metric}: " + (d.format() if d else "partial"))
    today = contrast(runs, BI, SGS, SEEDS)
    print(f"(reported) today's rung {BI} - {SGS}: " + (today.format() if today else "partial"))
    probed = (BI, *(bi for bi, _ in READINGS.values()))
    print_probes(cache, probed, DIAG, SEEDS, "probe", 22)
    if args.metric != "mR":
        return 0
    if any(c["R1"] is None for c in checks.values()):
        print("decision: partial (a reading's rung lacks seeds)")
        return 0
    best = max(checks, key=lambda r: checks[r]["R1"].mean)  # type: ignore[union-attr]
    c = checks[best]
    verdict = decide(
        [
            ("R1", c["R1"], lambda d: d.low > 0, "the rung's CI is not above 0"),
            ("RW", c["RW"], lambda d: d.low > 0, "not above the one-pass model of the same width"),
            ("RP", c["RP"], lambda d: d.low > 0, "not above today's two passes (same weights)"),
            ("R2", c["R2"], not_worse, "the full model is not shown to be no worse"),
        ],
        "ADOPTED on validation: R1, RW, RP and R2 pass",
    )
    print(f"decision: candidate {best}; {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
