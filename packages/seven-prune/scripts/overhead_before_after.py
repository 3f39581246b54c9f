"""SevenPruner's per-step cost now against the update and cut it had at commit 66f7353, paired.

Usage: ``python packages/seven-prune/scripts/overhead_before_after.py [BxL ...]`` (run from the
repository, which must hold that commit; default 16x32). As `seven-prune bench --budget overhead`:
MiniLM, AdamW, 2 threads, a plain model and two pruned ones (SevenPruner now; SevenPruner with the
eager update of 66f7353, loaded from git, and a cut without `dead_zero`) take steps in turn, a cut
every 2nd round, ROUNDS timed rounds (environment variable, default 24). Prints the medians, the
overhead (update + cut / 10) / plain step of both, and the ratio now / before of the pruner's time
paired by round (on a shared CPU the paired ratio is steadier than either overhead).
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
from dataclasses import replace
from typing import Any

import torch
from maskloop import seed_everything
from seven_prune import SevenPruner
from seven_prune.bench import (
    _forever,
    _load_average,
    _loader,
    _overhead,
    _round_robin,
    _text_data,
    text_config,
)
from seven_prune.models import load_minilm_classifier

BEFORE = "66f7353"


def _before_module() -> Any:
    src = subprocess.run(
        ["git", "show", f"{BEFORE}:packages/seven-prune/src/seven_prune/seven.py"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader("seven_before", None))
    exec(compile(src, "seven_before.py", "exec"), mod.__dict__)  # noqa: S102 - our own history
    return mod


OLD = _before_module()


class Before(SevenPruner):
    """SevenPruner with the eager update (moments of |g|) and the cut of commit 66f7353."""

    def update_scores(self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int) -> bool:
        st = self.state
        OLD._seven_update_eager(
            st["m"],
            st["v"],
            st["S"],
            weights,
            grads,
            [self.mask[n] for n in self.names],
            self._flat_views(self._scratch("t1")),
            self._flat_views(self._scratch("t2")),
            alpha1=self.alpha1,
            alpha2=self.alpha2,
            eps=self.eps,
            k=k,
            abs_moments=True,
            cutting=self.cutting,
            rezero_on_cut=not self.masked.attached,
        )
        return True

    def _select(self, flat: Any, n_keep: int, alive: Any, dead_zero: bool = False) -> Any:
        return super()._select(flat, n_keep, alive, dead_zero=False)


def main() -> None:
    torch.set_num_threads(2)
    rounds = int(os.environ.get("ROUNDS", "24"))
    for shape in sys.argv[1:] or ["16x32"]:
        batch_size, max_len = map(int, shape.split("x"))
        cfg = replace(
            text_config(False, 1),
            batch_size=batch_size,
            max_len=max_len,
            start=0,
            window=10_000,
            delta_t=2,
            min_density=0.01,
        )
        train, _ = _text_data(cfg)
        runs = []
        for method, cls in (("plain", None), ("now", SevenPruner), ("before", Before)):
            seed_everything(0)
            model = load_minilm_classifier(seed=0)
            pr = None if cls is None else cls(model, 0.8, start=0, window=10_000, delta_t=2)
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
            loader = _forever(_loader(train, batch_size, 0))
            runs.append((method, model, pr, opt, loader, {"step": [], "update": [], "cut": []}))
        load_before = _load_average()
        _round_robin(runs, rounds + 2, cut_every=2)
        plain = statistics.median(runs[0][5]["step"])
        print(f"{shape}: plain step {plain:.3f} s, load {load_before} -> {_load_average()}")
        times = {}
        for method, _, _, _, _, t in runs[1:]:
            times[method] = t
            m = _overhead(t, 10, plain)
            print(
                f"  {method:6s} update {m['update_seconds'] * 1e3:6.1f} ms  cut "
                f"{m['cut_seconds'] * 1e3:6.1f} ms  overhead {m['overhead'] * 100:.2f}%"
            )
        for kind in ("update", "cut"):
            r = [a / b for a, b in zip(times["now"][kind], times["before"][kind])]
            print(
                f"  pruner time on {kind} rounds, now / before, paired by round: median "
                f"{statistics.median(r):.3f} (range {min(r):.3f}-{max(r):.3f}, {len(r)} rounds)"
            )


if __name__ == "__main__":
    main()
