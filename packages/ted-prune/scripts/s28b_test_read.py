"""Test-split read of session 28b's default (`noise_schedule=None`: "late_epoch0" with the keep
floor `noise_min_keep=0.5` where it applies), one setting at a time: noise20 (rule
`docs/benchmarks/ted-prune-s28b/RULE-test.md`), then clean and dup30 (rule
`docs/benchmarks/ted-prune-s28b/RULE-test-clean.md`), each committed before its runs.

Usage::

    python packages/ted-prune/scripts/s28b_test_read.py --out DIR [--resume] [--time-limit S]
        [--grid docs/benchmarks/ted-prune-mnist1d-runs.jsonl] [--setting noise20|clean|dup30]

The MNIST-1D test grid of the README's goal table (5,000 samples x 20 epochs, lr 1e-2, test seeds
0-4, f in {0.7, 0.5, 0.3}, one thread, TEST split), one `--setting` (default noise20): per seed
`run_group` of
`default_flip_test.py` re-runs `TED_s28b` (new), `TED_s26` (old_rerun: the previous default) and
`random_dynamic` (rd_rerun). Full data, InfoBatch and random-dynamic are also read from the
committed grid cache `--grid` (the goal table's baselines). Writes `s28b-test.{json,md}` (other
settings: `s28b-test-<setting>.{json,md}`, cache `test-runs-<setting>.jsonl`): the setting's goals with TED = new (paired 95% bootstrap CIs, 10,000 resamples, rng 0; a CI goal is
met iff its lower end > 0), new - old_rerun and new - rd_rerun per f.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import default_flip_test as dft
import torch
from maskloop import report
from ted_prune import bench_mnist1d
from ted_prune.bench_mnist1d import BUDGETS
from ted_prune.runcache import run_groups

ARMS = {"new": "TED_s28b", "old_rerun": "TED_s26", "rd_rerun": "random_dynamic"}
STUDY = "s28b"  # names the report (`s29_test_read.py` reuses this script with its own ARMS)
SETTING = "noise20"  # the default `--setting`
SETTINGS = ("noise20", "clean", "dup30")


def _acc(rows: list[dict[str, Any]], f: float, setting: str, **match: Any) -> dict[int, float]:
    return {r["seed"]: r["metrics"]["accuracy"] for r in rows
            if r["setting"] == setting and r["f_target"] == f
            and all(r.get(k) == v for k, v in match.items())}  # fmt: skip


def _pd(a: dict[int, float], b: dict[int, float]) -> dict[str, Any] | None:
    s = sorted(set(a) & set(b))
    if not s:
        return None
    d = report.paired_difference([a[k] for k in s], [b[k] for k in s])
    return {"mean": d.mean, "ci95": [d.low, d.high], "n": d.n, "text": d.format()}


def summarize(
    grid: list[dict[str, Any]], new: list[dict[str, Any]], setting: str = SETTING
) -> dict[str, Any]:
    """`setting`'s goals with TED = `new`, and the paired arm differences."""
    out: dict[str, Any] = {"split": "test", "setting": setting, "per_f": {}, "goals": []}
    new = [r for r in new if r["setting"] == setting]
    full = _acc(grid, 1.0, setting, method="full")
    for f in BUDGETS:
        a = _acc(new, f, setting, arm="new")
        if not a:
            continue
        cell: dict[str, Any] = {"new": report.format_mean_std(a.values()), "n": len(a)}
        for name, b in (("old_rerun", _acc(new, f, setting, arm="old_rerun")),
                        ("rd_rerun", _acc(new, f, setting, arm="rd_rerun")),
                        ("InfoBatch_grid", _acc(grid, f, setting, method="InfoBatch")),
                        ("random_dynamic_grid", _acc(grid, f, setting, method="random_dynamic"))):  # fmt: skip
            cell[f"new-{name}"] = _pd(a, b)
        cell["new==old_rerun (seeds)"] = sum(
            abs(a[k] - v) < 1e-9
            for k, v in _acc(new, f, setting, arm="old_rerun").items()
            if k in a
        )
        cell["noisy"] = {str(r["seed"]): r.get("noisy") for r in new
                         if r["arm"] == "new" and r["f_target"] == f}  # fmt: skip
        cell["min_class_kept"] = min(r["metrics"]["min_class_kept"] for r in new
                                     if r["arm"] == "new" and r["f_target"] == f)  # fmt: skip
        if f == 0.7:
            cell["new-full"] = _pd(a, full)
        out["per_f"][str(f)] = cell

    def goal(name: str, d: dict[str, Any] | None, ok: bool | None) -> None:
        if d is None:
            out["goals"].append([name, "not run", "—"])
        elif d["n"] < 3:
            out["goals"].append([name, f"open ({d['n']} seeds)", d["text"]])
        else:
            out["goals"].append([name, "met" if ok else "missed", f"Δ {d['text']} (n={d['n']})"])

    pf = out["per_f"]
    if "0.7" in pf:
        d = pf["0.7"]["new-full"]
        goal(f"{setting}, f=0.7: TED within 0.3 points of full data", d, d and d["mean"] >= -0.3)
        d = pf["0.7"]["new-random_dynamic_grid"]
        goal(
            f"{setting}, f=0.7: TED ahead of random-dynamic (grid; CI > 0)",
            d,
            d and d["ci95"][0] > 0,
        )
        d = pf["0.7"]["new-rd_rerun"]
        goal(f"{setting}, f=0.7: TED ahead of random-dynamic re-run today (CI > 0; reported)", d,
             d and d["ci95"][0] > 0)  # fmt: skip
    for f in BUDGETS:
        if str(f) in pf:
            d = pf[str(f)]["new-InfoBatch_grid"]
            goal(f"{setting}, f={f}: TED ahead of InfoBatch (CI > 0)", d, d and d["ci95"][0] > 0)
    mins = [c["min_class_kept"] for c in pf.values()]
    if mins:
        out["goals"].append([f"{setting}: no class drops out of TED's kept set",
                             "met" if min(mins) > 0 else "missed", f"{min(mins):.3f}"])  # fmt: skip
    return out


