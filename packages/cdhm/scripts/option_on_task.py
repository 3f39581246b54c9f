"""Diagnosis: one bench method with some options changed, on one task, against its cached runs.

Usage: ``python packages/cdhm/scripts/option_on_task.py CACHE METHOD TASK SEEDS KEY=VALUE ...``,
e.g. ``... cdhm_validate_s27_cache.json CDHM+adda+stickyz0.25+optcarry+sskip A->D 190,191
sticky_z=None``. Fits METHOD (the bench's options, ``cdhm.bench._estimator``) with the overrides
on the hard-tier TASK at each seed (the bench's data, front end and budget) and prints the target
accuracy next to METHOD's cached one on the same task-seed, and their mean difference. Values are
read as Python literals (None, 0.25, 'linear'). Nothing is written; nothing is chosen from it.
"""

from __future__ import annotations

import ast
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from cdhm.bench import BenchConfig, _cache_key, _estimator, _task_data
from cdhm.data import DOMAIN_TIERS


def main(argv: list[str]) -> None:
    if len(argv) < 4:
        raise SystemExit(__doc__)
    cache_file, method, task, seeds, *pairs = argv
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    src, tgt = task.split("->")
    if src not in names or tgt not in names:
        raise SystemExit(f"option_on_task: TASK must be like A->D, got {task!r}")
    s, t = names.index(src), names.index(tgt)
    overrides = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        overrides[key] = ast.literal_eval(value)
    torch.set_num_threads(2)
    cfg = BenchConfig()
    runs = json.loads(Path(cache_file).read_text())[_cache_key(cfg)]
    diffs = []
    for seed in (int(x) for x in seeds.split(",")):
        cached = runs[f"{s}->{t}|{seed}"][method]["metrics"]["acc_target"]
        (_, _, _, t_te), fe = _task_data(s, t, seed, cfg)
        f_str, _, f_ttr, f_tte = fe[cfg.front_end]
        est = _estimator(method, cfg, seed).set_params(**overrides)
        t0 = time.perf_counter()
        est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain)
        acc = float(np.mean(est.predict(f_tte.x) == t_te.y))
        diffs.append(100 * (acc - cached))
        print(
            f"{task} seed {seed}: {method} {100 * cached:.1f} %, with {overrides} {100 * acc:.1f} % "
            f"({time.perf_counter() - t0:.1f} s)"
        )
    print(f"mean difference {np.mean(diffs):+.2f} points over {len(diffs)} seeds")


if __name__ == "__main__":
    main(sys.argv[1:])
