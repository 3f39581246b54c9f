"""Session 17's in-training A/B of the cut: main's code, the new code, and the new code without
the float multipliers, side by side in the overhead benchmark's rotation.

Usage: ``python packages/seven-prune/scripts/cut_ab.py [BxL] [--rounds N] [--warmup W]`` (default
16x32, 4 untimed and 60 timed rounds: cuts at updates 9, 19, ..., 59 of a 66-update window, the
schedule of `seven-prune bench --budget overhead --rounds 60`; run under
``flock /tmp/heavy.lock nice -n 5``).

A plain MiniLM and three with SevenPruner (sparsity 0.8, guard 0.01, a cut every 10 updates,
AdamW hooked), the same batches, one training step each in turn, the order rotating every round,
2 threads. The three pruners differ only in code:

- ``main``: as on main before session 17: the guard copies the whole score buffer and argsorts
  each lifted tensor; the swap takes the pruner's word that a cut revives nothing (`prunes_only`);
- ``new``: the guard lifts in place (`pruning._lift_floors`); the swap finds revived entries
  itself (`maskloop.masks._revives`); both multiply by the pruner's float mask;
- ``nomult``: ``new`` without `MaskedTraining.set_mask(multipliers=)`: the swap multiplies by the
  bool mask's uint8 view (cast to a temporary float tensor per parameter) and the float mask of
  the eager update is copied at the next update instead of in the cut.

After every cut round the three runs' masks, scores, moments, weights and AdamW state are
compared bit for bit. Prints per arm the mean pruner time per step (update and cut rounds), the
paired differences over rounds with a bootstrap 95% CI stratified by update and cut rounds, the
cut rounds one by one, and the wall time and minor page faults of the cut's pieces.
"""

from __future__ import annotations

import argparse
import collections
import functools
import math
import resource
import time
import types
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from maskloop import MaskedTraining, WeightMask, seed_everything
from seven_prune import SevenPruner, pruning
from seven_prune.bench import _forever, _loader, _text_data, _timed_step, text_config
from seven_prune.models import load_minilm_classifier

ARM = ["plain"]  # the run whose step is in progress
CUR: list[Any] = [None]  # its pruner
#: per arm, per piece: [wall s, minor faults] over the cut rounds
REC: dict[str, dict[str, list[float]]] = collections.defaultdict(
    lambda: collections.defaultdict(lambda: [0.0, 0.0])
)
_new_lift = pruning._lift_floors


def _flt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _wrap(owner: Any, name: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*a: Any, **kw: Any) -> Any:
        if CUR[0] is None or not CUR[0].cutting:  # pieces of cut steps only
            return fn(*a, **kw)
        f0, t0 = _flt(), time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            r = REC[ARM[0]][name]
            r[0] += time.perf_counter() - t0
            r[1] += _flt() - f0

    setattr(owner, name, timed)


def _old_lift(flat, segs, alive, n_keep, counts, floors, dead_zero, keep):  # noqa: ANN001, ANN202
    """main's guard loop (a copy of the buffer; a stable argsort per lifted tensor)."""
    lifted: set[int] = set()
    work = None
    while True:
        below = [i for i, (c, f) in enumerate(zip(counts, floors)) if c < f and i not in lifted]
        if not below:
            return keep
        if work is None:
            work = flat.clone()
        for i in below:
            a, b = segs[i]
            seg = work[a:b]
            vals = seg if alive is None else seg.masked_fill(~alive[a:b], -math.inf)
            top = torch.argsort(vals, stable=True)[-floors[i] :]
            seg[top] = math.inf
            lifted.add(i)
        keep = pruning._keep_top_flat(work, alive, n_keep, dead_zero)
        counts = [pruning._count(keep[a:b]) for a, b in segs]


def _lift(*a: Any) -> Any:
    return (_old_lift if ARM[0] == "main" else _new_lift)(*a)


def _set_mask_main(self: MaskedTraining, mask: WeightMask, *, multipliers: Any = None) -> None:
    """main's swap: the float multipliers, and no search for revived entries (`prunes_only`)."""
    self.mask = WeightMask({n: mask[n].to(self.mask[n].device) for n in self.mask})
    hooked = self._hooked_optimizer is not None
    for i, (n, p) in enumerate(self._params.items()):
        self._keep[i] = self.mask[n].to(p.device)
    mults = None if multipliers is None else [multipliers[n] for n in self._params]
    self._reapply(mults)
    if hooked:
        self._fix_optimizer_state(revived=[None] * len(self._plist), multipliers=mults)


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.view(torch.int32) if t.dtype == torch.float32 else t


def _same(runs: dict[str, Any]) -> list[str]:
    """What differs between the pruned runs, bit for bit."""
    ref_name, (ref_model, ref_pr, ref_opt) = next(iter(runs.items()))
    bad = []
    for name, (model, pr, opt) in list(runs.items())[1:]:
        if not torch.equal(pr._alive_flat(), ref_pr._alive_flat()):
            bad.append(f"{name}: mask")
        for key in pr.flat:
            if not torch.equal(_bits(pr.flat[key]), _bits(ref_pr.flat[key])):
                bad.append(f"{name}: state {key}")
        for p, q in zip(model.parameters(), ref_model.parameters()):
            if not torch.equal(_bits(p.detach()), _bits(q.detach())):
                bad.append(f"{name}: weights")
                break
            for key in ("exp_avg", "exp_avg_sq"):
                if not torch.equal(_bits(opt.state[p][key]), _bits(ref_opt.state[q][key])):
                    bad.append(f"{name}: AdamW {key}")
    return bad


