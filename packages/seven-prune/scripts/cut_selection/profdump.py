# ruff: noqa
"""Dump the score buffer, alive-vector and keep count of each cut of profile_eager_step.py (16x32,
30 steps, cuts at sparsity 0.54, 0.76, 0.80) to /tmp/seven15/cut_<i>.pt (as run 2026-12-03 07:50 UTC
under the lock; also prints the profile)."""

import sys, functools, torch
from pathlib import Path

sys.argv = ["profile_eager_step.py", "16x32", "--steps", "30"]
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # scripts/, for profile_eager_step
from seven_prune import pruning

orig = pruning._keep_top_flat
n = [0]


@functools.wraps(orig)
def dump(flat, alive, n_keep, dead_zero=False):
    if flat.numel() > 1_000_000:
        torch.save(
            {
                "flat": flat.clone(),
                "alive": None if alive is None else alive.clone(),
                "n_keep": n_keep,
                "dead_zero": dead_zero,
            },
            f"/tmp/seven15/cut_{n[0]}.pt",
        )
        n[0] += 1
    return orig(flat, alive, n_keep, dead_zero)


pruning._keep_top_flat = dump
import profile_eager_step

profile_eager_step.main()
