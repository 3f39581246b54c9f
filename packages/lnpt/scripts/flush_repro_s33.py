"""Session 33: do committed units reproduce with lnpt's run set-up flushing denormal floats?

Since session 33 every lnpt run function (`run_bench`, `student_lr_check`, `run_ablation`, ...)
runs inside `lnpt.runtime.flush_denormal()`; no cache key names it. This script re-runs, into a
scratch folder and from scratch (no resume), three committed units of different kinds that were
made **without** the flush, and compares every stored metric except the seconds exactly:

- the digits CNN at the test protocol's sizes (rule s31's `validation_at_test_sizes.config`, 480
  epochs read at 240 too), seed 14: `snip+supervised` (152 s in session 31, a denormal-slowed
  unit) and `lnpt+label-free`; committed in `docs/benchmarks/lnpt_s31_test_sizes/cache`;
- the digits MLP of the validation ablation (`lnpt bench --ablation`, `AblationConfig()`), seed 0,
  the default LNPT variant and the references `snip+supervised`, `snip+label-free`,
  `synflow+label-free`; committed in `docs/benchmarks/cache/ablation-mlp-seed0-*.jsonl`.

Usage (under `flock /tmp/heavy.lock nice -n 5`): `python packages/lnpt/scripts/flush_repro_s33.py
run` trains into `/tmp/lnpt_s33_flush` and writes `docs/benchmarks/lnpt_s33_flush/repro.json`
(`reproduced`: every compared metric equal; `flush_on_during_run`: the state inside a run).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent
sys.path.insert(0, str(SCRIPTS))

import validation_at_test_sizes as s31  # noqa: E402
from lnpt import runtime  # noqa: E402
from lnpt.ablation import DEFAULT_VARIANT, AblationConfig, run_ablation  # noqa: E402
from lnpt.student_lr import student_lr_check  # noqa: E402

OUT = Path("docs/benchmarks/lnpt_s33_flush")
SCRATCH = Path("/tmp/lnpt_s33_flush")
CNN_SEED = 14
CNN_ARMS = ("lnpt+label-free", "snip+supervised")
COMMITTED_CNN = Path("docs/benchmarks/lnpt_s31_test_sizes")
COMMITTED_MLP = Path("docs/benchmarks/cache")


def jsonl_units(paths: list[Path]) -> dict[str, list[dict]]:
    """Unit key -> its records, from cache files of `Progress` (JSON lines)."""
    out: dict[str, list[dict]] = {}
    for p in paths:
        for line in p.read_text().splitlines():
            if line.strip():
                d = json.loads(line)
                out[d["key"]] = d["value"]
    return out


def compare(kind: str, here: dict[str, list[dict]], old: dict[str, list[dict]]) -> list[dict]:
    """One row per (unit, record, metric) of `here`, equal iff bit-identical to `old`; seconds
    (`*_seconds`, timings) are not compared. A unit missing from `old` is a row with equal False."""
    rows = []
    for key, records in sorted(here.items()):
        before = old.get(key)
        if before is None or len(before) != len(records):
            rows.append({"kind": kind, "unit": key, "metric": None, "equal": False})
            continue
        for r, q in zip(records, before, strict=True):
            for m, v in sorted(r["metrics"].items()):
                if m.endswith("_seconds"):
                    continue
                w = q["metrics"].get(m)
                rows.append(
                    {"kind": kind, "unit": key, "method": r["method"], "metric": m,
                     "committed": w, "here": v, "equal": v == w}
                )  # fmt: skip
    return rows


def run() -> dict:
    t0 = time.perf_counter()
    SCRATCH.mkdir(parents=True, exist_ok=True)
    before = runtime.flush_denormal_on()
    # 1. digits CNN, rule s31's protocol, seed 14, from scratch
    sc = s31.config(CNN_ARMS, seeds=1)
    sc.first_seed = CNN_SEED
    sc.check()
    cnn_out = SCRATCH / "cnn"
    student_lr_check(sc, cnn_out, "flush_repro_s33.py run (cnn)", resume=False, progress=False)
    after_cnn = runtime.flush_denormal_on()
    here = jsonl_units(sorted((cnn_out / "cache").glob(f"student-lr-cnn-seed{CNN_SEED}-*.jsonl")))
    names = {p.name for p in (cnn_out / "cache").glob("*.jsonl")}
    old_paths = [COMMITTED_CNN / "cache" / n for n in sorted(names)]
    old = jsonl_units([p for p in old_paths if p.exists()])
    rows = compare("digits CNN, rule s31 protocol, seed 14", here, old)
    t_cnn = time.perf_counter() - t0
    # 2. digits MLP, the validation ablation, seed 0, default variant + references
    acfg = AblationConfig()
    acfg.models, acfg.seeds, acfg.variants = ("mlp",), 1, (DEFAULT_VARIANT,)
    acfg.check()
    mlp_out = SCRATCH / "mlp"
    run_ablation(acfg, mlp_out, "flush_repro_s33.py run (mlp)", resume=False, progress=False)
    files = sorted((mlp_out / "cache").glob("ablation-mlp-seed0-*.jsonl"))
    here = jsonl_units(files)
    old = jsonl_units([COMMITTED_MLP / p.name for p in files if (COMMITTED_MLP / p.name).exists()])
    rows += compare("digits MLP, validation ablation, seed 0", here, old)
    doc = {
        "what": "committed units made without the denormal flush, re-run from scratch (locked, 2 "
        "threads) with lnpt's run set-up (lnpt.runtime.flush_denormal inside every run function); "
        "every stored metric but the seconds compared exactly",
        "command": "flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python "
        "packages/lnpt/scripts/flush_repro_s33.py run",
        "flush_on_before_run": before,
        "flush_on_after_run": after_cnn,
        "cache_files_same_name": sorted(names) + [p.name for p in files],
        "seconds": {"cnn": t_cnn, "total": time.perf_counter() - t0},
        "n_compared": len(rows),
        "reproduced": bool(rows) and all(r["equal"] for r in rows),
        "rows": rows,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "repro.json").write_text(json.dumps(doc, indent=1) + "\n")
    bad = [r for r in rows if not r["equal"]]
    print(f"compared {len(rows)} metrics, {len(bad)} differ; reproduced={doc['reproduced']}")
    for r in bad:
        print(r)
    return doc


def _mlp(variants: tuple[str, ...], out: Path, flush: bool) -> dict[str, list[dict]]:
    """The MLP validation ablation's seed 0 with `variants` (and the references), from scratch,
    with the denormal flush on or off for the whole run."""
    acfg = AblationConfig()
    acfg.models, acfg.seeds, acfg.variants = ("mlp",), 1, variants
    acfg.check()
    with runtime.flush_denormal(flush):
        run_ablation.__wrapped__(acfg, out, f"flush_repro_s33.py mlp-check (flush={flush})",
                                 resume=False, progress=False)  # fmt: skip
    return jsonl_units(sorted((out / "cache").glob("ablation-mlp-seed0-*.jsonl")))


def mlp_check(full: bool) -> dict:
    """`run` found two MLP reference units different from the committed ones. Which cause: the
    flush, or the run's unit order (the committed run scored 11 LNPT variants first; `run` one)?
    (a) `run`'s subset again with the flush off, compared with `run`'s flush-on subset;
    (b, with `--full` only) the committed run's whole variant list with the flush on, compared
    with the committed cache. Writes `docs/benchmarks/lnpt_s33_flush/mlp_check.json`."""
    t0 = time.perf_counter()
    subset_on = jsonl_units(sorted((SCRATCH / "mlp" / "cache").glob("ablation-mlp-seed0-*.jsonl")))
    subset_off = _mlp((DEFAULT_VARIANT,), SCRATCH / "mlp_noflush", False)
    a = compare("MLP subset: flush off (here) vs flush on (committed = run's)", subset_off,
                subset_on)  # fmt: skip
    b = []
    if full:
        got = _mlp(AblationConfig().variants, SCRATCH / "mlp_full", True)
        files = sorted((SCRATCH / "mlp_full" / "cache").glob("ablation-mlp-seed0-*.jsonl"))
        old = jsonl_units([COMMITTED_MLP / p.name for p in files])
        b = compare("MLP all committed variants, flush on (here) vs committed", got, old)
    doc = {
        "what": mlp_check.__doc__,
        "command": "flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python "
        "packages/lnpt/scripts/flush_repro_s33.py mlp-check",
        "flush_changes_nothing": bool(a) and all(r["equal"] for r in a),
        "full_order_reproduces_committed": (bool(b) and all(r["equal"] for r in b))
        if full
        else "not run",
        "seconds": time.perf_counter() - t0,
        "rows": a + b,
    }
    (OUT / "mlp_check.json").write_text(json.dumps(doc, indent=1) + "\n")
    print({k: v for k, v in doc.items() if k != "rows"})
    for r in a + b:
        if not r["equal"]:
            print(r)
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("mode", choices=("run", "mlp-check"))
    p.add_argument("--full", action="store_true", help="mlp-check: also the committed order")
    args = p.parse_args(argv)
    run() if args.mode == "run" else mlp_check(args.full)
    return 0


if __name__ == "__main__":
    sys.exit(main())
