"""SevenPruner's eager update on MiniLM's targets, pass by pass (session 33, issue 17 point 3).

Usage: ``flock /tmp/heavy.lock nice -n 5 python packages/seven-prune/scripts/update_passes.py
[--reps R] [--out FILE]``. MiniLM (10.7M target weights, 37 tensors), AdamW hooked by masked
training, 2 threads, one SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates) after 12
steps on synthetic gradients (one cut made: about half the targets pruned, their gradients and
weights zero as in training). Then, `R` times each, over all 37 targets, interleaved round by round:

- ``update_scores``: the pruner's whole update as a non-cut step of the benchmark runs it
  (`SevenPruner.update_scores`, lean loop), on the real state (m, v, S evolve; finite);
- ``lean``: `_seven_update_lean` alone on the same lists (the wrapper's cost is the difference);
- one pass per operation of the lean loop, each alone over all targets on the same buffers:
  ``abs`` (t1 <- |g|), ``mul`` (t2 <- t1 W), ``abs_`` (t2 <- |t2|), ``adam`` (the fused AdamW call
  on a copy of m, v), ``addcmul`` (on a copy of S);
- reference passes of known traffic: ``copy`` (t2 <- t1: one read, one write) and ``scale_``
  (t2 <- 1 * t2 in place: one read, one write-back);
- pieces of a cut's mask swap and selection (not run by the update): ``revive_check`` (maskloop's
  per-parameter revive check, on two equal masks), ``rezero_u8`` / ``rezero_f32`` (W <- W * M by
  the bool mask's uint8 view, as maskloop's `reapply`, and by the pruner's 0/1 float mask, on a
  copy of the weights) and ``count_alive`` (the selection's count of the alive-vector).

Prints medians (ms per update over all targets) and writes them, with every sample, to `--out`.
Timing only: no number computed here is used by the library.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from maskloop import masks as _masks
from seven_prune import SevenPruner, pruning, seven
from seven_prune.models import load_minilm_classifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=25)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = load_minilm_classifier(seed=0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    pr = SevenPruner(model, 0.8, start=0, window=100, delta_t=10, min_density=0.01, optimizer=opt)
    gen = torch.Generator().manual_seed(0)
    params = list(model.parameters())

    def grads() -> None:
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * 1e-3
        for i, p in enumerate(pr.params.values()):  # the gradient hook's masking
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
    m2 = [x.clone() for x in st["m"]]
    v2 = [x.clone() for x in st["v"]]
    s2 = [x.clone() for x in st["S"]]
    w2 = [x.clone() for x in ws]
    keeps = [pr.mask[n] for n in pr.names]
    k = pr.updates
    steps = [torch.tensor(float(k + 1))]

    def lean() -> None:
        seven._seven_update_lean(
            st["m"], st["v"], st["S"], ws, gs, t1s, t2s, fks, alpha1=pr.alpha1,
            alpha2=pr.alpha2, eps=pr.eps, k=k, mask_s=False, mask_w=False,
        )  # fmt: skip

    def whole() -> None:
        pr.cutting = False
        pr.update_scores(ws, gs, k)

    def each(fn: Callable[..., object], *lists: list[torch.Tensor]) -> Callable[[], None]:
        def run() -> None:
            for xs in zip(*lists):
                fn(*xs)

        return run

    def adam(t1: torch.Tensor, m: torch.Tensor, v: torch.Tensor) -> None:
        torch._fused_adamw_(
            [t1], [t1], [m], [v], [], steps, lr=-1.0, beta1=pr.alpha1, beta2=pr.alpha2,
            weight_decay=-1.0, eps=pr.eps, amsgrad=False, maximize=False,
        )  # fmt: skip

    arms: dict[str, Callable[[], None]] = {
        "update_scores": whole,
        "lean": lean,
        "abs": each(lambda g, t1: torch.abs(g, out=t1), gs, t1s),
        "mul": each(lambda t1, w, t2: torch.mul(t1, w, out=t2), t1s, ws, t2s),
        "abs_": each(lambda t2: t2.abs_(), t2s),
        "adam": each(adam, t1s, m2, v2),
        "addcmul": each(lambda s, t2, t1: s.addcmul_(t2, t1), s2, t2s, t1s),
        "copy": each(lambda t1, t2: t2.copy_(t1), t1s, t2s),
        "scale_": each(lambda t2: t2.mul_(1.0), t2s),
        # the cut's swap (maskloop's `set_mask`, not run here): its revive check on two equal
        # masks, the re-zeroing by the bool mask's uint8 view against by the float mask (on a
        # copy of the weights), and the selection's count of the alive-vector
        "revive_check": lambda: _masks._revives_all(list(zip(keeps, keeps))),
        "rezero_u8": each(lambda w, kp: w.mul_(kp.view(torch.uint8)), w2, keeps),
        "rezero_f32": each(lambda w, fk: w.mul_(fk), w2, fks),
        "count_alive": lambda: pruning._count(pr._alive_flat()),
    }
    times: dict[str, list[float]] = {a: [] for a in arms}
    for r in range(args.reps + 1):
        order = list(arms) if r % 2 == 0 else list(arms)[::-1]
        for a in order:
            tic = time.perf_counter()
            arms[a]()
            if r:
                times[a].append((time.perf_counter() - tic) * 1e3)
    med = {a: statistics.median(t) for a, t in times.items()}
    parts = sum(med[a] for a in ("abs", "mul", "abs_", "adam", "addcmul"))
    for a, x in med.items():
        print(f"{a:14s} median {x:7.2f} ms  mean {statistics.mean(times[a]):7.2f} ms")
    print(f"sum of the five passes {parts:.2f} ms; lean - sum {med['lean'] - parts:+.2f} ms")
    print(f"update_scores - lean {med['update_scores'] - med['lean']:+.2f} ms")
    mb = pr.numel * 4 / 1e6
    print(
        f"targets: {pr.numel} floats ({mb:.1f} MB per buffer); copy {mb * 2 / med['copy']:.1f} GB/s"
    )
    if args.out is not None:
        args.out.write_text(
            json.dumps({"reps": args.reps, "median_ms": med, "times_ms": times}, indent=1) + "\n"
        )


if __name__ == "__main__":
    main()
