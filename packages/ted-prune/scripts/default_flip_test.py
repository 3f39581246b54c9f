"""Test-split read of a flip of TEDPruner's defaults: `--arms s25c` (default) is session ted-25d's
`max_weight=2.0` (rule `docs/benchmarks/ted-prune-weights-s25c/RULE-test.md`), `--arms s26` session
ted-26c's `loss_weights="none", tail=0.2` (rule `docs/benchmarks/ted-prune-tail-s26/RULE-test.md`);
each rule was committed before its runs.

Usage::

    python packages/ted-prune/scripts/default_flip_test.py --out DIR [--arms s25c|s26] [--resume]
        [--time-limit S] [--grid docs/benchmarks/ted-prune-mnist1d-runs.jsonl]

`--arms s26` re-runs `TED_s26` (new), `TED_s25c` (old_rerun: the previous default) and, reported
only, `random_dynamic` (rd_rerun) per (setting, seed, f); its `old_rerun` rows are also compared
with the s25c read's cached `TED_s25c` rows (`--prev`, reproduction count). The description of
`--arms s25c` follows.

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
# arm -> bench_mnist1d method, per flip; "new" replaces TED's grid rows in the goal table
ARM_SETS = {
    "s25c": {"new": "TED_s25c", "old_rerun": "TED"},
    "s26": {"new": "TED_s26", "old_rerun": "TED_s25c", "rd_rerun": "random_dynamic"},
}
ARMS = ARM_SETS["s25c"]
PREV = Path("docs/benchmarks/ted-prune-weights-s25c/test-runs.jsonl")  # the s25c read's runs


def grid_rows(path: Path) -> list[dict[str, Any]]:
    """The committed grid's test rows of `CFG`."""
    return [r for r in load_cache(path) if r.get("config") == CFG and r["stage"] == "test"]


