"""Apply session 27's committed rule (`docs/benchmarks/lnpt_s27_rule.md`) to the runs.

Candidate: `1e-2,epochs=480,warmup=5` (480 epochs, constant lr after the 5-epoch warm-up);
incumbent: the current recipe `1e-2,warmup=5` (240 epochs), read at epoch 240 of the same runs
(`--prefix-epochs 240`). Fresh validation seeds 7-13 (`--first-seed 7`), three arms, cached in
`docs/benchmarks/lnpt_s27_budget480`. Rule: with at least 5 seeds finished under both recipes,
`lnpt.student_lr.choose_student_recipe` over the two (no student below 80%, highest three-arm
mean, within 0.3 points the current recipe kept); else nothing is decided.

Also reported (descriptive): the current recipe's LNPT label-free − supervised SNIP and − dense
over seeds 0-13, seeds 0-6 from the committed units (supervised: session 17's
`lnpt_teacher_recipe`; label-free: session 26's this-host `lnpt_recipe_repro`).

Usage: `python packages/lnpt/scripts/recipe_budget_rule.py` from the repository root; prints the
tables and writes `docs/benchmarks/lnpt_s27_rule.json`.
"""

from __future__ import annotations

import json
from pathlib import Path

from lnpt.student_lr import STUDENT_FLOOR, StudentRecipe, choose_student_recipe
from maskloop import report
from score_variant_rule import units  # the same scripts folder: one reader of a check's units

ROOT = Path("docs/benchmarks")
RUN = ROOT / "lnpt_s27_budget480"
SEEDS = list(range(7, 14))
MIN_SEEDS = 5
ARMS = ("dense+supervised", "snip+supervised", "lnpt+label-free")
CURRENT = StudentRecipe(1e-2, None, 5)
LONG = StudentRecipe(1e-2, 480, 5)
OLD_SUPERVISED = "lr=0.01,epochs=240,warmup=5"  # session 17's key (bench epochs then 120)


def _d(a: dict[int, float], b: dict[int, float], seeds: list[int]) -> report.PairedDifference:
    return report.paired_difference([a[s] for s in seeds], [b[s] for s in seeds])


def main() -> None:
    acc: dict[StudentRecipe, dict[str, dict[int, float]]] = {
        r: {a: {} for a in ARMS} for r in (CURRENT, LONG)
    }
    for s in SEEDS:
        done = units(RUN, s)
        for r in (CURRENT, LONG):
            for arm in ARMS:
                u = done.get(f"{r.key}/{arm}")
                if u is not None:
                    acc[r][arm][s] = u["val_accuracy"]
    seeds = [s for s in SEEDS if all(s in acc[r][a] for r in acc for a in ARMS)]
    doc: dict[str, object] = {"rule": "docs/benchmarks/lnpt_s27_rule.md", "seeds": seeds}
    print(f"finished seeds (three arms, both recipes): {seeds}")
    names = {CURRENT: "240 epochs (current)", LONG: "480 epochs"}
    if seeds:
        paired = {r: {a: {s: acc[r][a][s] for s in seeds} for a in ARMS} for r in acc}
        rows, goal = [], []
        for r, name in names.items():
            per_arm = [sum(paired[r][a].values()) / len(seeds) for a in ARMS]
            low = sum(v < STUDENT_FLOOR for a in ARMS for v in paired[r][a].values())
            rows.append(
                [name]
                + [report.format_mean_std(paired[r][a].values(), 2, 100) for a in ARMS]
                + [f"{100 * sum(per_arm) / len(ARMS):.2f}", low]
            )
            lnpt = paired[r]["lnpt+label-free"]
            goal.append([
                name,
                _d(lnpt, paired[r]["snip+supervised"], seeds).format(2, 100),
                _d(lnpt, paired[r]["dense+supervised"], seeds).format(2, 100),
            ])  # fmt: skip
        deltas = [[a, _d(paired[LONG][a], paired[CURRENT][a], seeds).format(2, 100)] for a in ARMS]
        three = [
            sum(paired[LONG][a][s] - paired[CURRENT][a][s] for a in ARMS) / len(ARMS) for s in seeds
        ]
        d3 = report.paired_difference(three, [0.0] * len(seeds))
        deltas.append(["three-arm mean", d3.format(2, 100)])
        head = f"recipe (validation, seeds {seeds[0]}-{seeds[-1]}, n={len(seeds)})"
        print(report.markdown_table([head, *ARMS, "three-arm mean", "< 80%"], rows))
        print(report.markdown_table(["arm", "paired Δ 480 − 240 [95% CI]"], deltas))
        print(report.markdown_table(["recipe", "LNPT lf − SNIP sup", "LNPT lf − dense"], goal))
        doc.update(
            {
                "val_accuracy": {
                    names[r]: {a: {str(s): v for s, v in paired[r][a].items()} for a in ARMS}
                    for r in paired
                },
                "paired_480_minus_240": {
                    a: [(d := _d(paired[LONG][a], paired[CURRENT][a], seeds)).mean, d.low, d.high]
                    for a in ARMS
                },
                "three_arm_mean_delta": [d3.mean, d3.low, d3.high],
            }
        )
    if len(seeds) < MIN_SEEDS:
        print(f"{len(seeds)} < {MIN_SEEDS} seeds finished: not decided, the current recipe stays")
        doc["chosen"] = "current (not decided)"
    else:
        chosen = choose_student_recipe(paired, CURRENT, 240)
        print(f"rule: choose_student_recipe -> {chosen.name}")
        doc["chosen"] = "480 epochs" if chosen == LONG else "current (240 epochs)"
    # descriptive: the current recipe over seeds 0-13
    pooled = {a: dict(acc[CURRENT][a]) for a in ARMS}
    for s in range(7):
        old, here = units(ROOT / "lnpt_teacher_recipe", s), units(ROOT / "lnpt_recipe_repro", s)
        for arm in ARMS:
            src = (
                here[f"{CURRENT.key}/{arm}"]
                if "label-free" in arm
                else old[f"{OLD_SUPERVISED}/{arm}"]
            )
            pooled[arm][s] = src["val_accuracy"]
    both = sorted(set.intersection(*(set(v) for v in pooled.values())))
    lnpt = pooled["lnpt+label-free"]
    rows = [
        [f"seeds {both[0]}-{both[-1]} (n={len(both)})"]
        + [report.format_mean_std([pooled[a][s] for s in both], 2, 100) for a in ARMS]
        + [
            _d(lnpt, pooled["snip+supervised"], both).format(2, 100),
            _d(lnpt, pooled["dense+supervised"], both).format(2, 100),
        ]
    ]
    print(
        report.markdown_table(
            ["current recipe, validation", *ARMS, "LNPT lf − SNIP sup", "LNPT lf − dense"], rows
        )
    )
    doc["current_pooled_seeds"] = both
    doc["current_pooled_lnpt_minus_snip"] = list(
        (lambda d: (d.mean, d.low, d.high))(_d(lnpt, pooled["snip+supervised"], both))
    )
    doc["current_pooled_lnpt_minus_dense"] = list(
        (lambda d: (d.mean, d.low, d.high))(_d(lnpt, pooled["dense+supervised"], both))
    )
    path = ROOT / "lnpt_s27_rule.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(path)


if __name__ == "__main__":
    main()
