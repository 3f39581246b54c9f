"""Session 22: paired timing of TED's scoring share (defaults) with the re-scoring passes in
batches of 256 ("b256", the library default) against 1024 ("b1024", the benchmark's setting up to
session 21), in alternating order within the same locked chunk(s) (issue 15's <= 5% goal).
Same design as `scoring_paired.py` (session 21), the arms renamed; rule:
`docs/benchmarks/ted-prune-score-rows/RULE-s22.md`. `--check-digests` first checks that both
arms select the same samples with the same weights every epoch (short runs, all settings/budgets).

Usage (time it under the heavy-job lock; resumable in chunks)::

    python packages/ted-prune/scripts/scoring_paired_s22.py --out DIR [--rounds 3] [--resume]
        [--time-limit SECONDS]
    python packages/ted-prune/scripts/scoring_paired_s22.py --out DIR --decide

One group = (round r, setting s), run in one process: the full-data run of the setting (seed 0,
the test split, as `ted-prune bench --stage scoring`), then for each budget f = 0.7 / 0.5 / 0.3
(index j) one TED run (package defaults) per arm, "b256" first iff r + s + j is even (so over the rounds each arm runs first, and right after the
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

ARMS = {"b1024": 1024, "b256": 256}  # arm -> re-scoring batch (both: TED with its defaults)
CACHE = "scoring-paired-runs.jsonl"


def arm_order(round_: int, setting_index: int, budget_index: int) -> list[str]:
    """The order of the two arms at (round, setting, budget): "b256" first iff the sum is even."""
    return (
        ["b256", "b1024"] if (round_ + setting_index + budget_index) % 2 == 0 else ["b1024", "b256"]
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
            r = train_mnist1d("TED", train, test, epochs, f, 0, rescore_batch_size=ARMS[arm])
            rows.append({"round": round_, "setting": setting, "f_target": f, "arm": arm,
                         "position": pos, "overhead": r["score_seconds_per_epoch"] / full_epoch,
                         "rescore": r["rescore_seconds_per_epoch"] / full_epoch,
                         "full_epoch_seconds": full_epoch, "time_ratio": r["seconds"] / full["seconds"],
                         "accuracy": r["accuracy"], "f": r["f"]})  # fmt: skip
            print(f"round {round_} {setting} f={f} {arm}: scoring {rows[-1]['overhead']:.4f} of a "
                  f"full epoch ({full_epoch:.3f} s)", flush=True)  # fmt: skip
    return rows


def decide(rows: list[dict[str, Any]], rounds: int, config: dict[str, Any]) -> dict[str, Any]:
    """The rule of RULE-s22.md on the complete rounds (all 3 settings in)."""
    complete = [r for r in range(rounds)
                if {x["setting"] for x in rows if x["round"] == r} == set(SETTINGS)]  # fmt: skip
    by = {(x["round"], x["setting"], x["f_target"], x["arm"]): x["overhead"] for x in rows}
    keys = [(r, s, f) for r in complete for s in SETTINGS for f in BUDGETS]
    new = [by[k + ("b256",)] for k in keys]
    old = [by[k + ("b1024",)] for k in keys]
    out: dict[str, Any] = {"complete_rounds": complete, "pairs": len(keys), "config": config}
    if len(complete) < 1:
        out["decision"] = "no decision: no complete round"
        return out
    d = report.paired_difference(new, old)  # 10,000 resamples, numpy rng seed 0
    fm = report.paired_difference(new, [0.0] * len(new))  # CI of the mean (reported)
    per_f = {}
    for f in BUDGETS:
        ks = [k for k in keys if k[2] == f]
        df = report.paired_difference([by[k + ("b256",)] for k in ks],
                                      [by[k + ("b1024",)] for k in ks])  # fmt: skip
        per_f[str(f)] = {"b256": report.mean_std(by[k + ("b256",)] for k in ks),
                         "b1024": report.mean_std(by[k + ("b1024",)] for k in ks),
                         "delta": [df.mean, df.low, df.high]}  # fmt: skip
    met = float(np.mean(new)) <= 0.05
    faster = d.high < 0
    out.update({
        "b256": {"mean_std": report.mean_std(new), "ci95": [fm.low, fm.high], "max": max(new)},
        "b1024": {"mean_std": report.mean_std(old), "max": max(old)},
        "delta_b256_minus_b1024": {"mean": d.mean, "ci95": [d.low, d.high], "n": d.n},
        "per_budget": per_f,
        "full_epoch_seconds": report.mean_std(x["full_epoch_seconds"] for x in rows
                                              if x["round"] in complete),  # fmt: skip
        "goal_met": met,
        "adopt_b256": faster,
    })  # fmt: skip
    return out


def _markdown(res: dict[str, Any], command: str) -> str:
    if "b256" not in res:
        return f"Produced by `{command}`.\n\n{res['decision']}\n"
    lines = [f"Produced by `{command}` (torch {torch.__version__}); rule: "
             "`docs/benchmarks/ted-prune-score-rows/RULE-s22.md`.", "",
             f"Complete rounds {res['complete_rounds']}, {res['pairs']} pairs (3 settings x 3 "
             f"budgets per round, seed 0, test split, {res['config']['num_samples']:,} samples x "
             f"{res['config']['epochs']} epochs, one thread), TED defaults. Overhead: TED's "
             "scoring seconds per epoch / the full-data epoch of the same round and setting.", ""]  # fmt: skip

    def ms(v: Any) -> str:
        return f"{v[0]:.4f} ± {v[1]:.4f}"

    def ci(m: float, lo: float, hi: float) -> str:
        return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"

    table = [[f, ms(v["b256"]), ms(v["b1024"]), ci(*v["delta"])]
             for f, v in res["per_budget"].items()]  # fmt: skip
    nw, ol, d = res["b256"], res["b1024"], res["delta_b256_minus_b1024"]
    table.append(["all", ms(nw["mean_std"]), ms(ol["mean_std"]), ci(d["mean"], *d["ci95"])])
    lines.append(report.markdown_table(["f_target", "re-score batch 256", "batch 1024 (s21)",
                                        "256 - 1024, 95% CI"], table))  # fmt: skip
    lines += [f"Mean scoring share, re-scoring in batches of 256: {nw['mean_std'][0]:.4f} (95% CI "
              f"[{nw['ci95'][0]:.4f}, {nw['ci95'][1]:.4f}], max {nw['max']:.4f}); batches of "
              f"1024: {ol['mean_std'][0]:.4f} (max {ol['max']:.4f}). Full-data epoch "
              f"{res['full_epoch_seconds'][0]:.3f} ± {res['full_epoch_seconds'][1]:.3f} s.", "",
              f"Goal (mean of b256 <= 0.05): **{'met' if res['goal_met'] else 'missed'}**; "
              f"adopt 256 in the benchmark (paired CI upper < 0): "
              f"**{'yes' if res['adopt_b256'] else 'no'}**."]  # fmt: skip
    return "\n".join(lines) + "\n"


def check_digests(num_samples: int, epochs: int) -> bool:
    """Both arms' per-epoch selection digests (indices and loss weights) at every setting and
    budget, seed 0, short runs: True iff all equal (printed)."""
    import scoring_digest as sd  # noqa: PLC0415
    from ted_prune import bench_mnist1d  # noqa: PLC0415

    same = True
    for setting in SETTINGS:
        train, _, test = _splits(setting, num_samples, 0)
        for f in BUDGETS:
            digests = {}
            for arm, bs in ARMS.items():
                made: list[Any] = []
                build = bench_mnist1d._pruner
                bench_mnist1d._pruner = sd.recording_pruner(made)
                try:
                    r = train_mnist1d("TED", train, test, epochs, f, 0, rescore_batch_size=bs)
                finally:
                    bench_mnist1d._pruner = build
                digests[arm] = (made[0].digests, r["accuracy"], r["f"])
            eq = digests["b256"] == digests["b1024"]
            same &= eq
            print(f"{setting} f={f}: {len(digests['b256'][0])} epochs' selections "
                  f"{'equal' if eq else 'DIFFER'}, acc {digests['b256'][1]:.2f} / "
                  f"{digests['b1024'][1]:.2f}", flush=True)  # fmt: skip
    return same


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--num-samples", type=int, default=25000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float)
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--check-digests", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = {"num_samples": args.num_samples, "epochs": args.epochs, "rounds": args.rounds}
    cache = args.out / CACHE
    command = (f"python packages/ted-prune/scripts/scoring_paired_s22.py --out {args.out} --rounds "
               f"{args.rounds} --num-samples {args.num_samples} --epochs {args.epochs}")  # fmt: skip
    if args.check_digests:
        ok = check_digests(args.num_samples, args.epochs)
        print("all selections equal" if ok else "SELECTIONS DIFFER")
        raise SystemExit(0 if ok else 1)
    if args.decide:
        rows = [r for r in load_cache(cache) if r.get("config") == cfg]
        res = decide(rows, args.rounds, cfg)
        res["command"] = command
        (args.out / "scoring-paired.json").write_text(json.dumps(res, indent=1) + "\n")
        (args.out / "scoring-paired.md").write_text(
            "# TED scoring share, re-scoring batch 256 vs 1024, paired\n\n"
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
