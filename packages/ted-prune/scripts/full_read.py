"""Rule s34's driver (issue 15): TED's UNCHANGED default (`TED_s29`) read on the TEST split of the
full-size MNIST-1D grid (25,000 samples x 30 epochs, test seeds 0-4), against the grid's cached
baselines; plus the epoch-matched control (`bench_mnist1d.EPOCH_MATCHED`) at clean f = 0.7.
No option or default is chosen here (`docs/benchmarks/ted-prune-s34/RULE.md`).

Usage::

    python packages/ted-prune/scripts/full_read.py --out DIR --repro
    python packages/ted-prune/scripts/full_read.py --out DIR --resume [--time-limit S]
    python packages/ted-prune/scripts/full_read.py --out DIR --decide

`--repro` re-runs `REPRO_UNITS` (cached units of the grid, one thread) and compares their
accuracy, achieved f and smallest kept class fraction with the grid's rows exactly
(`DIR/repro.json`); the read refuses to start unless every unit reproduces. The read trains the
missing (cell, seed, arm) runs of `PLAN` in `PLAN`'s order (the clean f = 0.7 cell first), each
appended to `DIR/runs.jsonl` as it ends; `--time-limit` stops starting new ones (exit code 3;
rerun with `--resume`). `--decide` applies the rule (`decide`) and writes `DIR/result.json` and
`DIR/RESULT.md`.

`--plan paired` (rule s34b, proposed after rule s34 stopped at its gate because the grid's rows no
longer reproduce on today's machine): `PAIRED_PLAN`, every arm re-run, the baselines included
(no `--repro` gate; each start appends the machine to `DIR/machine.jsonl`)::

    python packages/ted-prune/scripts/full_read.py --plan paired --out DIR --resume [--time-limit S]
    python packages/ted-prune/scripts/full_read.py --plan paired --out DIR --decide

`--plan noisy07` (rule s34c, `docs/benchmarks/ted-prune-s34/RULE-c.md`): `NOISY07_PLAN`, the
noisy (noise20) f = 0.7 cell that rule s34b did not read, with the same arms as its clean
f = 0.7 cell, the same protocol and machine record, and the f = 0.7 goals on noise20
(`NOISY07_GOALS`)::

    python packages/ted-prune/scripts/full_read.py --plan noisy07 --out DIR --resume [--time-limit S]
    python packages/ted-prune/scripts/full_read.py --plan noisy07 --out DIR --decide
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch
from maskloop import report
from ted_prune.bench_mnist1d import EPOCH_MATCHED, _splits, train_mnist1d
from ted_prune.runcache import load_cache

ROOT = Path(__file__).resolve().parents[3]
#: the committed full-size test grid (2026-12-02, the older default as its `TED`)
GRID = ROOT / "docs" / "benchmarks" / "ted-prune-mnist1d-full" / "ted-prune-mnist1d-runs.jsonl"
NUM_SAMPLES, EPOCHS = 25000, 30
#: the grid's config (its rows' `config`); this read's rows carry it too
CONFIG = {"num_samples": NUM_SAMPLES, "epochs": EPOCHS, "lr": 1e-2}
SEEDS = (0, 1, 2, 3, 4)  # the grid's test seeds
DEFAULT = "TED_s29"  # `bench_mnist1d`'s name of TEDPruner's defaults since session ted-29
#: (setting, f, arms) in run order: the clean f = 0.7 cell (with the control) first
PLAN: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("clean", 0.7, (DEFAULT, EPOCH_MATCHED)),
    ("clean", 0.5, (DEFAULT,)),
    ("noise20", 0.5, (DEFAULT,)),
    ("noise20", 0.3, (DEFAULT,)),
)
#: rule s34b's plan (proposed after rule s34 stopped at its gate; for the lead): every arm re-run
#: on the day's machine, the baselines included, so that each paired difference compares runs of
#: one machine (the grid's rows no longer reproduce: `repro.json`). `full` runs at f = 1.0.
PAIRED_PLAN: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("clean", 0.7, ("full", DEFAULT, "random_dynamic", EPOCH_MATCHED)),
    ("clean", 0.5, (DEFAULT, "InfoBatch", "EL2N")),
    ("noise20", 0.5, (DEFAULT, "InfoBatch")),
    ("noise20", 0.3, (DEFAULT, "InfoBatch")),
)
#: rule s34c's plan: the issue's noisy f = 0.7 cell (noise20), every arm re-run on one machine
#: with the arms of rule s34b's clean f = 0.7 cell (`full` at f = 1.0 on the noise20 data)
NOISY07_PLAN: tuple[tuple[str, float, tuple[str, ...]], ...] = (
    ("noise20", 0.7, ("full", DEFAULT, "random_dynamic", EPOCH_MATCHED)),
)
PLANS = {"grid": PLAN, "paired": PAIRED_PLAN, "noisy07": NOISY07_PLAN}
#: the rule named by each plan (`markdown`'s title)
RULE_NAMES = {"grid": "s34", "paired": "s34b", "noisy07": "s34c"}
#: (method, setting, f, seed) of the grid re-run by `--repro`
REPRO_UNITS = (("full", "clean", 1.0, 0), ("random_dynamic", "clean", 0.7, 0))
REPRO_FIELDS = ("accuracy", "f", "min_class_kept")
GOAL_GAP = -0.3  # "within 0.3 points of full data"
#: the rule's goals: (name, setting, f, baseline, reading); reading "mean" = met iff the paired
#: mean >= GOAL_GAP (the reading of every earlier verdict, `bench_mnist1d._goals`), "ci" = met iff
#: the paired CI's lower end > 0
GOALS = (
    ("clean f=0.7: within 0.3 of full data", "clean", 0.7, "full", "mean"),
    ("clean f=0.7: ahead of random-dynamic", "clean", 0.7, "random_dynamic", "ci"),
    ("clean f=0.5: ahead of InfoBatch", "clean", 0.5, "InfoBatch", "ci"),
    ("clean f=0.5: ahead of EL2N", "clean", 0.5, "EL2N", "ci"),
    ("noise20 f=0.5: ahead of InfoBatch", "noise20", 0.5, "InfoBatch", "ci"),
    ("noise20 f=0.3: ahead of InfoBatch", "noise20", 0.3, "InfoBatch", "ci"),
)
#: rule s34c's goals (plan "noisy07"): rule s34b's two f = 0.7 goals read on the noise20 cell,
#: with the same readings
NOISY07_GOALS = (
    ("noise20 f=0.7: within 0.3 of full data", "noise20", 0.7, "full", "mean"),
    ("noise20 f=0.7: ahead of random-dynamic", "noise20", 0.7, "random_dynamic", "ci"),
)
#: the goals each plan decides
PLAN_GOALS = {"grid": GOALS, "paired": GOALS, "noisy07": NOISY07_GOALS}
#: reported beside the goals, deciding nothing: (a, b, setting, f) with a - b paired
CONTROL_PAIRS = (
    (EPOCH_MATCHED, "full"),
    (DEFAULT, EPOCH_MATCHED),
    ("random_dynamic", EPOCH_MATCHED),
    ("random_dynamic", "full"),
)


def load_rows(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of `path` (empty when it does not exist; a line that is not JSON raises
    ValueError naming the file and line): the package's one cache reader, `runcache.load_cache`."""
    return load_cache(path)


