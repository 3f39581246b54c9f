"""Test-split read of TEDPruner's new default `max_weight=2.0` (session ted-25d; the rule is
`docs/benchmarks/ted-prune-weights-s25c/RULE-test.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/default_flip_test.py --out DIR [--resume] [--time-limit S]
        [--grid docs/benchmarks/ted-prune-mnist1d-runs.jsonl]

The MNIST-1D test grid of the README's goal table (5,000 samples x 20 epochs, lr 1e-2, test seeds
0-4, settings clean / noise20 / dup30, f in {0.7, 0.5, 0.3}, one thread): per (setting, seed)
group only TED is re-run, as `TED_s25c` (the package defaults, max_weight=2.0) and, reported only,
`TED` (the pre-s25c defaults, max_weight=4.0, on today's code: tells whether the old cached TED
rows still reproduce, i.e. whether new - old TED is the flip's effect alone). Every baseline (full,
random-dynamic, InfoBatch, EL2N and their controls) is read from the committed grid cache `--grid`.
The goal table is `bench_mnist1d._goals` on the grid's test rows with TED's rows replaced by the
new ones (the same judgements); `time_ratio` divides by the cached full-data run of the same group
(another process: not the grid's same-process ratio). Writes `default-flip-test.{json,md}`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch
from maskloop import report
from ted_prune.bench_mnist1d import BUDGETS, SETTINGS, _goals, _splits, train_mnist1d
from ted_prune.runcache import load_cache, run_groups

CFG = {"num_samples": 5000, "epochs": 20, "lr": 1e-2}
SEEDS = range(5)
ARMS = {"new": "TED_s25c", "old_rerun": "TED"}  # arm -> bench_mnist1d method


def grid_rows(path: Path) -> list[dict[str, Any]]:
    """The committed grid's test rows of `CFG`."""
    return [r for r in load_cache(path) if r.get("config") == CFG and r["stage"] == "test"]


def run_group(group: tuple[str, int], grid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    setting, seed = group
    full = [r for r in grid if r["method"] == "full" and r["setting"] == setting
            and r["seed"] == seed]  # fmt: skip
    if len(full) != 1:
        raise ValueError(f"grid cache: expected one full run for {group}, found {len(full)}")
    full_s = full[0]["metrics"]["seconds"]
    train, _, test = _splits(setting, CFG["num_samples"], seed)
    rows = []
    for f in BUDGETS:
        for arm, method in ARMS.items():
            r = train_mnist1d(method, train, test, CFG["epochs"], f, seed)
            r["time_ratio"] = r["seconds"] / full_s
            r["overhead"] = r.pop("score_seconds_per_epoch") / (full_s / CFG["epochs"])
            r["rescore_overhead"] = r.pop("rescore_seconds_per_epoch") / (full_s / CFG["epochs"])
            r.pop("sizes")
            rows.append({"stage": "test", "setting": setting, "seed": seed, "arm": arm,
                         "method": method, "f_target": f, "metrics": r})  # fmt: skip
    return rows


def summarize(grid: list[dict[str, Any]], new: list[dict[str, Any]]) -> dict[str, Any]:
    """Goal tables (old grid, and with TED = the new default) and paired TED differences."""

    def results(ted_arm: str | None) -> report.Results:
        res = report.Results("ted-prune", "default_flip_test.py", CFG)
        for r in grid:
            if ted_arm is None or r["method"] != "TED":
                res.add(r["method"], r["seed"], r["metrics"], setting=r["setting"],
                        f_target=r["f_target"])  # fmt: skip
        for r in new if ted_arm else []:
            if r["arm"] == ted_arm:
                res.add("TED", r["seed"], r["metrics"], setting=r["setting"],
                        f_target=r["f_target"])  # fmt: skip
        return res

    old, neu, rerun = results(None), results("new"), results("old_rerun")
    pairs = []
    for st in SETTINGS:
        for f in BUDGETS:
            mine = {r["seed"] for r in new if r["setting"] == st}  # partial runs: their seeds
            a = {k: v for k, v in neu.values("accuracy", "TED", setting=st, f_target=f).items()
                 if k in mine}  # fmt: skip
            if not a:
                continue
            row: dict[str, Any] = {"setting": st, "f_target": f,
                                   "new": report.format_mean_std(a.values())}  # fmt: skip
            for name, other in (("old", old), ("old_rerun", rerun)):
                b = other.values("accuracy", "TED", setting=st, f_target=f)
                s = sorted(set(a) & set(b))
                d = report.paired_difference([a[k] for k in s], [b[k] for k in s])
                row[name] = report.format_mean_std(b[k] for k in s)
                row[f"new-{name}"] = d.format()
                row[f"n_{name}"] = d.n
            b = rerun.values("accuracy", "TED", setting=st, f_target=f)
            c = old.values("accuracy", "TED", setting=st, f_target=f)
            row["old_rerun==old (seeds)"] = sum(abs(b[k] - c[k]) < 1e-9 for k in set(b) & set(c))
            pairs.append(row)
    return {"goals_before": _goals(old), "goals_new": _goals(neu), "goals_old_rerun": _goals(rerun),
            "ted_pairs": pairs}  # fmt: skip


def write(out: Path, summary: dict[str, Any], partial: int) -> None:
    head = ["setting", "f_target", "new (mw2)", "old (grid)", "new - old [95% CI]", "n",
            "old re-run (mw4)", "new - old re-run", "re-run == grid (seeds)"]  # fmt: skip
    rows = [[p["setting"], p["f_target"], p["new"], p["old"], p["new-old"], p["n_old"],
             p["old_rerun"], p["new-old_rerun"], p["old_rerun==old (seeds)"]]
            for p in summary["ted_pairs"]]  # fmt: skip
    text = ((f"**Partial**: {partial} groups missing.\n\n" if partial else "")
            + "## Goals, TED = new default (max_weight=2.0)\n\n" + summary["goals_new"]
            + "\n\n## Goals before s25c (grid cache)\n\n" + summary["goals_before"]
            + "\n\n## Goals, TED = old default re-run today (reported only)\n\n"
            + summary["goals_old_rerun"]
            + "\n\n## TED test accuracy, paired over seeds\n\n" + report.markdown_table(head, rows))  # fmt: skip
    (out / "default-flip-test.md").write_text(text + "\n")
    (out / "default-flip-test.json").write_text(json.dumps({**summary, "partial": partial},
                                                           indent=1) + "\n")  # fmt: skip
    print(text)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--grid", type=Path, default=Path("docs/benchmarks/ted-prune-mnist1d-runs.jsonl")
    )
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    grid = grid_rows(args.grid)
    if not grid:
        raise SystemExit(f"--grid {args.grid}: no test rows of {CFG}")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "test-runs.jsonl"

    def _write(rows: list[dict[str, Any]], partial: int) -> None:
        write(args.out, summarize(grid, rows), partial)

    done = run_groups(
        cache,
        CFG,
        [(st, s) for s in SEEDS for st in SETTINGS],
        lambda r: (r["setting"], r["seed"]),
        lambda g, _rows: run_group(g, grid),
        _write,
        resume=args.resume,
        time_limit=args.time_limit,
    )
    return 0 if done else 3


if __name__ == "__main__":
    sys.exit(main())
