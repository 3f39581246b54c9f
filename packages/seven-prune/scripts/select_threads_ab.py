"""Session 20's A/B of the cut's selection: chunked, two-thread passes against session 19's code.

Usage: ``python packages/seven-prune/scripts/select_threads_ab.py DIR [--reps R] [--old-rev REV]
[--new-rev REV] [--before none|torch|sleep]`` (run from the repository root under ``flock
/tmp/heavy.lock nice -n 5``). DIR holds the cut inputs ``profile_cut_s20.py --save DIR`` wrote (the
real benchmark pruner's scores, alive-vector, `n_keep` and resulting keep-vector at each of its six
cuts, 16x32). Two versions of `seven_prune.pruning` are loaded from git: session 19's (``--old-rev``,
default 1424101) and session 20's chunked two-thread passes (``--new-rev``, default e39ee0a; not
kept: rule (b) reverted them). For every cut, `select_flat` as `_cut` calls it (guard 0.01,
`dead_zero`; session 19 with its two kept bool work buffers) runs `reps` times per variant,
alternating: "old", "new 1 thread" (`SELECTION_THREADS = 1`: chunked only) and "new" (chunked, two
threads). ``--before``: what runs just before each timed call: nothing, a torch pass over the
scores on 2 threads (as in a real cut, which follows the update's torch ops, whose OpenMP threads
then spin for a while), or a 50 ms sleep (those threads asleep again). Every keep-vector must equal
the real cut's and the scores come back bit for bit. Prints per cut and the medians, and the paired
new - old difference with a bootstrap 95% CI over the cuts x reps pairs.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from seven_prune import SevenPruner
from seven_prune.models import load_minilm_classifier


def _load(rev: str, name: str) -> object:
    src = subprocess.run(
        ["git", "show", f"{rev}:packages/seven-prune/src/seven_prune/pruning.py"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / f"{name}.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def print_ab_summary(times: dict[str, list[float]], diffs: list[float], width: int) -> None:
    """Print each arm's median and mean time (labels padded to `width`) and the paired new - old
    mean with its 95% percentile-bootstrap CI (4,000 resamples of the pairs, seed 0); times in s,
    printed in ms."""
    for label, ts in times.items():
        print(
            f"{label:{width}s} median {statistics.median(ts) * 1e3:6.2f} ms, mean "
            f"{statistics.fmean(ts) * 1e3:6.2f} ms over {len(ts)}"
        )
    d = np.asarray(diffs)
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (4000, d.size))].mean(1)
    print(
        f"new - old: mean {d.mean() * 1e3:+.2f} ms [{np.percentile(boot, 2.5) * 1e3:+.2f}, "
        f"{np.percentile(boot, 97.5) * 1e3:+.2f}] ({d.size} pairs)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--reps", type=int, default=6)
    ap.add_argument("--old-rev", default="1424101")
    ap.add_argument("--new-rev", default="e39ee0a")
    ap.add_argument("--before", choices=("none", "torch", "sleep"), default="none")
    args = ap.parse_args()
    torch.set_num_threads(2)
    old, new = _load(args.old_rev, "pruning_old"), _load(args.new_rev, "pruning_new")
    pr = SevenPruner(load_minilm_classifier(seed=0), 0.8, window=66, delta_t=10, min_density=0.01)
    sizes, names = pr.sizes, pr.names
    n = sum(sizes)
    work = (torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool))
    files = sorted(Path(args.dir).glob("cut_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    times: dict[str, list[float]] = {"old": [], "new 1 thread": [], "new": []}
    diffs: list[float] = []

    def run(label: str, flat: torch.Tensor, alive: torch.Tensor, n_keep: int) -> torch.Tensor:
        kw = {"min_density": 0.01, "dead_zero": True, "emptied_out": []}
        if label == "old":
            return old.select_flat(flat, sizes, names, n_keep, alive, work=work, **kw)
        new.SELECTION_THREADS = 1 if label == "new 1 thread" else 2
        try:
            return new.select_flat(flat, sizes, names, n_keep, alive, **kw)
        finally:
            new.SELECTION_THREADS = 2

    for f in files:
        snap = torch.load(f)
        flat, alive, n_keep, want = snap["flat"], snap["alive"], snap["n_keep"], snap["keep"]
        if not snap["zeroed"]:
            flat.masked_fill_(~alive, 0.0)
        bits = flat.clone().view(torch.int32)
        scratch = torch.empty_like(flat)
        per: dict[str, list[float]] = {k: [] for k in times}
        for _ in range(args.reps):
            for label in times:
                if args.before == "torch":
                    torch.mul(flat, 1.0, out=scratch)
                elif args.before == "sleep":
                    time.sleep(0.05)
                tic = time.perf_counter()
                keep = run(label, flat, alive, n_keep)
                per[label].append(time.perf_counter() - tic)
                assert torch.equal(keep, want), (f.name, label)
                assert torch.equal(flat.view(torch.int32), bits), (f.name, label)
        for label in times:
            times[label] += per[label]
        diffs += [a - b for a, b in zip(per["new"], per["old"])]
        print(
            f"{f.stem} keep {n_keep}: equal to the real cut (all variants); median ms "
            + ", ".join(f"{k} {statistics.median(v) * 1e3:.1f}" for k, v in per.items()),
            flush=True,
        )
    print(f"before each call: {args.before}")
    print_ab_summary(times, diffs, width=14)


if __name__ == "__main__":
    main()
