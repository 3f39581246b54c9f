"""Why TED loses to InfoBatch (and ties random-dynamic) under 20% label noise (issue 15, session 27;
diagnosis only, chooses nothing).

Usage::

    python packages/ted-prune/scripts/noise_diagnosis.py --out DIR [--seeds 100 101 102]
        [--settings clean noise20] [--fs 0.7 0.5] [--resume] [--time-limit S]
    python packages/ted-prune/scripts/noise_diagnosis.py --out DIR --summary

Runs `train_mnist1d` (MNIST-1D 5,000 x 20, one thread; scored on the VALIDATION split, never test)
for TED's default (`TED_s26`), random-dynamic, InfoBatch, random selection on InfoBatch's own
per-epoch sizes (`random_InfoBatch`, the schedule control), and TED / random-dynamic with the last
3 epochs on full data (`anneal=3`, InfoBatch's delta = 0.875: `TED_s26_an3`, `random_dynamic_an3`).
At the start of every epoch it records (one no-grad eval pass over the training set; the
measurement changes no selection): the kept size, the share of mislabelled samples in the kept set
and their kept rate, the current loss of mislabelled vs clean samples, how many mislabelled samples
the model already fits (predicts their noisy label), and for TED the 20% tail's recall and
precision for "mislabelled" (each class's top-20% stored loss, as `tail=0.2` reads it).
Writes `DIR/runs.jsonl` (one line per run) and with `--summary` `DIR/noise-diagnosis.json`.
Seeds 100-102 are the diagnosis seeds of sessions 25-26; every decision seed is >= 150.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import LoopState
from ted_prune import bench_mnist1d
from ted_prune.baselines import RandomDynamic
from ted_prune.bench_mnist1d import _splits, train_mnist1d
from ted_prune.mnist1d import mnist1d_splits
from ted_prune.ted import TEDPruner
from torch.nn import functional as F

METHODS = ["TED_s26", "random_dynamic", "InfoBatch", "random_InfoBatch", "TED_s26_an3",
           "random_dynamic_an3"]  # fmt: skip
# second pass (`--methods`): where the schedule spends its full-data epochs, TEDPruner's existing
# `warmup` / `ramp` / `anneal` (defaults 2 / 4 / 0 at 20 epochs); "r" = random-dynamic's draw
SCHEDULES = {
    "TED_s26_an3": ("ted", {"anneal": 3}),
    "random_dynamic_an3": ("r", {"anneal": 3}),
    "TED_s26_w1": ("ted", {"warmup": 1}),
    "TED_s26_w1an2": ("ted", {"warmup": 1, "anneal": 2}),
    "TED_s26_w1r0an3": ("ted", {"warmup": 1, "ramp": 0, "anneal": 3}),
    "random_dynamic_w1r0an3": ("r", {"warmup": 1, "ramp": 0, "anneal": 3}),
}
_EPOCHS: list[dict[str, Any]] = []
_ORIG_PRUNER = bench_mnist1d._pruner


def _pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
    if method in SCHEDULES:
        kind, kw = SCHEDULES[method]
        cls = TEDPruner if kind == "ted" else RandomDynamic
        return cls(n, epochs, budget=f, seed=seed, **kw)
    return _ORIG_PRUNER(method, n, epochs, f, seed, sizes)


class _Recorder(bench_mnist1d._MinClassKept):
    x: torch.Tensor
    bad: torch.Tensor

    def on_epoch_start(self, state: LoopState) -> None:
        super().on_epoch_start(state)
        p, model = self.pruner, state.model
        was = model.training
        model.eval()
        with torch.no_grad():
            logits = model(self.x)
        model.train(was)
        loss = F.cross_entropy(logits, self.y, reduction="none").double()
        n = self.y.numel()
        kept = torch.zeros(n, dtype=torch.bool)
        kept[p.sampler.selection.indices] = True
        bad = self.bad
        rec: dict[str, Any] = {
            "epoch": state.epoch,
            "kept_frac": float(kept.double().mean()),
            "mislabelled_share_of_kept": float(bad[kept].double().mean()),
            "kept_rate_mislabelled": float(kept[bad].double().mean()) if bad.any() else None,
            "loss_mislabelled": float(loss[bad].mean()) if bad.any() else None,
            "loss_clean": float(loss[~bad].mean()),
            "fits_noisy_label": float((logits.argmax(1) == self.y)[bad].double().mean())
            if bad.any()
            else None,
        }
        w = getattr(p, "weight", None)
        if w is not None and bad.any() and kept.any():  # loss-weight mass on mislabelled samples
            wk = w.double() * kept.double()
            rec["weight_share_mislabelled"] = float(wk[bad].sum() / wk.sum())
        stored = getattr(p, "logits", None)
        if stored is not None and getattr(p, "labels", None) is not None and bad.any():
            sl = F.cross_entropy(stored.double(), p.labels.clamp_min(0), reduction="none")
            tail = torch.zeros(n, dtype=torch.bool)
            for c in range(10):
                i = torch.nonzero(self.y == c).flatten()
                tail[i] = sl[i] >= torch.quantile(sl[i], 0.8)
            tp = float((tail & bad).sum())
            rec["tail20_recall_precision"] = [tp / float(bad.sum()), tp / max(float(tail.sum()), 1)]
            rec["kept_rate_mislabelled_outside_tail"] = (
                float(kept[bad & ~tail].double().mean()) if (bad & ~tail).any() else None
            )
        _EPOCHS.append(rec)


def _run(method: str, setting: str, seed: int, f: float, sizes: Any) -> dict[str, Any]:
    train, val, _ = _splits(setting, 5000, seed)
    clean_y = mnist1d_splits(5000, val_size=500, seed=seed)[0].tensors[1]
    _Recorder.x = train.tensors[0]
    _Recorder.bad = train.tensors[1] != clean_y
    _EPOCHS.clear()
    r = train_mnist1d(method, train, val, 20, f, seed, sizes)
    return {"method": method, "setting": setting, "seed": seed, "f_target": f,
            "val_accuracy": r["accuracy"], "f": r["f"], "sizes": r["sizes"],
            "min_class_kept": r["min_class_kept"], "epochs": list(_EPOCHS)}  # fmt: skip


def _ci(d: np.ndarray) -> list[float]:
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (10_000, d.size))].mean(1)
    return [float(x) for x in np.percentile(boot, [2.5, 97.5])]


def summary(rows: list[dict[str, Any]], methods: list[str]) -> dict[str, Any]:
    """Per (setting, f): accuracy mean ± std per method, paired differences against TED_s26 and
    random_dynamic, and the per-epoch measurements averaged over seeds (pruned epochs 6-16 as
    'mid', the last three as 'end')."""
    out: dict[str, Any] = {"split": "validation", "num_samples": 5000, "epochs": 20, "cells": {}}
    by = {(r["method"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    for setting in sorted({r["setting"] for r in rows}):
        for f in sorted({r["f_target"] for r in rows}, reverse=True):
            seeds = sorted({s for (_, st, ff, s) in by if st == setting and ff == f})
            seeds = [s for s in seeds if all((m, setting, f, s) in by for m in methods)]
            if not seeds:
                continue
            cell: dict[str, Any] = {"seeds": seeds, "methods": {}}
            acc = {m: np.array([by[(m, setting, f, s)]["val_accuracy"] for s in seeds])
                   for m in methods}  # fmt: skip
            for m in methods:
                eps = [by[(m, setting, f, s)]["epochs"] for s in seeds]
                keys = [k for k in eps[0][-1] if k != "epoch"]
                per: dict[str, Any] = {}
                for k in keys:
                    # epochs 6-19 (every pruner has stored scores by then)
                    vals = [[e.get(k) for e in run[6:]] for run in eps]
                    if any(v is None for run in vals for v in run):
                        continue
                    arr = np.array(vals, dtype=float)  # seeds x epochs 6-19 (x 2)
                    per[k] = {"mid": arr[:, :11].mean((0, 1)).tolist(),
                              "end": arr[:, 11:].mean((0, 1)).tolist()}  # fmt: skip
                cell["methods"][m] = {
                    "accuracy_mean_std": [float(acc[m].mean()), float(acc[m].std(ddof=1))],
                    "f": float(np.mean([by[(m, setting, f, s)]["f"] for s in seeds])),
                    "sizes_mean": np.mean([by[(m, setting, f, s)]["sizes"] for s in seeds], 0)
                    .round()
                    .tolist(),
                    "per_epoch": per,
                }
                for ref in ("TED_s26", "random_dynamic"):
                    if m != ref:
                        d = acc[m] - acc[ref]
                        cell["methods"][m][f"-{ref}"] = {"mean": float(d.mean()), "ci95": _ci(d)}
            out["cells"][f"{setting} f={f}"] = cell
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102])
    ap.add_argument("--settings", nargs="+", default=["noise20", "clean"])
    ap.add_argument("--fs", type=float, nargs="+", default=[0.7, 0.5])
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--summary", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--tag", default="", help="suffix of the summary file")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    cache = a.out / "runs.jsonl"
    rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
    if a.summary:
        res = summary(rows, a.methods)
        (a.out / f"noise-diagnosis{a.tag}.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    if rows and not a.resume:
        raise SystemExit(f"{cache} exists: pass --resume to continue it")
    done = {(r["method"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    start = time.perf_counter()
    orig = bench_mnist1d._MinClassKept, bench_mnist1d._pruner
    bench_mnist1d._MinClassKept, bench_mnist1d._pruner = _Recorder, _pruner
    try:
        for seed in a.seeds:
            for setting in a.settings:
                for f in a.fs:
                    for m in a.methods:
                        if (m, setting, f, seed) in done:
                            continue
                        if a.time_limit is not None and time.perf_counter() - start > a.time_limit:
                            print("time limit reached: rerun with --resume", flush=True)
                            raise SystemExit(3)
                        sizes = None
                        if m == "random_InfoBatch":
                            sizes = done[("InfoBatch", setting, f, seed)]["sizes"]
                        r = _run(m, setting, seed, f, sizes)
                        done[(m, setting, f, seed)] = r
                        with cache.open("a") as fh:
                            fh.write(json.dumps(r) + "\n")
                        print(f"{setting} f={f} seed {seed} {m}: {r['val_accuracy']:.1f}",
                              flush=True)  # fmt: skip
    finally:
        bench_mnist1d._MinClassKept, bench_mnist1d._pruner = orig


if __name__ == "__main__":
    main()
