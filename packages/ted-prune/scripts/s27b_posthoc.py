"""Post-hoc, reported only (decides nothing; run after rule s27b's decision): why `noise_late`
lost under noise. On the same validation seeds 180-189 (noise20, f = 0.7 and 0.5) it runs
session 27's `late` (`warmup=1, ramp=0, anneal=3`: does s27's gain replicate on these seeds?) and
random draws on `noise_late`'s late branch (`warmup=2, ramp=0, anneal=3`: schedule vs selection).
`noise_late` itself, having detected noise in every noise20 run, is TED on `warmup=2, ramp=0,
anneal=3` at the same budget, so its rows in `../runs.jsonl` are that arm.

Usage::

    python packages/ted-prune/scripts/s27b_posthoc.py --out DIR/posthoc [--resume] [--time-limit S]
    python packages/ted-prune/scripts/s27b_posthoc.py --out DIR/posthoc --summary DIR/runs.jsonl
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import s27b_validation as sv
from ted_prune.baselines import RandomDynamic

ARMS = {"late_w1": "TED:prune_residual_sample_w1_tail20_late", "random_late_w2": "random_w2r0an3"}
_BASE_PRUNER = sv._pruner


def _pruner(method: str, n: int, epochs: int, f: float, seed: int, sizes: Any) -> Any:
    if method == "random_w2r0an3":
        p = RandomDynamic(n, epochs, budget=f, seed=seed, warmup=2, ramp=0, anneal=3)
        sv._LAST[:] = [p]
        return p
    return _BASE_PRUNER(method, n, epochs, f, seed, sizes)


def summary(rows: list[dict[str, Any]], main_rows: list[dict[str, Any]]) -> dict[str, Any]:
    by = {(r["arm"], r["f_target"], r["seed"]): r["val_accuracy"]
          for r in [*rows, *main_rows] if r["setting"] == "noise20"}  # fmt: skip
    out: dict[str, Any] = {}
    for f in sv.FS:
        arms = ["default", "noise_late", "random_dynamic", "InfoBatch", *ARMS]
        done = [s for s in sv.SEEDS if all((a, f, s) in by for a in arms)]
        acc = {a: np.array([by[(a, f, s)] for s in done]) for a in arms}
        cell: dict[str, Any] = {"n": len(done), "accuracy_mean_std": {
            a: [float(v.mean()), float(v.std(ddof=1))] for a, v in acc.items()}}  # fmt: skip
        for x, y in [("late_w1", "default"), ("late_w1", "noise_late"),
                     ("noise_late", "random_late_w2"), ("random_late_w2", "random_dynamic")]:  # fmt: skip
            d = acc[x] - acc[y]
            cell[f"{x}-{y}"] = {"mean": float(d.mean()), "ci95": sv._ci(d)}
        out[f"noise20 f={f}"] = cell
    return out


def main() -> None:
    args = sys.argv[1:]
    if "--summary" in args:
        i = args.index("--summary")
        out = Path(args[args.index("--out") + 1])
        rows = [json.loads(x) for x in (out / "runs.jsonl").read_text().splitlines()]
        main_rows = [json.loads(x) for x in Path(args[i + 1]).read_text().splitlines()]
        res = summary(rows, main_rows)
        (out / "posthoc.json").write_text(json.dumps(res, indent=1))
        print(json.dumps(res, indent=1))
        return
    sv.ARMS = ARMS
    sv._pruner = _pruner
    sv.main([*args, "--settings", "noise20"])


if __name__ == "__main__":
    main()
