"""Session 30: is the digits CNN's 95% gap LNPT's mask or the label-free training? (issue 16)

The rule is committed before the runs: `docs/benchmarks/lnpt_s30_rule.md`. Validation protocol of
session 27's budget check (digits CNN, 95% sparsity, masks scored and students trained on 75% of the
student's half, read on the other 25%; the test set is never read), fresh validation seeds 7-13,
the 480-epoch default recipe (`1e-2,epochs=480,warmup=5`, read at epoch 240 too), the benchmark's
teacher (Adam 3e-3, 80 epochs). Session 27 trained dense supervised, SNIP supervised and LNPT
label-free there (`docs/benchmarks/lnpt_s27_budget480`); this adds SNIP's mask trained label-free
(the diagnostic named by session 29) and LNPT's mask trained with labels, completing the 2 x 2 of
mask {LNPT, SNIP} x training {label-free, supervised}.

The check is run at session 27's configuration (bench epochs cnn=240, the default then), so its
per-seed cache files keep session 27's key (`S27_KEY`) and its units are reused, not retrained.

Usage, from the repository root:

- `python packages/lnpt/scripts/mask_training_factorial.py repro [--budget-s S]`: retrains seed 7's
  LNPT label-free student in `docs/benchmarks/lnpt_s30_repro` and compares it with session 27's
  cached unit (480 and 240 epochs: validation, training accuracy, dead fraction); writes
  `repro.json` there.
- `python packages/lnpt/scripts/mask_training_factorial.py run --arms ARM... [--budget-s S]`: the
  check in `docs/benchmarks/lnpt_s30_factorial` (session 27's units copied in first if the
  reproduction passed), resumable.
- `python packages/lnpt/scripts/mask_training_factorial.py rule`: applies the committed rule to the
  finished units; writes `docs/benchmarks/lnpt_s30_rule.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from lnpt.student_lr import STUDENT_LR_ARMS, StudentLrCheckConfig, StudentRecipe, student_lr_check
from maskloop import report

ROOT = Path("docs/benchmarks")
S27 = ROOT / "lnpt_s27_budget480"
REPRO = ROOT / "lnpt_s30_repro"
RUN = ROOT / "lnpt_s30_factorial"
S27_KEY = "38c72145585468ab"  # session 27's per-seed cache key (bench epochs cnn=240)
SEEDS = list(range(7, 14))
MIN_SEEDS = 5
LONG = StudentRecipe(1e-2, 480, 5)  # the default recipe since session 27
SHORT = StudentRecipe(1e-2, None, 5)  # its epoch-240 reading (session 27's key for 240 epochs)
METRICS = ("val_accuracy", "train_accuracy", "dead_fraction")


def config(arms: tuple[str, ...], seeds: int = 7) -> StudentLrCheckConfig:
    """Session 27's check (seeds 7 .., 480-epoch recipe read at 240 too) with `arms`, at session
    27's bench epochs (cnn=240), so the per-seed cache key is `S27_KEY`."""
    sc = StudentLrCheckConfig(model="cnn", seeds=seeds, first_seed=7)
    sc.bench = sc.bench.with_epochs({"cnn": 240})
    sc.recipes = (LONG,)
    sc.prefix_epochs = (240,)
    sc.arms = tuple(arms)
    sc.check()
    return sc


def command(arms: tuple[str, ...], seeds: int = 7) -> str:
    """The equivalent CLI line at session 27's default (bench epochs cnn=240)."""
    return (
        f"lnpt bench --student-lr-check --models cnn --first-seed 7 --seeds {seeds} "
        f"--student-recipes 1e-2,epochs=480,warmup=5 --prefix-epochs 240 "
        f"--student-lr-arms {' '.join(arms)}  # at bench epochs cnn=240 (session 27's default), "
        "via packages/lnpt/scripts/mask_training_factorial.py"
    )


def units(folder: Path, seed: int) -> dict[str, dict[str, float]]:
    """Key -> metrics of every finished unit of one seed's cache file (session 27's key)."""
    path = folder / "cache" / f"student-lr-cnn-seed{seed}-{S27_KEY}.jsonl"
    out = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        if line.strip():
            d = json.loads(line)
            out[d["key"]] = d["value"][0]["metrics"]
    return out


