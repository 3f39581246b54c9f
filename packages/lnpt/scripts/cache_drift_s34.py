"""Session 34: why 7 committed units of the MLP scoring ablation do not reproduce, and whether it
moves the ablation's committed decision. No training: it reads committed files only.

Inputs: the committed scoring ablation under the current training (`AblationConfig()`, the
`ablation-<model>-seed<s>-<hash>.jsonl` caches in `docs/benchmarks/cache`, made 2026-12-02 on host
`...-fc-v1098`), the lead's `mlp-check --full` re-run of the MLP's seed 0 on today's host
(`docs/benchmarks/lnpt_s33_flush/mlp_check.json`, every variant, the committed order), and this
session's bisection end points (`BISECT`, four units of seed 0 trained with the code of 004e879, the
commit that made the cache, and of this branch; sha256 of each trained student's state).

Writes `docs/benchmarks/lnpt_s34_cache_drift.json`: the bisection, the drifted units, and the
paired rule (`lnpt.ablation.choose_paired`, `paired_readings`) on the committed units and with the
MLP's seed 0 replaced by today's host's units, and `OPS`. Usage:
`python packages/lnpt/scripts/cache_drift_s34.py` (writes the JSON);
`ATEN_CPU_CAPABILITY=default|avx2 python packages/lnpt/scripts/cache_drift_s34.py ops` prints the
hashes of `OPS` under that torch CPU dispatch (a few seconds).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from lnpt.ablation import (
    DEFAULT_VARIANT,
    AblationConfig,
    cache_key,
    choose_paired,
    paired_readings,
    report_hash,
)
from maskloop import report

CACHE = Path("docs/benchmarks/cache")
MLP_CHECK = Path("docs/benchmarks/lnpt_s33_flush/mlp_check.json")
OUT = Path("docs/benchmarks/lnpt_s34_cache_drift.json")
# Seed 0 of the MLP ablation, arms [default variant, checkpoints-3, snip+label-free,
# synflow+label-free] (`AblationConfig(models=("mlp",), seeds=1, variants=(DEFAULT_VARIANT,
# "checkpoints-3"), references=("snip+label-free", "synflow+label-free"))`, from scratch, 2
# threads, the flush off at 004e879 (it did not exist) and on at the branch), each run with
# `PYTHONPATH=<worktree>/packages/lnpt/src:<worktree>/shared/maskloop/src` from a
# `git worktree add --detach` of the commit; one locked hold, 00:02:40-00:11:33 UTC (the machine
# was shared with unlocked work: 155 s and 347 s). val accuracy, sha256[:16] of the student's
# state_dict (names and bytes).
BISECT = {
    "commands": "flock /tmp/heavy.lock nice -n 5 ./run.sh <worktree> <tag> (PYTHONPATH=<worktree>"
    "/packages/lnpt/src:<worktree>/shared/maskloop/src python drive.py <out> "
    "linear-adaptor-raw-iterative-10,checkpoints-3 snip+label-free,synflow+label-free)",
    "host": "Linux-6.18.44-fc-v1272-x86_64-with-glibc2.36 | AuthenticAMD family 23 model 1 "
    "stepping 2 | torch 2.14.1+cu130 | AVX2",
    "arms": [
        "0.95/lnpt:linear-adaptor-raw-iterative-10+label-free#0dc23801",
        "0.95/lnpt:checkpoints-3+label-free#3c239da1",
        "0.95/snip+label-free",
        "0.95/synflow+label-free",
    ],
    "004e879": {
        "val_accuracy": [0.9444444444444444, 0.95, 0.95, 0.9611111111111111],
        "state_sha256": ["90a0249cb0c68738", "d4c25ece4fd9dc43", "da92af8a54e46fb9", "71162ce4323c160a"],
    },
    "lnpt-34 (7b1d953 + the retirement)": {
        "val_accuracy": [0.9444444444444444, 0.95, 0.95, 0.9611111111111111],
        "state_sha256": ["90a0249cb0c68738", "d4c25ece4fd9dc43", "da92af8a54e46fb9", "71162ce4323c160a"],
    },
}  # fmt: skip


# `... cache_drift_s34.py ops` on today's host under two torch CPU dispatches (same machine, same
# inputs from NumPy): sha256[:12] of each op's output. Both the supervised loss's gradient and the
# label-free loss (value and gradient) change bits with the dispatch; a matmul does not.
OPS = {
    "AVX2": {"ce": "92e37e1aa749", "ce_grad": "3213b07bc1aa", "log_softmax": "79e208c27694",
             "exp": "71627d529cb9", "row_sum_10": "ccef6ad0ffc0", "kd": "bf59852eef93",
             "kd_grad": "868f1655c9ab", "linear": "ca30ed241a69"},
    "DEFAULT": {"ce": "92e37e1aa749", "ce_grad": "3cd03b6fdcca", "log_softmax": "351d39929a9b",
                "exp": "4d3bdb24ce0d", "row_sum_10": "1fdf59605a47", "kd": "26ed4b1c6420",
                "kd_grad": "7799c76609ab", "linear": "ca30ed241a69"},
}  # fmt: skip


def ops() -> dict[str, str]:
    """sha256[:12] of the supervised and the label-free loss's ops (tau = 4, 64 x 10 logits) under
    the running torch CPU dispatch; inputs from NumPy's generator, so they do not depend on it."""
    import hashlib

    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)

    def h(t: torch.Tensor) -> str:
        return hashlib.sha256(t.detach().contiguous().numpy().tobytes()).hexdigest()[:12]

    rng = np.random.default_rng(0)

    def r(*shape: int) -> torch.Tensor:
        return torch.from_numpy(rng.standard_normal(shape).astype(np.float32))

    out = {"capability": torch.backends.cpu.get_cpu_capability()}
    l_s, l_t = (3 * r(64, 10)).requires_grad_(), 3 * r(64, 10)
    y = torch.from_numpy(rng.integers(0, 10, 64))
    ce = F.cross_entropy(l_s, y)
    out["ce"], out["ce_grad"] = h(ce), h(torch.autograd.grad(ce, l_s)[0])
    tau = 4.0
    log_ps, log_pt = F.log_softmax(l_s / tau, dim=-1), F.log_softmax(l_t / tau, dim=-1)
    pt = log_pt.exp()
    kd_rows = (pt * (log_pt - log_ps)).sum(-1) * tau**2
    kd = kd_rows.mean()
    out["log_softmax"], out["exp"], out["row_sum_10"] = h(log_ps), h(pt), h(kd_rows)
    out["kd"], out["kd_grad"] = h(kd), h(torch.autograd.grad(kd, l_s)[0])
    out["linear"] = h(F.linear(r(64, 64), r(10, 64)))
    return out


