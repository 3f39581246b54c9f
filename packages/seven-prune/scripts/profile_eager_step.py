"""Where SevenPruner's eager per-step time goes, on MiniLM at the benchmark's batch.

Usage: ``python packages/seven-prune/scripts/profile_eager_step.py [BxL] [--steps N]`` (default
16x32, 30 steps; run under ``flock /tmp/heavy.lock nice -n 5``). MiniLM, AdamW, 2 threads, one
SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates, the window as long as the run, so
the cuts fall at the cubic schedule's sparsities as in the benchmark). Prints:

- the training step and `pruner.step()` in wall time, update steps and cut steps apart;
- `torch.profiler`'s self CPU time per aten operation inside `pruner.step()` on update steps
  (the rest of the wall time is Python and dispatch);
- wall time inside the cut's pieces (`select_flat` and its helpers, the mask swap), by wrapping
  them with timers (cumulative: a piece's time includes the pieces it calls).
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
from seven_prune import SevenPruner, pruning
from seven_prune.bench import _forever, _loader, _text_data, _timed_step, text_config
from seven_prune.models import load_minilm_classifier

SPENT: dict[str, float] = collections.defaultdict(float)
#: the pieces of a cut's global selection (`seven_prune.pruning`) that this script and
#: profile_cut.py time
SELECTION_PARTS: tuple[tuple[Any, str], ...] = (
    (pruning, "_finite_min"),
    (pruning, "_count"),
    (pruning, "_kth_smallest"),
    (pruning, "_compare_alive"),
    (pruning, "select_flat"),
)
CALLS: dict[str, int] = collections.defaultdict(int)


def _wrap(owner: Any, name: str, label: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*a: Any, **kw: Any) -> Any:
        tic = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            SPENT[label] += time.perf_counter() - tic
            CALLS[label] += 1

    setattr(owner, name, timed)


def median_ms(fn: Any, reps: int) -> float:
    """The median wall time of `reps` calls of `fn`, in ms."""
    out = []
    for _ in range(reps):
        tic = time.perf_counter()
        fn()
        out.append(time.perf_counter() - tic)
    return statistics.median(out) * 1e3


def print_interleaved_medians(fns: dict[str, Any], reps: int, title: str) -> None:
    """Time every function `reps` times, all of them in turn, twice (the second pass printed: the
    first warms caches and allocator), and print each one's median in ms under `title`."""
    for _ in range(2):
        res = {name: median_ms(fn, reps) for name, fn in fns.items()}
    print(title)
    for name, v in res.items():
        print(f"  {name:40s} {v:7.2f}")


def minilm_pruner(shape: str, window: int) -> tuple[Any, SevenPruner, Any, Any]:
    """MiniLM on the benchmark's text data at batch `shape` ("BxL"), seeded, 2 threads, AdamW and
    one SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates over `window` steps):
    (model, pruner, optimizer, endless loader). Shared with `profile_update_parts.py`."""
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
    ap.add_argument("--steps", type=int, default=30)
    args = ap.parse_args()
    model, pr, opt, loader = minilm_pruner(args.shape, window=args.steps + 2)
    for _ in range(3):  # warm-up: allocations, first cut of nothing
        _timed_step(model, next(loader), opt, pr)
    for owner, name in (
        *SELECTION_PARTS,
        (SevenPruner, "update_scores"),
        (SevenPruner, "_cut"),
        (SevenPruner, "_set_mask"),
        (MaskedTraining, "set_mask"),
        (MaskedTraining, "reapply"),
    ):
        _wrap(owner, name, name)
    ops: dict[str, float] = collections.defaultdict(float)
    times: dict[str, list[float]] = {"step": [], "update": [], "cut": []}
    cut_spent: dict[str, float] = collections.defaultdict(float)
    n_profiled = 0
    for _ in range(args.steps - 3):
        in_window = pr.in_window
        if in_window and n_profiled < 8 and (pr.updates + 1) % 10 != 0:
            n_profiled += 1
            batch = next(loader)
            opt.zero_grad(set_to_none=True)
            from seven_prune.bench import sequence_classification

            losses, _ = sequence_classification(model, batch)
            losses.mean().backward()
            opt.step()
            with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as p:
                pr.step()
            for e in p.key_averages():
                ops[e.key] += e.self_cpu_time_total / 1e3  # ms
            continue
        before = dict(SPENT)
        dt_step, dt_prune = _timed_step(model, next(loader), opt, pr)
        cut = in_window and pr.cutting
        times["step"].append(dt_step)
        times["cut" if cut else "update"].append(dt_prune)
        if cut:
            for k, v in SPENT.items():
                cut_spent[k] += v - before.get(k, 0.0)
            print(f"cut at update {pr.updates - 1}: sparsity now {pr.achieved_sparsity:.3f}")
    print(f"{args.shape}: training step median {statistics.median(times['step']) * 1e3:.1f} ms")
    for kind in ("update", "cut"):
        if times[kind]:
            t = times[kind]
            print(
                f"  pruner.step() on {kind} steps: median {statistics.median(t) * 1e3:.2f} ms "
                f"(mean {statistics.mean(t) * 1e3:.2f}, {len(t)} steps)"
            )
    print(f"aten self CPU time inside pruner.step(), update steps, ms per step ({n_profiled}):")
    for k, v in sorted(ops.items(), key=lambda kv: -kv[1])[:12]:
        print(f"  {k:40s} {v / n_profiled:7.2f}")
    print(f"  {'sum':40s} {sum(ops.values()) / n_profiled:7.2f}")
    n_cuts = max(1, len(times["cut"]))
    print(f"wall time in the cut's pieces, ms per cut step ({len(times['cut'])} cuts, cumulative):")
    for k, v in sorted(cut_spent.items(), key=lambda kv: -kv[1]):
        print(f"  {k:20s} {v / n_cuts * 1e3:7.2f}")


if __name__ == "__main__":
    main()
