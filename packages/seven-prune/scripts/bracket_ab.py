"""Session 21: the cut's selection with the bracket's margin at 4 binomial standard deviations
(`pruning.BRACKET_SDS`) against main's 6, on the real benchmark pruner's six cuts, paired.

Usage: ``python packages/seven-prune/scripts/bracket_ab.py DIR [--reps R] [--old-rev REV]``
(from the repository root, under ``flock /tmp/heavy.lock nice -n 5``). DIR holds the cut inputs
``profile_cut_s20.py --save DIR`` wrote (scores, alive-vector, `n_keep` and the real keep-vector at
each cut of a 64-round 16x32 run). The old `seven_prune.pruning` is loaded from git (``--old-rev``,
default main's 45404d6); the new one is the working tree's. For every cut, `select_flat` as `_cut`
calls it (guard 0.01, `dead_zero`, the pruner's two bool work buffers, the same for both arms)
runs `reps` times per arm, alternating new and old; every keep-vector must equal the real cut's
and the scores come back bit for bit. Prints per cut the medians and the paired new - old mean
with a 95% percentile-bootstrap CI (4,000 resamples of the pairs, seed 0): rule (b) of
``docs/benchmarks/seven-prune-bracket-s21-rule.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from select_threads_ab import (  # the sibling script (run with this folder on the path)
    _load,
    print_ab_summary,
)
from seven_prune import SevenPruner, pruning
from seven_prune.models import load_minilm_classifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--old-rev", default="45404d6")
    args = ap.parse_args()
    torch.set_num_threads(2)
    old = _load(args.old_rev, "pruning_old")
    print(f"margins: old {6.0}, new {pruning.BRACKET_SDS}")
    pr = SevenPruner(load_minilm_classifier(seed=0), 0.8, window=66, delta_t=10, min_density=0.01)
    sizes, names = pr.sizes, pr.names
    n = sum(sizes)
    work = (torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool))
    files = sorted(Path(args.dir).glob("cut_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    arms = {"new": pruning, "old": old}
    times: dict[str, list[float]] = {k: [] for k in arms}
    diffs: list[float] = []
    for f in files:
        snap = torch.load(f)
        flat, alive, n_keep, want = snap["flat"], snap["alive"], snap["n_keep"], snap["keep"]
        if not snap["zeroed"]:
            flat.masked_fill_(~alive, 0.0)
        bits = flat.clone().view(torch.int32)
        per: dict[str, list[float]] = {k: [] for k in arms}
        for _ in range(args.reps):
            for label, mod in arms.items():
                kw = {"min_density": 0.01, "dead_zero": True, "emptied_out": [], "work": work}
                tic = time.perf_counter()
                keep = mod.select_flat(flat, sizes, names, n_keep, alive, **kw)
                per[label].append(time.perf_counter() - tic)
                assert torch.equal(keep, want), (f.name, label)
                assert torch.equal(flat.view(torch.int32), bits), (f.name, label)
        for label in arms:
            times[label] += per[label]
        diffs += [a - b for a, b in zip(per["new"], per["old"])]
        print(
            f"{f.stem} keep {n_keep}: equal to the real cut (both arms); median ms "
            + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f}" for k, v in per.items()),
            flush=True,
        )
    print_ab_summary(times, diffs, width=4)


if __name__ == "__main__":
    main()
