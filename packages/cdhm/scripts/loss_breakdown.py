"""Where CDHM loses to a reference method, task-seed by task-seed, from a committed bench cache.

Usage: ``python packages/cdhm/scripts/loss_breakdown.py CACHE [REF ...]`` with CACHE a
``<name>_cache.json`` of ``cdhm bench`` (default refs: MK-MMD, CDHM-entangled,
MK-MMD+evidence-all). For each REF it prints CDHM − REF per task-seed (worst first, with class
swaps of ``cdhm.bench.class_swaps`` and the held-out source accuracy of both), how much of the
mean the worst task-seeds carry, the mean by seed / source / target domain, the paired Δ over
seeds with the D→A task or every D→x task left out (descriptive only: nothing is chosen on it),
and the per-class target recall on the D→x tasks. Reads only what the cache holds; trains nothing.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from cdhm.bench import class_swaps
from cdhm.data import CLASSES_4, DOMAIN_TIERS
from maskloop.report import paired_difference

NAMES = [d.name for d in DOMAIN_TIERS["hard"]]


def load(cache_file: str) -> dict[tuple[str, int], dict]:
    """{(task "DA", seed): {method: run}} of the cache's single config."""
    (runs,) = json.loads(Path(cache_file).read_text()).values()
    out = {}
    for job, have in runs.items():
        pair, seed = job.split("|")
        out[("".join(NAMES[int(i)] for i in pair.split("->")), int(seed))] = have
    return out


def acc(run: dict) -> float:
    """Target accuracy % of one run."""
    return 100 * run["metrics"]["acc_target"]


def recall(run: dict) -> np.ndarray:
    """Per-class target recall % of one run."""
    t, p = np.asarray(run["true"]), np.asarray(run["pred"])
    return np.array([100 * np.mean(p[t == k] == k) for k in np.unique(t)])


def breakdown(jobs: dict, ref: str) -> None:
    """Print the loss breakdown of CDHM against `ref`."""
    keys = sorted(k for k, h in jobs.items() if "CDHM" in h and ref in h)
    d = np.array([acc(jobs[k]["CDHM"]) - acc(jobs[k][ref]) for k in keys])
    print(f"\n== CDHM - {ref}: mean {d.mean():+.2f} over {len(d)} task-seeds")
    print(
        f"   wins {np.sum(d > 0)}, ties {np.sum(d == 0)}, losses {np.sum(d < 0)}; sum of losses "
        f"{d[d < 0].sum():.1f}, of wins {d[d > 0].sum():.1f} points; median {np.median(d):+.2f}"
    )
    order = np.argsort(d, kind="stable")
    for n in (1, 3, 5):
        print(f"   without the worst {n}: mean {np.delete(d, order[:n]).mean():+.2f}")
    for i in order[:6]:
        (task, seed), h = keys[i], jobs[keys[i]]
        print(
            f"   {task[0]}->{task[1]} seed {seed}: {d[i]:+6.1f} (CDHM {acc(h['CDHM']):.1f}, "
            f"{ref} {acc(h[ref]):.1f}; swaps {class_swaps(h['CDHM']['true'], h['CDHM']['pred'])}"
            f" / {class_swaps(h[ref]['true'], h[ref]['pred'])}; held-out source "
            f"{100 * h['CDHM']['metrics']['acc_source']:.1f} / "
            f"{100 * h[ref]['metrics']['acc_source']:.1f})"
        )
    for label, part in (("seed", lambda k: k[1]), ("source", lambda k: k[0][0])):
        groups = sorted({part(k) for k in keys})
        means = [np.mean([d[i] for i, k in enumerate(keys) if part(k) == g]) for g in groups]
        print(f"   by {label}: " + ", ".join(f"{g} {m:+.2f}" for g, m in zip(groups, means)))
    tasks = sorted({k[0] for k in keys})
    for name, drop in (("all tasks", ()), ("without D->A", ("DA",)), ("without D->x", "D")):
        kept = [t for t in tasks if t not in drop and t[0] not in drop]
        seeds = sorted({k[1] for k in keys})
        a = [np.mean([acc(jobs[(t, s)]["CDHM"]) for t in kept]) for s in seeds]
        b = [np.mean([acc(jobs[(t, s)][ref]) for t in kept]) for s in seeds]
        r = paired_difference(a, b)
        print(f"   paired over seeds, {name}: {r.mean:+.2f} [{r.low:+.2f}, {r.high:+.2f}]")


def main(argv: list[str]) -> None:
    cache_file, *refs = argv
    jobs = load(cache_file)
    for ref in refs or ["MK-MMD", "CDHM-entangled", "MK-MMD+evidence-all"]:
        breakdown(jobs, ref)
    print(f"\nper-class target recall % on the D->x tasks ({', '.join(CLASSES_4)}):")
    methods = sorted({m for h in jobs.values() for m in h})
    for m in methods:
        rows = [recall(h[m]) for (t, _), h in jobs.items() if t[0] == "D" and m in h]
        if rows:
            print(f"   {m:22s} " + " ".join(f"{v:5.1f}" for v in np.mean(rows, 0)))


if __name__ == "__main__":
    main(sys.argv[1:])
