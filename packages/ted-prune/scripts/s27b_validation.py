"""Validation run of session 27b's noise-conditional schedule (`TEDPruner(noise_schedule="late")`)
against TED's default, random-dynamic and InfoBatch (issue 15; the rule is
`docs/benchmarks/ted-prune-s27b/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/s27b_validation.py --out DIR [--resume] [--time-limit S]
        [--seeds 180 ... 189] [--settings clean noise20] [--fs 0.7 0.5]
    python packages/ted-prune/scripts/s27b_validation.py --out DIR --decide

The machinery of `s27_validation.py` (MNIST-1D 5,000 x 20, one thread, VALIDATION split, never
test; seeds in order, all settings, fractions and arms of a seed together; `DIR/runs.jsonl`,
`--resume`, `--time-limit` exit code 3) with four arms; each `noise_late` run also records the
detector's decision (`noisy`) and statistic. `--decide` writes `DIR/decision.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ted_prune import bench_mnist1d
from ted_prune.bench_mnist1d import _splits, train_mnist1d
from ted_prune.ted import TEDPruner

CANDIDATE = "noise_late"
ARMS = {
    "default": "TED_s26",  # TEDPruner's current defaults (loss_weights="none", tail=0.2)
    "noise_late": "TED_s26_noise_late",  # the defaults plus noise_schedule="late"
    "random_dynamic": "random_dynamic",  # reported: TED's schedule, random draws
    "InfoBatch": "InfoBatch",  # reported: the goal read
}
SEEDS = list(range(180, 190))
SETTINGS = ["clean", "noise20"]
FS = [0.7, 0.5]
NUM_SAMPLES, EPOCHS = 5000, 20
_ORIG_PRUNER = bench_mnist1d._pruner
_LAST: list[Any] = []


def _pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
    if method == "TED_s26_noise_late":
        p = TEDPruner(n, epochs, budget=f, seed=seed, noise_schedule="late")
    else:
        p = _ORIG_PRUNER(method, n, epochs, f, seed, sizes)
    _LAST[:] = [p]
    return p


def _ci(d: np.ndarray) -> list[float]:
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (10_000, d.size))].mean(1)
    return [float(x) for x in np.percentile(boot, [2.5, 97.5])]


def summarize(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """Per (setting, f), on the seeds where every arm finished: accuracy mean ± std per arm, paired
    differences, and the detector's decisions per seed."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out: dict[str, Any] = {"split": "validation", "num_samples": NUM_SAMPLES, "epochs": EPOCHS,
                           "cells": {}}  # fmt: skip
    for setting in SETTINGS:
        for f in FS:
            done = [s for s in seeds if all((a, setting, f, s) in by for a in ARMS)]
            if not done:
                continue
            acc = {
                a: np.array([by[(a, setting, f, s)]["val_accuracy"] for s in done]) for a in ARMS
            }
            cell: dict[str, Any] = {"seeds": done, "n": len(done)}
            cell["accuracy_mean_std"] = {
                a: [float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0]
                for a, v in acc.items()
            }
            cell["f_achieved"] = {a: float(np.mean([by[(a, setting, f, s)]["f"] for s in done]))
                                  for a in ARMS}  # fmt: skip
            cell["min_class_kept"] = {
                a: float(min(by[(a, setting, f, s)]["min_class_kept"] for s in done)) for a in ARMS
            }
            cell["detector"] = {
                str(s): [by[(CANDIDATE, setting, f, s)]["noisy"],
                         round(by[(CANDIDATE, setting, f, s)]["noise_statistic"], 4)]
                for s in done
            }  # fmt: skip
            cell["detector_says_noisy"] = sum(v[0] for v in cell["detector"].values())
            pairs = [(CANDIDATE, b) for b in ("default", "random_dynamic", "InfoBatch")]
            pairs += [("default", "random_dynamic"), ("default", "InfoBatch")]
            for x, y in pairs:
                d = acc[x] - acc[y]
                cell[f"{x}-{y}"] = {"mean": float(d.mean()), "ci95": _ci(d),
                                    "all_zero": bool(np.all(d == 0))}  # fmt: skip
            out["cells"][f"{setting} f={f}"] = cell
    return out


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md: `noise_late` is adoptable iff the data are complete and
    B1 noise20, f=0.7: c - default CI lower end > 0;
    B2 noise20, f=0.5: c - default mean > 0;
    B3 clean, f=0.7 and f=0.5: c - default mean >= -0.3 and (CI upper end > 0, or every paired
    difference exactly 0: the detector said no and the runs are the default's);
    B4 no class drops out in any run of c.
    B3_literal (the brief's wording, CI upper end > 0 only) is reported beside it."""
    out = summarize(rows, seeds)
    cells = out["cells"]
    keys = [f"{s} f={f}" for s in SETTINGS for f in FS]
    complete = all(k in cells and cells[k]["n"] == len(seeds) for k in keys)
    r: dict[str, Any] = {"complete": complete}
    if complete:
        c = CANDIDATE
        n7, n5 = cells["noise20 f=0.7"][f"{c}-default"], cells["noise20 f=0.5"][f"{c}-default"]
        r["B1_noise20_f0.7_ci_above_0"] = n7["ci95"][0] > 0
        r["B2_noise20_f0.5_mean_above_0"] = n5["mean"] > 0
        clean = [cells[f"clean f={f}"][f"{c}-default"] for f in FS]
        r["B3_clean_does_not_lose"] = all(
            d["mean"] >= -0.3 and (d["ci95"][1] > 0 or d["all_zero"]) for d in clean
        )
        r["B4_no_class_drops"] = all(row["min_class_kept"] > 0 for row in rows if row["arm"] == c)
        r["adopt"] = all(v for k, v in r.items() if k.startswith("B"))
        r["B3_literal_ci_upper_above_0"] = all(
            d["mean"] >= -0.3 and d["ci95"][1] > 0 for d in clean
        )
        r["clean_false_positives"] = sum(cells[f"clean f={f}"]["detector_says_noisy"] for f in FS)
        r["noise20_detected"] = sum(cells[f"noise20 f={f}"]["detector_says_noisy"] for f in FS)
    else:
        r["adopt"] = False
    out["rule"] = r
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS)
    ap.add_argument("--settings", nargs="+", default=SETTINGS)
    ap.add_argument("--fs", type=float, nargs="+", default=FS)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    cache = a.out / "runs.jsonl"
    rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
    if a.decide:
        res = decide(rows)
        (a.out / "decision.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    if rows and not a.resume:
        raise SystemExit(f"{cache} exists: pass --resume to continue it")
    done = {(r["arm"], r["setting"], r["f_target"], r["seed"]) for r in rows}
    start = time.perf_counter()
    bench_mnist1d._pruner = _pruner
    try:
        for seed in a.seeds:
            for setting in a.settings:
                train, val, _ = _splits(setting, NUM_SAMPLES, seed)
                for f in a.fs:
                    for arm, method in ARMS.items():
                        if (arm, setting, f, seed) in done:
                            continue
                        if a.time_limit is not None and time.perf_counter() - start > a.time_limit:
                            print("time limit reached: rerun with --resume", flush=True)
                            raise SystemExit(3)
                        r = train_mnist1d(method, train, val, EPOCHS, f, seed)
                        p = _LAST[0]
                        row = {"arm": arm, "method": method, "setting": setting, "seed": seed,
                               "f_target": f, "val_accuracy": r["accuracy"], "f": r["f"],
                               "min_class_kept": r["min_class_kept"], "sizes": r["sizes"],
                               "seconds": r["seconds"], "noisy": getattr(p, "noisy", None),
                               "noise_statistic": getattr(p, "noise_statistic", None)}  # fmt: skip
                        with cache.open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
                        print(f"{setting} f={f} seed {seed} {arm}: {r['accuracy']:.1f}"
                              f" noisy={row['noisy']}", flush=True)  # fmt: skip
    finally:
        bench_mnist1d._pruner = _ORIG_PRUNER


if __name__ == "__main__":
    main()
