"""Session 24: where TED's scoring time goes, this branch's path against main's (`main_path`),
inclusive thread time in ms per epoch and per call, clean MNIST-1D 25,000 x 30, seed 0, one torch
thread; the two arms alternate after one full-data run (its epoch printed).

    python packages/ted-prune/scripts/profile_s24.py [--epochs 30] [--budgets 0.7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import scoring_digest as sd  # noqa: E402
import scoring_paired as sp  # noqa: E402
from main_path import MainPathStore, MainPathTED  # noqa: E402
from ted_prune import bench_mnist1d as bm  # noqa: E402
from ted_prune import observations, pruner  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--num-samples", type=int, default=25000)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.7])
    args = ap.parse_args()
    torch.set_num_threads(1)
    sd._install_profile()
    for owner, attr in ((pruner.DataPruner, "observe_weights"), (MainPathTED, "observe_weights"),
                        (MainPathStore, "stage"), (observations.ObservationStore, "_scatter_norms"),
                        (MainPathStore, "_scatter_norms")):  # fmt: skip
        setattr(owner, attr, sd._timed(f"{owner.__name__}.{attr}", owner.__dict__[attr]))
    sp._install_main_path()
    train, _, test = bm._splits("clean", args.num_samples, 0)
    bm.train_mnist1d("TED", train, test, 2, 0.7, 0)  # warm-up, not reported
    full = bm.train_mnist1d("full", train, test, args.epochs, 1.0, 0)
    fe = full["seconds"] / args.epochs
    print(f"full-data epoch {fe * 1e3:.1f} ms")
    for f in args.budgets:
        for method in ("TED", "TED@main"):
            sd._TIMES.clear()
            sd._CALLS.clear()
            r = bm.train_mnist1d(method, train, test, args.epochs, f, 0)
            print(f"\n{method} f={f}: scoring {r['score_seconds_per_epoch'] * 1e3:.2f} ms/epoch "
                  f"= {r['score_seconds_per_epoch'] / fe:.4f} of a full epoch; re-scoring "
                  f"{r['rescore_seconds_per_epoch'] * 1e3:.2f} ms/epoch")  # fmt: skip
            for k, v in sorted(sd._TIMES.items(), key=lambda kv: -kv[1]):
                n = sd._CALLS[k]
                print(f"  {k:40s} {1e3 * v / args.epochs:8.3f} ms/epoch  {n:6d} calls  "
                      f"{1e6 * v / n:9.1f} us/call")  # fmt: skip


if __name__ == "__main__":
    main()
