"""Apply a README adoption rule to a bench cache: paired Δ over seeds, CI and class swaps.

Usage: ``python packages/cdhm/scripts/paired_rule.py CACHE BASE METHOD [METHOD ...]`` with CACHE a
``<name>_cache.json`` of ``cdhm bench``. For every METHOD it prints the mean over tasks (± std over
seeds), Δ vs BASE paired over the seeds where both have every task (bootstrap 95 % CI of
``maskloop.report.paired_difference``, as the bench reports), the number of class-swap task-seeds
(``cdhm.bench.class_swaps``), the worst task-seed and the largest drop vs BASE on one task-seed.
Reads only what the cache holds.

Options (after the positional arguments) compare runs of different bench configs:
``--segments T`` reads METHOD from CACHE's runs of ``cdhm bench --segments T`` (default 4),
``--base-cache FILE`` and ``--base-segments T`` read BASE from FILE's runs of that T (default:
CACHE and 4); the pairing is still over the seeds where both have every task.
``--tasks A->D[,B->C...]`` reads only those tasks (e.g. one pseudo-target of the validation set);
the mean, the pairing, the swaps and the worst / largest drop are then over those tasks alone.
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


def _options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional arguments and the ``--segments / --base-cache / --base-segments`` options."""
    names = ("--segments", "--base-cache", "--base-segments", "--tasks")
    pos, opts, i = [], {}, 0
    while i < len(argv):
        if argv[i] in names:
            if i + 1 == len(argv):
                raise SystemExit(f"paired_rule: {argv[i]} needs a value")
            opts[argv[i]] = argv[i + 1]
            i += 2
        elif argv[i].startswith("--"):
            raise SystemExit(f"paired_rule: unknown option {argv[i]}; allowed: {names}")
        else:
            pos.append(argv[i])
            i += 1
    return pos, opts


def _runs(cache_file: str, segments: str) -> dict:
    """The runs of `cache_file` under the key of the bench config with `segments` segments."""
    if not segments.isdigit() or int(segments) < 1:
        raise SystemExit(f"paired_rule: --segments must be a positive integer, got {segments!r}")
    cache = json.loads(Path(cache_file).read_text())
    return cache[_cache_key(BenchConfig(n_segments=int(segments)))]


def _only_tasks(runs: dict, tasks: str | None) -> dict:
    """`runs` restricted to the jobs of `tasks` ("A->D,B->C", hard-tier names; None: all)."""
    if tasks is None:
        return runs
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    keep = set()
    for task in tasks.split(","):
        pair = task.strip().split("->")
        if len(pair) != 2 or not set(pair) <= set(names):
            raise SystemExit(f"paired_rule: --tasks wants e.g. A->D,B->C, got {task!r}")
        keep.add(f"{names.index(pair[0])}->{names.index(pair[1])}")
    out = {job: have for job, have in runs.items() if job.split("|")[0] in keep}
    if not out:
        raise SystemExit(f"paired_rule: no run of --tasks {tasks!r} in the cache")
    return out


def main(argv: list[str]) -> None:
    (cache_file, base, *methods), opts = _options(argv)
    tasks = opts.get("--tasks")
    runs = _only_tasks(_runs(cache_file, opts.get("--segments", "4")), tasks)
    base_runs = _only_tasks(
        _runs(opts.get("--base-cache", cache_file), opts.get("--base-segments", "4")), tasks
    )
    b = per_seed(base_runs, base)
    # with options the rows are labelled by their segment count (BASE and METHOD may share a name)
    seg_opts = set(opts) - {"--tasks"}
    tag = {
        k: f"@T{opts.get(k, '4')}" if seg_opts else "" for k in ("--base-segments", "--segments")
    }
    rows = [(base, base_runs, tag["--base-segments"])] + [
        (m, runs, tag["--segments"]) for m in methods
    ]
    for m, src, label in rows:
        a = per_seed(src, m)
        seeds = sorted(s for s in a if s in b and set(a[s]) == set(b[s]))
        means = [np.mean(list(a[s].values())) for s in seeds]
        d = paired_difference(means, [np.mean(list(b[s].values())) for s in seeds])
        swaps = sum(bool(class_swaps(h[m]["true"], h[m]["pred"])) for h in src.values() if m in h)
        worst = min((v, f"{t} seed {s}") for s in a for t, v in a[s].items())
        drop = min((a[s][t] - b[s][t], f"{t} seed {s}") for s in seeds for t in a[s])
        print(
            f"{m + label:22s} {np.mean(means):6.2f} ± {np.std(means, ddof=1):5.2f}  "
            f"Δ vs {base + tag['--base-segments']} "
            f"{d.mean:+6.2f} [{d.low:+6.2f}, {d.high:+6.2f}] (n={d.n})  swaps {swaps} of "
            f"{sum(m in h for h in src.values())}  worst {worst[0]:.1f} ({worst[1]})  "
            f"largest drop {drop[0]:+.1f} ({drop[1]})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
