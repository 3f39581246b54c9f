"""What SevenPruner's eager per-step update consists of, on MiniLM at the benchmark's batch.

Usage: ``python packages/seven-prune/scripts/profile_update_parts.py [BxL] [--steps N] [--reps R]``
(default 16x32, 14 steps, 10 reps; run under ``flock /tmp/heavy.lock nice -n 5``). Trains MiniLM
with AdamW and one SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates) for `steps`
steps (one cut falls in them), then times, on clones of the pruner's real state and the last
step's real weights and gradients, each piece of `_seven_update_eager` as it runs per target:
|g|, the fused moments + ratio, |W g|, S += |W g| * ratio, the re-zeroing W *= M, and the whole
update with and without the re-zeroing (`rezero=False`). Medians over `reps`.
"""

from __future__ import annotations

import argparse
import statistics

import torch
from profile_eager_step import (  # sibling script (run from this folder's path)
    minilm_pruner,
    print_interleaved_medians,
)
from seven_prune.bench import _timed_step
from seven_prune.seven import _moments_and_ratio_, _seven_update_eager


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    model, pr, opt, loader = minilm_pruner(args.shape, window=args.steps + 40)
    upd = []
    for _ in range(args.steps):
        _, dt = _timed_step(model, next(loader), opt, pr)
        if not pr.cutting:
            upd.append(dt)
    print(f"pruner.step() on update steps: median {statistics.median(upd[2:]) * 1e3:.2f} ms")
    print(f"sparsity {pr.achieved_sparsity:.3f}, holds_zeros {pr.masked.holds_zeros}")
    st = {k: [t.clone() for t in v] for k, v in pr.state.items()}
    ws = [w.clone() for w in pr._weights()]
    gs = [g.clone() for g in pr._grads()]
    keeps = [pr.mask[n] for n in pr.names]
    fks = pr._float_keep_views()
    t1s = [t.clone() for t in pr._scratch_views("t1")]
    t2s = [t.clone() for t in pr._scratch_views("t2")]
    step = torch.tensor(float(pr.updates + 1))
    a1, a2, eps = pr.alpha1, pr.alpha2, pr.eps

    def absg() -> None:
        for g, t1 in zip(gs, t1s):
            torch.abs(g, out=t1)

    def moments() -> None:
        for t1, t2, m, v in zip(t1s, t2s, st["m"], st["v"]):
            _moments_and_ratio_(t2, t1, m, v, a1, a2, eps, step)

    def wg() -> None:
        for t1, w in zip(t1s, ws):
            t1.mul_(w).abs_()

    def accum() -> None:
        for s, t1, t2 in zip(st["S"], t1s, t2s):
            s.addcmul_(t1, t2)

    def rezero() -> None:
        for w, fk in zip(ws, fks):
            w.mul_(fk)

    def whole(rz: bool) -> None:
        _seven_update_eager(
            st["m"], st["v"], st["S"], ws, gs, keeps, t1s, t2s, alpha1=a1, alpha2=a2,
            eps=eps, k=pr.updates, abs_moments=True, cutting=False, rezero=rz, fkeeps=fks,
        )  # fmt: skip

    parts = {
        "|g| -> t1": absg,
        "moments + ratio (fused AdamW kernel)": moments,
        "|W g| (mul_ + abs_)": wg,
        "S += |W g| * ratio (addcmul_)": accum,
        "re-zero W *= M": rezero,
        "whole update, rezero=True": lambda: whole(True),
        "whole update, rezero=False": lambda: whole(False),
    }
    title = f"{args.shape}, {pr.numel} targets, medians over {args.reps} reps (ms):"
    print_interleaved_medians(parts, args.reps, title)


if __name__ == "__main__":
    main()
