"""Session 20: where a cut's time goes on the real benchmark pruner, and its inputs saved.

Usage: ``python packages/seven-prune/scripts/profile_cut_s20.py [BxL] [--rounds N] [--save DIR]``
(default 16x32, 64 rounds: cuts at updates 9, 19, ..., 59, as the overhead benchmark's; run under
``flock /tmp/heavy.lock nice -n 5``). Trains MiniLM with AdamW and one SevenPruner as the overhead
benchmark runs it (sparsity 0.8, guard 0.01, a cut every 10 updates, window rounds + 2, AdamW
hooked, 2 threads). The cut's pieces are wrapped with wall-clock timers (cumulative: a piece's time
includes the pieces it calls) and printed per cut step; with ``--save`` each cut's scores,
alive-vector, `n_keep` and resulting keep-vector are saved (``cut_K.pt``) for
``select_threads_ab.py``.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from pathlib import Path

import torch
from maskloop import MaskedTraining, masks
from profile_eager_step import CALLS, SPENT, _wrap, minilm_pruner
from seven_prune import SevenPruner, pruning, seven
from seven_prune.bench import _timed_step

PARTS = (
    (pruning, "select_flat"),
    (pruning, "_finite_min"),
    (pruning, "_count"),
    (pruning, "_keep_top_flat"),
    (pruning, "_keep_top_bracketed"),
    (pruning, "_kth_smallest"),
    (pruning, "_compare_alive"),
    (pruning, "_lift_floors"),
    (pruning, "_reselect_from_bracket"),
    (SevenPruner, "_cut"),
    (SevenPruner, "_set_mask"),
    (MaskedTraining, "set_mask"),
    (MaskedTraining, "reapply"),
    (MaskedTraining, "_fix_optimizer_state"),
    (masks, "_revives"),
    (seven, "_seven_update_eager"),
    (SevenPruner, "_float_keep_views"),
)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--rounds", type=int, default=64)
    ap.add_argument("--save", default=None)
    args = ap.parse_args()
    model, pr, opt, loader = minilm_pruner(args.shape, window=args.rounds + 2)
    assert pr.hook_optimizer(opt)
    save = Path(args.save) if args.save else None
    if save is not None:
        save.mkdir(parents=True, exist_ok=True)
    for owner, name in PARTS:
        _wrap(owner, name, name)
    real_cut = pr._cut

    def cut(k: int, zeroed: bool = False) -> None:
        if save is not None:
            flat, alive = pr.current_flat_scores(), pr._alive_flat()
            snap = {"flat": flat.clone(), "alive": alive.clone(), "zeroed": zeroed}
            snap["n_keep"] = pr.final_keep if k == pr.window - 1 else pr.n_keep(k)
        real_cut(k, zeroed)
        if save is not None:
            snap["keep"] = pr._alive_flat().clone()
            torch.save(snap, save / f"cut_{k}.pt")

    pr._cut = cut
    per: dict[str, list[float]] = collections.defaultdict(list)
    calls: dict[str, list[int]] = collections.defaultdict(list)
    prune_t = {"update": [], "cut": []}
    for _ in range(args.rounds):
        before, bcalls = dict(SPENT), dict(CALLS)
        tic = time.perf_counter()
        _, dt_prune = _timed_step(model, next(loader), opt, pr)
        wall = time.perf_counter() - tic
        is_cut = pr.cutting and pr.updates - 1 >= 4  # past the benchmark's 4 warm-up rounds
        if pr.updates - 1 < 4:
            continue
        prune_t["cut" if is_cut else "update"].append(dt_prune)
        if is_cut:
            for k in SPENT:
                per[k].append(SPENT[k] - before.get(k, 0.0))
                calls[k].append(CALLS[k] - bcalls.get(k, 0))
            print(
                f"cut at update {pr.updates - 1}: step {wall * 1e3:.0f} ms, pruner "
                f"{dt_prune * 1e3:.1f} ms, select_flat {per['select_flat'][-1] * 1e3:.1f} ms, "
                f"sparsity {pr.achieved_sparsity:.3f}",
                flush=True,
            )
    u = statistics.fmean(prune_t["update"])
    c = statistics.fmean(prune_t["cut"])
    print(f"pruner.step(): update rounds mean {u * 1e3:.2f} ms, cut rounds mean {c * 1e3:.2f} ms")
    print(f"cut less update: {(c - u) * 1e3:.2f} ms")
    print("per cut step, mean ms (calls):")
    for k, v in sorted(per.items(), key=lambda kv: -sum(kv[1])):
        print(f"  {k:24s} {statistics.fmean(v) * 1e3:7.2f}  ({statistics.fmean(calls[k]):.0f})")


if __name__ == "__main__":
    main()
