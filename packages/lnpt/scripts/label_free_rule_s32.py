"""Session 32's rule: the teacher-confidence filter on the label-free training, digits CNN 95%.

The rule is committed before any of its runs: `docs/benchmarks/lnpt_s32_rule.md`. Protocol: rule
s31's adopted validation protocol (`validation_at_test_sizes.config`: digits CNN, 95% sparsity,
`validation_split="teacher-held-out"`, the 480-epoch default recipe read at epoch 240 too), on
fresh validation seeds 19-23. Arms, per seed and in this order (each a cached, resumable unit):

1. `current`: `lnpt+label-free` with the current label-free training (`BenchConfig.label_free` =
   `lnpt.training.TRAINING_DEFAULTS`: soft KD at tau = 4, no feature term);
2. `current`: `snip+supervised` (the goal's reference; it never sees the teacher);
3. `candidate`: `lnpt+label-free` with `confidence=0.9` added (`lnpt.LearningGap(confidence=c)`:
   the logit term of a student input whose teacher top-class probability at temperature 1 is
   below c is 0; labels are never read).

Usage, from the repository root (each `run` under `flock /tmp/heavy.lock nice -n 5`, holds <= 12
min): `python packages/lnpt/scripts/label_free_rule_s32.py run [--budget-s S]` runs the units
not yet cached, seed by seed, and starts no call after S seconds (a call runs a seed's `current`
units, then another its candidate; resume by running it again);
`... rule` applies the rule to what is cached and writes `docs/benchmarks/lnpt_s32_rule.json` and
`docs/benchmarks/lnpt_s32_rule/result.md`; `... left` prints the units still to run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import validation_at_test_sizes as s31  # noqa: E402
from lnpt.student_lr import StudentLrCheckConfig, student_lr_check  # noqa: E402
from lnpt.training import TRAINING_DEFAULTS  # noqa: E402
from maskloop import report  # noqa: E402

ROOT = Path("docs/benchmarks")
RUN = ROOT / "lnpt_s32_rule"
RULE = "docs/benchmarks/lnpt_s32_rule.md"
FIRST_SEED = 19
SEEDS = list(range(FIRST_SEED, FIRST_SEED + 5))
MIN_SEEDS = 5
CONFIDENCE = 0.9
CURRENT = dict(TRAINING_DEFAULTS)
CANDIDATE = {**TRAINING_DEFAULTS, "confidence": CONFIDENCE}
GOAL_LOW = -0.005  # the goal: LNPT label-free - supervised SNIP, CI lower bound > -0.5 points
# (configuration, arm) in the order a seed runs them
UNITS = (
    ("current", "lnpt+label-free"),
    ("current", "snip+supervised"),
    ("candidate", "lnpt+label-free"),
)


def config(which: str, arms: tuple[str, ...], seed: int) -> StudentLrCheckConfig:
    """Rule s31's check (`validation_at_test_sizes.config`) for one seed, its label-free training
    the current one or the candidate (`which`). Raises ValueError naming `which` otherwise."""
    if which not in ("current", "candidate"):
        raise ValueError(f"which must be 'current' or 'candidate', got {which!r}")
    sc = s31.config(arms, seeds=1)
    sc.first_seed = seed
    sc.bench.label_free = dict(CURRENT if which == "current" else CANDIDATE)
    sc.check()
    return sc


def folder(which: str) -> Path:
    return RUN / which


def done(which: str, arm: str, seed: int) -> dict[str, float] | None:
    """The metrics of a finished 480-epoch unit, or None."""
    return s31.units(folder(which), seed).get(f"{s31.LONG.key}/{arm}")


def left() -> list[tuple[int, str, str]]:
    """(seed, configuration, arm) of every unit not yet cached, in run order."""
    return [(s, w, a) for s in SEEDS for w, a in UNITS if done(w, a, s) is None]


def run(budget_s: float | None) -> None:
    """Run the units not yet cached, seed by seed (a seed's `current` units in one call, so its
    teacher trains once for them, then the candidate); no call starts after `budget_s` seconds."""
    t0 = time.perf_counter()
    todo = left()
    for seed in SEEDS:
        for which in ("current", "candidate"):
            arms = tuple(a for s, w, a in todo if s == seed and w == which)
            if not arms:
                continue
            spent = time.perf_counter() - t0
            if budget_s is not None and spent > budget_s:
                print(f"budget spent ({spent:.0f} s); left: {left()}", flush=True)
                return
            sc = config(which, arms, seed)
            cmd = (
                "python packages/lnpt/scripts/label_free_rule_s32.py run"
                f"  # {which}: label_free={sc.bench.label_free}, seed {seed}"
            )
            print(f"{time.strftime('%H:%M:%S')} seed {seed} {which} {arms}", flush=True)
            student_lr_check(sc, folder(which), cmd, resume=True, progress=False)
    print(f"all units done ({time.perf_counter() - t0:.0f} s)", flush=True)


def verdict(
    gain: report.PairedDifference | None, goal: report.PairedDifference | None
) -> tuple[str, str]:
    """The committed rule: (decision on the candidate, goal reading on validation)."""
    if gain is None or gain.n < MIN_SEEDS:
        return "partial: fewer than 5 paired seeds, no verdict", "no reading"
    decision = "adopted" if gain.low > 0 else "rejected"
    if goal is None or goal.n < MIN_SEEDS:
        return decision, "no reading"
    return decision, "met" if goal.low > GOAL_LOW else "missed"


def rule() -> dict[str, object]:
    """Apply `docs/benchmarks/lnpt_s32_rule.md` to the cached units; write JSON and MD."""
    budgets = ((s31.LONG, "480 epochs"), (s31.SHORT, "240 epochs (read at epoch 240)"))
    names = {
        ("current", "lnpt+label-free"): "LNPT label-free (current)",
        ("current", "snip+supervised"): "SNIP supervised",
        ("candidate", "lnpt+label-free"): f"LNPT label-free, confidence {CONFIDENCE}",
    }
    acc = {r: {u: {} for u in UNITS} for r, _ in budgets}
    train = {u: {} for u in UNITS}
    for s in SEEDS:
        for w, a in UNITS:
            got = s31.units(folder(w), s)
            for r, _ in budgets:
                m = got.get(f"{r.key}/{a}")
                if m is not None:
                    acc[r][(w, a)][s] = m["val_accuracy"]
                    if r == s31.LONG:
                        train[(w, a)][s] = m["train_accuracy"]

    def pair(r, u, v) -> report.PairedDifference | None:  # noqa: ANN001
        seeds = sorted(set(acc[r][u]) & set(acc[r][v]))
        if len(seeds) < 2:
            return None
        return report.paired_difference(
            [acc[r][u][s] for s in seeds], [acc[r][v][s] for s in seeds]
        )

    cur, snip, cand = UNITS
    contrasts = {
        "C1: candidate - current LNPT label-free": (cand, cur),
        "C2: candidate - SNIP supervised (goal pair)": (cand, snip),
        "G: current LNPT label-free - SNIP supervised": (cur, snip),
    }
    doc: dict[str, object] = {
        "rule": RULE, "seeds": SEEDS, "candidate label_free": CANDIDATE,
        "current label_free": CURRENT, "left": [list(x) for x in left()],
    }  # fmt: skip
    lines = [
        "# lnpt s32: teacher-confidence filter (c = 0.9) on the label-free training\n",
        f"Rule `{RULE}`; digits CNN 95%, `validation_split='teacher-held-out'` (student 719, read "
        f"360, teacher 358), seeds {SEEDS[0]}-{SEEDS[-1]}; no test read. Accuracy %.\n",
    ]
    for r, title in budgets:
        rows = [
            [names[u], len(acc[r][u]), report.format_mean_std(acc[r][u].values(), 2, 100),
             " ".join(f"{100 * acc[r][u][s]:.1f}" for s in sorted(acc[r][u]))]
            + ([report.format_mean_std(train[u].values(), 2, 100)] if r == s31.LONG else [])
            for u in UNITS if acc[r][u]
        ]  # fmt: skip
        head = ["arm", "n", "val acc %", "per seed"] + (["train acc %"] if r == s31.LONG else [])
        drows, dd = [], {}
        for label, (u, v) in contrasts.items():
            d = pair(r, u, v)
            dd[label] = (
                None if d is None else {"mean": d.mean, "low": d.low, "high": d.high, "n": d.n}
            )
            if d is not None:
                drows.append([label, d.n, d.format(2, 100)])
        lines += [f"## {title}\n", report.markdown_table(head, rows)]
        if drows:
            lines.append(report.markdown_table(["paired Δ (points)", "n", "mean [95% CI]"], drows))
        doc[title] = {
            "val_accuracy": {names[u]: {str(s): x for s, x in acc[r][u].items()} for u in UNITS},
            "paired": dd,
        }
        if r == s31.LONG:
            doc[title]["train_accuracy"] = {  # type: ignore[index]
                names[u]: {str(s): x for s, x in train[u].items()} for u in UNITS
            }
    decision, goal = verdict(pair(s31.LONG, cand, cur), pair(s31.LONG, cand, snip))
    doc["decision"], doc["goal on validation (candidate)"] = decision, goal
    lines.append(f"Decision (480 epochs): **{decision}**; goal with the candidate: {goal}.\n")
    if left():
        lines.append("Left to run: " + ", ".join(f"seed {s} {w} {a}" for s, w, a in left()) + ".\n")
    RUN.mkdir(parents=True, exist_ok=True)
    (ROOT / "lnpt_s32_rule.json").write_text(json.dumps(doc, indent=1) + "\n")
    (RUN / "result.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("run", "rule", "left"))
    p.add_argument("--budget-s", type=float, default=None)
    p.add_argument(
        "--flush-denormal",
        action="store_true",
        help="torch.set_flush_denormal(True) first (a speed-only setting; see the rule's amendment)",
    )
    args = p.parse_args(argv)
    if args.flush_denormal:
        import torch

        torch.set_flush_denormal(True)
    if args.mode == "run":
        run(args.budget_s)
    elif args.mode == "rule":
        rule()
    else:
        for x in left():
            print(*x)
    return 0


if __name__ == "__main__":
    sys.exit(main())
