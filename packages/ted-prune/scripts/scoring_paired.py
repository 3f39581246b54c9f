"""Paired, drift-robust timing of TED's scoring share: `score_rows="fresh"` against the default
("all") in alternating order, within the same locked chunk(s) (issue 15's <= 5% goal).

Usage (time it under the heavy-job lock; resumable in chunks)::

    python packages/ted-prune/scripts/scoring_paired.py --out DIR [--rounds 3] [--resume]
        [--time-limit SECONDS]
    python packages/ted-prune/scripts/scoring_paired.py --out DIR --decide

One group = (round r, setting s), run in one process: the full-data run of the setting (seed 0,
the test split, as `ted-prune bench --stage scoring`), then for each budget f = 0.7 / 0.5 / 0.3
(index j) one TED run with the package defaults ("all") and one with `score_rows="fresh"`,
"fresh" first iff r + s + j is even (so over the rounds each arm runs first, and right after the
full-data run, equally often). Each run is timed exactly as in `--stage scoring`: overhead = TED's
scoring seconds per epoch / the group's full-data seconds per epoch. Groups are cached in
`DIR/scoring-paired-runs.jsonl` (`ted_prune.runcache`: `--resume` skips finished groups,
`--time-limit` stops starting new ones). `--decide` applies the rule committed before the runs
(`docs/benchmarks/ted-prune-score-rows/RULE-s21.md`) to the complete rounds and writes
`DIR/scoring-paired.json` and `.md`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import report
from ted_prune.bench_mnist1d import BUDGETS, SETTINGS, VAL_SIZE, _splits, train_mnist1d
from ted_prune.mnist1d import mnist1d_splits
from ted_prune.runcache import load_cache, run_groups

ARMS = {"all": "TED", "fresh": "TED+fresh"}
CACHE = "scoring-paired-runs.jsonl"


def arm_order(round_: int, setting_index: int, budget_index: int) -> list[str]:
    """The order of the two arms at (round, setting, budget): "fresh" first iff the sum is even."""
    return (
        ["fresh", "all"] if (round_ + setting_index + budget_index) % 2 == 0 else ["all", "fresh"]
    )


def run_group(round_: int, setting: str, num_samples: int, epochs: int) -> list[dict[str, Any]]:
    """The full-data run of `setting`, then both arms at every budget (see the module docstring)."""
    si = list(SETTINGS).index(setting)
    train, _, test = _splits(setting, num_samples, 0)
    full = train_mnist1d("full", train, test, epochs, 1.0, 0)
    full_epoch = full["seconds"] / epochs
    rows = []
    for j, f in enumerate(BUDGETS):
        for pos, arm in enumerate(arm_order(round_, si, j)):
            r = train_mnist1d(ARMS[arm], train, test, epochs, f, 0)
            rows.append({"round": round_, "setting": setting, "f_target": f, "arm": arm,
                         "position": pos, "overhead": r["score_seconds_per_epoch"] / full_epoch,
                         "rescore": r["rescore_seconds_per_epoch"] / full_epoch,
                         "full_epoch_seconds": full_epoch, "time_ratio": r["seconds"] / full["seconds"],
                         "accuracy": r["accuracy"], "f": r["f"]})  # fmt: skip
            print(f"round {round_} {setting} f={f} {arm}: scoring {rows[-1]['overhead']:.4f} of a "
                  f"full epoch ({full_epoch:.3f} s)", flush=True)  # fmt: skip
    return rows


def decide(rows: list[dict[str, Any]], rounds: int, config: dict[str, Any]) -> dict[str, Any]:
    """The rule of RULE-s21.md on the complete rounds (all 3 settings in)."""
    complete = [r for r in range(rounds)
                if {x["setting"] for x in rows if x["round"] == r} == set(SETTINGS)]  # fmt: skip
    by = {(x["round"], x["setting"], x["f_target"], x["arm"]): x["overhead"] for x in rows}
    keys = [(r, s, f) for r in complete for s in SETTINGS for f in BUDGETS]
    fresh = [by[k + ("fresh",)] for k in keys]
    alls = [by[k + ("all",)] for k in keys]
    out: dict[str, Any] = {"complete_rounds": complete, "pairs": len(keys), "config": config}
    if len(complete) < 2:
        out["decision"] = "no decision: fewer than 2 complete rounds"
        return out
    d = report.paired_difference(fresh, alls)  # 10,000 resamples, numpy rng seed 0
    fm = report.paired_difference(fresh, [0.0] * len(fresh))  # CI of the mean (reported)
    per_f = {}
    for f in BUDGETS:
        ks = [k for k in keys if k[2] == f]
        df = report.paired_difference([by[k + ("fresh",)] for k in ks],
                                      [by[k + ("all",)] for k in ks])  # fmt: skip
        per_f[str(f)] = {"fresh": report.mean_std(by[k + ("fresh",)] for k in ks),
                         "all": report.mean_std(by[k + ("all",)] for k in ks),
                         "delta": [df.mean, df.low, df.high]}  # fmt: skip
    met = float(np.mean(fresh)) <= 0.05
    out.update({
        "fresh": {"mean_std": report.mean_std(fresh), "ci95": [fm.low, fm.high], "max": max(fresh)},
        "all": {"mean_std": report.mean_std(alls), "max": max(alls)},
        "delta_fresh_minus_all": {"mean": d.mean, "ci95": [d.low, d.high], "n": d.n},
        "per_budget": per_f,
        "full_epoch_seconds": report.mean_std(x["full_epoch_seconds"] for x in rows
                                              if x["round"] in complete),  # fmt: skip
        "rule_b_scoring_met": met,
        "adopt_fresh_as_default": met,  # (a) was met on validation (RULE.md, RULE-ADDENDUM-b.md)
    })  # fmt: skip
    return out


def _markdown(res: dict[str, Any], command: str) -> str:
    if "fresh" not in res:
        return f"Produced by `{command}`.\n\n{res['decision']}\n"
    lines = [f"Produced by `{command}` (torch {torch.__version__}); rule: "
             "`docs/benchmarks/ted-prune-score-rows/RULE-s21.md`.", "",
             f"Complete rounds {res['complete_rounds']}, {res['pairs']} pairs (3 settings x 3 "
             f"budgets per round, seed 0, test split, {res['config']['num_samples']:,} samples x "
             f"{res['config']['epochs']} epochs, one thread). Overhead: TED's "
             "scoring seconds per epoch / the full-data epoch of the same round and setting.", ""]  # fmt: skip

    def ms(v: Any) -> str:
        return f"{v[0]:.4f} ± {v[1]:.4f}"

    def ci(m: float, lo: float, hi: float) -> str:
        return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"

    table = [[f, ms(v["fresh"]), ms(v["all"]), ci(*v["delta"])]
             for f, v in res["per_budget"].items()]  # fmt: skip
    fr, al, d = res["fresh"], res["all"], res["delta_fresh_minus_all"]
    table.append(["all", ms(fr["mean_std"]), ms(al["mean_std"]), ci(d["mean"], *d["ci95"])])
    lines.append(report.markdown_table(["f_target", "fresh", "all (default)",
                                        "fresh - all, 95% CI"], table))  # fmt: skip
    verdict = "met" if res["rule_b_scoring_met"] else "missed"
    lines += [f"Mean scoring of `score_rows=\"fresh\"`: {fr['mean_std'][0]:.4f} (95% CI "
              f"[{fr['ci95'][0]:.4f}, {fr['ci95'][1]:.4f}], max {fr['max']:.4f}); default "
              f"{al['mean_std'][0]:.4f} (max {al['max']:.4f}). Full-data epoch "
              f"{res['full_epoch_seconds'][0]:.3f} ± {res['full_epoch_seconds'][1]:.3f} s.", "",
              f"Rule (b''), mean of \"fresh\" <= 0.05: **{verdict}**; adopt \"fresh\" as the default: "
              f"**{'yes' if res['adopt_fresh_as_default'] else 'no'}**."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--num-samples", type=int, default=25000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float)
    ap.add_argument("--decide", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {"num_samples": args.num_samples, "epochs": args.epochs, "rounds": args.rounds}
    cache = args.out / CACHE
    command = (f"python packages/ted-prune/scripts/scoring_paired.py --out {args.out} --rounds "
               f"{args.rounds} --num-samples {args.num_samples} --epochs {args.epochs}")  # fmt: skip
    if args.decide:
        rows = [r for r in load_cache(cache) if r.get("config") == cfg]
        res = decide(rows, args.rounds, cfg)
        res["command"] = command
        (args.out / "scoring-paired.json").write_text(json.dumps(res, indent=1) + "\n")
        (args.out / "scoring-paired.md").write_text(
            '# TED scoring share, `score_rows="fresh"` vs default, paired\n\n'
            + _markdown(res, command)
        )
        print(_markdown(res, command))
        return

    def warmup() -> None:  # first-run costs are not timed, as in `--stage scoring`
        tr, va, _ = mnist1d_splits(args.num_samples, val_size=VAL_SIZE)
        train_mnist1d("TED", tr, va, 2, 0.7, 0)

    run_groups(
        cache,
        cfg,
        [(r, s) for r in range(args.rounds) for s in SETTINGS],
        lambda row: (row["round"], row["setting"]),
        lambda g, _rows: run_group(g[0], g[1], args.num_samples, args.epochs),
        lambda rows, partial: None,
        resume=args.resume,
        time_limit=args.time_limit,
        warmup=warmup,
    )


if __name__ == "__main__":
    main()
