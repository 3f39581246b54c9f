"""The guard's re-selection from the first selection's bracket, against the full re-selection, on
a real MiniLM run: same keep-vectors, and the time of each.

Usage: ``python packages/seven-prune/scripts/guard_reselect_ab.py [BxL] [--rounds N] [--pairs P]``
(default 16x32, 64 rounds: cuts at updates 9, 19, ..., 59; run under ``flock /tmp/heavy.lock
nice -n 5``). SevenPruner as the overhead benchmark runs it (sparsity 0.8, guard 0.01, a cut
every 10 updates, AdamW hooked, 2 threads). Before each real cut its selection (`select_flat` on
the same scores and alive-vector) is made `--pairs` times with `_reselect_from_bracket` (``new``)
and as many times without it (``full``: every lifting round selects from scratch), alternating;
the keep-vectors must be equal (and the scores come back bit for bit), then the real cut runs.
Prints, per cut, the sparsity, the lifting rounds taken from the bracket and the median times.
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
    ap.add_argument("--pairs", type=int, default=4)
    args = ap.parse_args()
    torch.set_num_threads(2)
    b, n = map(int, args.shape.split("x"))
    cfg = replace(text_config(False, 1), batch_size=b, max_len=n)
    train, _ = _text_data(cfg)
    seed_everything(0)
    model = load_minilm_classifier(seed=0)
    pr = SevenPruner(model, 0.8, start=0, window=args.rounds + 2, delta_t=10)
    pr.min_density = 0.01
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    assert pr.hook_optimizer(opt)
    loader = _forever(_loader(train, b, 0))
    real_cut, real_reselect = pr._cut, pruning._reselect_from_bracket
    used: list[bool] = []

    def spy(*a):  # noqa: ANN002, ANN202
        out = real_reselect(*a)
        used.append(out is not None)
        return out

    def cut(k: int, zeroed: bool = False) -> None:
        keep_n = pr.final_keep if k == pr.window - 1 else pr.n_keep(k)
        alive, flat = pr._alive_flat(), pr.current_flat_scores()
        before = flat.clone()
        times: dict[str, list[float]] = {"new": [], "full": []}
        ref = None
        for j in range(2 * args.pairs):
            arm = ("new", "full")[(j + k // 10) % 2]
            pruning._reselect_from_bracket = spy if arm == "new" else (lambda *a: None)
            used.clear()
            t0 = time.perf_counter()
            keep = pruning.select_flat(
                flat, pr.sizes, pr.names, keep_n, alive, min_density=0.01, warn=False,
                dead_zero=True,
            )  # fmt: skip
            times[arm].append(time.perf_counter() - t0)
            assert torch.equal(flat.view(torch.int32), before.view(torch.int32))
            if ref is None:
                ref = keep
            assert torch.equal(keep, ref), (k, arm)
            rounds = list(used) if arm == "new" else None
            if arm == "new":
                new_rounds = rounds
        pruning._reselect_from_bracket = real_reselect
        mn, mf = statistics.median(times["new"]), statistics.median(times["full"])
        print(
            f"cut at update {k}: sparsity -> {1 - keep_n / pr.numel:.3f}, lifting rounds from "
            f"the bracket {new_rounds}, select_flat median new {mn * 1e3:.1f} ms, full "
            f"{mf * 1e3:.1f} ms, new - full {(mn - mf) * 1e3:+.1f} ms, keep-vectors equal",
            flush=True,
        )
        real_cut(k, zeroed)

    pr._cut = cut
    for _ in range(args.rounds):
        _timed_step(model, next(loader), opt, pr)


if __name__ == "__main__":
    main()
