"""Session 29: where the eager update's time goes at MiniLM's sizes, and whether running it over
cache-sized chunks of the large targets (same kernels, same operands, element by element) is faster.

Usage: ``python packages/seven-prune/scripts/profile_chunk_s29.py [--reps R]`` (under
``flock /tmp/heavy.lock nice -n 5``; 2 threads as the overhead bench).

Synthetic state with MiniLM's 37 target shapes (6 layers of four 384 x 384 and two 384 x 1536
Linears, the pooler's 384 x 384: 10,764,288 entries; float32; g ~ 1e-3, m ~ 1e-3, v ~ 1e-6, a 0/1
float mask), no training (the kernels' cost does not depend on the values away from subnormals).

1. Per operation of `seven._seven_update_lean`, each looped over all 37 targets on its own:
   t1 <- |g|; t2 <- |t1 W|; the fused AdamW call (m, v and the ratio over t1); S <- S + t2 t1;
   S <- S * M (cut steps only). Medians over R calls.
2. The whole update (no cut, no re-zeroing: the hooked default's update step) as
   `_seven_update_lean` runs it (one call per target) and over chunks of C entries of the flat
   targets (targets larger than C split into consecutive slices; C in 73,728 / 147,456 /
   294,912), after a bit-for-bit check that every variant gives the same m, v, S, W, t1, t2 over
   an update step and a cut step from the same state. Variants alternate call by call (the order
   rotating), R calls each; medians and the paired difference chunked - lean with a bootstrap 95 %
   CI (pairs resampled, 4,000 draws, seed 0).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch
from seven_prune import seven

SHAPES = ([(384, 384)] * 4 + [(1536, 384), (384, 1536)]) * 6 + [(384, 384)]
KW = {"alpha1": 0.8, "alpha2": 0.9, "eps": 1e-9}


def make_state(seed: int = 0) -> list[list[torch.Tensor]]:
    """[ms, vs, ss, ws, gs, t1s, t2s, fkeeps] for `SHAPES`."""
    gen = torch.Generator().manual_seed(seed)

    def rand(scale: float) -> list[torch.Tensor]:
        return [torch.rand(s, generator=gen) * scale for s in SHAPES]

    ws = [torch.randn(s, generator=gen) * 0.05 for s in SHAPES]
    gs = [torch.randn(s, generator=gen) * 1e-3 for s in SHAPES]
    fks = [(torch.rand(s, generator=gen) > 0.3).float() for s in SHAPES]
    zeros = [torch.zeros(s) for s in SHAPES]
    return [rand(1e-3), rand(1e-6), rand(1.0), ws, gs, zeros, [z.clone() for z in zeros], fks]


def chunked(lists: Sequence[Sequence[torch.Tensor]], size: int) -> list[list[torch.Tensor]]:
    """The same tensors with every target of more than `size` entries split into flat slices."""
    out: list[list[torch.Tensor]] = [[] for _ in lists]
    for tup in zip(*lists):
        n = tup[0].numel()
        if n <= size:
            for lst, t in zip(out, tup):
                lst.append(t)
            continue
        flat = [t.view(-1) for t in tup]
        for a in range(0, n, size):
            for lst, t in zip(out, flat):
                lst.append(t[a : a + size])
    return out


def update(lists: Sequence[Sequence[torch.Tensor]], k: int, cut: bool) -> None:
    seven._seven_update_lean(*lists, **KW, k=k, mask_s=cut, mask_w=cut)


def parts(st: list[list[torch.Tensor]], reps: int) -> None:
    ms, vs, ss, ws, gs, t1s, t2s, fks = st
    steps = [torch.tensor(3.0)]

    def adam() -> None:
        for m, v, t1 in zip(ms, vs, t1s):
            torch._fused_adamw_([t1], [t1], [m], [v], [], steps, lr=-1.0, beta1=0.8, beta2=0.9,
                                weight_decay=-1.0, eps=1e-9, amsgrad=False, maximize=False)  # fmt: skip

    ops: dict[str, Callable[[], None]] = {
        "t1 <- |g|": lambda: [torch.abs(g, out=t1) for g, t1 in zip(gs, t1s)] and None,
        "t2 <- |t1 W|": lambda: (
            [torch.mul(t1, w, out=t2).abs_() for t1, w, t2 in zip(t1s, ws, t2s)] and None
        ),
        "fused AdamW (m, v, ratio)": adam,
        "S <- S + t2 t1": lambda: [s.addcmul_(t2, t1) for s, t2, t1 in zip(ss, t2s, t1s)] and None,
        "S <- S * M (cut steps)": lambda: [s.mul_(f) for s, f in zip(ss, fks)] and None,
        "whole update (no cut)": lambda: update(st, 2, False),
    }
    res: dict[str, list[float]] = {k: [] for k in ops}
    for _ in range(reps):
        for name, fn in ops.items():
            t = time.perf_counter()
            fn()
            res[name].append(time.perf_counter() - t)
    print("1. per operation, all 37 targets (ms per update, medians):")
    for name, ts in res.items():
        print(f"  {name:28s} {statistics.median(ts) * 1e3:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=40)
    ap.add_argument("--sizes", type=int, nargs="+", default=[73728, 147456, 294912])
    ap.add_argument(
        "--json", type=str, default=None, help="write the figures and the decision here"
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    with torch.no_grad():
        base = make_state()
        parts([[t.clone() for t in lst] for lst in base], args.reps)
        states = {0: [[t.clone() for t in lst] for lst in base]}
        for c in args.sizes:
            states[c] = [[t.clone() for t in lst] for lst in base]
        views = {c: (st if c == 0 else chunked(st, c)) for c, st in states.items()}
        for k, cut in ((2, False), (3, True)):
            for v in views.values():
                update(v, k, cut)
        same = all(
            all(torch.equal(a, b) for la, lb in zip(states[0], st) for a, b in zip(la, lb))
            for st in states.values()
        )
        print(
            f"2. chunked and lean from the same state, an update and a cut step: bit-identical: {same}"
        )
        keys = list(views)
        res: dict[int, list[float]] = {c: [] for c in keys}
        for i in range(args.reps + 3):
            for c in keys[i % len(keys) :] + keys[: i % len(keys)]:
                t = time.perf_counter()
                update(views[c], 4 + i, False)
                if i >= 3:
                    res[c].append(time.perf_counter() - t)
        rng = np.random.default_rng(0)
        lean = np.asarray(res[0])
        summary: dict[str, object] = {"identical": bool(same), "lean_s": res[0], "chunks": {}}
        print(
            f"  lean (one call per target) median {np.median(lean) * 1e3:.2f} ms, mean {lean.mean() * 1e3:.2f}"
        )
        for c in args.sizes:
            x = np.asarray(res[c])
            d = x - lean
            b = d[rng.integers(0, d.size, (4000, d.size))].mean(1)
            lo, hi = np.percentile(b, [2.5, 97.5])
            summary["chunks"][str(c)] = {
                "mean_diff_ms": float(d.mean() * 1e3),
                "lo": float(lo * 1e3),
                "hi": float(hi * 1e3),
                "median_ms": float(np.median(x) * 1e3),
            }  # type: ignore[index]
            print(
                f"  chunks of {c:7d}: median {np.median(x) * 1e3:.2f} ms, mean {x.mean() * 1e3:.2f};"
                f" chunked - lean {d.mean() * 1e3:+.2f} ms [{lo * 1e3:+.2f}, {hi * 1e3:+.2f}] ({d.size} pairs)",
                flush=True,
            )
        best = min(args.sizes, key=lambda c: summary["chunks"][str(c)]["mean_diff_ms"])  # type: ignore[index]
        keep = bool(bool(same) and summary["chunks"][str(best)]["hi"] < 0)  # type: ignore[index]
        summary["best"], summary["keep"] = best, keep
        print(f"decision (rule part A): best chunk {best}, {'kept' if keep else 'dropped'}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(summary, f, indent=1)


if __name__ == "__main__":
    main()
