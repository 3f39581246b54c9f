"""Where TED's hard tilt meets the mislabelled samples (issue 15, session 26; diagnosis only).

Usage::

    python packages/ted-prune/scripts/tail_diagnosis.py --out DIR [--seeds 100 101 102]
        [--methods TED_s25c] [--settings clean noise20]

Runs `train_mnist1d` (MNIST-1D 5,000 x 20, f = 0.7, one thread; scored on the VALIDATION split,
never test) and records, at the start of every pruned epoch, what TED's selection sees: the kept
set, the stored (last-observed) logits and labels the scores come from, and which training labels
the noise flipped (`mnist1d_splits` with noise 0 gives the clean labels of the same samples).
Writes `DIR/tail-diagnosis.json` with, per setting, early / late pruned epochs (mean over seeds):

- the share of samples misclassified by the stored logits, and of the mislabelled ones;
- recall and precision for "mislabelled" of (a) misclassified by the stored logits and (b) the
  top 10% / 20% of stored losses per class;
- the kept rate of mislabelled, misclassified and all samples.

Chooses nothing; the session-26 rule names its candidates from what this shows on these seeds
(100-102, the session-25 diagnosis seeds; every decision seed is >= 150).
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
from ted_prune.mnist1d import mnist1d_splits

_EPOCHS: list[dict[str, Any]] = []


class _Recorder(bench_mnist1d._MinClassKept):
    def on_epoch_start(self, state: LoopState) -> None:
        super().on_epoch_start(state)
        p = self.pruner
        if float(p.keep_ratio(state.epoch)) >= 1.0 or getattr(p, "logits", None) is None:
            return
        _EPOCHS.append({
            "epoch": state.epoch,
            "kept": p.sampler.selection.indices.clone(),
            "logits": p.logits.double().clone(),
            "labels": p.labels.clone(),
        })  # fmt: skip


def _tail(loss: torch.Tensor, y: torch.Tensor, frac: float) -> torch.Tensor:
    out = torch.zeros_like(y, dtype=torch.bool)
    for c in range(10):
        i = torch.nonzero(y == c).flatten()
        if i.numel():
            out[i] = loss[i] >= torch.quantile(loss[i], 1 - frac)
    return out


def _stats(e: dict[str, Any], bad: torch.Tensor) -> dict[str, float]:
    y = e["labels"]
    n = y.numel()
    loss = torch.nn.functional.cross_entropy(e["logits"], y, reduction="none")
    mis = e["logits"].argmax(1) != y
    kept = torch.zeros(n, dtype=torch.bool)
    kept[e["kept"]] = True

    def rp(sel: torch.Tensor) -> list[float]:
        tp = float((sel & bad).sum())
        return [tp / max(float(bad.sum()), 1), tp / max(float(sel.sum()), 1)]

    out = {"misclassified": float(mis.double().mean()), "kept_rate_all": float(kept.double().mean()),
           "kept_rate_misclassified": float(kept[mis].double().mean()) if mis.any() else float("nan"),
           "misclassified_recall_precision": rp(mis)}  # fmt: skip
    for frac in (0.1, 0.2):
        out[f"loss_top{int(frac * 100)}_recall_precision"] = rp(_tail(loss, y, frac))
    if bad.any():
        out["mislabelled_misclassified"] = float(mis[bad].double().mean())
        out["kept_rate_mislabelled"] = float(kept[bad].double().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--methods", nargs="+", default=["TED_s25c"])
    ap.add_argument("--settings", nargs="+", default=["clean", "noise20"])
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    rows = []
    orig = bench_mnist1d._MinClassKept
    bench_mnist1d._MinClassKept = _Recorder
    try:
        for setting in a.settings:
            for seed in a.seeds:
                train, val, _ = _splits(setting, 5000, seed)
                clean_y = mnist1d_splits(5000, val_size=500, seed=seed)[0].tensors[1]
                bad = train.tensors[1] != clean_y
                for m in a.methods:
                    _EPOCHS.clear()
                    r = train_mnist1d(m, train, val, 20, 0.7, seed)
                    per = [_stats(e, bad) for e in _EPOCHS]
                    half = len(per) // 2
                    row = {"setting": setting, "seed": seed, "method": m,
                           "val_accuracy": r["accuracy"], "mislabelled": float(bad.double().mean())}  # fmt: skip
                    for name, part in (("early", per[:half]), ("late", per[half:])):
                        row[name] = {k: np.nanmean([p[k] for p in part if k in p], 0).tolist()
                                     for k in part[0]}  # fmt: skip
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    finally:
        bench_mnist1d._MinClassKept = orig
    (a.out / "tail-diagnosis.json").write_text(json.dumps(
        {"config": {"num_samples": 5000, "epochs": 20, "f": 0.7, "split": "validation",
                    "seeds": a.seeds}, "runs": rows}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
