"""Issue 15's wall-clock (TED at f = 0.7 in <= 0.75x full-data time, scoring included) and
cheap-scoring (scoring <= 5% of a full-data epoch) goals, timed by plan s30-A's protocol
(`docs/benchmarks/ted-prune-s30/wallclock/PLAN.md`) for any benchmark methods (`--arms`).

Protocol: per seed one untimed full-data warm-up run on the seed's data, then `--rounds` rounds of
the arms at f = 0.7 (full data at f = 1; clean MNIST-1D, 25,000 samples, 30 epochs, one thread),
the order rotated by seed + round. A run's time is `train_mnist1d`'s `seconds` (training with every
scoring and re-scoring pass, evaluation excluded); its ratio is to the full-data run of the same
round, per seed the median over rounds; its scoring share is its scoring seconds per epoch over the
full-data run's seconds per epoch of the same round. Verdicts for every TED arm: wall-clock met iff
the mean ratio <= 0.75 (robust iff the CI's upper end is); scoring met iff the CI's upper end of the
mean share < 0.05.

    python packages/ted-prune/scripts/wallclock.py --out DIR [--arms full TED_s29 random_dynamic]
        [--seeds 3] [--first-seed 0] [--rounds 1] [--num-samples 25000] [--epochs 30] [--resume]
        [--time-limit S]
    python packages/ted-prune/scripts/wallclock.py --pool DIR:ARM [DIR:ARM ...] --out FILE.json

`--first-seed k` times seeds k .. k + `--seeds` - 1 (session 33: new seeds 3-5; 0 keeps the
config and command of the earlier reads, so their caches resume). `--pool` (`pooled`) pools the
per-seed ratios of one arm from several committed reads (`DIR/wallclock.json`) into one verdict.

Session 30's `s30_wallclock.py` (with the since-removed `TED_s29@old` arm) and the earlier timing
scripts were retired in session 32; their committed results were produced at commit e375864
(`git show e375864:packages/ted-prune/scripts/<name>` reproduces a script). `summarize` re-derives
`docs/benchmarks/ted-prune-s30/wallclock/wallclock.json`'s per-arm figures from its `runs.jsonl`.
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
from ted_prune.runcache import run_groups

ARMS = ("full", "TED_s29", "random_dynamic")
F = 0.7
GOAL_RATIO, GOAL_SHARE = 0.75, 0.05


def check_arms(arms: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The arms as a tuple: "full" first or anywhere, each other a method the benchmark builds
    (`bench_mnist1d._pruner`); raises ValueError naming `--arms` otherwise."""
    arms = tuple(arms)
    if "full" not in arms or len(set(arms)) != len(arms):
        raise ValueError(f"--arms must name 'full' and each method once, got {list(arms)}")
    for m in arms:
        try:
            bm._pruner(m, 1000, 30, F, 0, [700] * 30)
        except (ValueError, KeyError):
            raise ValueError(f"--arms: {m!r} is not a method of bench_mnist1d") from None
    return arms


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
    """Per arm: the per-seed median ratio to full (mean ± std, 95% bootstrap CI), the scoring
    share (per seed the median over rounds; every run's share for the max) and scoring ms per
    epoch; paired by seed: the ratio of every two non-full arms (in `arms` order, first - second)
    and the scoring ms of every two TED arms."""
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
    rest = [m for m in arms if m != "full"]
    ted = [m for m in rest if m.startswith("TED")]
    cmp = [(a, b, "ratio") for i, a in enumerate(rest) for b in rest[i + 1 :]]
    cmp += [(a, b, "score_ms") for i, a in enumerate(ted) for b in ted[i + 1 :]]
    pairs = {}
    for a, b, what in cmp:
        src = ratio if what == "ratio" else score_ms
        d = report.paired_difference(src[a], src[b])
        pairs[f"{a} - {b} ({what})"] = {"n": d.n, "mean": d.mean, "ci": [d.low, d.high]}
    out["paired"] = pairs
    return out


