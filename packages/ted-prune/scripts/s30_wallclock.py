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

    python packages/ted-prune/scripts/s30_wallclock.py --out docs/benchmarks/ted-prune-s30/wallclock \
        [--seeds 3] [--rounds 1] [--num-samples 25000] [--epochs 30] [--resume] [--time-limit S]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import report

sys.path.insert(0, str(Path(__file__).parent))
from s30_old_path import OldPathTED  # noqa: E402
from ted_prune import bench_mnist1d as bm  # noqa: E402
from ted_prune.runcache import run_groups  # noqa: E402

ARMS = ("full", "TED_s29", "TED_s29@old", "random_dynamic")
F = 0.7
NEW, OLD = "TED_s29", "TED_s29@old"


def install_old_arm() -> None:
    """`train_mnist1d(NEW)` = `TEDPruner` defaults; `train_mnist1d(OLD)` = the same with main's
    tail path (`OldPathTED`)."""
    if getattr(bm._pruner, "_s30", False):
        return
    base = bm._pruner

    def pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any):  # noqa: ANN202
        if method == OLD:
            return OldPathTED(n, epochs, budget=f, seed=seed)
        return base(method, n, epochs, f, seed, sizes)

    pruner._s30 = True  # type: ignore[attr-defined]
    bm._pruner = pruner


def order(round_: int) -> list[str]:
    """The arms of round `round_` (`run_seed` passes seed + round), rotated by it: with one round
    per seed the order still changes from seed to seed."""
    k = round_ % len(ARMS)
    return [*ARMS[k:], *ARMS[:k]]


def run_seed(seed: int, num_samples: int, epochs: int, rounds: int) -> list[dict[str, Any]]:
    train, _, test = bm._splits("clean", num_samples, seed)
    rows = []
    for r in range(-1, rounds):  # round -1: the untimed warm-up
        for pos, m in enumerate(["full"] if r < 0 else order(seed + r)):
            f = 1.0 if m == "full" else F
            res = bm.train_mnist1d(m, train, test, epochs, f, seed)
            rows.append({"seed": seed, "round": r, "position": pos, "method": m, "f_target": f,
                         "metrics": {"seconds": res["seconds"], "accuracy": res["accuracy"],
                                     "f": res["f"], "sizes": res["sizes"],
                                     "score_seconds": res["score_seconds_per_epoch"] * epochs,
                                     "rescore_seconds": res["rescore_seconds_per_epoch"] * epochs}})  # fmt: skip
    return rows


def summarize(rows: list[dict[str, Any]], epochs: int) -> dict[str, Any]:
    """Per arm: the per-seed median ratio to full (mean ± std, 95% bootstrap CI); per TED arm the
    scoring share (per seed the median over rounds; every run's share for the max); paired
    differences by seed; whether TED_s29 and TED_s29@old trained alike in every round."""
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
        for m in ARMS:
            ratio.setdefault(m, []).append(float(np.median(
                [at[s, i, m]["seconds"] / at[s, i, "full"]["seconds"] for i in rounds[s]])))  # fmt: skip
            sh = [at[s, i, m]["score_seconds"] / at[s, i, "full"]["seconds"] for i in rounds[s]]
            share.setdefault(m, []).append(float(np.median(sh)))
            shares_all.setdefault(m, []).extend(sh)
            score_ms.setdefault(m, []).append(float(np.median(
                [1e3 * at[s, i, m]["score_seconds"] / epochs for i in rounds[s]])))  # fmt: skip
    out: dict[str, Any] = {"seeds": seeds, "rounds": sorted({len(v) for v in rounds.values()}),
                           "full_epoch_seconds": report.mean_std(full_epoch), "arms": {}}  # fmt: skip
    for m in ARMS:
        ci = report.paired_difference(ratio[m], [0.0] * len(seeds))
        sci = report.paired_difference(share[m], [0.0] * len(seeds))
        out["arms"][m] = {
            "ratio": report.mean_std(ratio[m]), "ratio_ci": [ci.low, ci.high],
            "per_seed_ratio": ratio[m],
            "score_share": report.mean_std(share[m]), "score_share_ci": [sci.low, sci.high],
            "score_share_max": max(shares_all[m]), "score_ms_per_epoch": report.mean_std(score_ms[m]),
        }  # fmt: skip
    pairs = {}
    for a, b, what in ((NEW, OLD, "ratio"), (NEW, "random_dynamic", "ratio"),
                       (OLD, "random_dynamic", "ratio"), (NEW, OLD, "score_ms")):  # fmt: skip
        src = ratio if what == "ratio" else score_ms
        d = report.paired_difference(src[a], src[b])
        pairs[f"{a} - {b} ({what})"] = {"n": d.n, "mean": d.mean, "ci": [d.low, d.high]}
    out["paired"] = pairs
    same = [all(at[s, i, NEW][k] == at[s, i, OLD][k] for k in ("accuracy", "f", "sizes"))
            for s in seeds for i in rounds[s]]  # fmt: skip
    out["new_equals_old"] = [sum(same), len(same)]
    return out


def report_md(summary: dict[str, Any], command: str) -> str:
    a = summary["arms"]
    table = []
    for m in ARMS:
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
    same = summary["new_equals_old"]
    lines.append(f"- {NEW} and {OLD} trained alike (accuracy, f, per-epoch sizes) in {same[0]} of "
                 f"{same[1]} rounds.")  # fmt: skip
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
    install_old_arm()
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

    def warm() -> None:  # first-run costs (lazy imports, allocator), untimed
        tr, va, _ = bm.mnist1d_splits(min(args.num_samples, 3000), val_size=bm.VAL_SIZE)
        bm.train_mnist1d(NEW, tr, va, 2, F, 0)
        bm.train_mnist1d(OLD, tr, va, 2, F, 0)

    done = run_groups(out / "runs.jsonl", cfg, list(range(args.seeds)), lambda r: r["seed"],
                      lambda s, _rows: run_seed(s, args.num_samples, args.epochs, args.rounds),
                      write, resume=args.resume, time_limit=args.time_limit, warmup=warm)  # fmt: skip
    return 0 if done else 3


if __name__ == "__main__":
    raise SystemExit(main())
