"""Where the wall-clock of a pruned MNIST-1D run goes, against "achieved f x full-data time".

Usage (one thread; time it under the heavy-job lock)::

    python packages/ted-prune/scripts/wallclock_decomposition.py [--num-samples 25000]
        [--epochs 30] [--seed 0] [--rounds 1] [--profile] [--out FILE.json]

Runs the wall-clock stage's code path (`bench_mnist1d.train_mnist1d`, timed exactly as there) for
full data, random-dynamic and TED at f = 0.7, after one untimed full-data warm-up run, with a
timing callback added to `fit` that stamps every epoch start / end and every batch start. From
the stamps: per run, the batches trained (against full data), the achieved f, the time inside the
epochs' batch loops, the time between them (epoch-start and epoch-end callbacks: the pruner's
selection, re-scoring, the LR scheduler), and the fit's set-up; per batch, the mean step time of
full batches (128) and of partial ones, and of the first batch of a size never seen before in the
process (one-time kernel set-up for a new shape). `--profile` adds one cProfile'd run of each
method and prints the functions whose total time differs most between them, per batch trained.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from maskloop import Callback, LoopState
from ted_prune import bench_mnist1d as bm

METHODS = ("full", "random_dynamic", "TED")
_SEEN: set[int] = set()  # batch sizes already trained on in this process


class _Stamps(Callback):
    """perf_counter stamps of every hook the decomposition needs (order: first, or last)."""

    def __init__(self, order: int) -> None:
        self.order = order
        self.epoch_start: list[float] = []
        self.epoch_end: list[float] = []
        self.batch: list[tuple[int, int, float]] = []  # (epoch, batch size, start)
        self.step_end: list[float] = []
        self.loop: list[float] = []

    def on_epoch_start(self, state: LoopState) -> None:
        self.epoch_start.append(time.perf_counter())

    def on_batch_start(self, state: LoopState) -> None:
        self.batch.append((state.epoch, len(state.targets), time.perf_counter()))

    def on_step_end(self, state: LoopState) -> None:
        self.step_end.append(time.perf_counter())

    def on_epoch_end(self, state: LoopState) -> None:
        self.epoch_end.append(time.perf_counter())
        self.loop.append(state.metrics["time"])


def _instrumented(method: str, train: Any, test: Any, epochs: int, seed: int) -> dict[str, Any]:
    first, last = _Stamps(-100), _Stamps(100)
    fit = bm.fit
    times: dict[str, float] = {}

    def timed_fit(*args: Any, callbacks: Any = (), **kw: Any) -> Any:
        times["cpu_enter"] = time.thread_time()
        times["enter"] = time.perf_counter()
        try:
            return fit(*args, callbacks=[first, *callbacks, last], **kw)
        finally:
            times["exit"] = time.perf_counter()
            times["cpu_exit"] = time.thread_time()

    bm.fit = timed_fit
    try:
        res = bm.train_mnist1d(method, train, test, epochs, 1.0 if method == "full" else 0.7, seed)
    finally:
        bm.fit = fit
    sizes = [b for _, b, _ in first.batch]
    # one step: from a batch's on_batch_start to its on_step_end (forward, backward, step, the
    # pruner's observe); fetching the batch is what lies between a step's end and the next start
    steps = [e - s for (_, _, s), e in zip(first.batch, last.step_end, strict=True)]
    fetch = [first.batch[i + 1][2] - last.step_end[i] for i in range(len(steps) - 1)
             if first.batch[i + 1][0] == first.batch[i][0]]  # fmt: skip
    new_shape, full_b, part_b = [], [], []
    for b, t in zip(sizes, steps, strict=True):
        if b not in _SEEN:
            _SEEN.add(b)
            new_shape.append((b, t))
        elif b == 128:
            full_b.append(t)
        else:
            part_b.append(t)
    loop = sum(first.loop)
    epoch_start = sum(last_s - first_s for first_s, last_s in
                      zip(first.epoch_start, [s for _, _, s in _first_batches(first)], strict=True))  # fmt: skip
    epoch_end = sum(b - a for a, b in zip(first.epoch_end, last.epoch_end, strict=True))
    return {
        "method": method,
        "seconds": res["seconds"],
        "f": res["f"],
        # the main thread's CPU time over the fit (one torch thread: all of its work); wall minus
        # this is time the process waited (other processes on the cores, page faults, I/O)
        "cpu_seconds": times["cpu_exit"] - times["cpu_enter"],
        "score_seconds": res["score_seconds_per_epoch"] * epochs,
        "samples": sum(sizes),
        "batches": len(sizes),
        "partial_batches": sum(b != 128 for b in sizes),
        "fit_enter_to_first_epoch": first.epoch_start[0] - times["enter"],
        "last_epoch_end_to_fit_exit": times["exit"] - last.epoch_end[-1],
        "loop_seconds": loop,
        "outside_loops": times["exit"] - times["enter"] - loop,
        "steps_seconds": sum(steps),
        "fetch_seconds": sum(fetch),
        "epoch_start_to_first_batch": epoch_start,
        "epoch_end_callbacks": epoch_end,
        "step_128_ms": 1e3 * statistics.mean(full_b) if full_b else None,
        "step_128_median_ms": 1e3 * statistics.median(full_b) if full_b else None,
        "step_partial_ms": 1e3 * statistics.mean(part_b) if part_b else None,
        "new_shapes": [(b, round(1e3 * t, 3)) for b, t in new_shape],
        "sizes_per_epoch": [sum(b for e, b, _ in first.batch if e == k) for k in range(epochs)],
        "loop_per_epoch": first.loop,
    }


def _first_batches(st: _Stamps) -> list[tuple[int, int, float]]:
    seen, out = set(), []
    for e, b, s in st.batch:
        if e not in seen:
            seen.add(e)
            out.append((e, b, s))
    return out


def _profile(method: str, train: Any, test: Any, epochs: int, seed: int) -> pstats.Stats:
    pr = cProfile.Profile()
    pr.enable()
    bm.train_mnist1d(method, train, test, epochs, 1.0 if method == "full" else 0.7, seed)
    pr.disable()
    return pstats.Stats(pr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--num-samples", type=int, default=25_000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    train, _, test = bm._splits("clean", a.num_samples, a.seed)
    bm.train_mnist1d("full", train, test, a.epochs, 1.0, a.seed)  # untimed warm-up
    runs = [{"round": k, **_instrumented(m, train, test, a.epochs, a.seed)}
            for k in range(a.rounds) for m in METHODS]  # fmt: skip
    for r in runs:
        full = next(x for x in runs if x["method"] == "full" and x["round"] == r["round"])
        r["ratio_to_full"] = r["seconds"] / full["seconds"]
        r["cpu_ratio_to_full"] = r["cpu_seconds"] / full["cpu_seconds"]
        r["batch_ratio"] = r["batches"] / full["batches"]
        r["sample_ratio"] = r["samples"] / full["samples"]
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()
                          if k not in ("sizes_per_epoch", "loop_per_epoch")}))  # fmt: skip
    if a.out:
        a.out.write_text(json.dumps(runs, indent=1) + "\n")
    if a.profile:
        stats = {m: _profile(m, train, test, a.epochs, a.seed) for m in METHODS}
        for m, st in stats.items():
            print(f"\n=== cProfile {m} (tottime, top 25) ===")
            st.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
