"""Session 21: the cut's mask swap (`MaskedTraining.set_mask`) with the session-21 code against a
verbatim copy of session 20's, replayed on the real benchmark pruner's cuts, paired.

Usage: ``python packages/seven-prune/scripts/set_mask_ab.py [BxL] [--rounds N] [--pairs P]``
(default 16x32, 64 rounds: cuts at updates 9, 19, ..., 59, as the overhead benchmark's; 6 pairs per
cut; run under ``flock /tmp/heavy.lock nice -n 5``). MiniLM with AdamW hooked and one SevenPruner
as the overhead benchmark runs it (`profile_eager_step.minilm_pruner`: sparsity 0.8, guard 0.01, a
cut every 10 updates, 2 threads). At each cut the swap's inputs (the weights, AdamW's moments and
masked training's state just before it) are snapshotted; the swap is replayed `pairs` times with
the new code and `pairs` times with the old, alternating (new first), from the snapshot; every
replay's weights, moments and masks are compared bit for bit (untimed) with an untimed old swap's. Then the
snapshot is restored and training goes on through the current code's swap. Prints per cut the
medians and, over all pairs, the mean paired difference new - old with a 95% percentile-bootstrap
CI (2,000 resamples of the pairs, seed 0): the decision of
``docs/benchmarks/seven-prune-set-mask-s21-rule.md`` (b).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import MaskedTraining
from profile_eager_step import minilm_pruner  # the sibling script (run from this folder's path)
from seven_prune.bench import _timed_step

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "shared" / "maskloop" / "tests"))
from test_maskloop_set_mask_loop import (  # noqa: E402  (session 20's swap, verbatim)
    _fix_optimizer_state_s20,
    _reapply_s20,
    _set_mask_s20,
)


def _old_swap(mt: MaskedTraining, mask: Any) -> None:
    new_reapply, new_fix = MaskedTraining.reapply, MaskedTraining._fix_optimizer_state
    MaskedTraining.reapply = _reapply_s20  # type: ignore[method-assign]
    MaskedTraining._fix_optimizer_state = _fix_optimizer_state_s20  # type: ignore[method-assign]
    try:
        _set_mask_s20(mt, mask)
    finally:
        MaskedTraining.reapply = new_reapply  # type: ignore[method-assign]
        MaskedTraining._fix_optimizer_state = new_fix  # type: ignore[method-assign]


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--rounds", type=int, default=64)
    ap.add_argument("--pairs", type=int, default=6)
    args = ap.parse_args()
    model, pr, opt, loader = minilm_pruner(args.shape, window=args.rounds + 2)
    assert pr.hook_optimizer(opt)
    mt = pr.masked
    params = list(mt._plist)
    new_swap = MaskedTraining.set_mask
    times: dict[str, list[float]] = {"new": [], "old": []}
    per_cut: list[tuple[int, float, float]] = []
    bad: list[str] = []

    def tensors() -> list[torch.Tensor]:
        out = [p.detach() for p in params]
        for p in params:
            out += [opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]]
        return out

    def swap_wrapper(mask: Any) -> None:
        snap = {
            "mask": mt.mask,
            "keep": list(mt._keep),
            "fixed": set(mt._fixed),
            "data": [t.clone() for t in tensors()],
        }

        def restore() -> None:
            mt.mask, mt._fixed = snap["mask"], set(snap["fixed"])
            mt._keep[:] = snap["keep"]
            for t, s in zip(tensors(), snap["data"]):
                t.copy_(s)

        def check(label: str) -> None:
            for j, (a, b) in enumerate(zip(tensors(), ref)):
                if not torch.equal(_bits(a), _bits(b)):
                    bad.append(f"cut {pr.updates}: {label} tensor {j} differs")
            if not all(torch.equal(a, b) for a, b in zip(mt._keep, ref_keep)):
                bad.append(f"cut {pr.updates}: {label} mask differs")

        restore()
        _old_swap(mt, mask)  # untimed: the reference result
        ref = [t.clone() for t in tensors()]
        ref_keep = [k.clone() for k in mt._keep]
        cut_t: dict[str, list[float]] = {"new": [], "old": []}
        for i, arm in enumerate(("new", "old") * args.pairs):
            restore()
            tic = time.perf_counter()
            if arm == "new":
                new_swap(mt, mask)
            else:
                _old_swap(mt, mask)
            dt = time.perf_counter() - tic
            times[arm].append(dt)
            cut_t[arm].append(dt)
            check(f"{arm} replay {i // 2}")
        restore()
        new_swap(mt, mask)  # training goes on through the current code
        check("the swap training goes on from")
        k = pr.updates
        med_new = statistics.median(cut_t["new"]) * 1e3
        med_old = statistics.median(cut_t["old"]) * 1e3
        per_cut.append((k, med_new, med_old))
        print(f"cut at update {k}: swap median ms new {med_new:.2f}, old {med_old:.2f}", flush=True)

    mt.set_mask = swap_wrapper  # type: ignore[method-assign]
    for _ in range(args.rounds):
        _timed_step(model, next(loader), opt, pr)
    n = len(times["new"])
    d = (np.array(times["new"]) - np.array(times["old"])) * 1e3
    rng = np.random.default_rng(0)
    boots = np.array([rng.choice(d, d.size).mean() for _ in range(2000)])
    lo, hi = np.percentile(boots, [2.5, 97.5])
    print(f"new median {statistics.median(times['new']) * 1e3:.2f} ms, mean "
          f"{statistics.fmean(times['new']) * 1e3:.2f} over {n}")  # fmt: skip
    print(f"old median {statistics.median(times['old']) * 1e3:.2f} ms, mean "
          f"{statistics.fmean(times['old']) * 1e3:.2f} over {n}")  # fmt: skip
    print(f"new - old: mean {d.mean():+.2f} ms [{lo:+.2f}, {hi:+.2f}] ({d.size} pairs)")
    print(
        "bit-identical: "
        + ("yes, every checked replay" if not bad else "NO: " + "; ".join(bad[:10]))
    )


if __name__ == "__main__":
    main()
