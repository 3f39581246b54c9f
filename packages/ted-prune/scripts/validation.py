"""The validation driver of TED's current default (issue 15): one study per rule, each comparing
arms of the MNIST-1D benchmark on the VALIDATION split (never test).

Usage::

    python packages/ted-prune/scripts/validation.py --study s32 --out DIR [--resume]
        [--time-limit S] [--seeds 240 ... 244] [--settings clean] [--fs 0.7]
    python packages/ted-prune/scripts/validation.py --study s32 --out DIR --decide

Per (seed, setting, f, arm) one MNIST-1D run (`bench_mnist1d.train_mnist1d`: 5,000 samples x 20
epochs, lr 1e-2, one thread) scored on the validation split; seeds run in order, all settings,
fractions and arms of a seed together. Each finished run is appended to `DIR/runs.jsonl`;
`--resume` skips finished runs; `--time-limit` stops starting new ones (exit code 3). `--decide`
applies the study's rule and writes `DIR/decision.json`.

Studies (`STUDIES`):
- `s30`: rule s30 (`docs/benchmarks/ted-prune-s30/RULE.md`), the late plan without re-scoring
  above 0.625 under label noise (finished; `--decide` re-derives its committed `decision.json`).
- `s32`: rule s32 (`docs/benchmarks/ted-prune-s32/RULE.md`), a cheaper scoring reading against
  the default on clean data at f = 0.7; `s32b`: its harm check in the grid's eight other cells.
- `s33`: a diagnosis on USED seeds 245-249 (no rule; `docs/benchmarks/ted-prune-s33/DIAGNOSIS.md`):
  full data, the epoch-matched control (`bench_mnist1d.EPOCH_MATCHED`), random-dynamic and the
  default on clean data at f = 0.3 / 0.5 / 0.7; `--decide` writes its summary.

Sessions 27-30 ran one script per study (`s27_validation.py` ... `s30_validation.py`, retired in
session 32); their results were produced at commit e375864
(`git show e375864:packages/ted-prune/scripts/<name>` reproduces a script). This driver keeps
their machinery: the same loop, rows, cell statistics and bootstrap.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ted_prune import bench_mnist1d
from ted_prune.bench_mnist1d import _splits, train_mnist1d
from ted_prune.ted import TEDPruner

NUM_SAMPLES, EPOCHS = 5000, 20
_ORIG_PRUNER = bench_mnist1d._pruner
#: the last run's pruner (read by a study's `fields` after each run)
_LAST: list[Any] = []


def ci(d: np.ndarray) -> list[float]:
    """95% percentile bootstrap CI of the mean of `d` (10,000 resamples, rng seed 0)."""
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (10_000, d.size))].mean(1)
    return [float(x) for x in np.percentile(boot, [2.5, 97.5])]


def paired(d: np.ndarray) -> dict[str, Any]:
    """A paired difference over seeds: mean, 95% bootstrap CI (`ci`), whether all are exactly 0."""
    return {"mean": float(d.mean()), "ci95": ci(d), "all_zero": bool(np.all(d == 0))}


def cell_stats(
    by: dict[tuple[Any, ...], dict[str, Any]],
    arms: dict[str, str],
    setting: str,
    f: float,
    seeds: list[int],
) -> tuple[list[int], dict[str, np.ndarray], dict[str, Any]] | None:
    """One (setting, f) cell on the seeds where every arm finished (None if none did): those seeds,
    each arm's accuracies, and the cell's seeds, n, accuracy mean ± std, achieved f and smallest
    kept class fraction per arm. `by` maps (arm, setting, f_target, seed) to a run's row."""
    done = [s for s in seeds if all((a, setting, f, s) in by for a in arms)]
    if not done:
        return None
    acc = {a: np.array([by[(a, setting, f, s)]["val_accuracy"] for s in done]) for a in arms}
    cell: dict[str, Any] = {"seeds": done, "n": len(done)}
    cell["accuracy_mean_std"] = {
        a: [float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0] for a, v in acc.items()
    }
    cell["f_achieved"] = {a: float(np.mean([by[(a, setting, f, s)]["f"] for s in done]))
                          for a in arms}  # fmt: skip
    cell["min_class_kept"] = {
        a: float(min(by[(a, setting, f, s)]["min_class_kept"] for s in done)) for a in arms
    }
    return done, acc, cell


