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
import functools
import statistics
import time
from dataclasses import replace
from typing import Any

import torch
from maskloop import MaskedTraining, seed_everything
from maskloop import masks as _masks
from seven_prune import SevenPruner, pruning
from seven_prune.bench import _forever, _loader, _text_data, _timed_step, text_config
from seven_prune.models import load_minilm_classifier

SPENT: dict[str, float] = collections.defaultdict(float)
#: the pieces of a cut's global selection (`seven_prune.pruning`) timed by wrappers
SELECTION_PARTS: tuple[tuple[Any, str], ...] = (
    (pruning, "_finite_min"),
    (pruning, "_count"),
    (pruning, "_kth_smallest"),
    (pruning, "_compare_alive"),
    (pruning, "select_flat"),
)


def _wrap(owner: Any, name: str, label: str) -> None:
    """Replace `owner.name` by a wrapper adding its wall time to `SPENT[label]` (cumulative)."""
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*a: Any, **kw: Any) -> Any:
        tic = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            SPENT[label] += time.perf_counter() - tic

    setattr(owner, name, timed)


def minilm_pruner(shape: str, window: int) -> tuple[Any, SevenPruner, Any, Any]:
    """MiniLM on the benchmark's text data at batch `shape` ("BxL"), seeded, 2 threads, AdamW and
    one SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates over `window` steps):
    (model, pruner, optimizer, endless loader). (Session 31's copy lived in
    `profile_eager_step.py`, retired in session 32: `git show e375864:<path>`.)"""
    torch.set_num_threads(2)
    batch_size, max_len = map(int, shape.split("x"))
    cfg = replace(text_config(False, 1), batch_size=batch_size, max_len=max_len)
    train, _ = _text_data(cfg)
    seed_everything(0)
    model = load_minilm_classifier(seed=0)
    pr = SevenPruner(model, 0.8, start=0, window=window, delta_t=10, min_density=0.01)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    return model, pr, opt, _forever(_loader(train, batch_size, 0))


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
