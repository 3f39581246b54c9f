"""Validation run of `TEDPruner(uniform_mix=0.5)` against TED's default and random-dynamic (issue 15,
session 25; the rule is `docs/benchmarks/ted-prune-mix-s25/RULE.md`, committed before the runs).

Usage::

    python packages/ted-prune/scripts/uniform_mix_validation.py --out DIR [--resume]
        [--time-limit S] [--seeds 110 ... 119] [--settings clean noise20]
    python packages/ted-prune/scripts/uniform_mix_validation.py --out DIR --decide

Per (setting, seed, arm) one MNIST-1D run (`train_mnist1d`, 5,000 samples x 20 epochs, f = 0.7,
one thread), scored on the VALIDATION split (never test), with the coverage measurements of
`coverage_diagnosis.py` (times kept, rarely-kept share, loss-weight ESS). Each finished run is
appended to `DIR/runs.jsonl`; `--resume` skips finished runs; `--time-limit` stops starting new
ones. `--decide` applies the rule and writes `DIR/decision.json`. `summarize`, `candidate_rule` and
`main` are shared with `rescore_validation.py` (session 25b: same data, size and runs, other arms).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from coverage_diagnosis import _run  # this folder: scripts run with it on sys.path
from ted_prune import TEDPruner
from ted_prune.bench_mnist1d import _splits

ARMS = {
    "default": "TED",
    "mix50": "TED:prune_residual_sample_mix50",
    "random_dynamic": "random_dynamic",
}
# the control of `--control` (RULE-control.md): random draws on TED's own per-epoch training sizes
# (`RandomSizes(dynamic=True)`, the bench's "random_InfoBatch" method given TED's planned sizes),
# i.e. random selection with TED's *training* budget (f minus what TED's re-scoring passes spend)
CONTROL = {"random_TEDsizes": "random_InfoBatch"}
SEEDS = list(range(110, 120))
SETTINGS = ["clean", "noise20"]
NUM_SAMPLES, EPOCHS, F = 5000, 20, 0.7


def _ci(d: np.ndarray) -> list[float]:
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (10_000, d.size))].mean(1)
    return [float(x) for x in np.percentile(boot, [2.5, 97.5])]


COVERAGE_KEYS = ("kept_at_most_quarter", "never_kept", "longest_miss_mean_p99",
                 "times_kept_mean_std", "weights_mean_capshare_ess", "min_class_kept",
                 "kept_loss_q10_q50_q90", "all_loss_q10_q50_q90")  # fmt: skip


def summarize(
    rows: list[dict[str, Any]],
    arms: dict[str, str],
    seeds: list[int],
    pairs: dict[str, tuple[str, str]],
) -> dict[str, Any]:
    """Per setting, on the seeds where every arm finished: accuracy mean ± std per arm, the paired
    differences `pairs` (name: (x, y), x - y) with bootstrap CIs, the control (if run; reported
    only) and the coverage measurements' means."""
    by = {(r["arm"], r["setting"], r["seed"]): r for r in rows}
    out: dict[str, Any] = {"split": "validation", "f": F, "num_samples": NUM_SAMPLES,
                           "epochs": EPOCHS, "settings": {}}  # fmt: skip
    for setting in SETTINGS:
        done = [s for s in seeds if all((a, setting, s) in by for a in arms)]
        if not done:
            continue
        acc = {a: np.array([by[(a, setting, s)]["val_accuracy"] for s in done]) for a in arms}
        res: dict[str, Any] = {"seeds": done, "n": len(done)}
        res["accuracy_mean_std"] = {a: [float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0]
                                    for a, v in acc.items()}  # fmt: skip
        for name, (x, y) in pairs.items():
            d = acc[x] - acc[y]
            res[name] = {"mean": float(d.mean()), "ci95": _ci(d)}
        cs = [s for s in done if ("random_TEDsizes", setting, s) in by]
        if cs:  # RULE-control.md: reported, decides nothing
            c = np.array([by[("random_TEDsizes", setting, s)]["val_accuracy"] for s in cs])
            res["control"] = {"seeds": cs, "random_TEDsizes_mean_std": [float(c.mean()),
                              float(c.std(ddof=1)) if c.size > 1 else 0.0]}  # fmt: skip
            for a in arms:
                d = np.array([by[(a, setting, s)]["val_accuracy"] for s in cs]) - c
                res["control"][f"{a}-random_TEDsizes"] = {"mean": float(d.mean()), "ci95": _ci(d)}
        for key in COVERAGE_KEYS:
            res[key] = {a: np.mean([by[(a, setting, s)][key] for s in done], 0).tolist()
                        for a in arms if by[(a, setting, done[0])].get(key) is not None}  # fmt: skip
        out["settings"][setting] = res
    return out