def run_group(
    group: tuple[str, int], grid: list[dict[str, Any]], arms: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    arms = ARMS if arms is None else arms
    setting, seed = group
    full = [r for r in grid if r["method"] == "full" and r["setting"] == setting
            and r["seed"] == seed]  # fmt: skip
    if len(full) != 1:
        raise ValueError(f"grid cache: expected one full run for {group}, found {len(full)}")
    full_s = full[0]["metrics"]["seconds"]
    train, _, test = _splits(setting, CFG["num_samples"], seed)
    rows = []
    for f in BUDGETS:
        for arm, method in arms.items():
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


def summarize_s26(
    grid: list[dict[str, Any]], new: list[dict[str, Any]], prev: list[dict[str, Any]]
) -> dict[str, Any]:
    """`--arms s26`: goal tables with TED = `new` (and = `old_rerun`; and with random-dynamic =
    `rd_rerun`, reported only), and per (setting, f) paired differences over the seeds run."""

    def results(ted_arm: str, rd_arm: str | None = None) -> report.Results:
        res = report.Results("ted-prune", "default_flip_test.py --arms s26", CFG)
        replaced = {"TED"} | ({"random_dynamic"} if rd_arm else set())
        for r in grid:
            if r["method"] not in replaced:
                res.add(r["method"], r["seed"], r["metrics"], setting=r["setting"],
                        f_target=r["f_target"])  # fmt: skip
        for r in new:
            name = (
                "TED" if r["arm"] == ted_arm else "random_dynamic" if r["arm"] == rd_arm else None
            )
            if name:
                res.add(name, r["seed"], r["metrics"], setting=r["setting"],
                        f_target=r["f_target"])  # fmt: skip
        return res

    def acc(rows: list[dict[str, Any]], st: str, f: float, **match: str) -> dict[int, float]:
        return {r["seed"]: r["metrics"]["accuracy"] for r in rows
                if r["setting"] == st and r["f_target"] == f
                and all(r.get(k) == v for k, v in match.items())}  # fmt: skip

    pairs = []
    for st in SETTINGS:
        for f in BUDGETS:
            a = acc(new, st, f, arm="new")
            if not a:
                continue
            row: dict[str, Any] = {"setting": st, "f_target": f, "n": len(a),
                                   "new": report.format_mean_std(a.values())}  # fmt: skip
            others = {
                "old_rerun": acc(new, st, f, arm="old_rerun"),
                "rd_rerun": acc(new, st, f, arm="rd_rerun"),
                "rd_grid": acc(grid, st, f, method="random_dynamic"),
                "ted_grid": acc(grid, st, f, method="TED"),
            }
            for name, b in others.items():
                k = sorted(set(a) & set(b))
                row[name] = report.format_mean_std(b[i] for i in k) if k else "-"
                row[f"new-{name}"] = (
                    report.paired_difference([a[i] for i in k], [b[i] for i in k]).format()
                    if len(k) > 1 else "-"
                )  # fmt: skip
                row[f"n_{name}"] = len(k)
            old, was = others["old_rerun"], acc(prev, st, f, method="TED_s25c")
            rd, rdg = others["rd_rerun"], others["rd_grid"]
            row["old_rerun==s25c read (seeds)"] = sum(abs(old[i] - was[i]) < 1e-9
                                                      for i in set(old) & set(was))  # fmt: skip
            row["rd_rerun==grid (seeds)"] = sum(abs(rd[i] - rdg[i]) < 1e-9
                                                for i in set(rd) & set(rdg))  # fmt: skip
            pairs.append(row)
    return {
        "goals_new": _goals(results("new")),
        "goals_old_rerun": _goals(results("old_rerun")),
        "goals_new_rd_rerun": _goals(results("new", "rd_rerun")),
        "ted_pairs": pairs,
    }


def write_s26(out: Path, summary: dict[str, Any], partial: int) -> None:
    head = ["setting", "f", "n", "new (tail20)", "old re-run (s25c)", "new - old re-run",
            "random-dyn. re-run", "new - random-dyn. re-run", "random-dyn. (grid)",
            "new - random-dyn. (grid)", "old re-run == s25c read", "rd re-run == grid"]  # fmt: skip
    rows = [[p["setting"], p["f_target"], p["n"], p["new"], p["old_rerun"], p["new-old_rerun"],
             p["rd_rerun"], p["new-rd_rerun"], p["rd_grid"], p["new-rd_grid"],
             p["old_rerun==s25c read (seeds)"], p["rd_rerun==grid (seeds)"]]
            for p in summary["ted_pairs"]]  # fmt: skip
    text = ((f"**Partial**: {partial} groups missing; no goal verdict.\n\n" if partial else "")
            + "## Goals, TED = new default (loss_weights='none', tail=0.2; baselines: grid cache)"
            + "\n\n" + summary["goals_new"]
            + "\n\n## Goals, TED = previous default re-run today (reported only)\n\n"
            + summary["goals_old_rerun"]
            + "\n\n## Goals, TED = new default, random-dynamic re-run today (reported only)\n\n"
            + summary["goals_new_rd_rerun"]
            + "\n\n## TED test accuracy (%), paired over seeds, 95% bootstrap CIs\n\n"
            + report.markdown_table(head, rows))  # fmt: skip
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
    ap.add_argument("--arms", choices=sorted(ARM_SETS), default="s25c")
    ap.add_argument("--prev", type=Path, default=PREV, help="--arms s26: the s25c read's runs")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    grid = grid_rows(args.grid)
    if not grid:
        raise SystemExit(f"--grid {args.grid}: no test rows of {CFG}")
    args.out.mkdir(parents=True, exist_ok=True)
    cache = args.out / "test-runs.jsonl"

    arms = ARM_SETS[args.arms]
    prev = load_cache(args.prev) if args.arms == "s26" else []

    def _write(rows: list[dict[str, Any]], partial: int) -> None:
        if args.arms == "s26":
            write_s26(args.out, summarize_s26(grid, rows, prev), partial)
        else:
            write(args.out, summarize(grid, rows), partial)

    done = run_groups(
        cache,
        CFG,
        [(st, s) for s in SEEDS for st in SETTINGS],
        lambda r: (r["setting"], r["seed"]),
        lambda g, _rows: run_group(g, grid, arms),
        _write,
        resume=args.resume,
        time_limit=args.time_limit,
    )
    return 0 if done else 3


if __name__ == "__main__":
    sys.exit(main())