def grid_row(grid: list[dict[str, Any]], method: str, setting: str, f: float, seed: int) -> dict:
    """The grid's test row of (method, setting, f_target, seed) under `CONFIG` (KeyError if none)."""
    for r in grid:
        if (r.get("config") == CONFIG and r["stage"] == "test" and r["method"] == method
                and r["setting"] == setting and r["f_target"] == f and r["seed"] == seed):  # fmt: skip
            return r
    raise KeyError(f"no grid row for {(method, setting, f, seed)}")


def compare_units(cached: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """`REPRO_FIELDS` of a cached run's metrics against a re-run's: both values and whether every
    field is exactly equal (floats compared with ==, no tolerance)."""
    fields = {k: {"cached": cached[k], "now": now[k]} for k in REPRO_FIELDS}
    return {"fields": fields, "equal": all(v["cached"] == v["now"] for v in fields.values())}


def repro(out: Path, grid: list[dict[str, Any]]) -> dict[str, Any]:
    """Re-run `REPRO_UNITS` on the grid's test splits; write and return `out/repro.json`."""
    units = []
    for method, setting, f, seed in REPRO_UNITS:
        train, _, test = _splits(setting, NUM_SAMPLES, seed)
        r = train_mnist1d(method, train, test, EPOCHS, f, seed)
        cached = grid_row(grid, method, setting, f, seed)["metrics"]
        units.append({"method": method, "setting": setting, "f_target": f, "seed": seed,
                      "seconds": r["seconds"], **compare_units(cached, r)})  # fmt: skip
        print(f"repro {method} {setting} f={f} seed {seed}: equal={units[-1]['equal']}", flush=True)
    res = {"config": CONFIG, "units": units, "all_equal": all(u["equal"] for u in units)}
    out.mkdir(parents=True, exist_ok=True)
    (out / "repro.json").write_text(json.dumps(res, indent=1) + "\n")
    return res


def _plan(plan: str) -> tuple[tuple[str, float, tuple[str, ...]], ...]:
    if not isinstance(plan, str):
        raise TypeError(f"plan must be a str, one of {sorted(PLANS)}, got {type(plan).__name__}")
    if plan not in PLANS:
        raise ValueError(f"plan must be one of {sorted(PLANS)}, got {plan!r}")
    return PLANS[plan]


def todo(
    rows: list[dict[str, Any]], seeds: tuple[int, ...] = SEEDS, plan: str = "grid"
) -> list[tuple[Any, ...]]:
    """The (setting, f, seed, method) runs of `PLANS[plan]` not in `rows`, in run order (`full`
    at f = 1.0)."""
    done = {(r["setting"], r["f_target"], r["seed"], r["method"]) for r in rows}
    runs = [(st, 1.0 if m == "full" else f, s, m) for st, f, arms in _plan(plan) for s in seeds
            for m in arms]  # fmt: skip
    return [r for r in runs if r not in done]


def run(out: Path, *, resume: bool, time_limit: float | None = None, plan: str = "grid") -> int:
    """Train the missing runs of `PLANS[plan]` into `out/runs.jsonl`; 0 when done, 3 when
    `time_limit` seconds stopped it. Plan "grid" refuses unless `out/repro.json` says every
    re-run unit reproduced; plans "paired" and "noisy07" (every arm re-run) append the machine's
    `report.environment()` to `out/machine.jsonl` at each start."""
    _plan(plan)
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0 seconds or None, got {time_limit!r}")
    if plan == "grid":
        path = out / "repro.json"
        rep = json.loads(path.read_text()) if path.exists() else None
        if not rep or not rep["all_equal"]:
            raise SystemExit(f"{path}: missing or not reproduced; run --repro first")
    cache = out / "runs.jsonl"
    rows = load_rows(cache)
    if rows and not resume:
        raise SystemExit(f"{cache} exists: pass --resume to continue it")
    if plan != "grid":
        out.mkdir(parents=True, exist_ok=True)
        with (out / "machine.jsonl").open("a") as fh:
            env = {
                "utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                **report.environment(),
            }
            fh.write(json.dumps(env) + "\n")
    start = time.perf_counter()
    splits: dict[tuple[str, int], Any] = {}
    for st, f, seed, method in todo(rows, plan=plan):
        if time_limit is not None and time.perf_counter() - start > time_limit:
            print(
                f"time limit reached: {len(todo(load_rows(cache), plan=plan))} runs left; rerun with --resume"
            )
            return 3
        if (st, seed) not in splits:
            splits[(st, seed)] = _splits(st, NUM_SAMPLES, seed)
        train, _, test = splits[(st, seed)]
        r = train_mnist1d(method, train, test, EPOCHS, f, seed)
        metrics = {k: r[k] for k in ("accuracy", "f", "seconds", "min_class_kept")}
        row = {"stage": "test", "setting": st, "seed": seed, "method": method, "f_target": f,
               "metrics": metrics, "config": CONFIG}  # fmt: skip
        with cache.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"{st} f={f} seed {seed} {method}: {r['accuracy']:.2f} ({r['seconds']:.0f} s)", flush=True)  # fmt: skip
    return 0


