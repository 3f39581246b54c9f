"""Micro-probe: re-zeroing MiniLM-shaped weights (37 targets, 10.7M entries, 2 threads) by a bool
mask, four ways, interleaved, 30 rounds (medians and minima of rounds 3-30, ms).

- ``cur``: `maskloop.MaskedTraining.reapply`'s `W.mul_(M.view(torch.uint8))` (torch casts the
  uint8 operand into a new float tensor first);
- ``np_mul``: `np.multiply(W, M, out=W)` (numpy casts in small buffers, one thread; session 31's
  `pruning._PrunerMasking.reapply`, removed after this probe: slower on a quiet machine);
- ``fl_cast_then_mul``: the mask cast once into a kept float32 buffer, then `W.mul_(F)`;
- ``fl_mul_only``: `W.mul_(F)` with that float buffer already filled.

Usage: ``flock /tmp/heavy.lock nice -n 5 python packages/seven-prune/scripts/reapply_micro.py``.
"""

import statistics
import time

import numpy as np
import torch


def main() -> None:
    torch.set_num_threads(2)
    shapes = [(384, 384)] * 4 * 6 + [(1536, 384), (384, 1536)] * 6 + [(384, 384)]
    gen = torch.Generator().manual_seed(0)
    ws = [torch.randn(sh, generator=gen) for sh in shapes]
    keeps = [torch.rand(sh, generator=gen) > 0.6 for sh in shapes]
    fbuf = torch.zeros(sum(w.numel() for w in ws))
    fks, off = [], 0
    for sh in shapes:
        fks.append(fbuf[off : off + sh[0] * sh[1]].view(sh))
        off += sh[0] * sh[1]
    flat_keep = torch.cat([k.reshape(-1) for k in keeps])

    def cur() -> None:
        for w, k in zip(ws, keeps):
            w.mul_(k.view(torch.uint8))

    def np_mul() -> None:
        for w, k in zip(ws, keeps):
            np.multiply(w.numpy(), k.numpy(), out=w.numpy())

    def fl_cast_then_mul() -> None:
        fbuf.copy_(flat_keep.view(torch.uint8))
        fl_mul_only()

    def fl_mul_only() -> None:
        for w, f in zip(ws, fks):
            w.mul_(f)

    fns = {
        "cur": cur,
        "np_mul": np_mul,
        "fl_cast_then_mul": fl_cast_then_mul,
        "fl_mul_only": fl_mul_only,
    }
    res: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(30):
        for k, f in fns.items():
            t = time.perf_counter()
            f()
            res[k].append(time.perf_counter() - t)
    for k, v in res.items():
        print(f"{k:20s} median {statistics.median(v[2:]) * 1e3:7.2f} ms  min {min(v) * 1e3:7.2f}")


if __name__ == "__main__":
    main()
