"""Issue 19, sixth pass: the pre-registered decision on ``sgs_pool="residual"`` on FRESH
validation draws (seeds 5..9), read from the bench's cache (rule in the package README, section
"Sixth pass", committed before any run of these seeds).

Checks, in order (each later check is run and read only if the earlier ones pass; see the rule):

- C1 (the lead): ``+SGS residual (one direction)`` - ``+SFE``, paired Δ mR, CI lower bound > 0.
- C2 (the bidirectional rung on top is not made worse): per seed
  d = (``+bidirectional residual`` - ``+SGS residual (one direction)``)
      - (``+bidirectional`` - ``+SGS (one direction)``), mean(d) >= -0.5.
- C3 (the full model is not worse): ``SGS residual`` - ``+STL (full SSJDN)``, paired Δ mR with
  mean >= 0 and CI lower bound > -0.5.

The second reading of the sixth pass (LSD as label supervision of the encoders only, variants
``+LSD aux`` / ``LSD aux``; its rule in the README, committed before its runs) is decided here too:

- L1 (the LSD rung meets its goal): ``+LSD aux`` - ``+bidirectional``, CI lower bound > 0.
- L2 (the full model is not worse): ``LSD aux`` - ``+STL (full SSJDN)``, mean >= 0 and CI lower
  bound > -0.5.

Prints every comparison it can form from the finished runs and the decision (``partial`` while a
check lacks any of its 5 seeds). Writes nothing. Run (seconds, reads JSON only):
``.venv/bin/python packages/ssjdn/scripts/decide_residual_fresh.py``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from maskloop.report import PairedDifference, paired_difference
from ssjdn.bench import BenchSettings, cache_stem

SEEDS = range(5, 10)
SFE, SGS, BI, FULL = "+SFE", "+SGS (one direction)", "+bidirectional", "+STL (full SSJDN)"
SGS_R, BI_R, FULL_R = "+SGS residual (one direction)", "+bidirectional residual", "SGS residual"
LSD_A, FULL_A = "+LSD aux", "LSD aux"


def load(cache: Path, name: str, metric: str) -> dict[int, float]:
    """Finished runs of ``name`` on SEEDS: seed -> ``metric``."""
    out = {}
    for seed in SEEDS:
        f = cache / f"{cache_stem(name, seed)}.json"
        if f.is_file():
            out[seed] = float(json.loads(f.read_text())["metrics"][metric])
    return out


def contrast(
    runs: dict[str, dict[int, float]], plus: list[str], minus: list[str]
) -> PairedDifference | None:
    """Paired Δ of sum(plus) - sum(minus) over the seeds every method finished (None if < 5)."""
    seeds = sorted(set.intersection(*(set(runs[m]) for m in plus + minus)))
    if len(seeds) < len(SEEDS):
        return None
    a = [sum(runs[m][s] for m in plus) for s in seeds]
    b = [sum(runs[m][s] for m in minus) for s in seeds]
    return paired_difference(a, b)


def not_worse(d: PairedDifference) -> bool:
    """The full model is not worse: mean >= 0 and CI lower bound > -0.5."""
    return d.mean >= 0 and d.low > -0.5


def decide(
    checks: list[tuple[str, PairedDifference | None, Callable[[PairedDifference], bool], str]],
    adopted: str,
) -> str:
    """The pre-registered sequential rule: each check (tag, Δ or None while partial, test, what a
    failure means) is read only if the earlier ones pass; the first partial or failing check
    decides."""
    passed: list[str] = []
    for tag, d, ok, failure in checks:
        before = f"{', '.join(passed)} pass; " if passed else ""
        if d is None:
            return f"{before}partial ({tag} lacks seeds)"
        if not ok(d):
            return f"{before}{tag} fails ({failure}); not adopted"
        passed.append(tag)
    return adopted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", default="docs/benchmarks/cache", help="the bench's cache root")
    parser.add_argument("--metric", default="mR", help="mR (deciding) or hard_mR (reported)")
    args = parser.parse_args()
    cache = Path(args.cache) / "val" / BenchSettings.quick().key()
    methods = [SFE, SGS, BI, FULL, SGS_R, BI_R, FULL_R, LSD_A, FULL_A]
    runs = {m: load(cache, m, args.metric) for m in methods}
    for m in methods:
        print(f"{m:32s} seeds {sorted(runs[m])}")
    rows = {
        "C1 +SGS residual (one direction) - +SFE": contrast(runs, [SGS_R], [SFE]),
        "C2 bidirectional rung, residual ladder - today's ladder": contrast(
            runs, [BI_R, SGS], [SGS_R, BI]
        ),
        "C3 SGS residual - +STL (full SSJDN)": contrast(runs, [FULL_R], [FULL]),
        "(reported) +SGS residual (one direction) - +SGS (one direction)": contrast(
            runs, [SGS_R], [SGS]
        ),
        "(reported) +SGS (one direction) - +SFE (today's SGS rung)": contrast(runs, [SGS], [SFE]),
        "(reported) +bidirectional - +SGS (one direction) (today's rung)": contrast(
            runs, [BI], [SGS]
        ),
        "(reported) +bidirectional residual - +SGS residual (one direction)": contrast(
            runs, [BI_R], [SGS_R]
        ),
        "(reported) +bidirectional residual - +bidirectional": contrast(runs, [BI_R], [BI]),
        "L1 +LSD aux - +bidirectional": contrast(runs, [LSD_A], [BI]),
        "L2 LSD aux - +STL (full SSJDN)": contrast(runs, [FULL_A], [FULL]),
    }
    for label, d in rows.items():
        print(f"{label:68s} {args.metric}: " + (d.format() if d else "partial"))
    if args.metric != "mR":
        return 0
    c1, c2, c3 = (rows[k] for k in list(rows)[:3])
    verdict = decide(
        [
            ("C1", c1, lambda d: d.low > 0, "the lead does not replicate"),
            ("C2", c2, lambda d: d.mean >= -0.5, "the bidirectional rung gets worse"),
            ("C3", c3, not_worse, "the full model is not shown to be no worse"),
        ],
        "ADOPTED on validation: C1, C2 and C3 pass",
    )
    print("decision (sgs_pool='residual'):", verdict)
    l1, l2 = rows["L1 +LSD aux - +bidirectional"], rows["L2 LSD aux - +STL (full SSJDN)"]
    verdict = decide(
        [
            ("L1", l1, lambda d: d.low > 0, "the LSD rung does not clear 0"),
            ("L2", l2, not_worse, "the full model is not shown to be no worse"),
        ],
        "ADOPTED on validation: L1 and L2 pass",
    )
    print("decision (LSD aux):", verdict)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