def load(models: tuple[str, ...]) -> tuple[report.Results, dict[tuple[str, int, str], float]]:
    """The committed ablation's records of `models` (seeds 0-4) and unit -> val accuracy."""
    acfg = AblationConfig()
    key = cache_key(acfg)
    res = report.Results("lnpt", "committed")
    units = {}
    for m in models:
        for seed in range(acfg.seeds):
            path = CACHE / f"ablation-{m}-seed{seed}-{report_hash(key + m)}.jsonl"
            for line in path.read_text().splitlines():
                d = json.loads(line)
                for r in d["value"]:
                    res.add(r["method"], r["seed"], r["metrics"], **r["setting"])
                    units[(m, seed, d["key"])] = r["metrics"]["val_accuracy"]
    return res, units


def with_seed0(units: dict, here: dict[str, float]) -> report.Results:
    res = report.Results("lnpt", "seed 0 of the MLP from today's host")
    for (m, seed, key), acc in units.items():
        if m == "mlp" and seed == 0:
            acc = here[key]
        method = key.split("/", 1)[1].split("#")[0]
        res.add(method, seed, {"val_accuracy": acc}, model=m, sparsity=0.95)
    return res


def readings(res: report.Results, models: tuple[str, ...]) -> dict:
    acfg = AblationConfig()
    out = {
        "choice": choose_paired(res, models, acfg.variants, DEFAULT_VARIANT),
        "candidates": {},
    }
    for c in paired_readings(res, models, acfg.variants, DEFAULT_VARIANT):
        out["candidates"][c.variant] = {
            "qualifies": c.qualifies,
            "ahead_on": list(c.ahead_on),
            "worse_on": list(c.worse_on),
            **{
                f"{m} delta points": [round(100 * x, 2) for x in (d.mean, d.low, d.high)]
                for m, d in c.deltas.items()
            },
        }
    return out


def main() -> int:
    if sys.argv[1:] == ["ops"]:
        print(json.dumps(ops()))
        return 0
    models = ("mlp", "cnn", "cnn1d")
    res, units = load(models)
    check = json.loads(MLP_CHECK.read_text())
    full = [r for r in check["rows"] if r["kind"].startswith("MLP all committed variants")]
    here = {r["unit"]: r["here"] for r in full}
    drifted = [
        {"unit": r["unit"], "committed": r["committed"], "today's host": r["here"],
         "delta points": round(100 * (r["here"] - r["committed"]), 2)}
        for r in full if not r["equal"]
    ]  # fmt: skip
    a = readings(res, models)
    b = readings(with_seed0(units, here), models)
    mlp_a = {v: c.get("mlp delta points") for v, c in a["candidates"].items()}
    mlp_b = {v: c.get("mlp delta points") for v, c in b["candidates"].items()}
    doc = {
        "what": __doc__.split("\n\n")[0],
        "command": "python packages/lnpt/scripts/cache_drift_s34.py",
        "bisect": BISECT,
        "ops under two torch CPU dispatches": OPS,
        "bisect reading": "the code of 004e879 (the commit that made the cache) and of this branch "
        "train bit-identical students (equal state hashes) and both read the values of today's "
        "host, not the committed ones: no commit in 004e879..7b1d953 changed these units; the "
        "committed ones were trained on another host",
        "seed 0 units compared": len(full),
        "drifted": drifted,
        "drifted label-free / supervised": [
            sum(1 for r in full if not r["equal"] and "label-free" in r["unit"]),
            sum(1 for r in full if not r["equal"] and "supervised" in r["unit"]),
        ],
        "decision committed": a["choice"],
        "decision with today's seed 0": b["choice"],
        "decision changed": a["choice"] != b["choice"],
        "qualifying committed": [v for v, c in a["candidates"].items() if c["qualifies"]],
        "qualifying with today's seed 0": [v for v, c in b["candidates"].items() if c["qualifies"]],
        "mlp paired delta to the default, points [mean, low, high]": {
            v: {"committed": mlp_a[v], "today's seed 0": mlp_b.get(v)} for v in mlp_a
        },
    }
    OUT.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k not in ("bisect", "what")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