def write(out: Path, summary: dict[str, Any], partial: int) -> None:
    head = ["f", "new", "n", f"new - old re-run ({ARMS['old_rerun']})", "identical seeds",
            "new - rd re-run",
            "new - InfoBatch (grid)", "new - random-dynamic (grid)", "switched (seed: noisy)"]  # fmt: skip

    def t(d: dict[str, Any] | None) -> str:
        return "—" if d is None else d["text"]

    rows = [[f, c["new"], c["n"], t(c["new-old_rerun"]), c["new==old_rerun (seeds)"],
             t(c["new-rd_rerun"]), t(c["new-InfoBatch_grid"]), t(c["new-random_dynamic_grid"]),
             ", ".join(f"{k}: {v}" for k, v in c["noisy"].items())]
            for f, c in summary["per_f"].items()]  # fmt: skip
    setting = summary["setting"]
    text = ((f"**Partial**: {partial} groups missing.\n\n" if partial else "")
            + f"## {setting} goals, TED = the {STUDY} default (test split, seeds 0-4)\n\n"
            + report.markdown_table(["goal", "verdict", "measured"], summary["goals"])
            + f"\n\n## {setting} test accuracy, paired over seeds\n\n"
            + report.markdown_table(head, rows))  # fmt: skip
    stem = f"{STUDY}-test" + ("" if summary["setting"] == SETTING else f"-{summary['setting']}")
    (out / f"{stem}.md").write_text(text + "\n")
    (out / f"{stem}.json").write_text(json.dumps({**summary, "partial": partial}, indent=1))
    print(text)


def run_group(group: tuple[str, int], grid: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`default_flip_test.run_group` with `ARMS`, each row also recording the pruner's detector
    state (`noise_active`, `noisy`, `noise_statistic`; None for random-dynamic)."""
    last: list[Any] = []

    def pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
        p = orig(method, n, epochs, f, seed, sizes)
        last.append(p)
        return p

    orig = bench_mnist1d._pruner
    bench_mnist1d._pruner = pruner
    try:
        rows = dft.run_group(group, grid, ARMS)
    finally:
        bench_mnist1d._pruner = orig
    if len(last) != len(rows):
        raise RuntimeError(f"expected one pruner per run, got {len(last)} for {len(rows)} rows")
    for row, p in zip(rows, last, strict=True):
        row.update({k: getattr(p, k, None) for k in ("noise_active", "noisy", "noise_statistic")})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument(
        "--grid", type=Path, default=Path("docs/benchmarks/ted-prune-mnist1d-runs.jsonl")
    )
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--setting", choices=SETTINGS, default=SETTING)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    grid = dft.grid_rows(args.grid)
    if not grid:
        raise SystemExit(f"--grid {args.grid}: no test rows of {dft.CFG}")
    args.out.mkdir(parents=True, exist_ok=True)
    done = run_groups(
        args.out
        / ("test-runs.jsonl" if args.setting == SETTING else f"test-runs-{args.setting}.jsonl"),
        dft.CFG,
        [(args.setting, s) for s in dft.SEEDS],
        lambda r: (r["setting"], r["seed"]),
        lambda g, _rows: run_group(g, grid),
        lambda rows, partial: write(args.out, summarize(grid, rows, args.setting), partial),
        resume=args.resume,
        time_limit=args.time_limit,
    )
    return 0 if done else 3


if __name__ == "__main__":
    sys.exit(main())
