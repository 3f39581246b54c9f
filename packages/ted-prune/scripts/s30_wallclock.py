"""Session ted-30: issue 15's wall-clock (TED at f = 0.7 in <= 0.75x full-data time, scoring
included) and cheap-scoring (scoring <= 5% of a full-data epoch) goals, timed for TED's CURRENT
default (`TED_s29`: unit loss weights, a 20% suspect tail, the epoch-0 noise switch) with this
session's exact tail cuts, paired against main's code path for them (`TED_s29@old`,
`scripts/s30_old_path.py`) and against random-dynamic on TED's schedule, in the same rounds.

`--stage wallclock` times the defaults before session ted-25d (`TED`, importance loss weights:
one more multiply per step, forward and backward); the default has not reweighted since ted-26c.

Protocol (that of `--stage wallclock`, with one more arm): per seed one untimed full-data warm-up
run on the seed's data, then `--rounds` rounds of full data, TED_s29, TED_s29@old and
random-dynamic at f = 0.7 (clean MNIST-1D, 25,000 samples, 30 epochs, one thread), the order
rotated by seed + round. A run's time is `train_mnist1d`'s `seconds` (training with every scoring and
re-scoring pass, evaluation excluded); its ratio is to the full-data run of the same round, per
seed the median over rounds; its scoring share is its scoring seconds per epoch over the
full-data run's seconds per epoch of the same round. Rule: `docs/benchmarks/ted-prune-s30/wallclock/PLAN.md`.

Session ted-31 reverted the tail cuts (no gain in whole runs: TED_s29 - TED_s29@old +0.020x
[-0.012, +0.041]) and deleted `scripts/s30_old_path.py`, so the `TED_s29@old` arm no longer
exists: the committed `runs.jsonl` / `wallclock.json` / `wallclock.md` were produced at commit
2c66bcb (`git show 2c66bcb:packages/ted-prune/scripts/s30_wallclock.py`). `--resume` over the
complete committed cache still rewrites the report from it (it runs nothing); a run that would
train anything refuses (`OldArmRemoved`). `order`, `summarize` and `report_md` take the arms
(`scripts/s31_wallclock.py` times the same protocol without the old arm).

    python packages/ted-prune/scripts/s30_wallclock.py --out docs/benchmarks/ted-prune-s30/wallclock \
        [--seeds 3] [--rounds 1] [--num-samples 25000] [--epochs 30] [--resume] [--time-limit S]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import report
from ted_prune import bench_mnist1d as bm
from ted_prune.runcache import load_cache, run_groups

ARMS = ("full", "TED_s29", "TED_s29@old", "random_dynamic")
F = 0.7
NEW, OLD = "TED_s29", "TED_s29@old"


class OldArmRemoved(RuntimeError):
    """The `TED_s29@old` arm (session 30's `scripts/s30_old_path.py`) was deleted in ted-31."""


def refuse_to_run(cache: Path, cfg: dict[str, Any], seeds: int) -> None:
    """Raise `OldArmRemoved` unless every seed of `cfg` is already in `cache` (then `--resume`
    only rewrites the report)."""
    done = {r["seed"] for r in load_cache(cache) if r.get("config") == cfg}
    left = [s for s in range(seeds) if s not in done]
    if left:
        raise OldArmRemoved(
            f"seeds {left} would need the {OLD} arm, whose code (scripts/s30_old_path.py) was "
            "removed in session ted-31; check out commit 2c66bcb to rerun this script "
            "(git show 2c66bcb:packages/ted-prune/scripts/s30_wallclock.py), or time the "
            "current code with scripts/s31_wallclock.py"
        )


def order(round_: int, arms: tuple[str, ...] = ARMS) -> list[str]:
    """The arms of round `round_` (`run_seed` passes seed + round), rotated by it: with one round
    per seed the order still changes from seed to seed."""
    k = round_ % len(arms)
    return [*arms[k:], *arms[:k]]


def run_seed(
    seed: int, num_samples: int, epochs: int, rounds: int, arms: tuple[str, ...] = ARMS
) -> list[dict[str, Any]]:
    train, _, test = bm._splits("clean", num_samples, seed)
    rows = []
    for r in range(-1, rounds):  # round -1: the untimed warm-up
        for pos, m in enumerate(["full"] if r < 0 else order(seed + r, arms)):
            f = 1.0 if m == "full" else F
            res = bm.train_mnist1d(m, train, test, epochs, f, seed)
            rows.append({"seed": seed, "round": r, "position": pos, "method": m, "f_target": f,
                         "metrics": {"seconds": res["seconds"], "accuracy": res["accuracy"],
                                     "f": res["f"], "sizes": res["sizes"],
                                     "score_seconds": res["score_seconds_per_epoch"] * epochs,
                                     "rescore_seconds": res["rescore_seconds_per_epoch"] * epochs}})  # fmt: skip
    return rows


def summarize(
    rows: list[dict[str, Any]], epochs: int, arms: tuple[str, ...] = ARMS
) -> dict[str, Any]:
    """Per arm: the per-seed median ratio to full (mean ± std, 95% bootstrap CI); per TED arm the
    scoring share (per seed the median over rounds; every run's share for the max); paired
    differences by seed; with the old arm, whether TED_s29 and TED_s29@old trained alike in every
    round."""
    seeds = sorted({r["seed"] for r in rows})
    at = {(r["seed"], r["round"], r["method"]): r["metrics"] for r in rows}
    rounds = {s: sorted({r["round"] for r in rows if r["seed"] == s and r["round"] >= 0})
              for s in seeds}  # fmt: skip
    ratio: dict[str, list[float]] = {}
    share: dict[str, list[float]] = {}
    shares_all: dict[str, list[float]] = {}
    score_ms: dict[str, list[float]] = {}
    full_epoch = []
    for s in seeds:
        full = [at[s, i, "full"]["seconds"] for i in rounds[s]]
        full_epoch.append(float(np.median(full)) / epochs)
        for m in arms:
            ratio.setdefault(m, []).append(float(np.median(
                [at[s, i, m]["seconds"] / at[s, i, "full"]["seconds"] for i in rounds[s]])))  # fmt: skip
            sh = [at[s, i, m]["score_seconds"] / at[s, i, "full"]["seconds"] for i in rounds[s]]
            share.setdefault(m, []).append(float(np.median(sh)))
            shares_all.setdefault(m, []).extend(sh)
            score_ms.setdefault(m, []).append(float(np.median(
                [1e3 * at[s, i, m]["score_seconds"] / epochs for i in rounds[s]])))  # fmt: skip
    out: dict[str, Any] = {"seeds": seeds, "rounds": sorted({len(v) for v in rounds.values()}),
                           "full_epoch_seconds": report.mean_std(full_epoch), "arms": {}}  # fmt: skip
    for m in arms:
        ci = report.paired_difference(ratio[m], [0.0] * len(seeds))
        sci = report.paired_difference(share[m], [0.0] * len(seeds))
        out["arms"][m] = {
            "ratio": report.mean_std(ratio[m]), "ratio_ci": [ci.low, ci.high],
            "per_seed_ratio": ratio[m],
            "score_share": report.mean_std(share[m]), "score_share_ci": [sci.low, sci.high],
            "score_share_max": max(shares_all[m]), "score_ms_per_epoch": report.mean_std(score_ms[m]),
        }  # fmt: skip
    pairs = {}
    cmp = [(NEW, OLD, "ratio"), (NEW, "random_dynamic", "ratio"), (OLD, "random_dynamic", "ratio"),
           (NEW, OLD, "score_ms")]  # fmt: skip
    for a, b, what in [c for c in cmp if c[0] in arms and c[1] in arms]:
        src = ratio if what == "ratio" else score_ms
        d = report.paired_difference(src[a], src[b])
        pairs[f"{a} - {b} ({what})"] = {"n": d.n, "mean": d.mean, "ci": [d.low, d.high]}
    out["paired"] = pairs
    if OLD not in arms:
        return out
    same = [all(at[s, i, NEW][k] == at[s, i, OLD][k] for k in ("accuracy", "f", "sizes"))
            for s in seeds for i in rounds[s]]  # fmt: skip
    out["new_equals_old"] = [sum(same), len(same)]
    return out


def report_md(summary: dict[str, Any], command: str, arms: tuple[str, ...] = ARMS) -> str:
    a = summary["arms"]
    table = []
    for m in arms:
        x = a[m]
        table.append([m, 1.0 if m == "full" else F, len(summary["seeds"]),
                      f"{x['ratio'][0]:.3f} ± {x['ratio'][1]:.3f}",
                      f"[{x['ratio_ci'][0]:.3f}, {x['ratio_ci'][1]:.3f}]",
                      " ".join(f"{v:.3f}" for v in x["per_seed_ratio"]),
                      f"{x['score_share'][0]:.4f} [{x['score_share_ci'][0]:.4f}, "
                      f"{x['score_share_ci'][1]:.4f}]", f"{x['score_share_max']:.4f}",
                      f"{x['score_ms_per_epoch'][0]:.1f}"])  # fmt: skip
    heads = ["arm", "f_target", "seeds", "ratio to full", "95% CI", "per seed",
             "scoring share [95% CI]", "max share", "scoring ms/epoch"]  # fmt: skip
    new = a[NEW]
    n = len(summary["seeds"])
    lines = [f"Produced by `{command}` (torch {torch.__version__}).", "",
             f"Clean MNIST-1D, seeds {summary['seeds']}, {'/'.join(map(str, summary['rounds']))} "
             "rounds per seed after an untimed full-data warm-up; full-data epoch "
             f"{summary['full_epoch_seconds'][0]:.3f} ± {summary['full_epoch_seconds'][1]:.3f} s.",
             "", report.markdown_table(heads, table), ""]  # fmt: skip
    for k, d in summary["paired"].items():
        lines.append(f"- {k}: {d['mean']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] (n={d['n']})")
    if "new_equals_old" in summary:
        same = summary["new_equals_old"]
        lines.append(f"- {NEW} and {OLD} trained alike (accuracy, f, per-epoch sizes) in "
                     f"{same[0]} of {same[1]} rounds.")  # fmt: skip
    if n < 3:
        lines += ["", f"**Partial** ({n} seed(s)): no verdict (the plan needs >= 3)."]
    else:
        w = "met" if new["ratio"][0] <= 0.75 else "missed"
        wr = "yes" if new["ratio_ci"][1] <= 0.75 else "no"
        s = "met" if new["score_share_ci"][1] < 0.05 else "missed"
        sm = "yes" if new["score_share_max"] <= 0.05 else "no"
        lines += ["", f"Wall-clock goal (TED's default at f = 0.7 <= 0.75x, mean over seeds): "
                  f"**{w}** ({new['ratio'][0]:.3f}x); CI upper end <= 0.75: {wr}.",
                  f"Scoring goal (CI upper end of the mean share < 0.05, RULE-s23's reading): "
                  f"**{s}** ({new['score_share'][0]:.4f}); every run <= 0.05 (the `--stage "
                  f"scoring` reading): {sm} (max {new['score_share_max']:.4f})."]  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--num-samples", type=int, default=25_000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"num_samples": args.num_samples, "epochs": args.epochs, "rounds": args.rounds,
           "f": F, "threads": args.threads, "arms": list(ARMS)}  # fmt: skip
    command = (f"python packages/ted-prune/scripts/s30_wallclock.py --out {out} --seeds "
               f"{args.seeds} --rounds {args.rounds} --num-samples {args.num_samples} "
               f"--epochs {args.epochs} --threads {args.threads} --resume")  # fmt: skip

    def write(rows: list[dict[str, Any]], partial: int) -> None:
        summary = summarize(rows, args.epochs)
        (out / "wallclock.json").write_text(json.dumps(
            {"command": command, "config": cfg, "partial": partial, "summary": summary},
            indent=1) + "\n")  # fmt: skip
        text = report_md(summary, command)
        if partial:
            text += f"\n\n{partial} seed(s) not in yet: rerun with `--resume`."
        (out / "wallclock.md").write_text("# ted-prune s30: wall-clock and scoring share of TED's "
                                          "default at f = 0.7\n\n" + text + "\n")  # fmt: skip
        print(text, flush=True)

    if args.resume:
        refuse_to_run(out / "runs.jsonl", cfg, args.seeds)
    else:
        raise OldArmRemoved(
            f"without --resume every seed would rerun the {OLD} arm (removed in "
            "ted-31; see `git show 2c66bcb:packages/ted-prune/scripts/s30_wallclock.py`)"
        )

    done = run_groups(out / "runs.jsonl", cfg, list(range(args.seeds)), lambda r: r["seed"],
                      lambda s, _rows: run_seed(s, args.num_samples, args.epochs, args.rounds),
                      write, resume=args.resume, time_limit=args.time_limit)  # fmt: skip
    return 0 if done else 3


if __name__ == "__main__":
    raise SystemExit(main())
