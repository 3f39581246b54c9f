"""Where one SevenPruner mask cut's time goes, on MiniLM at the benchmark's batch, paired.

Usage: ``python packages/seven-prune/scripts/profile_cut.py [BxL] [--steps N] [--pairs P]``
(default 16x32, 32 steps: cuts at updates 9, 19, 29; 6 pairs per cut; run under
``flock /tmp/heavy.lock nice -n 5``). MiniLM, AdamW hooked as the benchmark hooks it
(`Pruner.hook_optimizer`), one SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates).

At each cut the pruner's state just before `_cut` (after the cut step's update) is snapshotted:
the real cut runs first (cold, as in training), then the cut is replayed from the snapshot
`pairs` times with the code as it was before session 16b (`old`) and as it is (`new`),
alternating; each replay is checked bit for bit (mask, S, weights, AdamW's moments, the float
mask) against the real cut. The timed region is `_cut` plus the float-mask rebuild the next update
does (`_float_keep_views`), so work moved between them counts either way. Prints per piece
(cumulative wall time, ms per cut) and the paired difference with a bootstrap 95% CI.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import time
from typing import Any

import numpy as np
import torch
from maskloop import MaskedTraining, WeightMask
from profile_eager_step import (  # the sibling script (run from this folder's path)
    SELECTION_PARTS,
    SPENT,
    _wrap,
    minilm_pruner,
)
from seven_prune import SevenPruner
from seven_prune.bench import _timed_step


# ---------------------------------------------------------------- the code before session 16b
def _old_cut(self: Any, k: int, zeroed: bool = False) -> None:
    flat = self.current_flat_scores()
    alive = self._alive_flat()
    if not zeroed:
        flat.masked_fill_(~alive, 0.0)
    keep = self.final_keep if k == self.window - 1 else self.n_keep(k)
    mask, buf = self._select(flat, keep, alive, dead_zero=True)
    self._set_mask_old(mask, buf)


def _old_set_mask_pruner(self: Any, mask: WeightMask, flat: torch.Tensor) -> None:
    _old_masked_set_mask(self.masked, mask)
    self.mask = self.masked.mask
    self._mask_flat = (self.mask, flat)


def _old_masked_set_mask(self: MaskedTraining, mask: WeightMask) -> None:
    self.mask._check_compatible(mask, "swap")
    self.mask = WeightMask({n: mask[n].to(self.mask[n].device) for n in self.mask})
    if not self.attached:
        return
    old = [~keep for keep in self._keep] if self._hooked_optimizer is not None else None
    for i, (n, p) in enumerate(self._params.items()):
        self._keep[i] = self.mask[n].to(p.device)
    self.reapply()
    if old is not None:
        rev = [o & k if bool((o & k).any()) else None for o, k in zip(old, self._keep)]
        self._fix_optimizer_state(revived=rev)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--pairs", type=int, default=6)
    args = ap.parse_args()
    model, pr, opt, loader = minilm_pruner(args.shape, window=args.steps + 4)
    assert pr.hook_optimizer(opt)
    pr._set_mask_old = _old_set_mask_pruner.__get__(pr)
    params = list(pr.params.values())
    real_cut = pr._cut

    def state_of() -> dict[str, Any]:
        st = [opt.state[p] for p in params]
        return {
            "keep": pr._alive_flat().clone(),
            "w": [p.detach().clone() for p in params],
            "m": [s["exp_avg"].clone() for s in st],
            "v": [s["exp_avg_sq"].clone() for s in st],
            "S": pr.flat["S"].clone(),
            "fk": pr._scratch("keep").clone(),
        }

    def restore(snap: dict[str, Any]) -> None:
        pr.mask, pr._mask_flat, pr._fkeep_owner = snap["mask"], snap["mask_flat"], snap["owner"]
        pr.masked.mask = snap["mmask"]
        pr.masked._keep[:] = snap["mkeep"]
        pr.masked._fixed = set(snap["fixed"])
        pr._warned = set(snap["warned"])
        for p, w in zip(params, snap["state"]["w"]):
            p.detach().copy_(w)
        for p, m, v in zip(params, snap["state"]["m"], snap["state"]["v"]):
            opt.state[p]["exp_avg"].copy_(m)
            opt.state[p]["exp_avg_sq"].copy_(v)
        pr._scratch("keep").copy_(snap["state"]["fk"])

    times: dict[str, list[float]] = {"old": [], "new": []}
    pieces: dict[str, dict[str, float]] = {"old": collections.defaultdict(float), "new": {}}
    pieces["new"] = collections.defaultdict(float)
    cold: list[tuple[float, dict[str, float]]] = []
    bad: list[str] = []

    def one(arm: str, k: int, zeroed: bool) -> float:
        before = dict(SPENT)
        tic = time.perf_counter()
        if arm == "old":
            _old_cut(pr, k, zeroed)
        else:
            real_cut(k, zeroed)
        pr._float_keep_views()
        dt = time.perf_counter() - tic
        for key, val in SPENT.items():
            pieces[arm][key] += val - before.get(key, 0.0)
        return dt

    def cut_wrapper(k: int, zeroed: bool = False) -> None:
        snap = {
            "mask": pr.mask,
            "mask_flat": pr._mask_flat,
            "owner": pr._fkeep_owner,
            "mmask": pr.masked.mask,
            "mkeep": list(pr.masked._keep),
            "fixed": set(pr.masked._fixed),
            "warned": set(pr._warned),
            "state": state_of(),
        }
        before = dict(SPENT)
        dt = one("old", k, zeroed)  # the real cut, cold, with the old code: the reference
        cold.append((dt, {key: SPENT[key] - before.get(key, 0.0) for key in SPENT}))
        ref = state_of()
        arms = ("new", "old") * args.pairs
        for i, arm in enumerate(arms):
            restore(snap)
            dt = one(arm, k, zeroed)
            times[arm].append(dt)
            got = state_of()
            for key in ref:
                for a, b in zip(
                    ref[key] if isinstance(ref[key], list) else [ref[key]],
                    got[key] if isinstance(got[key], list) else [got[key]],
                ):
                    if not torch.equal(_bits(a), _bits(b)):
                        bad.append(f"cut {k} {arm} pair {i // 2}: {key} differs")
        # micro: page faults of a fresh 10.7M bool vector, the uint8 cast in a multiply
        fn = pr.flat["S"].numpy()
        thr = np.float32(np.median(fn[:: max(1, fn.size // 65536)]))
        pre = np.empty(fn.size, dtype=bool)
        np.greater(fn, thr, out=pre)
        micro = {
            "np.greater fresh": lambda: np.greater(fn, thr),
            "np.greater out=": lambda: np.greater(fn, thr, out=pre),
            "aminmax S": lambda: torch.aminmax(pr.flat["S"]),
            "count_nonzero keep": lambda: np.count_nonzero(pre),
            "W *= uint8 mask (all)": lambda: [
                p.detach().mul_(kp.view(torch.uint8)) for p, kp in zip(params, pr.masked._keep)
            ],
            "W *= float mask (all)": lambda: [
                p.detach().mul_(f) for p, f in zip(params, pr._scratch_views("keep"))
            ],
            "float mask copy": lambda: pr._scratch("keep").copy_(pr._alive_flat()),
        }
        for name, f in micro.items():
            ts = []
            for _ in range(5):
                tic = time.perf_counter()
                f()
                ts.append(time.perf_counter() - tic)
            print(f"  micro at cut {k}: {name:24s} {statistics.median(ts) * 1e3:6.2f} ms")
        restore(snap)  # the training goes on from the current code's cut
        real_cut(k, zeroed)

    for owner, name in (
        *SELECTION_PARTS,
        (MaskedTraining, "reapply"),
        (MaskedTraining, "_fix_optimizer_state"),
        (MaskedTraining, "set_mask"),
        (SevenPruner, "_float_keep_views"),
    ):
        _wrap(owner, name, name)
    pr._cut = cut_wrapper
    step_t: dict[str, list[float]] = {"update": [], "cut": []}
    for _ in range(args.steps):
        cutting = (pr.updates + 1) % 10 == 0
        before = len(times["old"]) + len(times["new"])
        tic = time.perf_counter()
        _, dt = _timed_step(model, next(loader), opt, pr)
        if len(times["old"]) + len(times["new"]) == before:
            step_t["cut" if cutting else "update"].append(dt)
        else:
            print(f"cut at update {pr.updates - 1}: sparsity now {pr.achieved_sparsity:.3f}")
        del tic
    print(
        f"pruner.step() on update steps: median {statistics.median(step_t['update']) * 1e3:.1f} ms"
    )
    print("the real (cold) cuts, ms: " + ", ".join(f"{c * 1e3:.1f}" for c, _ in cold))
    for key in sorted(cold[0][1], key=lambda x: -cold[0][1][x]):
        vals = [p.get(key, 0.0) * 1e3 for _, p in cold]
        print(f"  cold {key:22s} " + ", ".join(f"{v:6.2f}" for v in vals))
    n = len(times["old"])
    for arm in ("old", "new"):
        med = statistics.median(times[arm]) * 1e3
        print(f"{arm}: cut + float-mask rebuild median {med:.2f} ms ({n} replays)")
        for key, val in sorted(pieces[arm].items(), key=lambda kv: -kv[1]):
            print(f"  {key:24s} {val / n * 1e3:7.2f}")
    d = np.array(times["new"]) - np.array(times["old"])
    rng = np.random.default_rng(0)
    boots = [np.median(rng.choice(d, d.size)) for _ in range(2000)]
    lo, hi = np.percentile(boots, [2.5, 97.5])
    base = statistics.median(times["old"])
    print(
        f"paired new - old: median {np.median(d) * 1e3:.2f} ms [{lo * 1e3:.2f}, {hi * 1e3:.2f}] "
        f"= {np.median(d) / base * 100:.1f}% of old's median"
    )
    print("bit-identical: " + ("yes, every replay" if not bad else "NO: " + "; ".join(bad[:10])))


if __name__ == "__main__":
    main()