def _values(rows: list[dict[str, Any]], method: str, setting: str, f: float) -> dict[int, dict]:
    return {r["seed"]: r["metrics"] for r in rows if r.get("config") == CONFIG
            and r["stage"] == "test" and r["method"] == method and r["setting"] == setting
            and r["f_target"] == f}  # fmt: skip


def _pd(a: dict[int, dict], b: dict[int, dict], seeds: list[int]) -> dict[str, Any]:
    d = report.paired_difference([a[s]["accuracy"] for s in seeds],
                                 [b[s]["accuracy"] for s in seeds])  # fmt: skip
    return {"mean": d.mean, "ci95": [d.low, d.high], "n": d.n}


def _arm(v: dict[int, dict], seeds: list[int]) -> dict[str, Any]:
    acc = [v[s]["accuracy"] for s in seeds]
    m = sum(acc) / len(acc)
    sd = (sum((x - m) ** 2 for x in acc) / (len(acc) - 1)) ** 0.5 if len(acc) > 1 else 0.0
    return {"accuracy_mean_std": [m, sd], "f_achieved": sum(v[s]["f"] for s in seeds) / len(seeds),
            "min_class_kept": min(v[s]["min_class_kept"] for s in seeds)}  # fmt: skip


def decide(rows: list[dict[str, Any]], grid: list[dict[str, Any]],
           seeds: tuple[int, ...] = SEEDS, plan: str = "grid") -> dict[str, Any]:  # fmt: skip
    """Rule s34 (plan "grid"), s34b ("paired") or s34c ("noisy07"): every goal of the plan's
    `PLAN_GOALS` (`GOALS`; `NOISY07_GOALS` for "noisy07") on the seeds where
    both arms finished (a verdict only with all of `seeds`, else "partial"); "no class drops out"
    over every `TED_s29` run of the plan's cells; the epoch-matched control's `CONTROL_PAIRS` in each cell that has it
    (clean f = 0.7; noise20 f = 0.7 in "noisy07"; `full` of the cell's own setting; reported, no
    verdict); and the grid's older `TED` beside the default in each cell where it is given
    (reported, no verdict). `rows`: this read's runs; `grid`: the committed grid's (baselines and
    its `TED`; plans "paired" and "noisy07" read their baselines from `rows` only and ignore it)."""
    cells_plan = _plan(plan)
    every = [r for r in rows if r.get("config") == CONFIG] + (list(grid) if plan == "grid" else [])
    out: dict[str, Any] = {"split": "test", "config": CONFIG, "seeds": list(seeds), "plan": plan,
                           "goals": {}, "cells": {}}  # fmt: skip
    for name, st, f, base, reading in PLAN_GOALS[plan]:
        a = _values(every, DEFAULT, st, f)
        b = _values(every, "full", st, 1.0) if base == "full" else _values(every, base, st, f)
        done = [s for s in seeds if s in a and s in b]
        g: dict[str, Any] = {"baseline": base, "reading": reading, "seeds": done}
        if done:
            g["difference"] = _pd(a, b, done)
            low, mean = g["difference"]["ci95"][0], g["difference"]["mean"]
            if len(done) < len(seeds):
                g["verdict"] = "partial"
            elif reading == "mean":
                g["verdict"] = "met" if mean >= GOAL_GAP else "missed"
                g["ci_lower_above_-0.3"] = low > GOAL_GAP
            else:
                g["verdict"] = "met" if low > 0 else "missed"
        else:
            g["verdict"] = "not run"
        out["goals"][name] = g
    ted_cells = {(st, f) for st, f, arms in cells_plan if DEFAULT in arms}
    mins = [r["metrics"]["min_class_kept"] for r in rows
            if r["method"] == DEFAULT and (r["setting"], r["f_target"]) in ted_cells]  # fmt: skip
    n_runs = len(seeds) * sum(DEFAULT in arms for _, _, arms in cells_plan)
    out["goals"]["no class drops out"] = {
        "smallest_kept_class_fraction": min(mins) if mins else None, "runs": len(mins),
        "verdict": ("partial" if len(mins) < n_runs else "met" if min(mins) > 0 else "missed"),
    }  # fmt: skip
    for st, f, _ in cells_plan:
        arms = {m: _values(every, m, st, f) for m in (DEFAULT, "TED", EPOCH_MATCHED,
                                                       "random_dynamic", "InfoBatch", "EL2N")}  # fmt: skip
        arms["full"] = _values(every, "full", st, 1.0)
        arms = {m: v for m, v in arms.items() if v}
        done = [s for s in seeds if all(s in v for v in arms.values())]
        if DEFAULT not in arms or not done:
            continue
        cell: dict[str, Any] = {"seeds": done, "arms": {m: _arm(v, done) for m, v in arms.items()}}
        # the grid's older default (`TED`, prune_residual_sample) beside today's: no verdict
        if "TED" in arms:
            cell[f"{DEFAULT}-TED(grid)"] = _pd(arms[DEFAULT], arms["TED"], done)
        if EPOCH_MATCHED in arms:
            cell["control"] = {f"{a}-{b}": _pd(arms[a], arms[b], done) for a, b in CONTROL_PAIRS}
            cell["control"][f"{DEFAULT}-full"] = _pd(arms[DEFAULT], arms["full"], done)
        out["cells"][f"{st} f={f}"] = cell
    out["complete"] = not todo(rows, seeds, plan)
    return out