def candidate_rule(
    out: dict[str, Any], rows: list[dict[str, Any]], arm: str, n_seeds: int
) -> dict[str, bool]:
    """RULE.md's criteria for candidate `arm` against `default` (needs the pairs `{arm}-default`
    and `{arm}-random_dynamic` in `out`): complete data, clean CI above 0, noise20 mean >= -0.3,
    no class dropped in any of its runs; and the goal read, clean CI above random-dynamic's."""
    clean, noisy = out["settings"].get("clean"), out["settings"].get("noise20")
    complete = bool(clean and noisy and clean["n"] == n_seeds and noisy["n"] == n_seeds)
    a1 = bool(clean and clean[f"{arm}-default"]["ci95"][0] > 0)
    a2 = bool(noisy and noisy[f"{arm}-default"]["mean"] >= -0.3)
    a3 = all(r["min_class_kept"] > 0 for r in rows if r["arm"] == arm)
    return {"complete": complete, "A1_clean_ci_above_0": a1, "A2_noise20_mean_ge_-0.3": a2,
            "A3_no_class_drops": a3, "adopt": complete and a1 and a2 and a3,
            f"goal_read_clean_{arm}_ahead_of_random_dynamic":
                bool(clean and clean[f"{arm}-random_dynamic"]["ci95"][0] > 0)}  # fmt: skip


def decide_two(
    rows: list[dict[str, Any]],
    arms: dict[str, str],
    seeds: list[int],
    candidates: tuple[str, str],
    tie: str,
    between: tuple[str, str],
    extra: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """The two-candidate rule of sessions 25b / 25c / 25e / 26: each candidate is adoptable iff
    `candidate_rule` holds for it; if both are, the one with the larger clean mean over `default` is
    adopted (a tie: `tie`, the smaller change). Reported pairs: each candidate - default and -
    random_dynamic, `between` (x - y), default - random_dynamic and the `extra` pairs (x, y)
    (reported only; arms outside the candidates, e.g. session 26's `w1`, decide nothing)."""
    if tie not in candidates:
        raise ValueError(f"tie={tie!r} must be one of candidates={candidates!r}")
    pairs = {f"{c}-{b}": (c, b) for c in candidates for b in ("default", "random_dynamic")}
    pairs |= {f"{between[0]}-{between[1]}": between,
              "default-random_dynamic": ("default", "random_dynamic")}  # fmt: skip
    pairs |= {f"{x}-{y}": (x, y) for x, y in extra}
    out = summarize(rows, arms, seeds, pairs)
    rules = {c: candidate_rule(out, rows, c, len(seeds)) for c in candidates}
    ok = [c for c in candidates if rules[c]["adopt"]]
    clean = out["settings"].get("clean", {})
    best = max(ok, key=lambda c: (clean[f"{c}-default"]["mean"], c == tie)) if ok else None
    out["rule"] = {**rules, "adopt": best}
    return out


def decide(rows: list[dict[str, Any]]) -> dict[str, Any]:
    pairs = {"mix50-default": ("mix50", "default"),
             "mix50-random_dynamic": ("mix50", "random_dynamic"),
             "default-random_dynamic": ("default", "random_dynamic")}  # fmt: skip
    out = summarize(rows, ARMS, SEEDS, pairs)
    out["rule"] = candidate_rule(out, rows, "mix50", len(SEEDS))
    return out


def main(
    argv: list[str] | None = None,
    *,
    arms: dict[str, str] = ARMS,
    seeds: list[int] = SEEDS,
    decide: Any = decide,
    control: dict[str, str] | None = CONTROL,
    doc: str | None = __doc__,
) -> None:
    """Run (or with `--decide` decide) a validation study of `arms` on `seeds` x `SETTINGS`;
    `control`: the arms `--control` runs instead (None: no control)."""
    ap = argparse.ArgumentParser(description=(doc or "").strip().split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--decide", action="store_true")
    ap.add_argument("--time-limit", type=float, default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=seeds)
    ap.add_argument("--settings", nargs="+", default=SETTINGS)
    ap.add_argument("--threads", type=int, default=1)
    if control is not None:
        ap.add_argument(
            "--control", action="store_true", help="run only the control arm (RULE-control.md)"
        )
    a = ap.parse_args(argv)
    use_control = control is not None and a.control
    torch.set_num_threads(a.threads)
    a.out.mkdir(parents=True, exist_ok=True)
    cache = a.out / "runs.jsonl"
    rows = [json.loads(x) for x in cache.read_text().splitlines()] if cache.exists() else []
    if a.decide:
        res = decide(rows)
        (a.out / "decision.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    if rows and not a.resume:
        raise SystemExit(f"{cache} exists: pass --resume to continue it")
    done = {(r["arm"], r["setting"], r["seed"]) for r in rows}
    start = time.perf_counter()
    for seed in a.seeds:
        for setting in a.settings:
            for arm, method in (control if use_control else arms).items():
                if (arm, setting, seed) in done:
                    continue
                if a.time_limit is not None and time.perf_counter() - start > a.time_limit:
                    print("time limit reached: rerun with --resume", flush=True)
                    raise SystemExit(3)
                sizes = None
                if use_control:  # TED's planned per-epoch sizes on this training set
                    n = len(_splits(setting, NUM_SAMPLES, seed)[0])
                    sizes = TEDPruner(n, EPOCHS, budget=F).planned_sizes()
                r = _run(method, seed, NUM_SAMPLES, EPOCHS, F, setting, sizes)
                r["arm"] = arm
                with cache.open("a") as fh:
                    fh.write(json.dumps(r) + "\n")
                print(f"{setting} seed {seed} {arm}: {r['val_accuracy']:.1f}", flush=True)


if __name__ == "__main__":
    main()
