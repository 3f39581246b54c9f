"""Where an in-training SevenPruner cut's time goes: wall time and page faults per piece.

Usage: ``python packages/seven-prune/scripts/profile_cut_faults.py [BxL] [--rounds N]`` (default
16x32, 44 rounds: cuts at updates 9, 19, 29, 39; run under ``flock /tmp/heavy.lock nice -n 5``).
The overhead benchmark's arrangement: a plain MiniLM and one with SevenPruner (sparsity 0.8, guard
0.01, a cut every 10 updates, AdamW hooked), one step each in turn, rotating, 2 threads. Every
piece of the pruner's step is wrapped to record its wall time, its minor page faults
(`getrusage` ru_minflt) and the transparent huge pages faulted in (`/proc/vmstat`
thp_fault_alloc); after each real cut its selection (`select_flat` on the same scores and alive
vector) is replayed twice, the same way, to compare a cut cold in training with a replay.
"""

from __future__ import annotations

import argparse
import collections
import functools
import resource
import time
from dataclasses import replace
from typing import Any

import torch
from maskloop import MaskedTraining, seed_everything
from seven_prune import SevenPruner, pruning
from seven_prune.bench import _forever, _loader, _text_data, _timed_step, text_config
from seven_prune.models import load_minilm_classifier

#: per piece: [wall s, minor faults, THP faults], summed over the current record
REC: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0, 0.0])


def _thp() -> int:
    with open("/proc/vmstat") as f:
        for line in f:
            if line.startswith("thp_fault_alloc "):
                return int(line.split()[1])
    return 0


def _flt() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _wrap(owner: Any, name: str) -> None:
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*a: Any, **kw: Any) -> Any:
        f0, h0, t0 = _flt(), _thp(), time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            r = REC[name]
            r[0] += time.perf_counter() - t0
            r[1] += _flt() - f0
            r[2] += _thp() - h0

    setattr(owner, name, timed)


def _show(title: str) -> None:
    print(title)
    for k, (t, f, h) in sorted(REC.items(), key=lambda kv: -kv[1][0]):
        print(f"    {k:22s} {t * 1e3:7.2f} ms  {int(f):7d} minflt  {int(h):4d} thp")
    REC.clear()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--rounds", type=int, default=44)
    args = ap.parse_args()
    torch.set_num_threads(2)
    b, n = map(int, args.shape.split("x"))
    cfg = replace(text_config(False, 1), batch_size=b, max_len=n)
    train, _ = _text_data(cfg)
    runs = []
    for method in ("plain", "SEVEN_dyn"):
        seed_everything(0)
        model = load_minilm_classifier(seed=0)
        pr = None
        if method != "plain":
            pr = SevenPruner(model, 0.8, start=0, window=args.rounds + 2, delta_t=10)
            pr.min_density = 0.01
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        if pr is not None:
            assert pr.hook_optimizer(opt)
        runs.append((method, model, pr, opt, _forever(_loader(train, b, 0))))
    for owner, name in (
        (pruning, "_finite_min"),
        (pruning, "_kth_smallest"),
        (pruning, "_compare_alive"),
        (pruning, "select_flat"),
        (MaskedTraining, "set_mask"),
        (MaskedTraining, "reapply"),
        (MaskedTraining, "_fix_optimizer_state"),
        (SevenPruner, "_float_keep_views"),
        (SevenPruner, "update_scores"),
        (SevenPruner, "_cut"),
        (pruning.GradualPruner, "step"),
    ):
        _wrap(owner, name)
    pr = runs[1][2]
    real_cut = pr._cut
    replays: list[tuple[torch.Tensor, int]] = []

    def cut(k: int, zeroed: bool = False) -> None:
        # the alive vector and count the real cut selects with, kept for the replays
        keep = pr.final_keep if k == pr.window - 1 else pr.n_keep(k)
        replays.append((pr._alive_flat(), keep))
        real_cut(k, zeroed)

    pr._cut = cut
    for i in range(args.rounds):
        order = runs[i % 2 :] + runs[: i % 2]
        for _method, model, p, opt, loader in order:
            f0, h0 = _flt(), _thp()
            REC.clear()
            t_step, t_pr = _timed_step(model, next(loader), opt, p)
            df, dh = _flt() - f0, _thp() - h0
            if p is None:
                continue
            cut = p.cutting
            print(
                f"round {i} {'CUT' if cut else 'upd'}: step {t_step * 1e3:.1f} ms, pruner "
                f"{t_pr * 1e3:.1f} ms, minflt (step+pruner) {df}, thp {dh}"
            )
            if cut:
                _show("  pieces of the real cut (cumulative):")
                alive, keep = replays.pop()
                for j in range(2):
                    p._select(p.current_flat_scores(), keep, alive, dead_zero=True)
                    _show(f"  replay {j} of its selection:")
                del alive


if __name__ == "__main__":
    main()
