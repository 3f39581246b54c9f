"""Session 28: the 16 x 32 overhead reading with the eager update's lean loop (current, arm 1)
against the general loop it replaces (old, arm 0), alternating in one process; rule
``docs/benchmarks/seven-prune-overhead-repeat-s28-rule.md``. The runs and the analysis are session
21's (``overhead_repeat_s21.run_arms`` / ``analyse_arms``); only the arms differ.

Usage (from the repository root, under ``flock /tmp/heavy.lock nice -n 5``):

- ``python packages/seven-prune/scripts/overhead_repeat_s28.py run OUT --order 1 0 0 1 ...
  [--max-minutes M] [--stop-at HH:MM]``: arm 0 sets ``seven_prune.seven.LEAN_UPDATE = False`` for
  its run (the update's general loop, the code before session 28); runs go to
  ``OUT/run<i>-lean<arm>/``.
- ``python packages/seven-prune/scripts/overhead_repeat_s28.py analyse OUT``.
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
    run.add_argument("--max-minutes", type=float, default=8.0)
    run.add_argument("--stop-at", default="06:50")
    run.add_argument("--first", type=int, default=1, help="the first run's number (a continuation)")
    an = sub.add_parser("analyse")
    an.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.cmd == "analyse":
        analyse_arms(args.out, "lean", "lean loop", "lean", 1.0, 0.0)
        return
    if any(a not in (0.0, 1.0) for a in args.order):
        raise ValueError(f"--order: entries must be 1 (lean) or 0 (general), got {args.order}")
    from seven_prune import seven

    def setup(arm: float) -> None:
        seven.LEAN_UPDATE = arm == 1.0

    try:
        run_arms(args, setup, "lean", "lean")
    finally:
        seven.LEAN_UPDATE = True


if __name__ == "__main__":
    main()
