# ruff: noqa
"""Old vs new cut selection on the dumped MiniLM cut buffers (see profdump.py), medians of 7, with a
stable-sort check; as run 2026-12-03 07:58 UTC under the lock. The "new" path (a whole-buffer
bracketed selection, _keep_top_bracketed) was measured no faster and dropped: it exists in the
commit that added this script, and the next commit removed it (this script needs that commit)."""

import time, torch, numpy as np, sys

from seven_prune import pruning

torch.set_num_threads(2)


def old_keep(flat, alive, n_keep):
    n_alive = pruning._count(alive)
    n_prune = n_alive - n_keep
    thr = pruning._kth_smallest(flat, alive, n_prune, n_alive)
    keep = pruning._compare_alive(flat, thr, None, torch.gt, np.greater)
    extra = n_keep - pruning._count(keep)
    if extra > 0:
        tied = pruning._compare_alive(flat, thr, alive, torch.eq, np.equal)
        idx = torch.nonzero(tied).flatten()
        keep[idx[-extra:]] = True
    return keep


def tm(f, reps=7):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    return out, np.median(ts) * 1e3, min(ts) * 1e3


for i in range(3):
    d = torch.load(f"/tmp/seven15/cut_{i}.pt")
    flat, alive, n_keep = d["flat"], d["alive"], d["n_keep"]
    n = flat.numel()
    n_alive = int(alive.sum())
    fn = flat.numpy()
    print(
        f"cut {i}: N={n} alive={n_alive} ({n_alive / n:.3f}) n_keep={n_keep} zeros={(fn == 0).sum()} alive zeros={(fn[alive.numpy()] == 0).sum()} dead_zero={d['dead_zero']}"
    )
    a, tmed, tmin = tm(lambda: old_keep(flat, alive, n_keep))
    print(f"  old  : {tmed:.1f} ms (min {tmin:.1f})")
    b, tmed, tmin = tm(lambda: pruning._keep_top_flat(flat, alive, n_keep, True, 0.0))
    print(
        f"  new  : {tmed:.1f} ms (min {tmin:.1f})  equal={torch.equal(a, b)} count={int(b.sum())}"
    )
    _, tmed, _ = tm(lambda: pruning._kth_smallest(flat, alive, n_alive - n_keep, n_alive))
    print(f"  old kth only: {tmed:.1f}")
    _, tmed, _ = tm(lambda: np.less_equal(fn, np.float32(0.5)))
    print(f"  one np compare: {tmed:.2f}")
    _, tmed, _ = tm(lambda: torch.le(flat, 0.5))
    print(f"  one torch compare: {tmed:.2f}")
    _, tmed, _ = tm(lambda: torch.aminmax(flat))
    print(f"  aminmax: {tmed:.2f}")
    if i == 1:
        work = flat.masked_fill(~alive, -float("inf"))
        order = torch.argsort(work, stable=True)
        ref = torch.ones(n, dtype=torch.bool)
        ref[order[: n - n_keep]] = False
        print(f"  sort reference equal: {torch.equal(ref, b)}")
