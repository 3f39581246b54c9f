# ruff: noqa
"""The numpy passes a bracketed selection is made of, timed on the dumped cut buffers (medians of 7);
as run 2026-12-03 08:22 UTC under the lock."""

import time, torch, numpy as np, math

torch.set_num_threads(2)


def tm(name, f, reps=7):
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        out = f()
        ts.append(time.perf_counter() - t0)
    print(f"  {name:28s} {np.median(ts) * 1e3:7.2f} ms")
    return out


for i in (0, 2):
    d = torch.load(f"/tmp/seven15/cut_{i}.pt")
    fn = d["flat"].numpy()
    an = d["alive"].numpy()
    n = fn.size
    n_alive = int(an.sum())
    r = n_alive - d["n_keep"] + (n - n_alive)
    print("cut", i)
    sample = tm("sample copy", lambda: np.ascontiguousarray(fn[::164]))
    ns = sample.size
    q = r / n
    margin = 6 * math.sqrt(ns * q * (1 - q)) + 64
    i_lo, i_hi = math.floor(q * ns - margin), math.ceil(q * ns + margin)
    part = tm("partition sample", lambda: np.partition(sample, [i_lo, i_hi]))
    lo, hi = part[i_lo], part[i_hi]
    le = tm("le", lambda: np.less_equal(fn, hi))
    below = tm("below", lambda: np.less(fn, lo))
    tm("count", lambda: np.count_nonzero(below))
    inb = tm("xor", lambda: np.logical_xor(le, below))
    idx = tm("flatnonzero", lambda: np.flatnonzero(inb))
    print("   cand", idx.size)
    tm("torch nonzero", lambda: torch.from_numpy(inb).nonzero())
    cand = tm("gather", lambda: fn[idx])
    tm("compress", lambda: np.compress(inb, fn))
    tm("partition cand", lambda: np.partition(cand, cand.size // 2))
    tm("not", lambda: np.logical_not(le))
    keep = np.logical_not(le)
    tm("scatter", lambda: keep.__setitem__(idx[cand > cand[0]], True))
    tm("count alive", lambda: np.count_nonzero(an))
    tm("inb & an", lambda: np.logical_and(inb, an))
    buf = np.empty(n, dtype=bool)
    tm("le out=", lambda: np.less_equal(fn, hi, out=buf))
    # integer trick: uint32 view
    u = fn.view(np.uint32)
    tm("u32 le", lambda: np.less_equal(u, hi.view(np.uint32)))
    tm("torch le 2thr", lambda: torch.from_numpy(fn).le(float(hi)))
    fl = torch.from_numpy(fn)
    tm("torch le tensor", lambda: torch.le(fl, torch.tensor(hi)))
    from concurrent.futures import ThreadPoolExecutor

    ex = ThreadPoolExecutor(2)
    out = np.empty(n, dtype=bool)
    h = n // 2

    def par():
        f1 = ex.submit(np.less_equal, fn[:h], hi, out=out[:h])
        f2 = ex.submit(np.less_equal, fn[h:], hi, out=out[h:])
        f1.result()
        f2.result()

    tm("np le 2 threads", par)
