"""Apply a README adoption rule to a bench cache: paired Δ over seeds, CI and class swaps.

Usage: ``python packages/cdhm/scripts/paired_rule.py CACHE BASE METHOD [METHOD ...]`` with CACHE a
``<name>_cache.json`` of ``cdhm bench``. For every METHOD it prints the mean over tasks (± std over
seeds), Δ vs BASE paired over the seeds where both have every task (bootstrap 95 % CI of
``maskloop.report.paired_difference``, as the bench reports), the number of class-swap task-seeds
(``cdhm.bench.class_swaps``), the worst task-seed and the largest drop vs BASE on one task-seed.
Reads only what the cache holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from cdhm.bench import BenchConfig, _cache_key, class_swaps
from cdhm.data import DOMAIN_TIERS
from maskloop.report import paired_difference


def per_seed(runs: dict, method: str) -> dict[int, dict[str, float]]:
    """{seed: {task: target accuracy %}} of `method` in one cache key's runs."""
    out: dict[int, dict[str, float]] = {}
    for job, have in runs.items():
        if method in have:
            pair, seed = job.split("|")
            src, tgt = (DOMAIN_TIERS["hard"][int(i)].name for i in pair.split("->"))
            out.setdefault(int(seed), {})[f"{src}->{tgt}"] = (
                100 * have[method]["metrics"]["acc_target"]
            )
    return out


def main(argv: list[str]) -> None:
    cache_file, base, *methods = argv
    cache = json.loads(Path(cache_file).read_text())
    runs = cache[_cache_key(BenchConfig())]
    b = per_seed(runs, base)
    for m in [base, *methods]:
        a = per_seed(runs, m)
        seeds = sorted(s for s in a if s in b and set(a[s]) == set(b[s]))
        means = [np.mean(list(a[s].values())) for s in seeds]
        d = paired_difference(means, [np.mean(list(b[s].values())) for s in seeds])
        swaps = sum(bool(class_swaps(h[m]["true"], h[m]["pred"])) for h in runs.values() if m in h)
        worst = min((v, f"{t} seed {s}") for s in a for t, v in a[s].items())
        drop = min((a[s][t] - b[s][t], f"{t} seed {s}") for s in seeds for t in a[s])
        print(
            f"{m:22s} {np.mean(means):6.2f} ± {np.std(means, ddof=1):5.2f}  Δ vs {base} "
            f"{d.mean:+6.2f} [{d.low:+6.2f}, {d.high:+6.2f}] (n={d.n})  swaps {swaps} of "
            f"{sum(m in h for h in runs.values())}  worst {worst[0]:.1f} ({worst[1]})  "
            f"largest drop {drop[0]:+.1f} ({drop[1]})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