def _header() -> dict[str, Any]:
    return {"split": "validation", "num_samples": NUM_SAMPLES, "epochs": EPOCHS, "cells": {}}


def _complete(cells: dict[str, Any], keys: Any, seeds: list[int]) -> bool:
    return all(f"{s} f={f}" in cells and cells[f"{s} f={f}"]["n"] == len(seeds) for s, f in keys)


@dataclass(frozen=True)
class Study:
    """One rule's runs: `arms` {arm: benchmark method}, `cells` {(setting, f): arms run there},
    fresh `seeds`, `builders` {method: (n, epochs, f, seed) -> pruner} for methods the benchmark
    does not build itself, `fields` (the last run's pruner -> extra row fields) and `decide`
    (rows, seeds -> the decision written to `decision.json`)."""

    arms: dict[str, str]
    cells: dict[tuple[str, float], tuple[str, ...]]
    seeds: list[int]
    decide: Callable[..., dict[str, Any]]
    builders: dict[str, Callable[[int, int, float, int], Any]] = field(default_factory=dict)
    fields: Callable[[Any], dict[str, Any]] = lambda p: {}

    def plan(self, arm: str, setting: str, f: float) -> bool:
        """Whether the study runs `arm` in (setting, f)."""
        return arm in self.cells.get((setting, f), ())

    def pruner(self, method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
        """The benchmark's pruner factory with this study's `builders`; keeps it in `_LAST`."""
        build = self.builders.get(method)
        p = _ORIG_PRUNER(method, n, epochs, f, seed, sizes) if build is None else build(n, epochs, f, seed)  # fmt: skip
        _LAST[:] = [p]
        return p


# -- rule s30 (finished; sessions 29-30's default `TED_s29` against the late plan without re-scoring)
S30_NORESCORE_FLOOR = 0.99  # `noise_min_keep` of the `norescore` arm
S30_ARMS = {"s29": "TED_s29", "norescore": "TED_s30_norescore"}
S30_CELLS = {("noise20", 0.7): ("s29", "norescore"), ("clean", 0.7): ("s29", "norescore")}


def _detector_and_plan(p: Any) -> dict[str, Any]:
    """The last run's detector decision, statistic, re-scoring period and final keep ratio."""
    names = ("noisy", "noise_statistic", "rescore_every")
    return {**{k: getattr(p, k, None) for k in names}, "keep": float(p.schedule.keep)}


def decide_s30(rows: list[dict[str, Any]], seeds: list[int] | None = None) -> dict[str, Any]:
    """Rule s30: `adopt` iff complete, the noise20 f = 0.7 CI of norescore - s29 lies wholly above
    0, and clean f = 0.7 is unaffected (every difference exactly 0, or else CI lower end > -0.3)."""
    seeds = STUDIES["s30"].seeds if seeds is None else seeds
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out = _header()
    for (setting, f), arms in S30_CELLS.items():
        got = cell_stats(by, {a: S30_ARMS[a] for a in arms}, setting, f, seeds)
        if got is None:
            continue
        done, acc, cell = got
        cell["detector"] = {str(s): [by[("s29", setting, f, s)]["noisy"],
                                     by[("s29", setting, f, s)]["noise_statistic"]]
                            for s in done}  # fmt: skip
        cell["norescore-s29"] = paired(acc["norescore"] - acc["s29"])
        out["cells"][f"{setting} f={f}"] = cell
    cells = out["cells"]
    r: dict[str, Any] = {"complete": _complete(cells, S30_CELLS, seeds)}
    if r["complete"]:
        noisy = cells["noise20 f=0.7"]["norescore-s29"]
        clean = cells["clean f=0.7"]["norescore-s29"]
        r["noise_gain"] = noisy["ci95"][0] > 0
        r["clean_unaffected"] = clean["all_zero"] or clean["ci95"][0] > -0.3
        r["adopt"] = r["noise_gain"] and r["clean_unaffected"]
    out["rule"] = r
    return out


# -- rule s32: `score_every=4` (cheaper scoring, not exact) against the default, clean f = 0.7
S32_ARMS = {"s29": "TED_s29", "every4": "TED_s32_every4"}
S32_CELLS = {("clean", 0.7): ("s29", "every4")}
S32_CANDIDATE_METHOD = "TED_s32_every4"
S32_LOWER = -0.3  # (a): the paired CI's lower end must lie above this (points)
S32_RATIO = 0.75  # (b): the candidate's mean wall-clock ratio must be at most this


def _plan_fields(p: Any) -> dict[str, Any]:
    """The last run's final keep ratio and `score_every` (None for pruners without them)."""
    keep = getattr(getattr(p, "schedule", None), "keep", None)
    return {"keep": None if keep is None else float(keep),
            "score_every": getattr(p, "score_every", None)}  # fmt: skip


def _every4_cells(
    rows: list[dict[str, Any]], cells: dict[tuple[str, float], tuple[str, ...]], seeds: list[int]
) -> dict[str, Any]:
    """Rules s32 and s32b: per (setting, f) cell with finished runs, `cell_stats` plus the paired
    difference every4 - s29 (`paired`), under a `_header`."""
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out = _header()
    for (setting, f), arms in cells.items():
        got = cell_stats(by, {a: S32_ARMS[a] for a in arms}, setting, f, seeds)
        if got is None:
            continue
        _, acc, cell = got
        cell["every4-s29"] = paired(acc["every4"] - acc["s29"])
        out["cells"][f"{setting} f={f}"] = cell
    return out


def decide_s32(
    rows: list[dict[str, Any]],
    seeds: list[int] | None = None,
    *,
    wallclock: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Rule s32 (`docs/benchmarks/ted-prune-s32/RULE.md`): adopt `score_every=4` iff the study is
    complete (5 / 5 seeds), (a) the 95% CI of every4 - s29 validation accuracy (clean, f = 0.7)
    has its lower end > -0.3 points, and (b) the wall-clock run (`wallclock`: the JSON
    `scripts/wallclock.py` writes, seeds 0-2, no seed missing) reads the candidate's mean ratio to
    full data <= 0.75; the default's ratio in the same run is reported beside it."""
    seeds = STUDIES["s32"].seeds if seeds is None else seeds
    out = _every4_cells(rows, S32_CELLS, seeds)
    cells = out["cells"]
    r: dict[str, Any] = {"complete": _complete(cells, S32_CELLS, seeds)}
    if r["complete"]:
        r["a_ci_lower_above_-0.3"] = cells["clean f=0.7"]["every4-s29"]["ci95"][0] > S32_LOWER
    if wallclock is not None:
        summ = wallclock["summary"]
        arms = summ["arms"]
        ok = wallclock["partial"] == 0 and summ["seeds"] == [0, 1, 2]
        r["wallclock_seeds"] = summ["seeds"]
        r["wallclock_ratio"] = {m: arms[m]["ratio"] for m in arms if m != "full"}
        r["wallclock_ratio_ci"] = {m: arms[m]["ratio_ci"] for m in arms if m != "full"}
        r["wallclock_paired"] = summ["paired"]
        if ok:
            r["b_ratio_at_most_0.75"] = arms[S32_CANDIDATE_METHOD]["ratio"][0] <= S32_RATIO
    r["adopt"] = bool(r.get("a_ci_lower_above_-0.3") and r.get("b_ratio_at_most_0.75"))
    out["rule"] = r
    return out


# -- rule s32b (lead, session 32): harm check of rule s32's `score_every=4` in the other cells
S32B_CELLS = {(st, f): ("s29", "every4") for st in ("clean", "noise20", "dup30")
              for f in (0.3, 0.5, 0.7) if (st, f) != ("clean", 0.7)}  # fmt: skip


def decide_s32b(rows: list[dict[str, Any]], seeds: list[int] | None = None) -> dict[str, Any]:
    """Rule s32b (`docs/benchmarks/ted-prune-s32/RULE.md`, its section s32b): a harm check of the
    default `score_every=4` adopted by rule s32 (clean f = 0.7 only) in the grid's eight other
    cells, fresh validation seeds 245-249. Harm in a cell iff the 95% CI of every4 - s29 lies below
    0 (upper end < 0). `keep_default` iff the study is complete and no cell shows harm; otherwise
    the default reverts to `score_every=1`."""
    seeds = STUDIES["s32b"].seeds if seeds is None else seeds
    out = _every4_cells(rows, S32B_CELLS, seeds)
    cells = out["cells"]
    r: dict[str, Any] = {"complete": _complete(cells, S32B_CELLS, seeds)}
    harm = sorted(k for k, c in cells.items() if c["every4-s29"]["ci95"][1] < 0)
    r["harm_cells"] = harm
    r["keep_default"] = bool(r["complete"] and not harm)
    out["rule"] = r
    return out


# -- diagnosis s33 (not a rule; USED seeds 245-249): is "within 0.3 points of full data at f = 0.7"
# reachable? Full data, the epoch-matched control (full data for round(f E) epochs, the cosine
# schedule compressed; `bench_mnist1d.EPOCH_MATCHED`), random-dynamic and the default on clean data
S33_ARMS = {"full": "full", "epoch_matched": "epoch_matched", "random_dynamic": "random_dynamic",
            "s29": "TED_s29"}  # fmt: skip
S33_FS = (0.3, 0.5, 0.7)
S33_CELLS = {("clean", 1.0): ("full",),
             **{("clean", f): ("epoch_matched", "random_dynamic", "s29") for f in S33_FS}}  # fmt: skip
S33_GOAL_GAP = -0.3  # issue 15: TED within 0.3 points of full data at f = 0.7
#: rule s32b's committed runs: the default (`TED_s29`) on clean data at f = 0.3 / 0.5, seeds 245-249
S33_REFERENCE = (Path(__file__).resolve().parents[3] / "docs" / "benchmarks" / "ted-prune-s32"
                 / "s32b" / "runs.jsonl")  # fmt: skip
S33_PAIRS = (("epoch_matched", "full"), ("random_dynamic", "full"), ("s29", "full"),
             ("s29", "epoch_matched"), ("random_dynamic", "epoch_matched"),
             ("s29", "random_dynamic"))  # fmt: skip


def diagnose_s33(
    rows: list[dict[str, Any]],
    seeds: list[int] | None = None,
    *,
    reference: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Diagnosis s33 (`docs/benchmarks/ted-prune-s33/DIAGNOSIS.md`; no decision): per f, each
    arm's validation accuracy (mean ± std), achieved f, and the paired differences `S33_PAIRS`
    (a - b, `paired`) on the seeds where all four arms finished; whether each CI's lower end lies
    above -0.3 (the goal's gap to full data); and whether the default's re-runs reproduce the
    `reference` rows (rule s32b's committed cache by default) of the same (seed, f)."""
    seeds = STUDIES["s33"].seeds if seeds is None else seeds
    by = {(r["arm"], r["setting"], r["f_target"], r["seed"]): r for r in rows}
    out = _header()
    for f in S33_FS:
        done = [s for s in seeds if ("full", "clean", 1.0, s) in by
                and all((a, "clean", f, s) in by for a in S33_CELLS[("clean", f)])]  # fmt: skip
        if not done:
            continue
        at = {a: ("clean", 1.0 if a == "full" else f) for a in S33_ARMS}
        acc = {a: np.array([by[(a, *at[a], s)]["val_accuracy"] for s in done]) for a in S33_ARMS}
        cell: dict[str, Any] = {"seeds": done, "n": len(done)}
        cell["accuracy_mean_std"] = {a: [float(v.mean()), float(v.std(ddof=1)) if v.size > 1
                                         else 0.0] for a, v in acc.items()}  # fmt: skip
        cell["f_achieved"] = {a: float(np.mean([by[(a, *at[a], s)]["f"] for s in done]))
                              for a in S33_ARMS}  # fmt: skip
        for a, b in S33_PAIRS:
            d = paired(acc[a] - acc[b])
            d["ci_lower_above_-0.3"] = d["ci95"][0] > S33_GOAL_GAP
            cell[f"{a}-{b}"] = d
        out["cells"][f"clean f={f}"] = cell
    if reference is None:
        lines = S33_REFERENCE.read_text().splitlines() if S33_REFERENCE.exists() else []
        reference = [json.loads(x) for x in lines]
    ref = {(r["setting"], r["f_target"], r["seed"]): r["val_accuracy"] for r in reference
           if r["arm"] == "s29"}  # fmt: skip
    same = [(k, by[("s29", *k)]["val_accuracy"], v) for k, v in sorted(ref.items())
            if ("s29", *k) in by]  # fmt: skip
    out["reproduces_s32b"] = {"n": len(same), "all_equal": all(a == b for _, a, b in same)}
    return out


STUDIES: dict[str, Study] = {
    "s30": Study(
        arms=S30_ARMS,
        cells=S30_CELLS,
        seeds=list(range(230, 240)),
        decide=decide_s30,
        builders={
            "TED_s30_norescore": lambda n, e, f, s: TEDPruner(
                n, e, budget=f, seed=s, noise_min_keep=S30_NORESCORE_FLOOR, score_every=1
            )  # score_every written out, as every earlier method pins it
        },  # fmt: skip
        fields=_detector_and_plan,
    ),
    "s32": Study(
        arms=S32_ARMS,
        cells=S32_CELLS,
        seeds=list(range(240, 245)),
        decide=decide_s32,
        fields=_plan_fields,
    ),
    "s32b": Study(
        arms=S32_ARMS,
        cells=S32B_CELLS,
        seeds=list(range(245, 250)),
        decide=decide_s32b,
        fields=_plan_fields,
    ),
    "s33": Study(
        arms=S33_ARMS,
        cells=S33_CELLS,
        seeds=list(range(245, 250)),  # USED seeds (rule s32b's): a diagnosis, not a rule
        decide=diagnose_s33,
        fields=_plan_fields,
    ),
}


def run(
    out: Path,
    study: Study,
    seeds: list[int],
    settings: list[str],
    fs: list[float],
    *,
    resume: bool,
    time_limit: float | None = None,
) -> int:
    """Run the study's missing (seed, setting, f, arm) runs into `out/runs.jsonl`; 0 when done,
    3 when `time_limit` seconds stopped it (rerun with `resume`)."""
    out.mkdir(parents=True, exist_ok=True)
    cache = out / "runs.jsonl"
    rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
    if rows and not resume:
        raise SystemExit(f"{cache} exists: pass --resume to continue it")
    done = {(r["arm"], r["setting"], r["f_target"], r["seed"]) for r in rows}
    start = time.perf_counter()
    bench_mnist1d._pruner = study.pruner
    try:
        for seed in seeds:
            for setting in settings:
                todo = [(f, arm) for f in fs for arm in study.arms
                        if (arm, setting, f, seed) not in done and study.plan(arm, setting, f)]  # fmt: skip
                if not todo:
                    continue
                train, val, _ = _splits(setting, NUM_SAMPLES, seed)
                for f, arm in todo:
                    if time_limit is not None and time.perf_counter() - start > time_limit:
                        print("time limit reached: rerun with --resume", flush=True)
                        return 3
                    method = study.arms[arm]
                    r = train_mnist1d(method, train, val, EPOCHS, f, seed)
                    row = {"arm": arm, "method": method, "setting": setting, "seed": seed,
                           "f_target": f, "val_accuracy": r["accuracy"], "f": r["f"],
                           "min_class_kept": r["min_class_kept"], "sizes": r["sizes"],
                           "seconds": r["seconds"]}  # fmt: skip
                    row.update(study.fields(_LAST[0]))
                    with cache.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    print(f"{setting} f={f} seed {seed} {arm}: {r['accuracy']:.1f}", flush=True)
    finally:
        bench_mnist1d._pruner = _ORIG_PRUNER
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").strip().split("\n")[0])
    ap.add_argument("--study", choices=sorted(STUDIES), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--settings", nargs="+", default=None)
    ap.add_argument("--fs", type=float, nargs="+", default=None)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--wallclock", type=Path, default=None,
                    help="with --decide (s32): the wall-clock JSON rule (b) reads")  # fmt: skip
    a = ap.parse_args(argv)
    study = STUDIES[a.study]
    if a.decide:
        cache = a.out / "runs.jsonl"
        rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
        kw = {"wallclock": json.loads(a.wallclock.read_text())} if a.wallclock else {}
        res = study.decide(rows, study.seeds, **kw)
        (a.out / "decision.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return 0
    torch.set_num_threads(a.threads)
    settings = a.settings or sorted({s for s, _ in study.cells})
    fs = a.fs or sorted({f for _, f in study.cells})
    return run(a.out, study, a.seeds or study.seeds, settings, fs, resume=a.resume,
               time_limit=a.time_limit)  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(main())
