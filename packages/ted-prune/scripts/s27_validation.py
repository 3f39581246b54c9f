"""Validation run of session 27's two readings against TED's default, random-dynamic and InfoBatch
(issue 15; the rule is `docs/benchmarks/ted-prune-s27/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/s27_validation.py --out DIR [--resume] [--time-limit S]
        [--seeds 170 ... 179] [--settings clean noise20] [--fs 0.7 0.5]
    python packages/ted-prune/scripts/s27_validation.py --out DIR --decide

Per (seed, setting, f, arm) one MNIST-1D run (`train_mnist1d`: 5,000 samples x 20 epochs, one
thread), scored on the VALIDATION split (never test). Seeds run in order, all settings, fractions
and arms of a seed together. Each finished run is appended to `DIR/runs.jsonl`; `--resume` skips
finished runs; `--time-limit` stops starting new ones (exit code 3). `--decide` applies the rule
(`decide`) and writes `DIR/decision.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ted_prune import bench_mnist1d
from ted_prune.baselines import RandomDynamic
from ted_prune.bench_mnist1d import _splits, train_mnist1d

CANDIDATES = ("late", "thin")
ARMS = {
    "default": "TED_s26",  # TEDPruner's current defaults (loss_weights="none", tail=0.2)
    "late": "TED:prune_residual_sample_w1_tail20_late",
    "thin": "TED:prune_residual_sample_w1_tail20_thin",
    "random_dynamic": "random_dynamic",  # reported: TED's schedule, random draws
    "random_late": "random_dynamic_late",  # reported: `late`'s schedule, random draws
    "InfoBatch": "InfoBatch",  # reported: the goal read
}
SEEDS = list(range(170, 180))
SETTINGS = ["clean", "noise20"]
FS = [0.7, 0.5]
NUM_SAMPLES, EPOCHS = 5000, 20
_ORIG_PRUNER = bench_mnist1d._pruner


def _pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
    if method == "random_dynamic_late":  # the `late` reading's schedule with random draws
        sched = bench_mnist1d.READINGS["prune_residual_sample_w1_tail20_late"]
        kw = {k: sched[k] for k in ("warmup", "ramp", "anneal")}
        return RandomDynamic(n, epochs, budget=f, seed=seed, **kw)
    return _ORIG_PRUNER(method, n, epochs, f, seed, sizes)


def _ci(d: np.ndarray) -> list[float]:
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (10_000, d.size))].mean(1)
    return [float(x) for x in np.percentile(boot, [2.5, 97.5])]


def cell_stats(
    by: dict[tuple[Any, ...], dict[str, Any]],
    arms: dict[str, str],
    setting: str,
    f: float,
    seeds: list[int],
) -> tuple[list[int], dict[str, np.ndarray], dict[str, Any]] | None:
    """One (setting, f) cell on the seeds where every arm finished (None if none did): those seeds,
    each arm's accuracies, and the cell's seeds, n, accuracy mean ± std, achieved f and smallest
    kept class fraction per arm. `by` maps (arm, setting, f_target, seed) to a run's row."""
    done = [s for s in seeds if all((a, setting, f, s) in by for a in arms)]
    if not done:
        return None
    acc = {a: np.array([by[(a, setting, f, s)]["val_accuracy"] for s in done]) for a in arms}
    cell: dict[str, Any] = {"seeds": done, "n": len(done)}
    cell["accuracy_mean_std"] = {
        a: [float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0] for a, v in acc.items()
    }
    cell["f_achieved"] = {a: float(np.mean([by[(a, setting, f, s)]["f"] for s in done]))
                          for a in arms}  # fmt: skip
    cell["min_class_kept"] = {
        a: float(min(by[(a, setting, f, s)]["min_class_kept"] for s in done)) for a in arms
    }
    return done, acc, cell