def _fmt(d: dict[str, Any]) -> str:
    return f"{d['mean']:+.2f} [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]"


def markdown(res: dict[str, Any]) -> str:
    """`RESULT.md`: the goals table, each cell's arms and the control, from `decide`'s result."""
    name = RULE_NAMES[res.get("plan", "grid")]
    lines = [f"# Rule {name}: result (test split, 25,000 x 30, seeds " + ", ".join(map(str, res["seeds"]))
             + ")", "", f"Complete: {res['complete']}. Derived by `full_read.py --decide` from "
             "`runs.jsonl`" + (" and the committed grid's cache." if name == "s34" else " (every arm "
             "re-run; no grid row read)."), "", "## Goals (TED_s29)", ""]  # fmt: skip
    rows = []
    for name, g in res["goals"].items():
        if "difference" in g:
            extra = (f"; CI lower end above -0.3: {g['ci_lower_above_-0.3']}"
                     if "ci_lower_above_-0.3" in g else "")  # fmt: skip
            rows.append([name, g["verdict"], f"Δ vs {g['baseline']} {_fmt(g['difference'])} "
                         f"(n={g['difference']['n']}){extra}"])  # fmt: skip
        elif "smallest_kept_class_fraction" in g:
            v = g["smallest_kept_class_fraction"]
            rows.append([name, g["verdict"], f"smallest kept class fraction "
                         f"{'—' if v is None else f'{v:.3f}'} ({g['runs']} runs)"])  # fmt: skip
        else:
            rows.append([name, g["verdict"], "—"])
    lines.append(report.markdown_table(["goal", "verdict", "measured"], rows))
    for key, cell in res["cells"].items():
        lines += [f"## {key}", ""]
        arm_rows = [[m, f"{a['accuracy_mean_std'][0]:.2f} ± {a['accuracy_mean_std'][1]:.2f}",
                     f"{a['f_achieved']:.3f}", f"{a['min_class_kept']:.3f}"]
                    for m, a in cell["arms"].items()]  # fmt: skip
        lines.append(report.markdown_table(["arm", "accuracy (%)", "achieved f",
                                            "smallest kept class"], arm_rows))  # fmt: skip
        pairs = [[k, _fmt(v)] for k, v in cell.items() if k.endswith("-TED(grid)")]
        pairs += [[k, _fmt(v)] for k, v in cell.get("control", {}).items()]
        lines.append(report.markdown_table(["paired Δ (no verdict)", "mean [95% CI]"], pairs))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--repro", action="store_true")
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--plan", choices=sorted(PLANS), default="grid",
                    help="grid: rule s34 (baselines from the grid's cache, behind the --repro gate); "
                         "paired: rule s34b (every arm re-run on the day's machine); "
                         "noisy07: rule s34c (noise20 f=0.7, every arm re-run)")  # fmt: skip
    a = ap.parse_args(argv)
    grid = load_rows(GRID)
    if a.decide:
        res = decide(load_rows(a.out / "runs.jsonl"), grid, plan=a.plan)
        (a.out / "result.json").write_text(json.dumps(res, indent=1) + "\n")
        (a.out / "RESULT.md").write_text(markdown(res))
        print(markdown(res))
        return 0
    torch.set_num_threads(1)  # as the grid ran (`--threads 1`)
    if a.repro:
        return 0 if repro(a.out, grid)["all_equal"] else 4
    return run(a.out, resume=a.resume, time_limit=a.time_limit, plan=a.plan)


if __name__ == "__main__":
    raise SystemExit(main())
