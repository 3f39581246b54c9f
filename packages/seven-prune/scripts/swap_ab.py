"""A cut's mask swap on MiniLM's targets: `GradualPruner._swap_pruned` against `set_mask`, paired.

Usage: ``flock /tmp/heavy.lock nice -n 5 python packages/seven-prune/scripts/swap_ab.py
[--pairs P] [--out FILE]`` (default 12 pairs). MiniLM (10.7M target weights, 37 tensors), AdamW
hooked by masked training, 2 threads, one SevenPruner (sparsity 0.8, guard 0.01) after two steps
on synthetic gradients (so that AdamW has state, masked training has fixed it and the pruner has
its float mask). Each pair: the mask is set back to an `alive` mask (45 % kept, not timed), then
the swap to `keep` (70 % of `alive`, a pruning-only cut as the benchmark's second) is timed once
by `_set_mask` (maskloop's `set_mask`: revive check, uint8 re-zeroing and first moments) and once
by `_swap_pruned` (the session-32 path), in ABBA order; also the count of the alive-vector that
the kept count now replaces. The two paths' weights and moments are compared bit for bit after
every pair. Prints medians and the paired difference with a 95 % bootstrap CI (seed 0), and
writes them as JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from maskloop import WeightMask
from seven_prune import SevenPruner, pruning
from seven_prune.models import load_minilm_classifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=12)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_minilm_classifier(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pr = SevenPruner(model, 0.8, start=0, window=100, delta_t=10, min_density=0.01, optimizer=opt)
    gen = torch.Generator().manual_seed(0)
    for _ in range(2):
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        opt.step()
        pr.step()
    alive = torch.rand(pr.numel, generator=gen) < 0.45
    keep = alive & (torch.rand(pr.numel, generator=gen) < 0.7)
    n_keep = int(keep.sum())
    params = list(pr.params.values())
    ref: dict[str, list[torch.Tensor]] = {}

    def reset() -> None:
        pr._set_mask(WeightMask(dict(zip(pr.names, pr._flat_views(alive.clone())))))

    def swap(fast: bool) -> float:
        kf = keep.clone()
        mask = WeightMask(dict(zip(pr.names, pr._flat_views(kf))))
        tic = time.perf_counter()
        if fast:
            pr._swap_pruned(mask, kf, n_keep)
        else:
            pr._set_mask(mask, kf)
        dt = time.perf_counter() - tic
        ref["fast" if fast else "set_mask"] = [p.detach().clone() for p in params] + [
            opt.state[p]["exp_avg"].clone() for p in params
        ]
        return dt * 1e3

    times: dict[str, list[float]] = {"set_mask": [], "fast": [], "count": []}
    for i in range(args.pairs + 1):  # pair 0 warms up, not kept
        row = {}
        for fast in (False, True) if i % 2 == 0 else (True, False):
            reset()
            row["fast" if fast else "set_mask"] = swap(fast)
        tic = time.perf_counter()
        pruning._count(alive)
        row["count"] = (time.perf_counter() - tic) * 1e3
        if i:  # (pair 0 starts from the untouched moments: the two swaps' inputs differ)
            for a, b in zip(ref["fast"], ref["set_mask"]):
                assert torch.equal(a.view(torch.int32), b.view(torch.int32))
            for k, v in row.items():
                times[k].append(v)
    d = np.asarray(times["fast"]) - np.asarray(times["set_mask"])
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (4000, d.size))].mean(1)
    res = {
        "pairs": args.pairs,
        "median_ms": {k: statistics.median(v) for k, v in times.items()},
        "mean_ms": {k: statistics.mean(v) for k, v in times.items()},
        "fast_minus_set_mask_ms": float(d.mean()),
        "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "times_ms": times,
        "bit_identical": True,
    }
    for k in ("set_mask", "fast", "count"):
        print(f"{k:9s} median {res['median_ms'][k]:6.2f} ms  mean {res['mean_ms'][k]:6.2f} ms")
    lo, hi = res["ci95"]
    print(f"fast - set_mask: {d.mean():+.2f} ms [{lo:+.2f}, {hi:+.2f}] per swap ({d.size} pairs)")
    if args.out is not None:
        args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
