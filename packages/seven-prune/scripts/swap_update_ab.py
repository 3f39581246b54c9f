"""Session 33's exact savings on MiniLM's targets, paired A/B (issue 17 point 3).

Usage: ``flock /tmp/heavy.lock nice -n 5 python packages/seven-prune/scripts/swap_update_ab.py
[--pairs P] [--out FILE]`` (default 24 pairs). MiniLM (10.7M target weights, 37 tensors), AdamW
hooked by masked training, 2 threads, one SevenPruner (sparsity 0.8, guard 0.01, a cut every 10
updates) after 12 steps on synthetic gradients (one cut made). Each pair, in ABBA order:

- ``swap``: a pruning-only mask swap (an `alive` mask of 45 % kept, set untimed, then 70 % of it
  kept, as session 32's `swap_ab.py` at commit 6a9ad86) by `GradualPruner._set_mask` with
  ``prunes_only=False`` (maskloop's revive check) and ``prunes_only=True`` (skipped); weights and
  AdamW's moments compared bit for bit after every pair;
- ``count``: the count of the alive-vector (`pruning._count`) that a cut no longer makes when it
  knows the kept count (`select_flat(n_alive=...)`);
- ``update``: the eager update's lean loop (`seven._seven_update_lean`, a non-cut step) against
  ``reordered``, the same five kernels with t2 <- |g W| taken first from g (the same bits:
  |round(g W)| = |round(|g| W)|, IEEE products being sign-symmetric), checked bit for bit on
  copies of the state before the timing.

Per step (a cut every 10 updates): saving = (swap(prunes_only) - swap(checked) - count) / 10 +
(reordered - update), with a 95 % bootstrap CI over pairs (4,000 resamples, seed 0; each
resample draws whole pairs, so the three parts stay paired). Prints and writes JSON to `--out`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from maskloop import WeightMask
from seven_prune import SevenPruner, pruning, seven
from seven_prune.models import load_minilm_classifier


def reordered_update(
    ms: Sequence[torch.Tensor],
    vs: Sequence[torch.Tensor],
    ss: Sequence[torch.Tensor],
    ws: Sequence[torch.Tensor],
    gs: Sequence[torch.Tensor],
    t1s: Sequence[torch.Tensor],
    t2s: Sequence[torch.Tensor],
    *,
    alpha1: float,
    alpha2: float,
    eps: float,
    k: int,
) -> None:
    """`_seven_update_lean` on a non-cut step, its kernels in another order: t2 <- |g W| first
    (g read by the next kernel while in cache), then t1 <- |g|, the fused AdamW call, S."""
    steps = [torch.tensor(float(k + 1))]
    for m, v, s, w, g, t1, t2 in zip(ms, vs, ss, ws, gs, t1s, t2s):
        torch.mul(g, w, out=t2).abs_()
        torch.abs(g, out=t1)
        torch._fused_adamw_(
            [t1], [t1], [m], [v], [], steps, lr=-1.0, beta1=alpha1, beta2=alpha2,
            weight_decay=-1.0, eps=eps, amsgrad=False, maximize=False,
        )  # fmt: skip
        s.addcmul_(t2, t1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=24)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_minilm_classifier(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pr = SevenPruner(model, 0.8, start=0, window=100, delta_t=10, min_density=0.01, optimizer=opt)
    gen = torch.Generator().manual_seed(0)
    params = list(pr.params.values())

    def grads() -> None:
        for p in model.parameters():
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        for i, p in enumerate(params):  # the gradient hook's masking
            p.grad.mul_(pr.masked._keep[i].view(torch.uint8))

    for _ in range(12):
        grads()
        opt.step()
        pr.step()
    grads()
    opt.step()
    ws, gs = pr._weights(), pr._grads()
    st = pr.state
    t1s, t2s = pr._scratch_views("t1"), pr._scratch_views("t2")
    fks = pr._float_keep_views()
    k = pr.updates
    kw = {"alpha1": pr.alpha1, "alpha2": pr.alpha2, "eps": pr.eps, "k": k}

    def lean() -> None:
        seven._seven_update_lean(
            st["m"], st["v"], st["S"], ws, gs, t1s, t2s, fks, mask_s=False, mask_w=False, **kw
        )

    def reord() -> None:
        reordered_update(st["m"], st["v"], st["S"], ws, gs, t1s, t2s, **kw)

    # the reordered update's bits, on copies of the state
    outs = []
    for fn in (lean, reord):
        saved = {n: [x.clone() for x in st[n]] for n in st}
        fn()
        outs.append([x.clone() for n in ("m", "v", "S") for x in st[n]] + [x.clone() for x in t1s])
        for n in st:
            torch._foreach_copy_(st[n], saved[n])
    same_update = all(torch.equal(a.view(torch.int32), b.view(torch.int32)) for a, b in zip(*outs))
    assert same_update, "the reordered update changed bits"

    alive = torch.rand(pr.numel, generator=gen) < 0.45
    keep = alive & (torch.rand(pr.numel, generator=gen) < 0.7)
    ref: dict[bool, list[torch.Tensor]] = {}

    def swap(prunes_only: bool) -> float:
        pr._set_mask(WeightMask(dict(zip(pr.names, pr._flat_views(alive.clone())))))
        kf = keep.clone()
        mask = WeightMask(dict(zip(pr.names, pr._flat_views(kf))))
        tic = time.perf_counter()
        pr._set_mask(mask, kf, prunes_only=prunes_only)
        dt = time.perf_counter() - tic
        ref[prunes_only] = [p.detach().clone() for p in params] + [
            opt.state[p][key].clone() for p in params for key in ("exp_avg", "exp_avg_sq")
        ]
        return dt * 1e3

    def timed(fn) -> float:  # type: ignore[no-untyped-def]
        tic = time.perf_counter()
        fn()
        return (time.perf_counter() - tic) * 1e3

    names = ("swap_checked", "swap_prunes_only", "count", "update", "reordered")
    times: dict[str, list[float]] = {n: [] for n in names}
    for i in range(args.pairs + 1):  # pair 0 warms up, not kept
        row: dict[str, float] = {}
        for po in (False, True) if i % 2 == 0 else (True, False):
            row["swap_prunes_only" if po else "swap_checked"] = swap(po)
        for a in ("update", "reordered") if i % 2 == 0 else ("reordered", "update"):
            row[a] = timed(lean if a == "update" else reord)
        row["count"] = timed(lambda: pruning._count(alive))
        if i:
            for a, b in zip(ref[True], ref[False]):
                assert torch.equal(a.view(torch.int32), b.view(torch.int32))
            for n, x in row.items():
                times[n].append(x)
    t = {n: np.asarray(v) for n, v in times.items()}
    d_swap = t["swap_prunes_only"] - t["swap_checked"]
    d_update = t["reordered"] - t["update"]
    per_step = (d_swap - t["count"]) / 10 + d_update
    per_step_swap_only = (d_swap - t["count"]) / 10
    rng = np.random.default_rng(0)
    idx = rng.integers(0, d_swap.size, (4000, d_swap.size))

    def ci(x: np.ndarray) -> list[float]:
        b = x[idx].mean(1)
        return [float(np.percentile(b, 2.5)), float(np.percentile(b, 97.5))]

    res = {
        "pairs": args.pairs,
        "median_ms": {n: statistics.median(v) for n, v in times.items()},
        "mean_ms": {n: statistics.mean(v) for n, v in times.items()},
        "std_ms": {n: statistics.stdev(v) for n, v in times.items()},
        "swap_prunes_only_minus_checked_ms": [float(d_swap.mean()), *ci(d_swap)],
        "count_ms": [float(t["count"].mean()), *ci(t["count"])],
        "reordered_minus_update_ms": [float(d_update.mean()), *ci(d_update)],
        "cut_parts_per_step_ms": [float(per_step_swap_only.mean()), *ci(per_step_swap_only)],
        "per_step_ms": [float(per_step.mean()), *ci(per_step)],
        "bit_identical": True,
        "times_ms": times,
    }
    for n in names:
        print(f"{n:17s} median {res['median_ms'][n]:6.2f}  mean {res['mean_ms'][n]:6.2f} "
              f"± {res['std_ms'][n]:5.2f} ms")  # fmt: skip
    for key in ("swap_prunes_only_minus_checked_ms", "count_ms", "reordered_minus_update_ms",
                "cut_parts_per_step_ms", "per_step_ms"):  # fmt: skip
        m, lo, hi = res[key]
        print(f"{key:36s} {m:+.3f} [{lo:+.3f}, {hi:+.3f}]")
    if args.out is not None:
        args.out.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
