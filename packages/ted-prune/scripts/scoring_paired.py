"""Timing of TED's scoring share on MNIST-1D (issue 15's <= 5% goal), one committed rule per study.

Sessions 21 and 22 each had their own copy of this script (the s22 copy renamed the arms); they
are folded here: a study (`STUDIES`, chosen with `--study`) names its rule, its arms (a
`train_mnist1d` method and re-scoring batch each) and how `--decide` reads them. Studies:

- `s21` (RULE-s21.md): `score_rows="fresh"` against the default ("all"), paired; adopt "fresh"
  iff its mean share <= 0.05.
- `s22` (RULE-s22.md): the default with re-scoring batches of 256 against 1024, paired; adopt 256
  iff the paired CI of 256 - 1024 lies below 0.
- `s23` (RULE-s23.md): the kept default (batch 1024) alone, repeated, with the machine's speed
  (full-data epoch seconds, load average) in every row; the goal is read on the CI of its mean.
- `s24` (RULE-s24.md): session 24's exact per-batch and write reductions ("new", the package's
  TEDPruner) against main's path ("main": `main_path.MainPathTED`, main's code for the changed
  parts), paired; the goal is read on the CI of the new arm's mean and on its share projected to
  session 21's speed (`projection`).

Usage (time it under the heavy-job lock; resumable in chunks)::

    python packages/ted-prune/scripts/scoring_paired.py --study STUDY --out DIR [--rounds 3]
        [--resume] [--time-limit SECONDS]
    python packages/ted-prune/scripts/scoring_paired.py --study STUDY --out DIR --decide
    python packages/ted-prune/scripts/scoring_paired.py --study STUDY --dry-run   # the plan only
    python packages/ted-prune/scripts/scoring_paired.py --study s22 --check-digests \
        --num-samples 3000 --epochs 12   # arms that must select alike, checked short

One group = (round r, setting s), run in one process: the full-data run of the setting (seed 0,
the test split, as `ted-prune bench --stage scoring`), then for each budget f = 0.7 / 0.5 / 0.3
(index j) one run per arm; with two arms the study's first arm runs first iff r + s + j is even
(so over the rounds each arm runs first, and right after the full-data run, equally often). Each
run is timed exactly as in `--stage scoring`: overhead = TED's scoring seconds per epoch / the
group's full-data seconds per epoch. Groups are cached in `DIR/scoring-paired-runs.jsonl`
(`ted_prune.runcache`: `--resume` skips finished groups, `--time-limit` stops starting new ones).
`--decide` applies the study's rule to the complete rounds and writes `DIR/scoring-paired.json`
and `.md`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from maskloop import report
from ted_prune.bench_mnist1d import (
    BUDGETS,
    RESCORE_BATCH,
    SETTINGS,
    VAL_SIZE,
    _splits,
    train_mnist1d,
)
from ted_prune.mnist1d import mnist1d_splits
from ted_prune.runcache import load_cache, run_groups

CACHE = "scoring-paired-runs.jsonl"
RULES = "docs/benchmarks/ted-prune-score-rows"
GOAL = 0.05


@dataclass(frozen=True)
class Arm:
    """One arm: the `train_mnist1d` method and the batch of its re-scoring passes."""

    method: str = "TED"
    rescore_batch_size: int = RESCORE_BATCH
    label: str = ""


@dataclass(frozen=True)
class Study:
    """A committed timing rule: its arms (the first one runs first iff the order sum is even), the
    least number of complete rounds that decides, and `verdict(res)`, the rule's flags and its
    sentence for the report. `tag_config`: the cache's config names the study (False only for the
    studies whose caches were written before the fold, so that their `--decide` still reads
    them)."""

    rule: str
    title: str
    arms: dict[str, Arm]
    min_rounds: int
    verdict: Callable[[dict[str, Any]], tuple[dict[str, Any], str]]
    tag_config: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def _mean_goal(arm: str, met_key: str, adopt_key: str) -> Callable[..., tuple[dict, str]]:
    """RULE-s21: the goal (and the adoption of `arm`) met iff the mean share of `arm` <= 0.05."""

    def verdict(res: dict[str, Any]) -> tuple[dict[str, Any], str]:
        met = res[arm]["mean_std"][0] <= GOAL
        return ({met_key: met, adopt_key: met},
                f"Rule (b''), mean of \"{arm}\" <= 0.05: **{'met' if met else 'missed'}**; "
                f"adopt \"{arm}\" as the default: **{'yes' if met else 'no'}**.")  # fmt: skip

    return verdict


def _faster(new: str, old: str) -> Callable[..., tuple[dict, str]]:
    """RULE-s22: adopt `new` iff the paired CI of new - old lies below 0; the script's goal line
    reads the mean of `new` (the rule reads it on the adopted arm, see RULE-s22.md's result)."""

    def verdict(res: dict[str, Any]) -> tuple[dict[str, Any], str]:
        met = res[new]["mean_std"][0] <= GOAL
        faster = res[f"delta_{new}_minus_{old}"]["ci95"][1] < 0
        return ({"goal_met": met, f"adopt_{new}": faster},
                f"Goal (mean of {new} <= 0.05): **{'met' if met else 'missed'}**; adopt 256 in "
                f"the benchmark (paired CI upper < 0): **{'yes' if faster else 'no'}**.")  # fmt: skip

    return verdict


def _ci_goal(arm: str) -> Callable[..., tuple[dict, str]]:
    """RULE-s23: met iff the 95% CI of the mean share lies below 0.05, missed iff above it,
    otherwise not shown either way."""

    def verdict(res: dict[str, Any]) -> tuple[dict[str, Any], str]:
        lo, hi = res[arm]["ci95"]
        goal = "met" if hi < GOAL else "missed" if lo > GOAL else "not shown either way"
        return ({"goal": goal},
                f"Goal (95% CI of the mean share of \"{arm}\" below 0.05): **{goal}** "
                f"(CI [{lo:.4f}, {hi:.4f}]).")  # fmt: skip

    return verdict


def _projected(res: dict[str, Any], arm: str, base: str) -> dict[str, Any]:
    """RULE-s24's projections of `arm`'s share to session 21's full-data epoch (0.342 s), from
    its re-scoring and other ("rest") ms per epoch in this chunk: (P1) each part scaled by
    (0.342 / this chunk's epoch) ** its elasticity measured in s23 (re-scoring 0.83, rest 0.42;
    also at the CI ends 0.60 / 0.30, the pessimistic pair going to a faster machine); (P2) s21's
    own parts (re-scoring 4.6, rest 16.9 ms) with the rest scaled by this chunk's ratio of the
    arms' rest means (`arm` / `base`)."""
    fe = res["full_epoch_seconds"][0]
    resc, rest = res[f"{arm}_ms"]["rescore"], res[f"{arm}_ms"]["rest"]

    def p1(e_resc: float, e_rest: float) -> float:
        k = S21_EPOCH / fe
        return (resc * k**e_resc + rest * k**e_rest) / (1e3 * S21_EPOCH)

    ratio = rest / res[f"{base}_ms"]["rest"]
    return {"p1": p1(0.83, 0.42), "p1_pessimistic": p1(0.60, 0.30),
            "rest_ratio": ratio,
            "p2": (S21_PARTS_MS[0] + S21_PARTS_MS[1] * ratio) / (1e3 * S21_EPOCH)}  # fmt: skip


def _s24(arm: str, base: str) -> Callable[..., tuple[dict, str]]:
    """RULE-s24: met iff the 95% CI of `arm`'s mean share lies below 0.05 (in this chunk) AND
    both projections to session 21's speed (`_projected`, P1 at the point elasticities and P2)
    are below 0.05; missed otherwise (the in-chunk CI reading is reported beside it)."""

    def verdict(res: dict[str, Any]) -> tuple[dict[str, Any], str]:
        lo, hi = res[arm]["ci95"]
        chunk = "met" if hi < GOAL else "missed" if lo > GOAL else "not shown either way"
        pr = res["projection"]
        fast = pr["p1"] < GOAL and pr["p2"] < GOAL
        goal = "met" if chunk == "met" and fast else "missed"
        return ({"goal": goal, "goal_in_chunk": chunk, "goal_at_s21_speed": fast},
                f"In this chunk (95% CI of the mean share of \"{arm}\" below 0.05): **{chunk}** "
                f"(CI [{lo:.4f}, {hi:.4f}]); projected to s21's 0.342 s epochs: P1 "
                f"{pr['p1']:.4f} (pessimistic {pr['p1_pessimistic']:.4f}), P2 {pr['p2']:.4f}: "
                f"**{'below' if fast else 'not below'} 0.05**. Goal by RULE-s24: "
                f"**{goal}**.")  # fmt: skip

    return verdict


S21_EPOCH = 0.342  # s21's full-data epoch (s), the fastest chunk measured
S21_PARTS_MS = (4.6, 16.9)  # s21's re-scoring and rest ms per epoch (`scoring_speed.py`)

STUDIES: dict[str, Study] = {
    "s21": Study(f"{RULES}/RULE-s21.md", '`score_rows="fresh"` vs default, paired',
                 {"fresh": Arm("TED+fresh", label="fresh"), "all": Arm(label="all (default)")},
                 2, _mean_goal("fresh", "rule_b_scoring_met", "adopt_fresh_as_default"),
                 tag_config=False),
    "s22": Study(f"{RULES}/RULE-s22.md", "re-scoring batch 256 vs 1024, paired",
                 {"b256": Arm(rescore_batch_size=256, label="re-score batch 256"),
                  "b1024": Arm(rescore_batch_size=1024, label="batch 1024 (s21)")},
                 1, _faster("b256", "b1024"), tag_config=False),
    "s23": Study(f"{RULES}/RULE-s23.md", "the kept default, repeated, with the machine's speed",
                 {"default": Arm(rescore_batch_size=1024, label="default (re-score batch 1024)")},
                 1, _ci_goal("default")),
    "s24": Study(f"{RULES}/RULE-s24.md", "session 24's exact reductions vs main's path, paired",
                 {"new": Arm(label="new (this branch)"),
                  "main": Arm("TED@main", label="main's path")},
                 1, _s24("new", "main"), extra={"project": ("new", "main")}),
}  # fmt: skip


def _install_main_path() -> None:
    """Let `train_mnist1d` build method "TED@main": a `TEDPruner` on main's per-batch and write
    path (`main_path.MainPathTED`), the "before" arm of study s24."""
    import sys  # noqa: PLC0415

    from ted_prune import bench_mnist1d  # noqa: PLC0415

    sys.path.insert(0, str(Path(__file__).parent))
    from main_path import MainPathTED  # noqa: PLC0415

    build = bench_mnist1d._pruner
    if getattr(build, "main_path", False):
        return

    def pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
        if method == "TED@main":
            return MainPathTED(n, epochs, budget=f, seed=seed)
        return build(method, n, epochs, f, seed, sizes)

    pruner.main_path = True  # type: ignore[attr-defined]
    bench_mnist1d._pruner = pruner


def arm_order(study: Study, round_: int, setting_index: int, budget_index: int) -> list[str]:
    """The order of the arms at (round, setting, budget): as listed iff the sum is even, else
    reversed (one arm: itself)."""
    names = list(study.arms)
    return names if (round_ + setting_index + budget_index) % 2 == 0 else names[::-1]


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def run_group(study: Study, round_: int, setting: str, num_samples: int, epochs: int
              ) -> list[dict[str, Any]]:  # fmt: skip
    """The full-data run of `setting`, then every arm at every budget (see the module docstring).
    Each row also holds the machine's state: the full-data epoch seconds and the 1/5/15-minute
    load averages before the full-data run and after each run."""
    si = list(SETTINGS).index(setting)
    train, _, test = _splits(setting, num_samples, 0)
    load_full = _load()
    full = train_mnist1d("full", train, test, epochs, 1.0, 0)
    full_epoch = full["seconds"] / epochs
    rows = []
    for j, f in enumerate(BUDGETS):
        for pos, arm in enumerate(arm_order(study, round_, si, j)):
            a = study.arms[arm]
            r = train_mnist1d(a.method, train, test, epochs, f, 0,
                              rescore_batch_size=a.rescore_batch_size)  # fmt: skip
            rows.append({"round": round_, "setting": setting, "f_target": f, "arm": arm,
                         "position": pos, "overhead": r["score_seconds_per_epoch"] / full_epoch,
                         "rescore": r["rescore_seconds_per_epoch"] / full_epoch,
                         "full_epoch_seconds": full_epoch, "time_ratio": r["seconds"] / full["seconds"],
                         "accuracy": r["accuracy"], "f": r["f"],
                         "score_ms": 1e3 * r["score_seconds_per_epoch"],
                         "rescore_ms": 1e3 * r["rescore_seconds_per_epoch"],
                         "loadavg_before_full": load_full, "loadavg_after": _load()})  # fmt: skip
            print(f"round {round_} {setting} f={f} {arm}: scoring {rows[-1]['overhead']:.4f} of a "
                  f"full epoch ({full_epoch:.3f} s), load {rows[-1]['loadavg_after'][0]:.2f}",
                  flush=True)  # fmt: skip
    return rows


def decide(study: Study, rows: list[dict[str, Any]], rounds: int, config: dict[str, Any]
           ) -> dict[str, Any]:  # fmt: skip
    """The study's rule on the complete rounds (all 3 settings in)."""
    complete = [r for r in range(rounds)
                if {x["setting"] for x in rows if x["round"] == r} == set(SETTINGS)]  # fmt: skip
    by = {(x["round"], x["setting"], x["f_target"], x["arm"]): x["overhead"] for x in rows}
    keys = [(r, s, f) for r in complete for s in SETTINGS for f in BUDGETS]
    names = list(study.arms)
    vals = {a: [by[k + (a,)] for k in keys] for a in names}
    out: dict[str, Any] = {"complete_rounds": complete, "pairs": len(keys), "config": config}
    if len(complete) < study.min_rounds:
        out["decision"] = f"no decision: fewer than {study.min_rounds} complete round(s)"
        return out
    for a in names:  # the CI of each arm's mean (10,000 resamples, numpy rng seed 0)
        m = report.paired_difference(vals[a], [0.0] * len(vals[a]))
        out[a] = {"mean_std": report.mean_std(vals[a]), "ci95": [m.low, m.high],
                  "max": max(vals[a]), "min": min(vals[a])}  # fmt: skip
    if len(names) == 2:
        d = report.paired_difference(vals[names[0]], vals[names[1]])
        out[f"delta_{names[0]}_minus_{names[1]}"] = {"mean": d.mean, "ci95": [d.low, d.high],
                                                     "n": d.n}  # fmt: skip
    per_f: dict[str, Any] = {}
    for f in BUDGETS:
        ks = [k for k in keys if k[2] == f]
        per_f[str(f)] = {a: report.mean_std(by[k + (a,)] for k in ks) for a in names}
        if len(names) == 2:
            df = report.paired_difference([by[k + (names[0],)] for k in ks],
                                          [by[k + (names[1],)] for k in ks])  # fmt: skip
            per_f[str(f)]["delta"] = [df.mean, df.low, df.high]
        else:
            m = report.paired_difference([by[k + (names[0],)] for k in ks], [0.0] * len(ks))
            per_f[str(f)]["ci95"] = [m.low, m.high]
    out["per_budget"] = per_f
    mine = [x for x in rows if x["round"] in complete]
    fe = [x["full_epoch_seconds"] for x in mine]
    out["full_epoch_seconds"] = report.mean_std(fe)
    out["full_epoch_range"] = [min(fe), max(fe)]
    if "project" in study.extra:  # ms per epoch by part, and the projections to s21's speed
        ms = {(x["round"], x["setting"], x["f_target"], x["arm"]): x for x in mine}
        for a in names:
            sc = [ms[k + (a,)]["score_ms"] for k in keys]
            rc = [ms[k + (a,)]["rescore_ms"] for k in keys]
            out[f"{a}_ms"] = {"score": sum(sc) / len(sc), "rescore": sum(rc) / len(rc),
                              "rest": (sum(sc) - sum(rc)) / len(sc)}  # fmt: skip
        if len(names) == 2:
            d = report.paired_difference([ms[k + (names[0],)]["score_ms"] for k in keys],
                                         [ms[k + (names[1],)]["score_ms"] for k in keys])  # fmt: skip
            out[f"delta_ms_{names[0]}_minus_{names[1]}"] = {"mean": d.mean, "ci95": [d.low, d.high]}
        out["projection"] = _projected(out, *study.extra["project"])
    loads = [x["loadavg_after"][0] for x in mine if "loadavg_after" in x]
    if loads:
        out["load1_after_runs"] = {
            "mean_std": report.mean_std(loads),
            "range": [min(loads), max(loads)],
        }
    flags, _ = study.verdict(out)
    out.update(flags)
    return out


def _markdown(study: Study, res: dict[str, Any], command: str) -> str:
    """The study's report: per budget the arms' shares (and their paired delta), the verdict."""
    if "decision" in res:
        return f"Produced by `{command}`.\n\n{res['decision']}\n"
    names = list(study.arms)
    lines = [f"Produced by `{command}` (torch {torch.__version__}); rule: `{study.rule}`.", "",
             f"Complete rounds {res['complete_rounds']}, {res['pairs']} "
             f"{'pairs' if len(names) == 2 else 'runs per arm'} (3 settings x 3 budgets per "
             f"round, seed 0, test split, {res['config']['num_samples']:,} samples x "
             f"{res['config']['epochs']} epochs, one thread). Overhead: TED's "
             "scoring seconds per epoch / the full-data epoch of the same round and setting.", ""]  # fmt: skip

    def ms(v: Any) -> str:
        return f"{v[0]:.4f} ± {v[1]:.4f}"

    def ci(m: float, lo: float, hi: float) -> str:
        return f"{m:+.4f} [{lo:+.4f}, {hi:+.4f}]"

    heads = ["f_target", *(study.arms[a].label or a for a in names)]
    table = []
    for f, v in res["per_budget"].items():
        row = [f, *(ms(v[a]) for a in names)]
        if len(names) == 2:
            row.append(ci(*v["delta"]))
        else:
            row.append(f"[{v['ci95'][0]:.4f}, {v['ci95'][1]:.4f}]")
        table.append(row)
    last = ["all", *(ms(res[a]["mean_std"]) for a in names)]
    if len(names) == 2:
        d = res[f"delta_{names[0]}_minus_{names[1]}"]
        heads.append(f"{names[0]} - {names[1]}, 95% CI")
        last.append(ci(d["mean"], *d["ci95"]))
    else:
        heads.append("95% CI of the mean")
        last.append(f"[{res[names[0]]['ci95'][0]:.4f}, {res[names[0]]['ci95'][1]:.4f}]")
    table.append(last)
    lines.append(report.markdown_table(heads, table))
    parts = [f"\"{a}\" {res[a]['mean_std'][0]:.4f} (95% CI [{res[a]['ci95'][0]:.4f}, "
             f"{res[a]['ci95'][1]:.4f}], max {res[a]['max']:.4f})" for a in names]  # fmt: skip
    fe, (lo, hi) = res["full_epoch_seconds"], res["full_epoch_range"]
    speed = f"Full-data epoch {fe[0]:.3f} ± {fe[1]:.3f} s (range {lo:.3f}-{hi:.3f})"
    if "load1_after_runs" in res:
        ld = res["load1_after_runs"]
        speed += (f"; 1-minute load average after the runs {ld['mean_std'][0]:.2f} ± "
                  f"{ld['mean_std'][1]:.2f} (range {ld['range'][0]:.2f}-{ld['range'][1]:.2f})")  # fmt: skip
    lines += ["Mean scoring share: " + "; ".join(parts) + ". " + speed + ".", ""]
    if "projection" in res:
        ms = "; ".join(f"\"{a}\" scoring {res[f'{a}_ms']['score']:.2f} (re-scoring "
                       f"{res[f'{a}_ms']['rescore']:.2f}, rest {res[f'{a}_ms']['rest']:.2f})"
                       for a in names)  # fmt: skip
        lines.append(f"Milliseconds per epoch: {ms}.")
        key = f"delta_ms_{names[0]}_minus_{names[1]}"
        if key in res:
            d = res[key]
            lines.append(f"Paired {names[0]} - {names[1]}: {d['mean']:+.2f} "
                         f"[{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}] ms per epoch.")  # fmt: skip
        lines.append("")
    lines.append(study.verdict(res)[1])
    return "\n".join(lines) + "\n"


def check_digests(study: Study, num_samples: int, epochs: int) -> bool:
    """The arms' per-epoch selection digests (indices and loss weights) at every setting and
    budget, seed 0, short runs: True iff all arms' are equal (printed). Meaningful for arms that
    must select alike (s22: re-scoring batches)."""
    import scoring_digest as sd  # noqa: PLC0415
    from ted_prune import bench_mnist1d  # noqa: PLC0415

    same = True
    for setting in SETTINGS:
        train, _, test = _splits(setting, num_samples, 0)
        for f in BUDGETS:
            digests = {}
            for arm, a in study.arms.items():
                made: list[Any] = []
                build = bench_mnist1d._pruner
                bench_mnist1d._pruner = sd.recording_pruner(made)
                try:
                    r = train_mnist1d(a.method, train, test, epochs, f, 0,
                                      rescore_batch_size=a.rescore_batch_size)  # fmt: skip
                finally:
                    bench_mnist1d._pruner = build
                digests[arm] = (made[0].digests, r["accuracy"], r["f"])
            first, *rest = digests.values()
            eq = all(d == first for d in rest)
            same &= eq
            print(f"{setting} f={f}: {len(first[0])} epochs' selections "
                  f"{'equal' if eq else 'DIFFER'}, acc "
                  f"{' / '.join(f'{d[1]:.2f}' for d in digests.values())}", flush=True)  # fmt: skip
    return same


def plan(study: Study, rounds: int) -> list[str]:
    """The runs of `rounds` rounds in order, one line each (what `--dry-run` prints)."""
    lines = []
    for r in range(rounds):
        for si, s in enumerate(SETTINGS):
            lines.append(f"round {r} {s}: full data (f = 1.0)")
            for j, f in enumerate(BUDGETS):
                for arm in arm_order(study, r, si, j):
                    a = study.arms[arm]
                    lines.append(f"round {r} {s}: f = {f} {arm} ({a.method}, re-scoring batch "
                                 f"{a.rescore_batch_size})")  # fmt: skip
    return lines


def config(study_name: str, num_samples: int, epochs: int, rounds: int) -> dict[str, Any]:
    """The cache's config: the sizes, and the study where it is tagged (`Study.tag_config`)."""
    cfg: dict[str, Any] = {"num_samples": num_samples, "epochs": epochs, "rounds": rounds}
    if STUDIES[study_name].tag_config:
        cfg["study"] = study_name
    return cfg


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=sorted(STUDIES), required=True)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--num-samples", type=int, default=25000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--time-limit", type=float)
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--dry-run", action="store_true", help="print the planned runs, run nothing")
    ap.add_argument("--check-digests", action="store_true")
    args = ap.parse_args(argv)
    study = STUDIES[args.study]
    if args.rounds < 1:
        ap.error(f"--rounds must be >= 1, got {args.rounds}")
    if args.dry_run:
        print("\n".join(plan(study, args.rounds)))
        return
    torch.set_num_threads(1)
    if any(a.method == "TED@main" for a in study.arms.values()):
        _install_main_path()
    if args.check_digests:
        ok = check_digests(study, args.num_samples, args.epochs)
        print("all selections equal" if ok else "SELECTIONS DIFFER")
        raise SystemExit(0 if ok else 1)
    if args.out is None:
        ap.error("--out is required to run or decide")
    args.out.mkdir(parents=True, exist_ok=True)
    cfg = config(args.study, args.num_samples, args.epochs, args.rounds)
    cache = args.out / CACHE
    command = (f"python packages/ted-prune/scripts/scoring_paired.py --study {args.study} --out "
               f"{args.out} --rounds {args.rounds} --num-samples {args.num_samples} --epochs "
               f"{args.epochs}")  # fmt: skip
    if args.decide:
        rows = [r for r in load_cache(cache) if r.get("config") == cfg]
        res = decide(study, rows, args.rounds, cfg)
        res["command"] = command
        (args.out / "scoring-paired.json").write_text(json.dumps(res, indent=1) + "\n")
        text = _markdown(study, res, command)
        (args.out / "scoring-paired.md").write_text(f"# TED scoring share, {study.title}\n\n{text}")
        print(text)
        return

    def warmup() -> None:  # first-run costs are not timed, as in `--stage scoring`
        tr, va, _ = mnist1d_splits(args.num_samples, val_size=VAL_SIZE)
        train_mnist1d("TED", tr, va, 2, 0.7, 0)

    run_groups(
        cache,
        cfg,
        [(r, s) for r in range(args.rounds) for s in SETTINGS],
        lambda row: (row["round"], row["setting"]),
        lambda g, _rows: run_group(study, g[0], g[1], args.num_samples, args.epochs),
        lambda rows, partial: None,
        resume=args.resume,
        time_limit=args.time_limit,
        warmup=warmup,
    )


if __name__ == "__main__":
    main()
