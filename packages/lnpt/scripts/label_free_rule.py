"""The label-free training rules on the digits CNN's 95% cell (sessions 32 and 33), one driver.

Each rule is committed before any of its runs (`Study.rule`). Protocol, shared: rule s31's adopted
validation protocol (`validation_at_test_sizes.config`: digits CNN, 95% sparsity,
`validation_split="teacher-held-out"`, the 480-epoch default recipe read at epoch 240 too) on the
rule's fresh validation seeds. Arms, per seed and in this order (each a cached, resumable unit):

1. `current`: `lnpt+label-free` with the current label-free training (`BenchConfig.label_free` =
   `lnpt.training.TRAINING_DEFAULTS`: soft KD at tau = 4, no feature term);
2. `current`: `snip+supervised` (the goal's reference; it never sees the teacher);
3. `candidate`: `lnpt+label-free` with the rule's candidate label-free training (`Study.candidate`).

Studies: `s32` (`label_free_rule_s32.py`): `confidence=0.9`, seeds 19-23, decided; `s33`
(`label_free_rule_s33.py`): `teacher_snapshots=3` (soft targets averaged over three snapshots of
the teacher's own run), seeds 24-28, rejected; the option was retired in session 34 (its code is at
7b1d953), so `S33.candidate` is kept as the record: `rule` and `left` still read its committed
units, `config(S33, "candidate", ...)` (and so `run`) raises ValueError naming that commit.

Usage, from the repository root (each `run` under `flock /tmp/heavy.lock nice -n 5`, holds <= 12
min): `python packages/lnpt/scripts/label_free_rule_<study>.py run [--budget-s S]` runs the units
not yet cached, seed by seed, and starts no call after S seconds (a call runs a seed's `current`
units, then another its candidate; resume by running it again); `... rule` applies the rule to
what is cached and writes the rule's JSON and `<run>/result.md`; `... left` prints the units still
to run. Every mode runs inside `lnpt.runtime.flush_denormal()` (a speed-only setting).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import validation_at_test_sizes as s31  # noqa: E402
from lnpt.runtime import flush_denormal  # noqa: E402
from lnpt.student_lr import StudentLrCheckConfig, student_lr_check  # noqa: E402
from lnpt.training import TRAINING_DEFAULTS  # noqa: E402
from maskloop import report  # noqa: E402

ROOT = Path("docs/benchmarks")
MIN_SEEDS = 5
GOAL_LOW = -0.005  # the goal: LNPT label-free - supervised SNIP, CI lower bound > -0.5 points
CURRENT = dict(TRAINING_DEFAULTS)
# (configuration, arm) in the order a seed runs them
UNITS = (
    ("current", "lnpt+label-free"),
    ("current", "snip+supervised"),
    ("candidate", "lnpt+label-free"),
)
Verdict = Callable[
    [report.PairedDifference | None, report.PairedDifference | None], tuple[str, str]
]


def _goal(goal: report.PairedDifference | None) -> str:
    if goal is None or goal.n < MIN_SEEDS:
        return "no reading"
    return "met" if goal.low > GOAL_LOW else "missed"


def verdict_s32(
    gain: report.PairedDifference | None, goal: report.PairedDifference | None
) -> tuple[str, str]:
    """Rule s32: (decision on the candidate, goal reading on validation)."""
    if gain is None or gain.n < MIN_SEEDS:
        return "partial: fewer than 5 paired seeds, no verdict", "no reading"
    return ("adopted" if gain.low > 0 else "rejected"), _goal(goal)


PASSED_S33 = "passes the digits-CNN criterion; not adopted: adoption needs the harm check first"


def verdict_s33(
    gain: report.PairedDifference | None, goal: report.PairedDifference | None
) -> tuple[str, str]:
    """Rule s33 (`docs/benchmarks/lnpt_s33_rule.md`): C1's CI lower bound > 0 passes the digits
    CNN's criterion, but the candidate is adopted only after its own harm check on the MLP and
    MNIST-1D cells the default would also change (not run under this rule), so this rule never
    adopts; else rejected. Fewer than 5 paired seeds: partial."""
    if gain is None or gain.n < MIN_SEEDS:
        return "partial: fewer than 5 paired seeds, no verdict", "no reading"
    return (PASSED_S33 if gain.low > 0 else "rejected"), _goal(goal)


@dataclass(frozen=True)
class Study:
    """One committed rule: its file, folder, fresh seeds, candidate and decision function."""

    name: str
    rule: str
    run: Path
    seeds: tuple[int, ...]
    candidate: dict
    candidate_name: str
    title: str
    verdict: Verdict

    @property
    def out_json(self) -> Path:
        return ROOT / f"lnpt_{self.name}_rule.json"


S32 = Study(
    name="s32",
    rule="docs/benchmarks/lnpt_s32_rule.md",
    run=ROOT / "lnpt_s32_rule",
    seeds=tuple(range(19, 24)),
    candidate={**TRAINING_DEFAULTS, "confidence": 0.9},
    candidate_name="LNPT label-free, confidence 0.9",
    title="# lnpt s32: teacher-confidence filter (c = 0.9) on the label-free training\n",
    verdict=verdict_s32,
)
S33 = Study(
    name="s33",
    rule="docs/benchmarks/lnpt_s33_rule.md",
    run=ROOT / "lnpt_s33_rule",
    seeds=tuple(range(24, 29)),
    candidate={**TRAINING_DEFAULTS, "teacher_snapshots": 3},
    candidate_name="LNPT label-free, 3 teacher snapshots",
    title="# lnpt s33: soft targets averaged over 3 teacher snapshots (label-free training)\n",
    verdict=verdict_s33,
)
STUDIES = {s.name: s for s in (S32, S33)}


def config(study: Study, which: str, arms: tuple[str, ...], seed: int) -> StudentLrCheckConfig:
    """Rule s31's check (`validation_at_test_sizes.config`) for one seed, its label-free training
    the current one or the study's candidate (`which`). Raises ValueError naming `which`
    otherwise."""
    if which not in ("current", "candidate"):
        raise ValueError(f"which must be 'current' or 'candidate', got {which!r}")
    sc = s31.config(arms, seeds=1)
    sc.first_seed = seed
    sc.bench.label_free = dict(CURRENT if which == "current" else study.candidate)
    sc.check()
    return sc


def folder(study: Study, which: str) -> Path:
    return study.run / which


def done(study: Study, which: str, arm: str, seed: int) -> dict[str, float] | None:
    """The metrics of a finished 480-epoch unit, or None."""
    return s31.units(folder(study, which), seed).get(f"{s31.LONG.key}/{arm}")


def left(study: Study) -> list[tuple[int, str, str]]:
    """(seed, configuration, arm) of every unit not yet cached, in run order."""
    return [(s, w, a) for s in study.seeds for w, a in UNITS if done(study, w, a, s) is None]


def run(study: Study, budget_s: float | None) -> None:
    """Run the units not yet cached, seed by seed (a seed's `current` units in one call, so its
    teacher trains once for them, then the candidate); no call starts after `budget_s` seconds."""
    t0 = time.perf_counter()
    todo = left(study)
    for seed in study.seeds:
        for which in ("current", "candidate"):
            arms = tuple(a for s, w, a in todo if s == seed and w == which)
            if not arms:
                continue
            spent = time.perf_counter() - t0
            if budget_s is not None and spent > budget_s:
                print(f"budget spent ({spent:.0f} s); left: {left(study)}", flush=True)
                return
            sc = config(study, which, arms, seed)
            cmd = (
                f"python packages/lnpt/scripts/label_free_rule_{study.name}.py run"
                f"  # {which}: label_free={sc.bench.label_free}, seed {seed}"
            )
            print(f"{time.strftime('%H:%M:%S')} seed {seed} {which} {arms}", flush=True)
            student_lr_check(sc, folder(study, which), cmd, resume=True, progress=False)
    print(f"all units done ({time.perf_counter() - t0:.0f} s)", flush=True)


def rule(study: Study) -> dict[str, object]:
    """Apply the study's committed rule to the cached units; write its JSON and MD."""
    budgets = ((s31.LONG, "480 epochs"), (s31.SHORT, "240 epochs (read at epoch 240)"))
    names = {
        ("current", "lnpt+label-free"): "LNPT label-free (current)",
        ("current", "snip+supervised"): "SNIP supervised",
        ("candidate", "lnpt+label-free"): study.candidate_name,
    }
    seeds = list(study.seeds)
    acc = {r: {u: {} for u in UNITS} for r, _ in budgets}
    train = {u: {} for u in UNITS}
    for s in seeds:
        for w, a in UNITS:
            got = s31.units(folder(study, w), s)
            for r, _ in budgets:
                m = got.get(f"{r.key}/{a}")
                if m is not None:
                    acc[r][(w, a)][s] = m["val_accuracy"]
                    if r == s31.LONG:
                        train[(w, a)][s] = m["train_accuracy"]

    def pair(r, u, v) -> report.PairedDifference | None:  # noqa: ANN001
        common = sorted(set(acc[r][u]) & set(acc[r][v]))
        if len(common) < 2:
            return None
        return report.paired_difference(
            [acc[r][u][s] for s in common], [acc[r][v][s] for s in common]
        )

    cur, snip, cand = UNITS
    contrasts = {
        "C1: candidate - current LNPT label-free": (cand, cur),
        "C2: candidate - SNIP supervised (goal pair)": (cand, snip),
        "G: current LNPT label-free - SNIP supervised": (cur, snip),
    }
    todo = left(study)
    doc: dict[str, object] = {
        "rule": study.rule, "seeds": seeds, "candidate label_free": study.candidate,
        "current label_free": CURRENT, "left": [list(x) for x in todo],
    }  # fmt: skip
    lines = [
        study.title,
        f"Rule `{study.rule}`; digits CNN 95%, `validation_split='teacher-held-out'` (student "
        f"719, read 360, teacher 358), seeds {seeds[0]}-{seeds[-1]}; no test read. Accuracy %.\n",
    ]
    for r, title in budgets:
        rows = [
            [names[u], len(acc[r][u]), report.format_mean_std(acc[r][u].values(), 2, 100),
             " ".join(f"{100 * acc[r][u][s]:.1f}" for s in sorted(acc[r][u]))]
            + ([report.format_mean_std(train[u].values(), 2, 100)] if r == s31.LONG else [])
            for u in UNITS if acc[r][u]
        ]  # fmt: skip
        head = ["arm", "n", "val acc %", "per seed"] + (["train acc %"] if r == s31.LONG else [])
        drows, dd = s31.contrast_rows(contrasts, lambda u, v, r=r: pair(r, u, v))
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
    decision, goal = study.verdict(pair(s31.LONG, cand, cur), pair(s31.LONG, cand, snip))
    doc["decision"], doc["goal on validation (candidate)"] = decision, goal
    lines.append(f"Decision (480 epochs): **{decision}**; goal with the candidate: {goal}.\n")
    if todo:
        lines.append("Left to run: " + ", ".join(f"seed {s} {w} {a}" for s, w, a in todo) + ".\n")
    study.run.mkdir(parents=True, exist_ok=True)
    study.out_json.write_text(json.dumps(doc, indent=1) + "\n")
    (study.run / "result.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return doc


def main(study: Study, argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=f"lnpt rule {study.name} ({study.rule})")
    p.add_argument("mode", choices=("run", "rule", "left"))
    p.add_argument("--budget-s", type=float, default=None)
    p.add_argument(
        "--flush-denormal",
        action="store_true",
        help="kept for the rules' committed commands: since session 33 every mode flushes "
        "denormal floats for its run (`lnpt.runtime.flush_denormal`; a speed-only setting)",
    )
    args = p.parse_args(argv)
    with flush_denormal():  # every mode; args.flush_denormal is kept as a no-op
        if args.mode == "run":
            run(study, args.budget_s)
        elif args.mode == "rule":
            rule(study)
        else:
            for x in left(study):
                print(*x)
    return 0
