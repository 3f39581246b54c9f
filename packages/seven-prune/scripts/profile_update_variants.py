"""Candidate arrangements of SevenPruner's eager per-step update, timed against the current one.

Usage: ``python packages/seven-prune/scripts/profile_update_variants.py [BxL] [--steps N] [--reps R]``
(default 16x32, 14 steps, 10 reps; run under ``flock /tmp/heavy.lock nice -n 5``). Same setup as
`profile_update_parts.py` (MiniLM, AdamW, one SevenPruner, the real state after `steps` steps);
each variant runs the update without the re-zeroing (`rezero=False`, the hooked default) on clones
of that state, and must leave m, v and S bit for bit as the current update does (checked before
timing). Variants: `blocked C` runs all of a target's operations on one block of C entries before
the next block (the same operations on the same entries: bit-identical), so the block's data is
still in cache for the next operation; `threads C` splits each target's blocks between two Python
threads, each block below torch's parallel grain so that it runs on the calling thread; `flat ops`
runs each operation once over the flat buffers where all its operands are flat (the moments, the
abs of the product, the accumulation); `--fused` adds fused=True's compiled pass (its own rounding,
not compared bit for bit). Medians.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor

import torch
from profile_eager_step import (  # sibling script (run from this folder's path)
    minilm_pruner,
    print_interleaved_medians,
)
from seven_prune import seven
from seven_prune.bench import _timed_step
from seven_prune.seven import _moments_and_ratio_, _seven_update_eager


def _blocks(t: torch.Tensor, c: int) -> list[torch.Tensor]:
    f = t.view(-1)
    return [f[i : i + c] for i in range(0, f.numel(), c)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--steps", type=int, default=14)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--fused", action="store_true", help="also time fused=True (compiles first)")
    ap.add_argument("--blocks", type=int, nargs="*", default=[16384, 65536, 131072, 262144])
    args = ap.parse_args()
    model, pr, opt, loader = minilm_pruner(args.shape, window=args.steps + 40)
    for _ in range(args.steps):
        _timed_step(model, next(loader), opt, pr)
    print(f"sparsity {pr.achieved_sparsity:.3f}, {pr.numel} targets' entries")
    st0 = {k: [t.clone() for t in v] for k, v in pr.state.items()}
    ws = [w.clone() for w in pr._weights()]
    gs = [g.clone() for g in pr._grads()]
    keeps = [pr.mask[n] for n in pr.names]
    flat = {key: pr.flat[key].clone() for key in st0}  # the state as flat buffers and their views
    flat["t1"], flat["t2"] = pr._scratch("t1").clone(), pr._scratch("t2").clone()
    st = {key: pr._flat_views(flat[key]) for key in st0}
    t1s, t2s = pr._flat_views(flat["t1"]), pr._flat_views(flat["t2"])
    k = pr.updates
    step = torch.tensor(float(k + 1))
    a1, a2, eps = pr.alpha1, pr.alpha2, pr.eps

    def current() -> None:
        _seven_update_eager(
            st["m"], st["v"], st["S"], ws, gs, keeps, t1s, t2s, alpha1=a1, alpha2=a2,
            eps=eps, k=k, abs_moments=True, cutting=False, rezero=False,
        )  # fmt: skip

    def make_blocked(c: int):
        views = [
            list(zip(*(_blocks(x, c) for x in xs)))
            for xs in zip(st["m"], st["v"], st["S"], ws, gs, t1s, t2s)
        ]
        flat = [b for v in views for b in v]

        def one(b) -> None:
            m, v, s, w, g, t1, t2 = b
            torch.abs(g, out=t1)
            _moments_and_ratio_(t2, t1, m, v, a1, a2, eps, step)
            t1.mul_(w).abs_()
            s.addcmul_(t1, t2)

        def run() -> None:
            for b in flat:
                one(b)

        def run_threads() -> None:
            list(pool.map(one, flat, chunksize=max(1, len(flat) // 2)))

        return run, run_threads

    def flat_ops() -> None:  # one call per operation where every operand is a flat buffer
        for g, t1 in zip(gs, t1s):
            torch.abs(g, out=t1)
        _moments_and_ratio_(flat["t2"], flat["t1"], flat["m"], flat["v"], a1, a2, eps, step)
        for t1, w in zip(t1s, ws):
            t1.mul_(w)
        flat["t1"].abs_()
        flat["S"].addcmul_(flat["t1"], flat["t2"])

    coef = torch.tensor([a1, a2, 1 / (1 - a1 ** (k + 1)), (1 - a2 ** (k + 1)) ** -0.5, eps])
    no_cut = torch.tensor(False)

    def fused() -> None:  # fused=True's compiled pass, hooked (not bit-identical: other rounding)
        assert seven._run_fused(st["m"], st["v"], st["S"], ws, gs, keeps, coef, no_cut, True, False)

    pool = ThreadPoolExecutor(2)
    variants = {"current (per target)": current, "flat ops": flat_ops}
    for c in args.blocks:
        run, run_t = make_blocked(c)
        variants[f"blocked {c}"] = run
        if c < 32768:  # below the grain: each block runs on its thread
            variants[f"threads {c}"] = run_t
    if args.fused:
        variants["fused=True (compiled)"] = fused
        # the same function compiled without inductor's horizontal fusion of targets of one shape
        # (it loads several targets' streams in one loop), and compiled per target (one graph
        # per shape, called once per target)
        nohf = torch.compile(
            seven._seven_update,
            dynamic=False,
            fullgraph=True,
            options={"cpp.max_horizontal_fusion_size": 1},
        )
        per = torch.compile(seven._seven_update, dynamic=False, fullgraph=True)
        lists = (st["m"], st["v"], st["S"], ws, gs, keeps)

        def fused_nohf() -> None:
            nohf(*lists, coef, no_cut, True, False)

        def fused_per_target() -> None:
            for m, v, s_, w, g, kp in zip(*lists):
                per([m], [v], [s_], [w], [g], [kp], coef, no_cut, True, False)

        variants["fused, no horizontal fusion"] = fused_nohf
        variants["fused, per target"] = fused_per_target
    # exactness: every variant from the same state gives m, v, S bit for bit
    ref = None
    for name, fn in variants.items():
        for key in st:
            for a, b in zip(st[key], st0[key]):
                a.copy_(b)
        fn()
        got = {key: torch.cat([t.reshape(-1) for t in st[key]]) for key in st}
        if ref is None:
            ref = got
        elif name.startswith("fused"):  # (every fused variant)
            print(f"  {name}: not compared (its own rounding; tested to float rounding)")
        else:
            same = all(torch.equal(got[key], ref[key]) for key in st)
            print(f"  {name}: m, v, S bit-identical to current: {same}")
    title = f"{args.shape}, medians over {args.reps} reps (ms), rezero=False:"
    print_interleaved_medians(variants, args.reps, title)


if __name__ == "__main__":
    main()
