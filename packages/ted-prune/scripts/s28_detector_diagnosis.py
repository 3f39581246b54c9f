"""Can TED tell label noise from clean data within epoch 0, from the per-sample losses of epoch 0's
own training pass (session 28; diagnosis only, on the already-used validation seeds 180-189)?

Usage::

    python packages/ted-prune/scripts/s28_detector_diagnosis.py --out DIR

Trains TED's default (`TEDPruner(budget=0.7)`, MNIST-1D 5,000, one thread, 20-epoch cosine LR,
batch 128) on seeds 180-189, clean and noise20, and stops at the start of epoch 1: epoch 0 is on
full data at any f, so the run is the same for every budget and arm. A probe records, in the order
TED observes them, the per-sample training-pass loss of every sample of epoch 0 (from the logits
TED is handed; no extra pass, no noise oracle). Per run it writes the share of losses above ln C
(the model gives the label less than a uniform guess) among the LAST w of the epoch's observations,
w in {1, 0.75, 0.5, 0.25, 0.1}, the shares above m ln C for m in {1.25, 1.5, 2} in the same
windows, the windows' mean loss, and (for the record only)
the oracle's share of mislabelled samples. Writes `DIR/detector-diagnosis.json`.
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

WINDOWS = (1.0, 0.75, 0.5, 0.25, 0.1)
MULTS = (1.0, 1.25, 1.5, 2.0)  # thresholds m ln C
SEEDS = list(range(180, 190))
_SEQ: list[torch.Tensor] = []
_IDX: list[torch.Tensor] = []


class _Stop(Exception):
    pass


class _ProbeTED(TEDPruner):
    def _observe(self, indices, logits, features, targets, losses) -> None:  # noqa: ANN001
        if self.epoch == 0:
            _SEQ.append(F.cross_entropy(logits.double(), targets, reduction="none"))
            _IDX.append(indices.clone())
        super()._observe(indices, logits, features, targets, losses)


class _Probe(bench_mnist1d._MinClassKept):
    def on_epoch_start(self, state: LoopState) -> None:
        super().on_epoch_start(state)
        if state.epoch == 1:
            raise _Stop


def stats(seq: torch.Tensor, bad: torch.Tensor, c: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for w in WINDOWS:
        tail = seq[seq.numel() - max(1, round(w * seq.numel())) :]
        for m in MULTS:
            out[f"last{w}_above_{m}lnC"] = float((tail > m * math.log(c)).double().mean())
        out[f"last{w}_mean_loss"] = float(tail.mean())
    out["oracle_mislabelled"] = float(bad.double().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    torch.set_num_threads(1)
    bench_mnist1d._MinClassKept = _Probe  # type: ignore[misc]
    bench_mnist1d._pruner = lambda m, n, e, f, s, z: _ProbeTED(
        n, e, budget=f, seed=s, noise_schedule="off"
    )  # type: ignore[assignment]
    rows = []
    for setting in ("clean", "noise20"):
        for seed in SEEDS:
            train, val, _ = _splits(setting, 5000, seed)
            clean_y = mnist1d_splits(5000, val_size=500, seed=seed)[0].tensors[1]
            bad = train.tensors[1] != clean_y
            _SEQ.clear()
            _IDX.clear()
            with contextlib.suppress(_Stop):
                train_mnist1d("TED", train, val, 20, 0.7, seed)
            seq, idx = torch.cat(_SEQ), torch.cat(_IDX)
            row = {"setting": setting, "seed": seed, "observed": int(seq.numel()),
                   **stats(seq, bad[idx], 10)}  # fmt: skip
            rows.append(row)
            print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v)
                              for k, v in row.items() if k.endswith("_1.5lnC") or k in ("setting", "seed")}),
                  flush=True)  # fmt: skip
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "detector-diagnosis.json").write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
