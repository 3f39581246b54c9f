"""Issue 19, seventh pass: the pre-registered decisions of session 17 on fresh validation draws
(seeds 10..14, or 10..19 after the rule's one extension), read from the bench's cache. Rule:
``docs/benchmarks/ssjdn_validation_s17_rule.md`` (committed before any run it decides).

- B1: ``+bidirectional c2f suppress`` - ``+bidirectional``, CI lower bound > 0; then
  B2: ``BSD c2f suppress`` - ``+STL (full SSJDN)``, mean >= 0 and CI lower bound > -0.5.
- K: of ``STL kappa 0.75`` / ``STL kappa 1`` the one with the larger mean Δ mR against
  ``+STL (full SSJDN)`` (kappa 0.5); adopted iff its CI lower bound > 0.

Prints every comparison it can form and the decisions (``partial`` while a check lacks seeds).
Writes nothing. Run (seconds, reads JSON only):
``.venv/bin/python packages/ssjdn/scripts/decide_s17.py [--seeds 10 19] [--metric hard_mR]``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# the sequential decision helper and the non-inferiority test of the sixth pass, from the sibling
from decide_residual_fresh import decide, not_worse  # this folder: scripts run with it on sys.path
from maskloop.report import PairedDifference, paired_difference
from ssjdn.bench import BenchSettings, cache_stem

SGS, BI, FULL, DUAL = "+SGS (one direction)", "+bidirectional", "+STL (full SSJDN)", "dual-encoder"
BI_S, FULL_S = "+bidirectional c2f suppress", "BSD c2f suppress"
KAPPAS = {"0.75": "STL kappa 0.75", "1": "STL kappa 1"}
DIAG = ("keep_small_p1", "sgs_dir_cos_p1", "pass_feat_cos", "sgs_damp_overlap", "guide_z_p1")


def load(cache: Path, name: str, metric: str, seeds: range) -> dict[int, float]:
    """Finished runs of ``name`` on ``seeds``: seed -> ``metric`` (runs lacking it are left out)."""
    out = {}
    for seed in seeds:
        f = cache / f"{cache_stem(name, seed)}.json"
        if f.is_file():
            m = json.loads(f.read_text())["metrics"]
            if metric in m:
                out[seed] = float(m[metric])
    return out


def contrast(
    runs: dict[str, dict[int, float]], a: str, b: str, seeds: range
) -> PairedDifference | None:
    """Paired Δ a - b over ``seeds`` (None unless both finished every seed)."""
    if not all(s in runs[a] and s in runs[b] for s in seeds):
        return None
    return paired_difference([runs[a][s] for s in seeds], [runs[b][s] for s in seeds])


def print_probes(
    cache: Path,
    methods: tuple[str, ...],
    keys: tuple[str, ...],
    seeds: range,
    label: str,
    width: int,
) -> None:
    """Print, per probe key, each method's mean over the cached seeds ('-' where none is cached)."""
    for key in keys:
        vals = {m: load(cache, m, key, seeds) for m in methods}
        print(
            f"{label} {key:{width}s} "
            + "  ".join(
                f"{m}: {sum(v.values()) / len(v):.3f}" if v else f"{m}: -" for m, v in vals.items()
            )
        )


def cache_parser(doc: str) -> argparse.ArgumentParser:
    """The decide scripts' command line: ``--cache`` (the bench's cache root) and ``--metric``."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--cache", default="docs/benchmarks/cache", help="the bench's cache root")
    parser.add_argument("--metric", default="mR", help="mR (deciding) or hard_mR (reported)")
    return parser


def load_runs(
    cache_root: str, methods: list[str], metric: str, seeds: range
) -> tuple[Path, dict[str, dict[int, float]]]:
    """The quick settings' validation cache under ``cache_root``, and its runs: method -> seed ->
    ``metric``; prints each method's finished seeds."""
    cache = Path(cache_root) / "val" / BenchSettings.quick().key()
    runs = {m: load(cache, m, metric, seeds) for m in methods}
    for m in methods:
        print(f"{m:30s} seeds {sorted(runs[m])}")
    return cache, runs


def main() -> int:
    parser = cache_parser(__doc__)
    parser.add_argument(
        "--seeds", nargs=2, type=int, default=[10, 14], help="first and last seed (10 14 or 10 19)"
    )
    args = parser.parse_args()
    if tuple(args.seeds) not in ((10, 14), (10, 19)):
        parser.error(f"--seeds must be '10 14' or '10 19' (the rule's two looks), got {args.seeds}")
    seeds = range(args.seeds[0], args.seeds[1] + 1)
    methods = [DUAL, SGS, BI, BI_S, FULL, FULL_S, *KAPPAS.values()]
    cache, runs = load_runs(args.cache, methods, args.metric, seeds)
    rows = {
        "B1 +bidirectional c2f suppress - +bidirectional": contrast(runs, BI_S, BI, seeds),
        "B2 BSD c2f suppress - +STL (full SSJDN)": contrast(runs, FULL_S, FULL, seeds),
        **{f"K kappa {k} - kappa 0.5": contrast(runs, v, FULL, seeds) for k, v in KAPPAS.items()},
        "(reported) +bidirectional - +SGS (one direction) (today's rung)": contrast(
            runs, BI, SGS, seeds
        ),
        "(reported) +bidirectional c2f suppress - +SGS (one direction)": contrast(
            runs, BI_S, SGS, seeds
        ),
        "(reported) +STL (full SSJDN) - dual-encoder": contrast(runs, FULL, DUAL, seeds),
        **{
            f"(reported) STL kappa {k} - dual-encoder": contrast(runs, v, DUAL, seeds)
            for k, v in KAPPAS.items()
        },
    }
    for label, d in rows.items():
        print(f"{label:66s} {args.metric}: " + (d.format() if d else "partial"))
    print_probes(cache, (BI, BI_S, FULL, FULL_S), DIAG, seeds, "diagnostic", 18)
    if args.metric != "mR":
        return 0
    b1, b2 = (
        rows["B1 +bidirectional c2f suppress - +bidirectional"],
        rows["B2 BSD c2f suppress - +STL (full SSJDN)"],
    )
    verdict = decide(
        [
            ("B1", b1, lambda d: d.low > 0, "the rung is not raised over today's"),
            ("B2", b2, not_worse, "the full model is not shown to be no worse"),
        ],
        "ADOPTED on validation: B1 and B2 pass",
    )
    print("decision (sgs_polarity_c2f='suppress_salient'):", verdict)
    ks = {k: rows[f"K kappa {k} - kappa 0.5"] for k in KAPPAS}
    if any(d is None for d in ks.values()):
        print("decision (stl_kappa): partial (a candidate lacks seeds)")
    else:
        best = max(ks, key=lambda k: ks[k].mean)  # type: ignore[union-attr]
        d = ks[best]
        ok = d.low > 0  # type: ignore[union-attr]
        print(
            f"decision (stl_kappa): candidate {best} ({d.format()}); "  # type: ignore[union-attr]
            + ("ADOPTED on validation" if ok else "not adopted (CI not above 0); kappa stays 0.5")
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
