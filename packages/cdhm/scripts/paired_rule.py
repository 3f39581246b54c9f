"""Apply a README adoption rule to a bench cache: paired Δ over seeds, CI and class swaps.

Usage: ``python packages/cdhm/scripts/paired_rule.py CACHE BASE METHOD [METHOD ...]`` with CACHE a
``<name>_cache.json`` of ``cdhm bench``. For every METHOD it prints the mean over tasks (± std over
seeds), Δ vs BASE paired over the *complete* seeds (bootstrap 95 % CI of
``maskloop.report.paired_difference``, as the bench reports), the number of class-swap task-seeds
(``cdhm.bench.class_swaps``), the worst task-seed and the largest drop vs BASE on one task-seed,
all over the complete seeds only. Reads only what the cache holds.

A seed is *complete* when every row (BASE and every METHOD) has every task of the full task set
(``--task-set NAME``: ``cdhm.bench.VALIDATION_TASK_SETS[NAME]``; ``--tasks``: those tasks; else
the union of the tasks any row has on any seed). A seed with only some of them is *partial*: it is
listed on a ``partial`` line with the tasks it has and used for nothing (before session 31 a seed
counted when BASE and METHOD had the *same* tasks, so a seed stopped after 3 of 5 tasks in every
row entered the five-task means and CIs).

Options (after the positional arguments) compare runs of different bench configs:
``--segments T`` reads METHOD from CACHE's runs of ``cdhm bench --segments T`` (default 4),
``--base-cache FILE`` and ``--base-segments T`` read BASE from FILE's runs of that T (default:
CACHE and 4); the pairing is still over the seeds where both have every task.
``--tasks A->D[,B->C...]`` reads only those tasks (e.g. one pseudo-target of the validation set);
the mean, the pairing, the swaps and the worst / largest drop are then over those tasks alone.
``--task-set NAME`` names the full task set (a key of ``cdhm.bench.VALIDATION_TASK_SETS``, e.g.
``0db``); it cannot be combined with ``--tasks``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from cdhm.bench import VALIDATION_TASK_SETS, BenchConfig, _cache_key, class_swaps
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


def complete_seeds(
    rows: dict[str, dict[int, dict[str, float]]], tasks: set[str] | None = None
) -> tuple[list[int], dict[int, dict[str, list[str]]]]:
    """The complete and the partial seeds of `rows` ({row: :func:`per_seed`'s output}).

    `tasks` is the full task set (None: the union of the tasks any row has on any seed). A seed
    is complete when every row has every task of it; a seed that some row has but that is not
    complete is partial. Returns (sorted complete seeds, {partial seed: {row: its sorted tasks}}).
    """
    if not rows:
        raise ValueError("rows must hold at least one row")
    full = (
        set(tasks)
        if tasks is not None
        else {t for a in rows.values() for d in a.values() for t in d}
    )
    if not full:
        raise ValueError("tasks must not be empty (no row has any task)")
    seeds = sorted({s for a in rows.values() for s in a})
    complete = [s for s in seeds if all(full <= set(a.get(s, {})) for a in rows.values())]
    partial = {
        s: {m: sorted(a.get(s, {})) for m, a in rows.items()} for s in seeds if s not in complete
    }
    return complete, partial


def _task_set(name: str) -> set[str]:
    """The tasks of ``VALIDATION_TASK_SETS[name]`` as hard-tier names ("A->B", ...)."""
    if name not in VALIDATION_TASK_SETS:
        raise SystemExit(
            f"paired_rule: --task-set must be one of {sorted(VALIDATION_TASK_SETS)}, got {name!r}"
        )
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    return {f"{names[s]}->{names[t]}" for s, t in VALIDATION_TASK_SETS[name]}


def _options(argv: list[str]) -> tuple[list[str], dict[str, str]]:
    """Positional arguments and the ``--segments / --base-cache / --base-segments / --tasks /
    --task-set`` options."""
    names = ("--segments", "--base-cache", "--base-segments", "--tasks", "--task-set")
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
    if tasks is not None and "--task-set" in opts:
        raise SystemExit("paired_rule: give --tasks or --task-set, not both")
    runs = _only_tasks(_runs(cache_file, opts.get("--segments", "4")), tasks)
    base_runs = _only_tasks(
        _runs(opts.get("--base-cache", cache_file), opts.get("--base-segments", "4")), tasks
    )
    b = per_seed(base_runs, base)
    # with options the rows are labelled by their segment count (BASE and METHOD may share a name)
    seg_opts = set(opts) - {"--tasks", "--task-set"}
    tag = {
        k: f"@T{opts.get(k, '4')}" if seg_opts else "" for k in ("--base-segments", "--segments")
    }
    rows = [(base, base_runs, tag["--base-segments"])] + [
        (m, runs, tag["--segments"]) for m in methods
    ]
    full = None
    if "--task-set" in opts:
        full = _task_set(opts["--task-set"])
    elif tasks is not None:
        full = {t.strip() for t in tasks.split(",")}
    by_row = {m + label: per_seed(src, m) for m, src, label in rows}
    if full is None:
        full = {t for a in by_row.values() for d in a.values() for t in d}
    seeds, partial = complete_seeds(by_row, full)
    for s, have in partial.items():
        print(f"partial seed {s} (not used): " + "; ".join(f"{m} {t}" for m, t in have.items()))
    if not seeds:
        print("no complete seed: every row needs every task of the full task set")
        return
    names = [d.name for d in DOMAIN_TIERS["hard"]]

    def task_of(job: str) -> str:
        src, tgt = (names[int(i)] for i in job.split("|")[0].split("->"))
        return f"{src}->{tgt}"

    bb = {s: {t: b[s][t] for t in full} for s in seeds}
    for m, src, label in rows:
        a = {s: {t: v for t, v in d.items() if t in full} for s, d in per_seed(src, m).items()}
        means = [np.mean(list(a[s].values())) for s in seeds]
        d = paired_difference(means, [np.mean(list(bb[s].values())) for s in seeds])
        used = [
            h[m]
            for job, h in src.items()
            if m in h and int(job.split("|")[1]) in seeds and task_of(job) in full
        ]
        swaps = sum(bool(class_swaps(h["true"], h["pred"])) for h in used)
        worst = min((v, f"{t} seed {s}") for s in seeds for t, v in a[s].items())
        drop = min((a[s][t] - bb[s][t], f"{t} seed {s}") for s in seeds for t in full)
        sd = np.std(means, ddof=1) if len(means) > 1 else float("nan")  # one seed: no spread
        print(
            f"{m + label:22s} {np.mean(means):6.2f} ± {sd:5.2f}  "
            f"Δ vs {base + tag['--base-segments']} "
            f"{d.mean:+6.2f} [{d.low:+6.2f}, {d.high:+6.2f}] (n={d.n})  swaps {swaps} of "
            f"{len(used)}  worst {worst[0]:.1f} ({worst[1]})  "
            f"largest drop {drop[0]:+.1f} ({drop[1]})"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
