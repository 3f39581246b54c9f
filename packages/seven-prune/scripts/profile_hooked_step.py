"""Where SevenPruner's per-step time goes as the overhead bench runs it (AdamW hooked).

Usage: ``python packages/seven-prune/scripts/profile_hooked_step.py [BxL] [--steps N]`` (default
16x32, 32 steps: cuts at updates 9, 19, 29; run under ``flock /tmp/heavy.lock nice -n 5``).
MiniLM, AdamW hooked by masked training (`Pruner.hook_optimizer`, as `bench.overhead_compare`
and `fit` run it), 2 threads, one SevenPruner (sparsity 0.8, guard 0.01, a cut every 10
updates). Prints the training step and `pruner.step()` (update and cut steps apart),
`torch.profiler`'s self CPU time per aten operation inside `pruner.step()` on update steps and on
cut steps, and the wall time inside the cut's pieces (cumulative wrappers).
"""

from __future__ import annotations

import argparse
import collections
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from maskloop import MaskedTraining  # noqa: E402
from maskloop import masks as _masks  # noqa: E402
from profile_eager_step import SELECTION_PARTS, SPENT, _wrap, minilm_pruner  # noqa: E402
from seven_prune import SevenPruner, pruning  # noqa: E402
from seven_prune.bench import _timed_step  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--steps", type=int, default=32)
    args = ap.parse_args()
    model, pr, opt, loader = minilm_pruner(args.shape, window=args.steps + 2)
    pr.hook_optimizer(opt)
    for _ in range(3):
        _timed_step(model, next(loader), opt, pr)
    for owner, name in (
        *SELECTION_PARTS,
        (pruning, "_keep_top_bracketed"),
        (pruning, "_segment_counts"),
        (SevenPruner, "update_scores"),
        (SevenPruner, "_float_keep_views"),
        (SevenPruner, "_cut"),
        (SevenPruner, "_select"),
        (SevenPruner, "_set_mask"),
        (MaskedTraining, "set_mask"),
        (MaskedTraining, "reapply"),
        (MaskedTraining, "_fix_optimizer_state"),
        (_masks, "_revives_all"),
    ):
        _wrap(owner, name, name)
    ops = {"update": collections.defaultdict(float), "cut": collections.defaultdict(float)}
    n_prof = {"update": 0, "cut": 0}
    times: dict[str, list[float]] = {"step": [], "update": [], "cut": []}
    cut_spent: dict[str, float] = collections.defaultdict(float)
    for i in range(args.steps - 3):
        in_window = pr.in_window
        kind = "cut" if in_window and (pr.updates + 1) % 10 == 0 else "update"
        if kind == "update" and i % 3 == 1 or kind == "cut" and pr.updates > 15:
            n_prof[kind] += 1
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
                _timed_step(model, next(loader), opt, pr)
            for e in p.key_averages():
                if e.key.startswith("aten::") and "backward" not in e.key.lower():
                    ops[kind][e.key] += e.self_cpu_time_total / 1e3
            continue
        before = dict(SPENT)
        dt_step, dt_prune = _timed_step(model, next(loader), opt, pr)
        times["step"].append(dt_step)
        times[kind].append(dt_prune)
        if kind == "cut":
            for k, v in SPENT.items():
                cut_spent[k] += v - before.get(k, 0.0)
            print(f"cut at update {pr.updates - 1}: sparsity now {pr.achieved_sparsity:.3f}")
    print(f"{args.shape}: training step median {statistics.median(times['step']) * 1e3:.1f} ms")
    for kind in ("update", "cut"):
        if times[kind]:
            t = times[kind]
            print(f"  pruner.step() on {kind} steps: median {statistics.median(t) * 1e3:.2f} ms "
                  f"(mean {statistics.mean(t) * 1e3:.2f}, {len(t)} steps)")  # fmt: skip
    for kind in ("update", "cut"):
        n = max(1, n_prof[kind])
        print(f"aten self CPU ms per profiled {kind} step (whole training step, {n}):")
        for k, v in sorted(ops[kind].items(), key=lambda kv: -kv[1])[:22]:
            print(f"  {k:40s} {v / n:7.2f}")
    n_cuts = max(1, len(times["cut"]))
    print(f"wall time in the cut's pieces, ms per cut step ({len(times['cut'])} cuts, cumulative):")
    for k, v in sorted(cut_spent.items(), key=lambda kv: -kv[1]):
        print(f"  {k:24s} {v / n_cuts * 1e3:7.2f}")


if __name__ == "__main__":
    main()
