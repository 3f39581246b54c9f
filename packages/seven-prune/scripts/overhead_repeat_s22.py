"""Session 22: the 16 x 32 overhead reading with the cuts' work buffers allocated at the first
update (current, arm 1) against allocated by the first cut (old, arm 0), alternating in one
process; rule ``docs/benchmarks/seven-prune-overhead-repeat-s22-rule.md``. The runs and the analysis
are session 21's (``overhead_repeat_s21.run_arms`` / ``analyse_arms``); only the arms differ.

Usage (from the repository root, under ``flock /tmp/heavy.lock nice -n 5``):

- ``python packages/seven-prune/scripts/overhead_repeat_s22.py run OUT --order 1 0 0 1 ...
  [--max-minutes M] [--stop-at HH:MM]``: arm 0 replaces
  ``GradualPruner._ensure_cut_buffers`` by a no-op for its run (the buffers are then made by the
  first cut, as before session 22); runs go to ``OUT/run<i>-pre<arm>/``.
- ``python packages/seven-prune/scripts/overhead_repeat_s22.py analyse OUT``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead_repeat_s21 import analyse_arms, run_arms  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("out", type=Path)
    run.add_argument("--order", type=float, nargs="+", required=True)
    run.add_argument("--max-minutes", type=float, default=10.5)
    run.add_argument("--stop-at", default="13:40")
    an = sub.add_parser("analyse")
    an.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.cmd == "analyse":
        analyse_arms(args.out, "prealloc", "buffers at first update", "pre", 1.0, 0.0)
        return
    if any(a not in (0.0, 1.0) for a in args.order):
        raise ValueError(f"--order: entries must be 1 (current) or 0 (lazy), got {args.order}")
    from seven_prune import pruning

    current = pruning.GradualPruner._ensure_cut_buffers

    def setup(arm: float) -> None:
        pruning.GradualPruner._ensure_cut_buffers = current if arm == 1.0 else lambda self: None

    try:
        run_arms(args, setup, "prealloc", "pre")
    finally:
        pruning.GradualPruner._ensure_cut_buffers = current


if __name__ == "__main__":
    main()
