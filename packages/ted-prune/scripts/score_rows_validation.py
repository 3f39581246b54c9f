"""Validation check of `TEDPruner(score_rows="fresh")` against the default ("all"), issue 15.

Usage::

    python packages/ted-prune/scripts/score_rows_validation.py --out DIR [--seeds 5] [--decide]

Runs, per validation seed 100.. and budget f in 0.7 / 0.5 / 0.3, the MNIST-1D clean setting at
25,000 samples x 30 epochs (one thread) with TED's defaults and with `score_rows="fresh"`, scored
on the VALIDATION split (`_splits(...)[1]`, never test). Each finished run is appended to
`DIR/score-rows-validation-runs.jsonl` (resumable: finished runs are skipped) with its validation
accuracy, f and a SHA-256 of every epoch's selection and loss weights. `--decide` applies the rule
committed before the runs (`DIR/RULE.md`) and writes `DIR/score-rows-validation.json`:

(a) non-inferior on validation: per seed the mean over budgets of acc(fresh) - acc(all); 95%
    percentile bootstrap CI over seeds (10,000 resamples, rng seed 0); lower bound > -0.3 points,
    or every run's selections identical to its pair's;
(b) the scoring benchmark of "fresh" (`ted-prune bench ... --stage scoring --score-rows fresh`)
    has mean scoring <= 0.05 of a full-data epoch (read from the given JSON).
Adopt "fresh" as the default iff (a) and (b).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scoring_digest import recording_pruner  # this folder: scripts run with it on sys.path
from ted_prune import bench_mnist1d
from ted_prune.bench_mnist1d import _splits, train_mnist1d

ARMS = {"all": "TED", "fresh": "TED+fresh"}
BUDGETS = (0.7, 0.5, 0.3)


def _run(arm: str, seed: int, f: float, num_samples: int, epochs: int) -> dict[str, Any]:
    made: list[Any] = []
    build = bench_mnist1d._pruner
    bench_mnist1d._pruner = recording_pruner(made)
    try:
        train, val, _ = _splits("clean", num_samples, seed)
        r = train_mnist1d(ARMS[arm], train, val, epochs, f, seed)
    finally:
        bench_mnist1d._pruner = build
    return {"arm": arm, "seed": seed, "f": f, "val_accuracy": r["accuracy"], "achieved_f": r["f"],
            "selections": made[-1].digests, "score_ms_per_epoch": 1e3 * r["score_seconds_per_epoch"]}  # fmt: skip


def decide(rows: list[dict[str, Any]], seeds: list[int], scoring: Path | None) -> dict[str, Any]:
    by = {(r["arm"], r["seed"], r["f"]): r for r in rows}
    diffs, same = [], []
    for s in seeds:
        d = []
        for f in BUDGETS:
            a, b = by[("all", s, f)], by[("fresh", s, f)]
            d.append(b["val_accuracy"] - a["val_accuracy"])
            same.append(a["selections"] == b["selections"])
        diffs.append(d)
    diff = np.array(diffs)  # (seeds, budgets)
    per_seed = diff.mean(1)
    rng = np.random.default_rng(0)
    boot = per_seed[rng.integers(0, len(seeds), (10_000, len(seeds)))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    per_f = {}
    for j, f in enumerate(BUDGETS):
        bj = diff[:, j][np.random.default_rng(0).integers(0, len(seeds), (10_000, len(seeds)))]
        per_f[str(f)] = {"mean": float(diff[:, j].mean()),
                         "ci95": [float(x) for x in np.percentile(bj.mean(1), [2.5, 97.5])]}  # fmt: skip
    acc = {arm: [by[(arm, s, f)]["val_accuracy"] for s in seeds for f in BUDGETS] for arm in ARMS}
    a_ok = bool(lo > -0.3) or all(same)
    out: dict[str, Any] = {
        "seeds": seeds, "budgets": list(BUDGETS), "split": "validation",
        "val_accuracy_mean_std": {k: [float(np.mean(v)), float(np.std(v, ddof=1))] for k, v in acc.items()},
        "delta_fresh_minus_all": {"mean": float(per_seed.mean()), "ci95": [float(lo), float(hi)]},
        "delta_per_budget": per_f,
        "selections_identical": f"{sum(same)} of {len(same)}",
        "rule_a_non_inferior": a_ok,
    }  # fmt: skip
    if scoring is not None:
        sc = json.loads(scoring.read_text())["rows"]
        mean = float(np.mean([r["overhead"] for r in sc]))
        out["scoring_fresh"] = {"file": scoring.name, "mean": mean,
                                "max": float(max(r["overhead"] for r in sc))}  # fmt: skip
        out["rule_b_scoring_met"] = mean <= 0.05
        out["adopt_fresh_as_default"] = a_ok and mean <= 0.05
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-start", type=int, default=100)
    ap.add_argument("--num-samples", type=int, default=25000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--scoring", type=Path, help="the --score-rows fresh scoring JSON, for (b)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "score-rows-validation-runs.jsonl"
    rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
    done = {(r["arm"], r["seed"], r["f"]) for r in rows}
    seeds = list(range(args.seed_start, args.seed_start + args.seeds))
    if not args.decide:
        for s in seeds:
            for f in BUDGETS:
                for arm in ARMS:
                    if (arm, s, f) in done:
                        continue
                    r = _run(arm, s, f, args.num_samples, args.epochs)
                    with cache.open("a") as fh:
                        fh.write(json.dumps(r) + "\n")
                    rows.append(r)
                    print(f"seed {s} f={f} {arm}: val {r['val_accuracy']:.2f}, scoring "
                          f"{r['score_ms_per_epoch']:.1f} ms/epoch", flush=True)  # fmt: skip
        return
    result = decide(rows, seeds, args.scoring)
    (args.out / "score-rows-validation.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
