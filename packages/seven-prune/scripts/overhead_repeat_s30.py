"""Session 30, part B: the 16 x 32 overhead repeat, read by session 29's stall-filtered rule.

Rule: ``docs/benchmarks/seven-prune-overhead-s30-rule.md``. The runs are session 21's
(``overhead_repeat_s21.run_arms``: the overhead bench's 16 x 32 SEVEN_dyn path, 60 rounds, 2
threads); the reading is session 29's (``overhead_repeat_s29.analyse``). Arms (field ``s30``):
arm 1 = this session's code (`seven.UPDATE_CHUNK` = ``--chunk``, part A's decision, with the
chunk views kept between updates, `seven.CACHE_CHUNK_VIEWS`), arm 0 = session 29's shipped code
(`UPDATE_CHUNK = 147456`, the views made at every update).

Usage (repository root, under ``flock /tmp/heavy.lock nice -n 5``):
``python packages/seven-prune/scripts/overhead_repeat_s30.py run OUT --chunk C --order 1 0 0 1
[--max-minutes M] [--stop-at HH:MM] [--first N]``, then ``... analyse OUT``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead_repeat_s21 import run_arms  # noqa: E402
from overhead_repeat_s29 import analyse  # noqa: E402

TAG = "s30"
#: arm 0: session 29's shipped update (UPDATE_CHUNK, CACHE_CHUNK_VIEWS)
ARM0 = (147456, False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("out", type=Path)
    run.add_argument("--chunk", type=int, required=True, help="arm 1's UPDATE_CHUNK (0: off)")
    run.add_argument("--order", type=float, nargs="+", required=True)
    run.add_argument("--max-minutes", type=float, default=8.0)
    run.add_argument("--stop-at", default="13:10")
    run.add_argument("--first", type=int, default=1)
    an = sub.add_parser("analyse")
    an.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.cmd == "analyse":
        analyse(args.out, TAG)
        return
    if any(a not in (0.0, 1.0) for a in args.order):
        raise ValueError(f"--order: entries must be 1 or 0, got {args.order}")
    from seven_prune import seven

    if args.chunk:
        seven._chunk_views([], args.chunk)  # raises unless a valid chunk size
    shipped = (seven.UPDATE_CHUNK, seven.CACHE_CHUNK_VIEWS)

    def setup(arm: float) -> None:
        seven.UPDATE_CHUNK, seven.CACHE_CHUNK_VIEWS = (args.chunk, True) if arm == 1.0 else ARM0

    try:
        run_arms(args, setup, TAG, TAG)
    finally:
        seven.UPDATE_CHUNK, seven.CACHE_CHUNK_VIEWS = shipped


if __name__ == "__main__":
    main()
