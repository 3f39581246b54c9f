"""Which statistic of TED's own stored losses tells a persistent high-loss group (label noise)
from clean data, and when (session 27b; diagnosis seeds 100-102 only, chooses the detector).

Usage::

    python packages/ted-prune/scripts/s27b_detector_diagnosis.py --out DIR

Trains TED's default (`TEDPruner(budget=0.7)`, MNIST-1D 5,000, one thread, 20-epoch cosine LR) on
seeds 100-102, clean and noise20, and stops after epoch 3: before that every epoch is full data,
so the run is the same at any f. At the start of epochs 1-3 (= after epochs 0-2) it reads TED's
stored logits and labels (the loss each sample had when last trained on; no noise oracle) and
records, per run: the fraction of samples whose stored loss exceeds ln C (the model gives the label
less than a uniform guess), the same fraction among samples also above ln C one epoch earlier
(persistent), and, for the record only, the oracle's share of mislabelled samples among them.
Writes `DIR/detector-diagnosis.json`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import torch
from maskloop import LoopState
from ted_prune import bench_mnist1d
from ted_prune.bench_mnist1d import _splits, train_mnist1d
from ted_prune.mnist1d import mnist1d_splits
from ted_prune.ted import TEDPruner
from torch.nn import functional as F

_ROWS: list[dict[str, Any]] = []


class _Stop(Exception):
    pass


class _Probe(bench_mnist1d._MinClassKept):
    bad: torch.Tensor
    prev: torch.Tensor | None = None

    def on_epoch_start(self, state: LoopState) -> None:
        super().on_epoch_start(state)
        if state.epoch == 0:
            _Probe.prev = None
            return
        p = self.pruner
        sl = F.cross_entropy(p.logits.double(), p.labels.clamp_min(0), reduction="none")
        hi = sl > math.log(p.logits.shape[1])
        pers = hi if _Probe.prev is None else hi & _Probe.prev
        _ROWS[-1]["epochs"].append({
            "after_epoch": state.epoch - 1,
            "frac_above_lnC": float(hi.double().mean()),
            "frac_above_lnC_persistent": float(pers.double().mean()),
            "mean_stored_loss": float(sl.mean()),
            "oracle_mislabelled_share_above": float(self.bad[hi].double().mean()) if hi.any() else None,
            "oracle_recall_above": float(hi[self.bad].double().mean()) if self.bad.any() else None,
        })  # fmt: skip
        _Probe.prev = hi
        if state.epoch == 3:
            raise _Stop


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    bench_mnist1d._MinClassKept = _Probe  # type: ignore[misc]
    bench_mnist1d._pruner = lambda m, n, e, f, s, z: TEDPruner(
        n, e, budget=f, seed=s, noise_schedule="off"
    )  # type: ignore[assignment]
    for setting in ("clean", "noise20"):
        for seed in (100, 101, 102):
            train, val, _ = _splits(setting, 5000, seed)
            clean_y = mnist1d_splits(5000, val_size=500, seed=seed)[0].tensors[1]
            _Probe.bad = train.tensors[1] != clean_y
            _ROWS.append({"setting": setting, "seed": seed, "epochs": []})
            with contextlib.suppress(_Stop):
                train_mnist1d("TED", train, val, 20, 0.7, seed)
            print(json.dumps(_ROWS[-1]))
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "detector-diagnosis.json").write_text(json.dumps(_ROWS, indent=1) + "\n")


if __name__ == "__main__":
    main()
