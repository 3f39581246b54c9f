"""Why TED's kept set trains worse than random-dynamic's on clean MNIST-1D (issue 15, session 25).

Usage::

    python packages/ted-prune/scripts/coverage_diagnosis.py --out DIR [--seeds 100 101 102]
        [--num-samples 5000] [--epochs 20] [--f 0.7] [--methods TED random_dynamic]

Runs `train_mnist1d` (the bench's own runs, scored on the VALIDATION split, never test) and records
at the start of every epoch: the kept indices, TED's loss weights, and every training sample's
cross-entropy under the current model (one no-grad pass, eval mode; the measurement is not part
of training and changes no selection). Writes `DIR/coverage-diagnosis.json` with, per method
(mean over seeds):

- coverage: over the pruned epochs (keep ratio < 1), the share of samples kept in none of them,
  in at most a quarter of them, and the longest run of consecutive pruned epochs a sample misses
  (mean and 99th percentile over samples);
- the per-class kept fractions (smallest / largest class, averaged over pruned epochs);
- the kept set's loss quantiles (10/50/90%) against all samples' (same epoch, current model);
- TED's loss weights: mean, share at the cap, effective sample size (sum w)^2 / (m sum w^2);
- the end-of-training loss of the samples seen least (bottom quartile of times kept) against the
  rest, and validation accuracy.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import LoopState
from ted_prune import bench_mnist1d
from ted_prune.bench_mnist1d import _splits, train_mnist1d
from torch.nn import functional as F

_RECORD: dict[str, list[Any]] = {}


class _Recorder(bench_mnist1d._MinClassKept):
    """`_MinClassKept` that also records, per epoch, the selection, weights and per-sample losses."""

    x: torch.Tensor

    def on_epoch_start(self, state: LoopState) -> None:
        super().on_epoch_start(state)
        model = state.model
        was = model.training
        model.eval()
        with torch.no_grad():
            loss = F.cross_entropy(model(self.x), self.y, reduction="none")
        model.train(was)
        w = getattr(self.pruner, "weight", None)
        _RECORD["epochs"].append({
            "kept": self.pruner.sampler.selection.indices.clone(),
            "keep_ratio": float(self.pruner.keep_ratio(state.epoch)),
            "weight": None if w is None else w.clone(),
            "loss": loss.double(),
        })  # fmt: skip


def _run(
    method: str,
    seed: int,
    n_samples: int,
    epochs: int,
    f: float,
    setting: str = "clean",
    sizes: Any = None,
) -> dict[str, Any]:
    train, val, _ = _splits(setting, n_samples, seed)
    x, y = train.tensors
    _RECORD["epochs"] = []
    _Recorder.x = x
    orig = bench_mnist1d._MinClassKept
    bench_mnist1d._MinClassKept = _Recorder
    try:
        r = train_mnist1d(method, train, val, epochs, f, seed, sizes)
    finally:
        bench_mnist1d._MinClassKept = orig
    eps = _RECORD["epochs"]
    n = len(y)
    pruned = [e for e in eps if e["keep_ratio"] < 1.0]
    seen = torch.zeros(n)
    gap = torch.zeros(n)
    run = torch.zeros(n)
    cls_min, cls_max, kq, aq, wstats = [], [], [], [], []
    counts = torch.bincount(y, minlength=10).double()
    for e in pruned:
        m = torch.zeros(n, dtype=torch.bool)
        m[e["kept"]] = True
        seen += m.float()
        run = torch.where(m, torch.zeros(n), run + 1)
        gap = torch.maximum(gap, run)
        frac = torch.bincount(y[e["kept"]], minlength=10).double() / counts
        cls_min.append(float(frac.min()))
        cls_max.append(float(frac.max()))
        q = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
        kq.append(torch.quantile(e["loss"][m], q).tolist())
        aq.append(torch.quantile(e["loss"], q).tolist())
        if e["weight"] is not None:
            w = e["weight"][m]
            wstats.append([float(w.mean()), float((w >= w.max() - 1e-9).double().mean()),
                           float(w.sum() ** 2 / (w.numel() * (w * w).sum()))])  # fmt: skip
    p = len(pruned)
    final = eps[-1]["loss"]
    low = seen <= torch.quantile(seen, 0.25)
    return {
        "method": method, "setting": setting, "seed": seed, "min_class_kept": r["min_class_kept"],
        "val_accuracy": r["accuracy"], "f": r["f"],
        "pruned_epochs": p,
        "never_kept": float((seen == 0).double().mean()),
        "kept_at_most_quarter": float((seen <= p / 4).double().mean()),
        "times_kept_mean_std": [float(seen.mean()), float(seen.std())],
        "longest_miss_mean_p99": [float(gap.mean()), float(torch.quantile(gap, 0.99))],
        "class_kept_min_max": [float(np.mean(cls_min)), float(np.mean(cls_max))],
        "kept_loss_q10_q50_q90": np.mean(kq, 0).tolist(),
        "all_loss_q10_q50_q90": np.mean(aq, 0).tolist(),
        "weights_mean_capshare_ess": np.mean(wstats, 0).tolist() if wstats else None,
        "last_epoch_loss_least_seen_vs_rest": [float(final[low].mean()), float(final[~low].mean())],
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--num-samples", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--f", type=float, default=0.7)
    ap.add_argument("--methods", nargs="+", default=["TED", "random_dynamic"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in a.seeds:
        for m in a.methods:
            rows.append(_run(m, seed, a.num_samples, a.epochs, a.f))
            print(json.dumps(rows[-1]), flush=True)
    summary: dict[str, Any] = {}
    for m in a.methods:
        rs = [r for r in rows if r["method"] == m]
        summary[m] = {k: np.mean([r[k] for r in rs], 0).tolist() for k in rs[0]
                      if k not in ("method", "setting", "seed") and rs[0][k] is not None}  # fmt: skip
    cfg = {"num_samples": a.num_samples, "epochs": a.epochs, "f": a.f, "seeds": a.seeds,
           "split": "validation", "setting": "clean", "threads": a.threads}  # fmt: skip
    (a.out / "coverage-diagnosis.json").write_text(
        json.dumps({"config": cfg, "summary": summary, "runs": rows}, indent=1)
    )
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
