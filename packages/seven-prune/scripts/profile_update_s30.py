"""Session 30, part A: the update's chunking A/B inside training, on MiniLM's real state.

Rule: ``docs/benchmarks/seven-prune-overhead-s30-rule.md``. Usage (repository root, under
``flock /tmp/heavy.lock nice -n 5``):
``python packages/seven-prune/scripts/profile_update_s30.py --rounds 60 --json OUT.json``.

MiniLM at the overhead bench's 16 x 32 batch, AdamW hooked by the pruner as the bench has it, one
SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates, the window as long as the run),
2 threads. Each round is one timed training step and `pruner.step()` (`bench._timed_step`); the
update variant rotates round by round over `VARIANTS` (blocks of four consecutive rounds hold
each variant once), so every variant runs on the same evolving state, right after an optimizer
step, as in the benchmark. The variants change no bit (`tests/test_seven_prune_chunked_update.py`).

Read per variant: the pruner's time on update rounds (no cut in the round or the round before,
whose update re-copies the float mask; no stall: neither training step above 1.5 x the run's
median). Paired per block: variant - "whole" (the per-target loop, `UPDATE_CHUNK = 0`), mean over
blocks with a bootstrap 95 % CI over blocks (4,000 resamples, seed 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from profile_eager_step import minilm_pruner  # noqa: E402
from seven_prune import seven  # noqa: E402
from seven_prune.bench import _timed_step  # noqa: E402

#: name -> (UPDATE_CHUNK, CACHE_CHUNK_VIEWS); "c147456-views" is session 29's shipped code
VARIANTS = {
    "whole": (0, True),
    "c147456": (147456, True),
    "c73728": (73728, True),
    "c147456-views": (147456, False),
}
STALL = 1.5
N_BOOT = 4000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--json", type=Path, required=True)
    args = ap.parse_args()
    names = list(VARIANTS)
    if args.rounds % len(names):
        raise ValueError(f"--rounds must be a multiple of {len(names)}, got {args.rounds}")
    model, pr, opt, loader = minilm_pruner("16x32", window=args.warmup + args.rounds + 2)
    assert pr.hook_optimizer(opt)
    shipped = (seven.UPDATE_CHUNK, seven.CACHE_CHUNK_VIEWS)
    rows = []
    tic0 = time.perf_counter()
    try:
        for i in range(args.warmup + args.rounds):
            name = names[i % len(names)]
            seven.UPDATE_CHUNK, seven.CACHE_CHUNK_VIEWS = VARIANTS[name]
            k = pr.t - pr.start
            step, prune = _timed_step(model, next(loader), opt, pr)
            if i >= args.warmup:
                rows.append(
                    {"round": i, "variant": name, "k": k, "cut": bool(pr.cutting),
                     "step": step, "prune": prune}
                )  # fmt: skip
    finally:
        seven.UPDATE_CHUNK, seven.CACHE_CHUNK_VIEWS = shipped
    secs = time.perf_counter() - tic0
    steps = np.asarray([r["step"] for r in rows])
    med = float(np.median(steps))
    cut_k = {r["k"] for r in rows if r["cut"]}
    for r in rows:
        r["used"] = bool(not r["cut"] and (r["k"] - 1) not in cut_k and r["step"] <= STALL * med)
    print(f"{len(rows)} timed rounds in {secs:.0f}s; training step median {med:.3f}s; "
          f"rounds used {sum(r['used'] for r in rows)}")  # fmt: skip
    by = {n: [r["prune"] * 1e3 for r in rows if r["variant"] == n and r["used"]] for n in names}
    for n in names:
        print(f"{n:15s} update {statistics.fmean(by[n]):6.2f} ms mean, "
              f"{statistics.median(by[n]):6.2f} median (n = {len(by[n])})")  # fmt: skip
    blocks: dict[int, dict[str, float]] = {}
    for r in rows:
        if r["used"]:
            blocks.setdefault((r["round"] - args.warmup) // len(names), {})[r["variant"]] = (
                r["prune"] * 1e3
            )
    rng = np.random.default_rng(0)
    diffs = {}
    for n in names[1:]:
        d = np.asarray([b[n] - b["whole"] for b in blocks.values() if n in b and "whole" in b])
        boot = d[rng.integers(0, d.size, (N_BOOT, d.size))].mean(1)
        lo, hi = np.percentile(boot, [2.5, 97.5])
        diffs[n] = {"mean": float(d.mean()), "lo": float(lo), "hi": float(hi), "pairs": int(d.size)}
        print(f"{n:15s} - whole: {d.mean():+.2f} ms [{lo:+.2f}, {hi:+.2f}] ({d.size} blocks)")
    cands = [n for n in names[1:] if VARIANTS[n][1]]
    best = min(cands, key=lambda n: diffs[n]["mean"])
    keep = diffs[best]["hi"] < 0.0
    chunk = VARIANTS[best][0] if keep else 0
    print(f"decision: best cached chunking {best} ({diffs[best]['mean']:+.2f} ms "
          f"[{diffs[best]['lo']:+.2f}, {diffs[best]['hi']:+.2f}]) -> UPDATE_CHUNK = {chunk}")  # fmt: skip
    args.json.write_text(
        json.dumps(
            {"rows": rows, "diffs": diffs, "best": best, "keep": keep, "chunk": chunk,
             "threads": torch.get_num_threads(), "seconds": secs},
            indent=1,
        ) + "\n"
    )  # fmt: skip


if __name__ == "__main__":
    main()