def verdicts(summary: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per TED arm (None with fewer than 3 seeds): wall-clock met (mean ratio <= 0.75), robust (CI
    upper end <= 0.75), scoring met (CI upper end of the mean share < 0.05), every run <= 0.05."""
    if len(summary["seeds"]) < 3:
        return {}
    out = {}
    for m, x in summary["arms"].items():
        if m.startswith("TED"):
            out[m] = {"wallclock_met": x["ratio"][0] <= GOAL_RATIO,
                      "wallclock_robust": x["ratio_ci"][1] <= GOAL_RATIO,
                      "scoring_met": x["score_share_ci"][1] < GOAL_SHARE,
                      "scoring_every_run": x["score_share_max"] <= GOAL_SHARE}  # fmt: skip
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
    n = len(summary["seeds"])
    lines = [f"Produced by `{command}` (torch {torch.__version__}).", "",
             f"Clean MNIST-1D, seeds {summary['seeds']}, {'/'.join(map(str, summary['rounds']))} "
             "rounds per seed after an untimed full-data warm-up; full-data epoch "
             f"{summary['full_epoch_seconds'][0]:.3f} ± {summary['full_epoch_seconds'][1]:.3f} s.",
             "", report.markdown_table(heads, table), ""]  # fmt: skip
    for k, d in summary["paired"].items():
        lines.append(f"- {k}: {d['mean']:+.4f} [{d['ci'][0]:+.4f}, {d['ci'][1]:+.4f}] (n={d['n']})")
    if n < 3:
        lines += ["", f"**Partial** ({n} seed(s)): no verdict (the plan needs >= 3)."]
    for m, v in verdicts(summary).items():
        x = a[m]
        yes = {True: "yes", False: "no"}
        lines += ["", f"{m}: wall-clock goal (f = 0.7 <= 0.75x, mean over seeds) "
                  f"**{'met' if v['wallclock_met'] else 'missed'}** ({x['ratio'][0]:.3f}x); CI "
                  f"upper end <= 0.75: {yes[v['wallclock_robust']]}. Scoring goal (CI upper end "
                  f"of the mean share < 0.05) **{'met' if v['scoring_met'] else 'missed'}** "
                  f"({x['score_share'][0]:.4f}); every run <= 0.05: "
                  f"{yes[v['scoring_every_run']]} (max {x['score_share_max']:.4f})."]  # fmt: skip
    return "\n".join(lines)


def pooled(reads: list[tuple[str, str, list[float]]]) -> dict[str, Any]:
    """Rule s33 (`docs/benchmarks/ted-prune-s33/RULE.md`): one verdict over several reads of the
    same default. `reads`: (read, arm, per-seed ratios); the pooled per-seed ratios' mean ± std and
    95% bootstrap CI (`report.paired_difference` against 0: 10,000 resamples, rng seed 0, the
    per-read CI's method); met iff the pooled mean <= 0.75; robust iff the CI's upper end is
    <= 0.75 too (a CI straddling 0.75 is not robust)."""
    if not reads or any(not r[2] for r in reads):
        raise ValueError("--pool needs at least one read, each with per-seed ratios")
    ratios = [float(x) for _, _, v in reads for x in v]
    d = report.paired_difference(ratios, [0.0] * len(ratios))
    mean = float(np.mean(ratios))
    return {"reads": [{"read": r, "arm": a, "per_seed_ratio": list(v)} for r, a, v in reads],
            "n": len(ratios), "ratio": report.mean_std(ratios), "ratio_ci": [d.low, d.high],
            "goal": GOAL_RATIO, "met": mean <= GOAL_RATIO,
            "robust": mean <= GOAL_RATIO and d.high <= GOAL_RATIO,
            "ci_straddles_goal": d.low <= GOAL_RATIO < d.high}  # fmt: skip


def _pool_main(specs: list[str], out: Path) -> int:
    reads = []
    for spec in specs:
        folder, sep, arm = spec.rpartition(":")
        if not sep or not folder or not arm:
            raise ValueError(f"--pool entries must be DIR:ARM, got {spec!r}")
        summ = json.loads((Path(folder) / "wallclock.json").read_text())
        if summ["partial"]:
            raise ValueError(f"--pool: {folder} is a partial read ({summ['partial']} seed(s) left)")
        reads.append((folder, arm, summ["summary"]["arms"][arm]["per_seed_ratio"]))
    res = pooled(reads)
    out.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps(res, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--arms", nargs="+", default=list(ARMS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--pool", nargs="+", default=None, metavar="DIR:ARM")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--num-samples", type=int, default=25_000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float)
    ap.add_argument("--title", default="wall-clock and scoring share at f = 0.7")
    args = ap.parse_args(argv)
    if args.pool:
        return _pool_main(args.pool, args.out)
    if args.first_seed < 0:
        raise ValueError(f"--first-seed must be an int >= 0, got {args.first_seed}")
    arms = check_arms(args.arms)
    torch.set_num_threads(args.threads)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cfg = {"num_samples": args.num_samples, "epochs": args.epochs, "rounds": args.rounds,
           "f": F, "threads": args.threads, "arms": list(arms)}  # fmt: skip
    first = f" --first-seed {args.first_seed}" if args.first_seed else ""
    if args.first_seed:  # only then: the earlier reads' caches keep their config
        cfg["first_seed"] = args.first_seed
    command = (f"python packages/ted-prune/scripts/wallclock.py --out {out} --arms "
               f"{' '.join(arms)} --seeds {args.seeds}{first} --rounds {args.rounds} --num-samples "
               f"{args.num_samples} --epochs {args.epochs} --threads {args.threads} --resume")  # fmt: skip
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))

    def write(rows: list[dict[str, Any]], partial: int) -> None:
        summary = summarize(rows, args.epochs, arms)
        (out / "wallclock.json").write_text(json.dumps(
            {"command": command, "config": cfg, "partial": partial, "summary": summary,
             "verdicts": verdicts(summary)}, indent=1) + "\n")  # fmt: skip
        text = report_md(summary, command, arms)
        if partial:
            text += f"\n\n{partial} seed(s) not in yet: rerun with `--resume`."
        (out / "wallclock.md").write_text(f"# ted-prune: {args.title}\n\n{text}\n")
        print(text, flush=True)

    done = run_groups(out / "runs.jsonl", cfg, seeds, lambda r: r["seed"],
                      lambda s, _rows: run_seed(s, args.num_samples, args.epochs, args.rounds, arms),
                      write, resume=args.resume, time_limit=args.time_limit)  # fmt: skip
    return 0 if done else 3


if __name__ == "__main__":
    raise SystemExit(main())