def _boot_ci(d: np.ndarray, is_cut: np.ndarray, n_boot: int = 4000) -> tuple[float, float]:
    """Percentile 95% CI of mean(d), resampling update and cut rounds apart (stratified)."""
    rng = np.random.default_rng(0)
    iu, ic = np.flatnonzero(~is_cut), np.flatnonzero(is_cut)
    bu = iu[rng.integers(0, iu.size, (n_boot, iu.size))]
    bc = ic[rng.integers(0, ic.size, (n_boot, ic.size))]
    means = (d[bu].sum(1) + d[bc].sum(1)) / (iu.size + ic.size)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--warmup", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(2)
    b, n = map(int, args.shape.split("x"))
    cfg = replace(text_config(False, 1), batch_size=b, max_len=n)
    train, _ = _text_data(cfg)
    pruning._lift_floors = _lift
    for owner, name in (
        (pruning, "_kth_smallest"),
        (pruning, "_compare_alive"),
        (pruning, "_lift_floors"),
        (pruning, "select_flat"),
        (MaskedTraining, "_reapply"),
        (MaskedTraining, "_fix_optimizer_state"),
        (SevenPruner, "_cut_multipliers"),
        (SevenPruner, "_float_keep_views"),
        (SevenPruner, "update_scores"),
        (SevenPruner, "_cut"),
    ):
        _wrap(owner, name)
    runs = []
    for arm in ("plain", "main", "new", "nomult"):
        seed_everything(0)
        model = load_minilm_classifier(seed=0)
        pr = None
        if arm != "plain":
            pr = SevenPruner(
                model,
                0.8,
                start=0,
                window=args.warmup + args.rounds + 2,
                delta_t=10,
                min_density=0.01,
            )
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        if pr is not None:
            assert pr.hook_optimizer(opt)
            if arm == "main":
                pr.masked.set_mask = types.MethodType(_set_mask_main, pr.masked)
            if arm == "nomult":
                pr._cut_multipliers = lambda keep: None  # the next update copies the mask
        runs.append((arm, model, pr, opt, _forever(_loader(train, b, 0))))
    times: dict[str, list[float]] = {arm: [] for arm, *_ in runs[1:]}
    is_cut: list[bool] = []
    bad: list[str] = []
    tic = time.time()
    for i in range(args.warmup + args.rounds):
        order = runs[i % len(runs) :] + runs[: i % len(runs)]
        cut = False
        for arm, model, pr, opt, loader in order:
            ARM[0], CUR[0] = arm, pr
            _, dt = _timed_step(model, next(loader), opt, pr)
            if pr is not None:
                cut = cut or bool(pr.cutting)
                if i >= args.warmup:
                    times[arm].append(dt)
        if i >= args.warmup:
            is_cut.append(cut)
        if cut:
            got = _same({arm: (m, p, o) for arm, m, p, o, _ in runs[1:]})
            bad += [f"round {i}: {x}" for x in got]
            sp = runs[2][2].achieved_sparsity
            row = "  ".join(f"{a} {times[a][-1] * 1e3:6.1f}" for a in times)
            print(f"cut round {i}: sparsity {sp:.3f}; pruner ms: {row}; identical: {not got}")
    print(f"timed {time.time() - tic:.0f} s")
    ic = np.asarray(is_cut)
    print(f"{args.shape}, {args.rounds} rounds ({int(ic.sum())} cut rounds); pruner ms per step:")
    for arm, t in times.items():
        x = np.asarray(t) * 1e3
        print(
            f"  {arm:7s} mean {x.mean():6.2f}  update rounds {x[~ic].mean():6.2f}  "
            f"cut rounds {x[ic].mean():6.2f}"
        )
    for a, b_ in (("new", "main"), ("new", "nomult")):
        d = (np.asarray(times[a]) - np.asarray(times[b_])) * 1e3
        lo, hi = _boot_ci(d, ic)
        print(
            f"  {a} - {b_}: {d.mean():+.2f} ms per step [{lo:+.2f}, {hi:+.2f}] "
            f"(cut rounds {d[ic].mean():+.1f} ms per cut, update rounds {d[~ic].mean():+.2f})"
        )
    print("pieces of the cut steps, ms and minor faults per cut step (cumulative):")
    n_cut = max(1, int(ic.sum()))
    for arm, rec in REC.items():
        print(f"  {arm}:")
        for k, (t, f) in sorted(rec.items(), key=lambda kv: -kv[1][0]):
            print(f"    {k:22s} {t / n_cut * 1e3:7.2f} ms  {f / n_cut:8.0f} minflt")
    print("bit for bit: " + ("identical at every cut" if not bad else "; ".join(bad)))


if __name__ == "__main__":
    main()
