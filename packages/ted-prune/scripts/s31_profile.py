"""Session ted-31: where TED_s29's scoring seconds go (clean MNIST-1D, 25,000 x 30, f = 0.7, one
thread, seed 0), by wall-clock timers around the library's scoring steps (no cProfile: its
per-call cost would swamp the per-batch calls). A diagnosis only: no figure of a rule comes from it.

Timed parts (seconds over the run; `nested in` says which outer part a timer runs inside):
- `observe` (per training batch: checks, conversions, staging; `DataPruner.observe`)
- `select` (`TEDPruner._select`: the epoch's selection, sampling and suspect tail)
- `end_epoch` (`DataPruner.end_epoch` minus `select`): re-scoring forward passes
  (`_forward_scores`, split into the model's forward and the staging), the buffer writes
  (`flush`), the closed-form scores (`ted_scores`) and the rest (EMA, masks).
The full-data run of the same seed gives the epoch length the share is read against.

    flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python packages/ted-prune/scripts/s31_profile.py \
        --out docs/benchmarks/ted-prune-s31/profile.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from ted_prune import bench_mnist1d as bm
from ted_prune import observations, pruner, ted

T: dict[str, float] = defaultdict(float)
N: dict[str, int] = defaultdict(int)


def timed(owner: Any, name: str, key: str) -> None:
    """Wrap `owner.name` so its wall-clock seconds add up in `T[key]` (calls in `N[key]`)."""
    fn = getattr(owner, name)

    def wrapper(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            T[key] += time.perf_counter() - t0
            N[key] += 1

    setattr(owner, name, wrapper)


def install() -> None:
    timed(pruner.DataPruner, "observe", "observe")
    timed(ted.TEDPruner, "_select", "select")
    timed(pruner.DataPruner, "end_epoch", "end_epoch (incl. select of the epoch if not cached)")
    timed(ted.TEDPruner, "_forward_scores", "end_epoch/forward_scores")
    timed(ted, "forward_logits", "end_epoch/forward_scores/model forward")
    timed(observations.ObservationStore, "stage", "stage (observe + forward_scores)")
    timed(observations.ObservationStore, "flush", "flush (anywhere)")
    timed(ted, "ted_scores", "end_epoch/ted_scores")
    timed(ted.TEDPruner, "_fresh_scores", "end_epoch/_fresh_scores (incl. ted_scores)")
    timed(ted.TEDPruner, "factors", "end_epoch/factors")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--num-samples", type=int, default=25_000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--method", default="TED_s29")
    ap.add_argument("--no-full", action="store_true", help="skip the full-data reference run")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    train, _, test = bm._splits("clean", args.num_samples, args.seed)
    tr, va, _ = bm.mnist1d_splits(3000, val_size=bm.VAL_SIZE)
    bm.train_mnist1d(args.method, tr, va, 2, 0.7, 0)  # warm-up, untimed
    full = None
    if not args.no_full:
        full = bm.train_mnist1d("full", train, test, args.epochs, 1.0, args.seed)["seconds"]
    install()
    res = bm.train_mnist1d(args.method, train, test, args.epochs, 0.7, args.seed)
    ep = args.epochs
    out = {
        "method": args.method, "num_samples": args.num_samples, "epochs": ep, "f": 0.7,
        "seed": args.seed, "torch": torch.__version__,
        "run_seconds": res["seconds"], "full_seconds": full,
        "score_ms_per_epoch": 1e3 * res["score_seconds_per_epoch"],
        "rescore_ms_per_epoch": 1e3 * res["rescore_seconds_per_epoch"],
        "share": None if full is None else res["score_seconds_per_epoch"] / (full / ep),
        "parts_ms_per_epoch": {k: 1e3 * v / ep for k, v in sorted(T.items())},
        "calls": dict(sorted(N.items())),
        "sizes": res["sizes"],
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "sizes"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
