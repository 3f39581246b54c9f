"""Session 19's A/B of the cut's selection path on the real benchmark pruner (rules (a), (b)).

Usage: ``python packages/seven-prune/scripts/cut_path_ab.py [BxL] [--rounds N] [--reps R]``
(default 16x32, 64 rounds: cuts at updates 9, 19, ..., 59; run under ``flock /tmp/heavy.lock
nice -n 5``). Trains MiniLM with AdamW and one SevenPruner as the overhead benchmark runs it
(sparsity 0.8, guard 0.01, a cut every 10 updates, window rounds + 2, AdamW hooked, 2 threads).
Before each real cut, its selection (`select_flat` on the same scores and alive-vector, as `_cut`
calls it) is replayed `reps` times with `pruning.CUT_FAST_PATH` on ("new") and off ("old"),
alternating: the keep-vectors must be equal and the scores come back bit for bit. The float mask's
copy from the bool mask and from its uint8 view is timed and compared the same way. Prints per cut
and the medians over all replays.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch
from maskloop import seed_everything
from seven_prune import SevenPruner, pruning
from seven_prune.bench import _forever, _loader, _text_data, _timed_step, text_config
from seven_prune.models import load_minilm_classifier


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", nargs="?", default="16x32")
    ap.add_argument("--rounds", type=int, default=64)
    ap.add_argument("--reps", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(2)
    b, n = map(int, args.shape.split("x"))
    cfg = replace(text_config(False, 1), batch_size=b, max_len=n)
    train, _ = _text_data(cfg)
    seed_everything(0)
    model = load_minilm_classifier(seed=0)
    pr = SevenPruner(model, 0.8, start=0, window=args.rounds + 2, delta_t=10, min_density=0.01)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    assert pr.hook_optimizer(opt)
    loader = _forever(_loader(train, b, 0))
    real_cut = pr._cut
    times: dict[str, list[float]] = {"new": [], "old": [], "copy bool": [], "copy uint8": []}

    def cut(k: int, zeroed: bool = False) -> None:
        flat, alive = pr.current_flat_scores(), pr._alive_flat()
        if not zeroed:
            flat.masked_fill_(~alive, 0.0)
        keep = pr.final_keep if k == pr.window - 1 else pr.n_keep(k)
        bits = flat.clone().view(torch.int32)
        got: dict[str, torch.Tensor] = {}
        per: dict[str, list[float]] = {"new": [], "old": []}
        for _ in range(args.reps):
            for label, fast in (("new", True), ("old", False)):
                pruning.CUT_FAST_PATH = fast
                tic = time.perf_counter()
                _, kv = pr._select(flat, keep, alive, dead_zero=True)
                per[label].append(time.perf_counter() - tic)
                assert torch.equal(flat.view(torch.int32), bits), "scores changed"
                if label in got:
                    assert torch.equal(got[label], kv)
                got[label] = kv
        pruning.CUT_FAST_PATH = True
        equal = torch.equal(got["new"], got["old"])
        buf = torch.empty(flat.numel())
        copies: dict[str, torch.Tensor] = {}
        for _ in range(args.reps):
            for label, src in (("copy bool", alive), ("copy uint8", alive.view(torch.uint8))):
                tic = time.perf_counter()
                buf.copy_(src)
                times[label].append(time.perf_counter() - tic)
                copies[label] = buf.clone()
        same_copy = torch.equal(copies["copy bool"], copies["copy uint8"])
        for label in per:
            times[label] += per[label]
        print(
            f"cut k={k} keep {keep}: keep-vectors equal {equal}, float masks equal {same_copy}; "
            f"select_flat median new {statistics.median(per['new']) * 1e3:.1f} ms, "
            f"old {statistics.median(per['old']) * 1e3:.1f} ms",
            flush=True,
        )
        assert equal and same_copy
        real_cut(k, zeroed)

    pr._cut = cut
    for _ in range(args.rounds):
        _timed_step(model, next(loader), opt, pr)
    print(f"sparsity reached {pr.achieved_sparsity:.4f}")
    for label, ts in times.items():
        print(f"{label}: median {statistics.median(ts) * 1e3:.2f} ms over {len(ts)}")


if __name__ == "__main__":
    main()
