"""Session 22: where TED's scoring time goes now (inclusive thread time, ms per epoch), default
options and score_rows="fresh", clean MNIST-1D 25,000 x 30, seed 0, one torch thread.

    python packages/ted-prune/scripts/profile_s22.py [--epochs 30] [--budgets 0.7 0.3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import scoring_digest as sd  # noqa: E402
from ted_prune import bench_mnist1d as bm  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--num-samples", type=int, default=25000)
    ap.add_argument("--budgets", type=float, nargs="+", default=[0.7, 0.3])
    ap.add_argument("--methods", nargs="+", default=["TED", "TED+fresh"])
    args = ap.parse_args()
    torch.set_num_threads(1)
    sd._install_profile()
    train, _, test = bm._splits("clean", args.num_samples, 0)
    bm.train_mnist1d("TED", train, test, 2, 0.7, 0)  # warm-up, not reported
    full = bm.train_mnist1d("full", train, test, args.epochs, 1.0, 0)
    fe = full["seconds"] / args.epochs
    print(f"full-data epoch {fe * 1e3:.1f} ms")
    for method in args.methods:
        for f in args.budgets:
            sd._TIMES.clear()
            sd._CALLS.clear()
            r = bm.train_mnist1d(method, train, test, args.epochs, f, 0)
            print(f"\n{method} f={f}: scoring {r['score_seconds_per_epoch'] * 1e3:.2f} ms/epoch "
                  f"= {r['score_seconds_per_epoch'] / fe:.4f} of a full epoch; re-scoring "
                  f"{r['rescore_seconds_per_epoch'] * 1e3:.2f} ms/epoch")  # fmt: skip
            for k, v in sorted(sd._TIMES.items(), key=lambda kv: -kv[1]):
                print(f"  {k:40s} {1e3 * v / args.epochs:8.3f} ms/epoch  {sd._CALLS[k]:6d} calls")


if __name__ == "__main__":
    main()
