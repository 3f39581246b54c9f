"""Session ted-31: micro-timings of TED_s29's end-of-epoch scoring steps at the benchmark's shapes
(N = 25,000 rows, C = 10 classes, D + 1 = 161 features, float32 buffers, one thread), each next to
candidate rewrites and whether the rewrite gives the same bits. A diagnosis only (medians of
`--reps` calls on synthetic buffers); run under the lock:

    flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python packages/ted-prune/scripts/s31_microbench.py \
        --out docs/benchmarks/ted-prune-s31/microbench.json
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from ted_prune.observations import ObservationStore
from ted_prune.ted import TEDPruner, _minus_onehot, quantiles, ted_scores


def med_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    return 1e3 * ts[len(ts) // 2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--reps", type=int, default=25)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    n, c, d = 25_000, 10, 160
    h = torch.relu(torch.randn(n, d + 1, generator=g))
    h[:, -1] = 1.0
    logits = torch.randn(n, c, generator=g) * 3
    labels = torch.randint(0, c, (n,), generator=g)
    probs = torch.softmax(logits, 1)
    hnorm2 = (h * h).sum(1)
    target = torch.rand(n, generator=g) < 0.48
    e = _minus_onehot(probs.clone(), labels)
    w = target.to(e.dtype)[:, None]
    ew = e * w
    g_ = ew.T @ h / int(target.sum())
    r: dict[str, Any] = {}
    t = r.setdefault("ms", {})
    t["ted_scores (all rows)"] = med_ms(lambda: ted_scores(e, h, target, hnorm2=hnorm2), args.reps)
    t["e = probs.clone - onehot"] = med_ms(lambda: _minus_onehot(probs.clone(), labels), args.reps)
    t["target.sum"] = med_ms(lambda: int(target.sum()), args.reps)
    t["e * w (masked e)"] = med_ms(lambda: e * target.to(e.dtype)[:, None], args.reps)
    t["g = ew.T @ h"] = med_ms(lambda: ew.T @ h, args.reps)
    t["g = (h.T @ ew).T"] = med_ms(lambda: (h.T @ ew).T, args.reps)
    t["g via ew.T.contiguous() @ h"] = med_ms(lambda: ew.T.contiguous() @ h, args.reps)
    t["hg = h @ g.T"] = med_ms(lambda: h @ g_.T, args.reps)
    hg = h @ g_.T
    t["(hg * e).sum(1)"] = med_ms(lambda: (hg * e).sum(1), args.reps)
    t["(e * e).sum(1) * hnorm2"] = med_ms(lambda: (e * e).sum(1) * hnorm2, args.reps)
    a64 = ((h @ g_.T) * e).sum(1).double()
    t["quantiles(a, float64)"] = med_ms(lambda: quantiles(a64), args.reps)
    t["h copy (n x 161)"] = med_ms(lambda: h.clone(), args.reps)
    # one pruned epoch's observations (batches of 128 over 12,027 kept rows), outside training
    kept = torch.randperm(n, generator=g)[:12_027]
    batches = [(kept[i : i + 128], labels[kept[i : i + 128]], logits[kept[i : i + 128]],
                h[kept[i : i + 128], :-1].clone()) for i in range(0, kept.numel(), 128)]  # fmt: skip
    p = TEDPruner(n, 30, budget=0.7)

    def observe_epoch() -> None:
        for idx, y, z, f in batches:
            p.observe(idx, z, f, y)
        p._obs.flush()

    def stage_epoch() -> ObservationStore:
        s = ObservationStore(n, keep_written=True)
        for idx, y, z, f in batches:
            s.stage(idx, y, z, f)
        return s

    t["observe, one pruned epoch (94 batches, incl. flush)"] = med_ms(observe_epoch, args.reps)
    t["stage only, one pruned epoch (new store)"] = med_ms(stage_epoch, args.reps)
    t["flush of 12,027 staged rows"] = (
        med_ms(lambda: stage_epoch().flush(), args.reps)
        - t["stage only, one pruned epoch (new store)"]
    )
    p._e0_high = None  # past epoch 0: no epoch-0 detector work per batch
    t["observe, one pruned epoch, after epoch 0 (incl. flush)"] = med_ms(observe_epoch, args.reps)
    store = stage_epoch()
    store.flush()

    def stage_again() -> None:  # the same store: buffers and row views already made
        for idx, y, z, f in batches:
            store.stage(idx, y, z, f)
        store.flush()

    t["stage on a warm store, one pruned epoch (incl. flush)"] = med_ms(stage_again, args.reps)
    sink = torch.empty(128, 161)
    view = sink[:, :-1]
    feats = batches[0][3]
    t["94 strided copies of a (128, 160) batch"] = med_ms(
        lambda: [view.copy_(feats) for _ in batches], args.reps
    )
    same = r.setdefault("same_bits", {})
    same["(h.T @ ew).T == ew.T @ h"] = bool(torch.equal((h.T @ ew).T, ew.T @ h))
    same["ew.T.contiguous() @ h == ew.T @ h"] = bool(torch.equal(ew.T.contiguous() @ h, ew.T @ h))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    r["shapes"] = {"n": n, "classes": c, "features+1": d + 1, "target_share": 0.48}
    r["torch"] = torch.__version__
    args.out.write_text(json.dumps(r, indent=1) + "\n")
    print(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