def summarize(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """Per (setting, f), on the seeds where every arm finished: accuracy mean ± std per arm and the
    paired differences of every TED arm against default / random_dynamic / InfoBatch."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out: dict[str, Any] = {"split": "validation", "num_samples": NUM_SAMPLES, "epochs": EPOCHS,
                           "cells": {}}  # fmt: skip
    for setting in SETTINGS:
        for f in FS:
            got = cell_stats(by, ARMS, setting, f, seeds)
            if got is None:
                continue
            done, acc, cell = got
            pairs = [(c, b) for c in ("late", "thin", "default")
                     for b in ("default", "random_dynamic", "InfoBatch") if c != b]  # fmt: skip
            pairs += [("random_late", "random_dynamic"), ("late", "random_late")]
            for x, y in pairs:
                d = acc[x] - acc[y]
                cell[f"{x}-{y}"] = {"mean": float(d.mean()), "ci95": _ci(d)}
            out["cells"][f"{setting} f={f}"] = cell
    return out


def decide(rows: list[dict[str, Any]], seeds: list[int] = SEEDS) -> dict[str, Any]:
    """RULE.md: a candidate c is adoptable iff the data are complete and
    B1 noise20, f=0.7: c - default CI lower end > 0;
    B2 noise20, f=0.5: c - default mean > 0;
    B3 clean, f=0.7 and f=0.5: c - default mean >= -0.3 and CI upper end > 0 (does not lose);
    B4 no class drops out in any run of c.
    Both adoptable: the larger noise20 mean of c - default averaged over f = 0.7 and 0.5."""
    out = summarize(rows, seeds)
    cells = out["cells"]
    keys = [f"{s} f={f}" for s in SETTINGS for f in FS]
    complete = all(k in cells and cells[k]["n"] == len(seeds) for k in keys)
    rule: dict[str, Any] = {}
    for c in CANDIDATES:
        r: dict[str, Any] = {"complete": complete}
        if complete:
            n7, n5 = cells["noise20 f=0.7"][f"{c}-default"], cells["noise20 f=0.5"][f"{c}-default"]
            r["B1_noise20_f0.7_ci_above_0"] = n7["ci95"][0] > 0
            r["B2_noise20_f0.5_mean_above_0"] = n5["mean"] > 0
            r["B3_clean_does_not_lose"] = all(
                cells[f"clean f={f}"][f"{c}-default"]["mean"] >= -0.3
                and cells[f"clean f={f}"][f"{c}-default"]["ci95"][1] > 0
                for f in FS
            )
            r["B4_no_class_drops"] = all(
                row["min_class_kept"] > 0 for row in rows if row["arm"] == c
            )
            r["noise20_mean_gain"] = (n7["mean"] + n5["mean"]) / 2
            r["adopt"] = all(v for k, v in r.items() if k.startswith("B"))
        else:
            r["adopt"] = False
        rule[c] = r
    ok = [c for c in CANDIDATES if rule[c]["adopt"]]
    rule["adopt"] = max(ok, key=lambda c: rule[c]["noise20_mean_gain"]) if ok else None
    out["rule"] = rule
    return out


def main(
    argv: list[str] | None = None,
    *,
    arms: dict[str, str] | None = None,
    seeds: list[int] | None = None,
    pruner: Callable[..., Any] = _pruner,
    decide_rows: Callable[[list[dict[str, Any]]], dict[str, Any]] | None = None,
    row_extra: Callable[[], dict[str, Any]] | None = None,
    doc: str | None = __doc__,
    plan: Callable[[str, str, float], bool] | None = None,
) -> None:
    """Run (or, with `--decide`, decide) a study; the keyword arguments let a sibling study
    (`s27b_validation.py`) reuse this loop with its own arms, seeds, pruner factory, rule and
    extra per-run fields (`row_extra()`, read after each run and appended to its row); `plan(arm,
    setting, f)` (default: every arm in every cell) says which runs the study makes."""
    arms = ARMS if arms is None else arms
    decide_rows = decide if decide_rows is None else decide_rows
    ap = argparse.ArgumentParser(description=(doc or "").strip().split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=SEEDS if seeds is None else seeds)
    ap.add_argument("--settings", nargs="+", default=SETTINGS)
    ap.add_argument("--fs", type=float, nargs="+", default=FS)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    cache = a.out / "runs.jsonl"
    rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
    if a.decide:
        res = decide_rows(rows)
        (a.out / "decision.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    if rows and not a.resume:
        raise SystemExit(f"{cache} exists: pass --resume to continue it")
    done = {(r["arm"], r["setting"], r["f_target"], r["seed"]) for r in rows}
    start = time.perf_counter()
    bench_mnist1d._pruner = pruner
    try:
        for seed in a.seeds:
            for setting in a.settings:
                train, val, _ = _splits(setting, NUM_SAMPLES, seed)
                for f in a.fs:
                    for arm, method in arms.items():
                        if (arm, setting, f, seed) in done:
                            continue
                        if plan is not None and not plan(arm, setting, f):
                            continue
                        if a.time_limit is not None and time.perf_counter() - start > a.time_limit:
                            print("time limit reached: rerun with --resume", flush=True)
                            raise SystemExit(3)
                        r = train_mnist1d(method, train, val, EPOCHS, f, seed)
                        row = {"arm": arm, "method": method, "setting": setting, "seed": seed,
                               "f_target": f, "val_accuracy": r["accuracy"], "f": r["f"],
                               "min_class_kept": r["min_class_kept"], "sizes": r["sizes"],
                               "seconds": r["seconds"]}  # fmt: skip
                        extra = row_extra() if row_extra is not None else {}
                        row.update(extra)
                        with cache.open("a") as fh:
                            fh.write(json.dumps(row) + "\n")
                        shown = "".join(f" {k}={v}" for k, v in extra.items() if k == "noisy")
                        print(f"{setting} f={f} seed {seed} {arm}: {r['accuracy']:.1f}{shown}",
                              flush=True)  # fmt: skip
    finally:
        bench_mnist1d._pruner = _ORIG_PRUNER


if __name__ == "__main__":
    main()
