"""Session 28: the eager update's Python cost per target, and the lean loop against the general one.

Usage: ``python packages/seven-prune/scripts/profile_dispatch_s28.py [--reps R] [--steps N]
[--tiny-only]`` (run under ``flock /tmp/heavy.lock nice -n 5``; rule
``docs/benchmarks/seven-prune-overhead-repeat-s28-rule.md``).

1. Tiny tensors (37 targets of 8 x 8, MiniLM's target count; 1 thread, so that no kernel has work
   to split): the update's time is then its Python and dispatch cost. `seven.LEAN_UPDATE` on
   ("lean", `_seven_update_lean`) and off ("general", the loop before session 28), alternating
   call by call, R calls each after a warm-up; medians and the paired difference.
2. MiniLM at 16 x 32, 2 threads (`profile_eager_step.minilm_pruner`, `steps` training steps, one
   cut among them): on clones of the pruner's real state, weights and gradients, the whole update
   (`rezero=False`, no cut: the hooked default's update step) with the lean and the general loop,
   alternating call by call; first both arms once from the same state, checked bit for bit (m, v,
   S, t1, t2), then R timed calls each; medians and the paired difference lean - general with a
   bootstrap 95 % CI (pairs resampled, 4,000 draws, seed 0).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import numpy as np
import torch
from seven_prune import seven


def _call(st: dict[str, list[torch.Tensor]], ws: Any, gs: Any, keeps: Any, t1s: Any, t2s: Any,
          fks: Any, k: int) -> None:  # fmt: skip
    seven._seven_update_eager(
        st["m"], st["v"], st["S"], ws, gs, keeps, t1s, t2s, alpha1=0.8, alpha2=0.9, eps=1e-9,
        k=k, abs_moments=True, cutting=False, rezero=False, fkeeps=fks,
    )  # fmt: skip


def _alternate(fn: Any, reps: int) -> dict[bool, list[float]]:
    """`fn()` with LEAN_UPDATE True and False in turn (the order flipping every pair)."""
    out: dict[bool, list[float]] = {True: [], False: []}
    for i in range(reps):
        for lean in (True, False) if i % 2 == 0 else (False, True):
            seven.LEAN_UPDATE = lean
            t = time.perf_counter()
            fn()
            out[lean].append(time.perf_counter() - t)
    seven.LEAN_UPDATE = True
    return out


def _report(title: str, res: dict[bool, list[float]], unit: float, name: str) -> None:
    d = np.asarray(res[True]) - np.asarray(res[False])
    rng = np.random.default_rng(0)
    boot = d[rng.integers(0, d.size, (4000, d.size))].mean(1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    print(title)
    for lean in (True, False):
        print(
            f"  {'lean' if lean else 'general':8s} median {statistics.median(res[lean]) * unit:8.2f} "
            f"{name}, mean {statistics.fmean(res[lean]) * unit:8.2f}"
        )
    print(
        f"  lean - general: mean {d.mean() * unit:+.2f} {name} [{lo * unit:+.2f}, {hi * unit:+.2f}],"
        f" median {np.median(d) * unit:+.2f} ({d.size} pairs)",
        flush=True,
    )


def tiny(reps: int) -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    n = 37
    mk = lambda: [torch.rand(8, 8, generator=gen) for _ in range(n)]  # noqa: E731
    st = {key: mk() for key in "mvS"}
    ws, gs, t1s, t2s = mk(), mk(), mk(), mk()
    keeps = [torch.rand(8, 8, generator=gen) > 0.5 for _ in range(n)]
    fks = [kp.float() for kp in keeps]
    with torch.no_grad():
        _alternate(lambda: _call(st, ws, gs, keeps, t1s, t2s, fks, 10), 200)
        res = _alternate(lambda: _call(st, ws, gs, keeps, t1s, t2s, fks, 10), reps)
    _report(f"1. tiny: {n} targets of 8 x 8, 1 thread, {reps} calls per arm (us per update):",
            res, 1e6, "us")  # fmt: skip


def minilm(reps: int, steps: int) -> None:
    from profile_eager_step import minilm_pruner  # sibling script (run from this folder's path)
    from seven_prune.bench import _timed_step

    model, pr, opt, loader = minilm_pruner("16x32", window=steps + 40)
    for _ in range(steps):
        _timed_step(model, next(loader), opt, pr)
    print(f"2. MiniLM 16 x 32 after {steps} steps: sparsity {pr.achieved_sparsity:.3f}, "
          f"{pr.numel} target entries, 2 threads")  # fmt: skip
    ws = [w.clone() for w in pr._weights()]
    gs = [g.clone() for g in pr._grads()]
    keeps = [pr.mask[n] for n in pr.names]
    fks = [f.clone() for f in pr._float_keep_views()]
    k = pr.updates

    def clones() -> tuple[dict[str, list[torch.Tensor]], list[torch.Tensor], list[torch.Tensor]]:
        st = {key: [t.clone() for t in v] for key, v in pr.state.items()}
        return (
            st,
            [t.clone() for t in pr._scratch_views("t1")],
            [t.clone() for t in pr._scratch_views("t2")],
        )

    with torch.no_grad():
        got = {}
        for lean in (True, False):
            seven.LEAN_UPDATE = lean
            st, t1s, t2s = clones()
            _call(st, ws, gs, keeps, t1s, t2s, fks, k)
            got[lean] = (st, t1s, t2s)
        seven.LEAN_UPDATE = True
        same = all(
            torch.equal(a.view(torch.int32), b.view(torch.int32))
            for key in ("m", "v", "S")
            for a, b in zip(got[True][0][key], got[False][0][key])
        ) and all(
            torch.equal(a.view(torch.int32), b.view(torch.int32))
            for i in (1, 2)
            for a, b in zip(got[True][i], got[False][i])
        )
        print(f"  lean and general from the same state: m, v, S, t1, t2 bit-identical: {same}")
        if not same:
            raise SystemExit("the lean loop differs from the general loop")
        st, t1s, t2s = clones()
        res = _alternate(lambda: _call(st, ws, gs, keeps, t1s, t2s, fks, k), reps)
    _report(f"  {reps} calls per arm, alternating (ms per update):", res, 1e3, "ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=60)
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--tiny-only", action="store_true")
    args = ap.parse_args()
    tiny(max(args.reps, 400))
    if not args.tiny_only:
        minilm(args.reps, args.steps)


if __name__ == "__main__":
    main()
