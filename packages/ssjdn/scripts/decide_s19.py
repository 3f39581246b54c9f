"""Issue 19, nineteenth session: the pre-registered decision on validation seeds 15..19, read from
the bench's cache. Rule: ``docs/benchmarks/ssjdn_validation_s19_rule.md`` (committed before any
run it decides).

- Candidate: of ``sgs_proj="per_pass"`` (P) and ``sgs_guide_c2f="f2c_salience"`` (G), the one with
  the larger mean Δ mR of ``+bidirectional X`` - ``+SGS (one direction)``.
- R1: that Δ has CI lower bound > 0; then R2: ``BSD X`` - ``STL kappa 1`` (today's full model),
  mean >= 0 and CI lower bound > -0.5. Adopted iff both pass.

Prints every comparison it can form, the probes and the decision (``partial`` while a check
lacks seeds). Writes nothing. Run (seconds, reads JSON only):
``.venv/bin/python packages/ssjdn/scripts/decide_s19.py [--metric hard_mR]``.
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
READINGS = {
    "P (sgs_proj='per_pass')": ("+bidirectional per-pass proj", "BSD per-pass proj"),
    "G (sgs_guide_c2f='f2c_salience')": ("+bidirectional f2c guide", "BSD f2c guide"),
}
DIAG = (
    "pass_feat_cos",
    "pass_r2_c2f_from_f2c",
    "pass_r2_f2c_from_c2f",
    "sgs_damp_overlap",
    "sgs_map_corr",
    "pass_contrib_cos",
    "pass_cancel",
    "sgs_dir_cos_p1",
    "guide_z_p1",
    "mR_without_f2c",
    "mR_without_c2f",
    "mR",
)
SEEDS = range(15, 20)


def main() -> int:
    args = cache_parser(__doc__).parse_args()
    methods = [SGS, BI, FULL, *(m for pair in READINGS.values() for m in pair)]
    cache, runs = load_runs(args.cache, methods, args.metric, SEEDS)
    rung = {r: contrast(runs, bi, SGS, SEEDS) for r, (bi, _) in READINGS.items()}
    rows = {
        **{f"R1 {r}: {READINGS[r][0]} - {SGS}": d for r, d in rung.items()},
        **{
            f"R2 {r}: {full} - {FULL}": contrast(runs, full, FULL, SEEDS)
            for r, (_, full) in READINGS.items()
        },
        f"(reported) today's rung {BI} - {SGS}": contrast(runs, BI, SGS, SEEDS),
        **{f"(reported) {bi} - {BI}": contrast(runs, bi, BI, SEEDS) for bi, _ in READINGS.values()},
    }
    for label, d in rows.items():
        print(f"{label:80s} {args.metric}: " + (d.format() if d else "partial"))
    probed = (BI, *(bi for bi, _ in READINGS.values()))
    print_probes(cache, probed, DIAG, SEEDS, "probe", 22)
    if args.metric != "mR":
        return 0
    if any(d is None for d in rung.values()):
        print("decision: partial (a reading's rung lacks seeds)")
        return 0
    best = max(rung, key=lambda r: rung[r].mean)  # type: ignore[union-attr]
    verdict = decide(
        [
            ("R1", rung[best], lambda d: d.low > 0, "the rung's CI is not above 0"),
            (
                "R2",
                rows[f"R2 {best}: {READINGS[best][1]} - {FULL}"],
                not_worse,
                "the full model is not shown to be no worse",
            ),
        ],
        "ADOPTED on validation: R1 and R2 pass",
    )
    print(f"decision: candidate {best}; {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
