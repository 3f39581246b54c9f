"""Where `select_flat`'s time goes at the real pruner's cuts, piece by piece (session 20).

Usage: ``python packages/seven-prune/scripts/select_pieces.py DIR [--reps R]`` (run under ``flock
/tmp/heavy.lock nice -n 5``; DIR from ``profile_cut_s20.py --save DIR``). For each saved cut,
`select_flat` as `_cut` calls it (guard 0.01, `dead_zero`, 2 threads) runs `reps` times with its
helpers wrapped by wall-clock timers (cumulative: a helper's time includes what it calls), and a
timed replica of `_keep_top_bracketed`'s body (the same operations in the same order; the
selection it makes must equal the real cut's) splits the fast path into its passes. Prints mean ms per cut.
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np
import torch
from profile_eager_step import CALLS, SPENT, _wrap
from seven_prune import SevenPruner, pruning
from seven_prune.models import load_minilm_classifier

PASSES: dict[str, float] = collections.defaultdict(float)


def _timed_bracketed(fn, an, n_keep, n_alive, record=None, work=None):  # noqa: ANN001, ANN202
    """`pruning._keep_top_bracketed` (session 19) with a timer around each step."""
    t = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        PASSES[name] += now - t
        t = now

    k = n_alive - n_keep
    bracket = pruning._sample_bracket(fn, an, k, n_alive)
    lap("sample (strided, alive-filtered)")
    if bracket is None:
        return None
    sample, i_lo, i_hi = bracket
    if i_lo < 0 or i_hi >= sample.size:
        return None
    part = np.partition(sample, (i_lo, i_hi))
    lo, hi = part[i_lo], part[i_hi]
    lap("partition of the sample")
    n_dead = fn.size - n_alive
    if n_dead and not lo > 0:
        return None
    below = np.less(fn, lo, out=None if work is None else work[0])
    lap("x < lo")
    c_lo = int(np.count_nonzero(below)) - n_dead
    lap("count below")
    if c_lo >= k:
        return None
    a = np.less_equal(fn, hi, out=None if work is None else work[1])
    lap("x <= hi")
    keep = np.logical_not(a)
    lap("NOT (fresh keep array)")
    np.logical_xor(a, below, out=a)
    lap("XOR")
    idx = np.flatnonzero(a)
    lap("flatnonzero")
    cand = fn[idx]
    lap("gather the bracket")
    if c_lo + cand.size < k:
        return None
    j = k - c_lo - 1
    thr = np.partition(cand, j)[j]
    lap("partition of the bracket")
    over = cand > thr
    keep[idx[over]] = True
    extra = n_keep - (n_alive - c_lo - cand.size + int(np.count_nonzero(over)))
    if extra > 0:
        keep[idx[cand == thr][-extra:]] = True
    lap("scatter the kept bracket entries")
    if record is not None:
        record.append(idx)
    PASSES["bracket entries (count)"] += cand.size
    return torch.from_numpy(keep)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--reps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(2)
    pr = SevenPruner(load_minilm_classifier(seed=0), 0.8, window=66, delta_t=10, min_density=0.01)
    sizes, names = pr.sizes, pr.names
    n = sum(sizes)
    work = (torch.zeros(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool))
    files = sorted(Path(args.dir).glob("cut_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    real = pruning._keep_top_bracketed
    for owner, name in (
        (pruning, "select_flat"),
        (pruning, "_finite_min"),
        (pruning, "_count"),
        (pruning, "_kth_smallest"),
        (pruning, "_compare_alive"),
        (pruning, "_lift_floors"),
        (pruning, "_reselect_from_bracket"),
    ):
        _wrap(owner, name, name)
    n_calls = 0
    for f in files:
        snap = torch.load(f)
        flat, alive, n_keep, want = snap["flat"], snap["alive"], snap["n_keep"], snap["keep"]
        for _ in range(args.reps):
            pruning._keep_top_bracketed = _timed_bracketed
            torch.mul(flat, 1.0, out=torch.empty_like(flat))  # a torch op before, as in a cut
            keep = pruning.select_flat(
                flat, sizes, names, n_keep, alive, min_density=0.01, dead_zero=True,
                emptied_out=[], work=work,
            )  # fmt: skip
            pruning._keep_top_bracketed = real
            assert torch.equal(keep, want)  # the replica's selection is the real cut's
            n_calls += 1
    print(f"{n_calls} selections ({len(files)} cuts x {args.reps}); mean ms per selection:")
    for k, v in sorted(SPENT.items(), key=lambda kv: -kv[1]):
        print(f"  {k:34s} {v / n_calls * 1e3:7.2f}  ({CALLS[k] / n_calls:.1f} calls)")
    print("inside the fast path (replica; every call, the guard's fallback included):")
    for k, v in PASSES.items():
        if k.startswith("bracket entries"):
            print(f"  {k:34s} {v / n_calls:9.0f}")
        else:
            print(f"  {k:34s} {v / n_calls * 1e3:7.2f}")


if __name__ == "__main__":
    main()