def repro(budget_s: float | None) -> bool:
    """Retrain seed 7's LNPT label-free unit and compare it with session 27's; True if equal."""
    arms = ("lnpt+label-free",)
    student_lr_check(config(arms, 1), REPRO, command(arms, 1), resume=True, budget_s=budget_s)
    old, new = units(S27, 7), units(REPRO, 7)
    rows, same = [], True
    for r in (LONG, SHORT):
        key = f"{r.key}/lnpt+label-free"
        for m in METRICS:
            a, b = old[key][m], new.get(key, {}).get(m)
            same &= a == b
            rows.append({"unit": key, "metric": m, "session27": a, "here": b, "equal": a == b})
    doc = {"rule": "docs/benchmarks/lnpt_s30_rule.md", "seed": 7, "reproduced": same, "rows": rows}
    (REPRO / "repro.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return same


def run(arms: tuple[str, ...], budget_s: float | None) -> None:
    """The check in `RUN`; session 27's units copied in first when the reproduction passed."""
    rep = json.loads((REPRO / "repro.json").read_text())
    (RUN / "cache").mkdir(parents=True, exist_ok=True)
    if rep["reproduced"]:
        for s in SEEDS:
            name = f"student-lr-cnn-seed{s}-{S27_KEY}.jsonl"
            if not (RUN / "cache" / name).exists():
                shutil.copy(S27 / "cache" / name, RUN / "cache" / name)
    student_lr_check(config(arms), RUN, command(arms), resume=True, budget_s=budget_s)


def _d(a: dict[int, float], b: dict[int, float], seeds: list[int]) -> report.PairedDifference:
    return report.paired_difference([a[s] for s in seeds], [b[s] for s in seeds])


def verdict(m_lf: report.PairedDifference | None, t_snip: report.PairedDifference | None) -> str:
    """The committed rule's verdict from SNIP label-free − LNPT label-free (`m_lf`) and SNIP
    label-free − SNIP supervised (`t_snip`), each over >= MIN_SEEDS paired seeds (else None)."""
    if m_lf is None or m_lf.n < MIN_SEEDS:
        return "partial: fewer than 5 paired seeds, no verdict"
    if m_lf.low > 0:
        return "mask"
    if t_snip is not None and t_snip.n >= MIN_SEEDS and t_snip.high < 0:
        return "training"
    return "unresolved"


def rule() -> dict[str, object]:
    """Apply `docs/benchmarks/lnpt_s30_rule.md` to the finished units; write the JSON."""
    arms = STUDENT_LR_ARMS
    acc: dict[StudentRecipe, dict[str, dict[int, float]]] = {
        r: {a: {} for a in arms} for r in (LONG, SHORT)
    }
    other: dict[str, dict[str, dict[int, float]]] = {m: {a: {} for a in arms} for m in METRICS[1:]}
    for s in SEEDS:
        done = units(RUN, s)
        for r in (LONG, SHORT):
            for a in arms:
                u = done.get(f"{r.key}/{a}")
                if u is not None:
                    acc[r][a][s] = u["val_accuracy"]
                    if r == LONG:
                        for m in METRICS[1:]:
                            other[m][a][s] = u[m]

    def pair(r: StudentRecipe, a: str, b: str) -> report.PairedDifference | None:
        seeds = sorted(set(acc[r][a]) & set(acc[r][b]))
        return _d(acc[r][a], acc[r][b], seeds) if len(seeds) >= 2 else None

    contrasts = {
        "M_LF: SNIP label-free - LNPT label-free": ("snip+label-free", "lnpt+label-free"),
        "T_SNIP: SNIP label-free - SNIP supervised": ("snip+label-free", "snip+supervised"),
        "M_SUP: LNPT supervised - SNIP supervised": ("lnpt+supervised", "snip+supervised"),
        "T_LNPT: LNPT label-free - LNPT supervised": ("lnpt+label-free", "lnpt+supervised"),
        "goal: LNPT label-free - SNIP supervised": ("lnpt+label-free", "snip+supervised"),
        "goal: LNPT label-free - dense supervised": ("lnpt+label-free", "dense+supervised"),
        "SNIP label-free - dense supervised": ("snip+label-free", "dense+supervised"),
        "LNPT supervised - dense supervised": ("lnpt+supervised", "dense+supervised"),
    }
    doc: dict[str, object] = {"rule": "docs/benchmarks/lnpt_s30_rule.md", "seeds": SEEDS}
    for r, name in ((LONG, "480 epochs (the default)"), (SHORT, "240 epochs (read at epoch 240)")):
        rows = [
            [a, len(acc[r][a]), report.format_mean_std(acc[r][a].values(), 2, 100) if acc[r][a] else "—",
             " ".join(f"{100 * acc[r][a][s]:.1f}" for s in sorted(acc[r][a]))]
            for a in arms
        ]  # fmt: skip
        print(f"\n{name}, validation, seeds 7-13")
        print(report.markdown_table(["arm", "n", "val acc %", "per seed"], rows))
        drows, dd = [], {}
        for label, (a, b) in contrasts.items():
            d = pair(r, a, b)
            drows.append([label, d.n if d else 0, d.format(2, 100) if d else "—"])
            dd[label] = (
                None if d is None else {"mean": d.mean, "low": d.low, "high": d.high, "n": d.n}
            )
        print(report.markdown_table(["paired Δ (points)", "n", "mean [95% CI]"], drows))
        doc[name] = {
            "val_accuracy": {a: {str(s): v for s, v in acc[r][a].items()} for a in arms},
            "paired": dd,
        }
    doc["480 epochs (the default)"]["train_accuracy"] = {  # type: ignore[index]
        a: {str(s): v for s, v in other["train_accuracy"][a].items()} for a in arms
    }
    doc["480 epochs (the default)"]["dead_fraction"] = {  # type: ignore[index]
        a: {str(s): v for s, v in other["dead_fraction"][a].items()} for a in arms
    }
    print(report.markdown_table(
        ["arm (480 epochs)", "train acc %", "dead penultimate %"],
        [[a, report.format_mean_std(other["train_accuracy"][a].values(), 2, 100)
          if other["train_accuracy"][a] else "—",
          report.format_mean_std(other["dead_fraction"][a].values(), 1, 100)
          if other["dead_fraction"][a] else "—"] for a in arms],
    ))  # fmt: skip
    v = verdict(
        pair(LONG, "snip+label-free", "lnpt+label-free"),
        pair(LONG, "snip+label-free", "snip+supervised"),
    )
    doc["verdict"] = v
    print(f"\nverdict (480 epochs): {v}")
    path = ROOT / "lnpt_s30_rule.json"
    path.write_text(json.dumps(doc, indent=1) + "\n")
    print(path)
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("repro", "run", "rule"))
    p.add_argument("--arms", nargs="+", choices=STUDENT_LR_ARMS, default=None)
    p.add_argument("--budget-s", type=float, default=None)
    args = p.parse_args(argv)
    if args.mode == "repro":
        return 0 if repro(args.budget_s) else 1
    if args.mode == "run":
        if not args.arms:
            p.error("run needs --arms")
        run(tuple(args.arms), args.budget_s)
        return 0
    rule()
    return 0


if __name__ == "__main__":
    sys.exit(main())
