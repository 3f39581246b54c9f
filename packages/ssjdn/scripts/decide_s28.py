"""Issue 19, session 28: a precise validation read of the two missed rungs of today's ladder,
read from the bench's cache (rule ``docs/benchmarks/ssjdn_validation_s28_rule.md``, committed
before any run it decides). Nothing is adopted: today's defaults are measured.

Rungs (primary, N = 10 on validation seeds 65..74): bidirectional = ``+bidirectional centered``
- ``+SGS (one direction) centered``; LSD = ``+LSD centered`` - ``+bidirectional centered``.
Leave-one-outs (reported, N as the budget allowed): ``BSD centered`` - ``BSD centered - LSD`` and
``BSD centered`` - ``BSD centered - bidirectional``, on the fresh seeds alone and pooled with
seeds 60..64 (session 27's, seen before the rule). Each paired Δ mR (bootstrap 95 % CI,
`maskloop.report.paired_difference`, over the seeds both methods finished) is classified by
`classify`: ``adds`` (CI lower bound > 0), ``hurts`` (upper bound < 0), ``below 1 mR`` (CI
holds 0, upper bound < 1) or ``unresolved`` (CI holds 0, upper bound >= 1); fewer than the
rule's N seeds is ``partial``. `extension_rungs` names the rungs whose complete validation read
``adds``: only those may get the pre-registered test read on test seeds 0..19
(``--split test --seeds 0 19``: met iff the CI lower bound > 0). ``post_hoc`` (not in the rule,
added after stage 1 stopped short of N = 10, deciding nothing): the rungs pooled with 60..64.

Run (seconds, reads JSON only; ``--write`` saves the summary as JSON):

    .nox/workspace/bin/python packages/ssjdn/scripts/decide_s28.py [--metric hard_mR] \
        [--write docs/benchmarks/ssjdn_validation_s28_decision.json]
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from maskloop.report import PairedDifference, mean_std, paired_difference
from ssjdn.bench import BenchSettings, cache_stem

ONE, BI, LSD = "+SGS (one direction) centered", "+bidirectional centered", "+LSD centered"
FULL, NO_LSD, NO_BI = "BSD centered", "BSD centered - LSD", "BSD centered - bidirectional"
#: (label, A, B): the paired Δ A - B; rungs first (the bidirectional rung before the LSD rung)
RUNGS = (("bidirectional rung", BI, ONE), ("LSD rung", LSD, BI))
LEAVE_ONE_OUT = (
    ("full - (full without LSD)", FULL, NO_LSD),
    ("full - (full one-direction)", FULL, NO_BI),
)
METHODS = (ONE, BI, LSD, FULL, NO_LSD, NO_BI)
VAL_SEEDS = range(65, 75)  # the rule's N = 10
SEEN_SEEDS = range(60, 65)  # session 27's seeds, pooled (labelled) for the leave-one-outs
TEST_SEEDS = range(0, 20)  # the pre-registered test extension's N = 20
#: a CI that holds 0 and whose upper bound is below this bounds the gain below 1 mR
SMALL = 1.0
CLASSES = ("adds", "hurts", "below 1 mR", "unresolved")


def classify(d: PairedDifference) -> str:
    """The rule's reading of one paired Δ: ``adds`` (low > 0), ``hurts`` (high < 0), ``below 1
    mR`` (low <= 0 <= high < 1) or ``unresolved`` (low <= 0 and high >= 1)."""
    if not isinstance(d, PairedDifference):
        raise TypeError(f"d must be a PairedDifference, got {type(d).__name__}")
    if d.low > 0:
        return "adds"
    if d.high < 0:
        return "hurts"
    return "below 1 mR" if d.high < SMALL else "unresolved"


def extension_rungs(reads: dict[str, dict[str, Any]], n_needed: int = len(VAL_SEEDS)) -> list[str]:
    """The rungs (in `RUNGS` order) whose validation read is complete (``n >= n_needed``) and
    ``adds``: the only ones the rule lets have the 20-seed test read."""
    return [
        label
        for label, _, _ in RUNGS
        if label in reads and reads[label]["n"] >= n_needed and reads[label]["class"] == "adds"
    ]


def load(folder: Path, name: str, metric: str, seeds: Sequence[int]) -> dict[int, float]:
    """Cached runs of ``name`` on ``seeds`` under ``folder``: seed -> ``metric``."""
    out = {}
    for seed in seeds:
        f = folder / f"{cache_stem(name, seed)}.json"
        if f.is_file():
            m = json.loads(f.read_text())["metrics"]
            if metric in m:
                out[seed] = float(m[metric])
    return out


def read(
    runs: dict[str, dict[int, float]], a: str, b: str, seeds: Sequence[int], n_needed: int
) -> dict[str, Any] | None:
    """Paired Δ ``a`` - ``b`` over the seeds of ``seeds`` both finished (None under 2 seeds), its
    class and whether it is partial (fewer than ``n_needed`` seeds)."""
    shared = [s for s in seeds if s in runs[a] and s in runs[b]]
    if len(shared) < 2:
        return None
    d = paired_difference([runs[a][s] for s in shared], [runs[b][s] for s in shared])
    return {
        "a": a,
        "b": b,
        "seeds": shared,
        "n": len(shared),
        "mean": d.mean,
        "low": d.low,
        "high": d.high,
        "ci": d.format(),
        "class": classify(d),
        "partial": len(shared) < n_needed,
    }


def summarize(cache_root: str | Path, metric: str = "mR", split: str = "val") -> dict[str, Any]:
    """Every method's mean ± std and every read the rule names, from the cache under
    ``cache_root`` (validation: seeds 65..74 and the pooled leave-one-outs; test: the rungs on
    seeds 0..19)."""
    folder = Path(cache_root) / split / BenchSettings.quick().key()
    seeds = VAL_SEEDS if split == "val" else TEST_SEEDS
    runs = {m: load(folder, m, metric, list(seeds)) for m in METHODS}
    methods = {}
    for m, v in runs.items():
        if v:
            mu, sd = mean_std(v.values())
            methods[m] = {"seeds": sorted(v), "n": len(v), "mean": mu, "std": sd}
    reads: dict[str, Any] = {}
    for label, a, b in RUNGS + (LEAVE_ONE_OUT if split == "val" else ()):
        r = read(runs, a, b, list(seeds), len(seeds))
        if r is not None:
            reads[label] = r
    if split == "val":
        pooled = [*SEEN_SEEDS, *seeds]
        seen = {m: load(folder, m, metric, list(SEEN_SEEDS)) for m in METHODS}
        both = {m: {**seen[m], **runs[m]} for m in METHODS}
        for label, a, b in LEAVE_ONE_OUT:
            r = read(both, a, b, pooled, len(pooled))
            if r is not None:
                reads[f"{label}, pooled with 60..64"] = r
        # not in the rule (added after stage 1 stopped short of N = 10): the rungs pooled the
        # same way, reported apart from the rule's reads and deciding nothing
        post_hoc = {}
        for label, a, b in RUNGS:
            r = read(both, a, b, pooled, len(pooled))
            if r is not None:
                post_hoc[f"{label}, pooled with 60..64"] = r
    out: dict[str, Any] = {"split": split, "metric": metric, "methods": methods, "reads": reads}
    if split == "val":
        out["post_hoc"] = post_hoc
    if split == "val" and metric == "mR":
        out["test_extension"] = extension_rungs(reads)
    if split == "test":
        out["test_goal"] = {
            label: ("met" if r["low"] > 0 else "missed") + (" (partial)" if r["partial"] else "")
            for label, r in reads.items()
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Print the summary (and write it with ``--write``)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cache", default="docs/benchmarks/cache", help="the bench's cache root")
    p.add_argument("--metric", default="mR", help="mR (deciding) or hard_mR (reported)")
    p.add_argument("--split", default="val", choices=("val", "test"), help="val, or test (0..19)")
    p.add_argument("--seeds", nargs=2, type=int, metavar=("FIRST", "LAST"), help="0 19 (test)")
    p.add_argument("--write", help="write the summary as JSON to this path")
    args = p.parse_args(argv)
    expected = VAL_SEEDS if args.split == "val" else TEST_SEEDS
    if args.seeds is not None and tuple(args.seeds) != (expected[0], expected[-1]):
        p.error(
            f"--seeds must be '{expected[0]} {expected[-1]}' for --split {args.split} "
            f"(the rule's N), got {args.seeds}"
        )
    s = summarize(args.cache, args.metric, args.split)
    for m, v in s["methods"].items():
        print(f"{m:32s} n {v['n']:2d}  {args.metric} {v['mean']:6.2f} ± {v['std']:.2f}")
    for label, r in s["reads"].items():
        tail = f" (partial, N = {r['n']})" if r["partial"] else f" (N = {r['n']})"
        print(f"{label:44s} {r['a']} - {r['b']}: {r['ci']}  {r['class']}{tail}")
    for label, r in s.get("post_hoc", {}).items():
        print(f"(post hoc) {label:33s} {r['a']} - {r['b']}: {r['ci']}  {r['class']} (N = {r['n']})")
    if "test_extension" in s:
        ext = s["test_extension"]
        print("test extension (rule s28): " + (", ".join(ext) if ext else "none qualifies"))
    if "test_goal" in s:
        for label, verdict in s["test_goal"].items():
            print(f"test goal {label}: {verdict}")
    if args.write:
        Path(args.write).write_text(json.dumps(s, indent=1, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
