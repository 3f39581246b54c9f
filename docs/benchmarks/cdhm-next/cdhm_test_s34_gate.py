"""Gate of rule s34 (one-host re-read of issue 18's headline): re-fit committed default units.

Re-fits the CDHM default's bench row on a few (task, seed) units of the committed test cache
``cdhm_test_adda_cache.json`` (rows made on fc-v1272, 2026-12-05) with the bench's own
``run_task`` and the same ``BenchConfig`` as ``cdhm bench --methods ...`` (no ``--quick``: all 12
hard-tier tasks, seeds 0-4; the config's cache key is asserted equal to the committed one), and
compares every stored field exactly (``==``): each metric except ``train_seconds`` (wall-clock,
not a result), the predictions and the labels. Writes
``cdhm_test_s34_gate.json`` next to this file (nothing else; the committed cache is only read).
Exit status 0 when every unit is bit-equal, 1 otherwise.

Run (locked): ``flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python
docs/benchmarks/cdhm-next/cdhm_test_s34_gate.py``.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
from cdhm.bench import BenchConfig, _cache_key, run_task
from cdhm.data import DOMAIN_TIERS, transfer_tasks

HERE = Path(__file__).resolve().parent
DEFAULT_ROW = "CDHM+adda+stickyz0.25+optcarry+sskip+sar1"
#: the three units of the default row with the smallest committed train_seconds (short tasks)
UNITS = [(3, 1, 4), (3, 1, 0), (3, 2, 4)]
NOT_A_RESULT = ("train_seconds",)


def main() -> int:
    torch.set_num_threads(2)  # as `cdhm bench` (its --threads default)
    committed = json.loads((HERE / "cdhm_test_adda_cache.json").read_text())
    (ckey,) = committed
    runs = committed[ckey]
    cfg = BenchConfig(seeds=list(range(5)), tier="hard", front_end="order-envelope")
    cfg.tasks = transfer_tasks(len(DOMAIN_TIERS["hard"]))
    cfg.methods, cfg.ablations, cfg.variants = (DEFAULT_ROW,), False, False
    if _cache_key(cfg) != ckey:
        print("config key differs from the committed cache's key", file=sys.stderr)
        return 2
    out: dict = {
        "row": DEFAULT_ROW,
        "host": platform.node(),
        "started_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "key_equal": True,
        "units": [],
    }
    all_equal = True
    for s, t, seed in UNITS:
        job = f"{s}->{t}|{seed}"
        old = runs[job][DEFAULT_ROW]
        t0 = time.perf_counter()
        new = run_task(s, t, seed, cfg, [DEFAULT_ROW])[DEFAULT_ROW]
        wall = time.perf_counter() - t0
        fields = {}
        for k, v in old["metrics"].items():
            nv = new["metrics"].get(k)
            fields[k] = {
                "committed": v,
                "today": None if nv is None else float(nv),
                "equal": nv is not None and float(nv) == v,
                "compared": k not in NOT_A_RESULT,
            }
        pred_eq = np.asarray(new["pred"]).tolist() == old["pred"]
        true_eq = np.asarray(new["true"]).tolist() == old["true"]
        unit_eq = pred_eq and true_eq and all(f["equal"] for f in fields.values() if f["compared"])
        all_equal &= unit_eq
        out["units"].append(
            {
                "job": job,
                "wall_s": wall,
                "bit_equal": unit_eq,
                "pred_equal": pred_eq,
                "true_equal": true_eq,
                "metrics": fields,
            }
        )
        print(job, "bit-equal" if unit_eq else "DIFFERS", f"{wall:.1f} s", flush=True)
    out["all_bit_equal"] = all_equal
    out["finished_utc"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    (HERE / "cdhm_test_s34_gate.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0 if all_equal else 1


if __name__ == "__main__":
    sys.exit(main())
