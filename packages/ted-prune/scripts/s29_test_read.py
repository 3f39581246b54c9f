"""Test-split read of session 29's default (`TED_s29`: s28b's default plus the low-budget noise
plan, `noise_norescore_min_keep=0.35`) against the s28b default re-run (`TED_s28b`), one setting at
a time, under a test rule committed before the runs (`docs/benchmarks/ted-prune-s29/RULE-test.md`;
NOT run in session 29: pending).

Usage::

    python packages/ted-prune/scripts/s29_test_read.py --out DIR [--resume] [--time-limit S]
        [--grid docs/benchmarks/ted-prune-mnist1d-runs.jsonl] [--setting noise20|clean|dup30]

`s28b_test_read.py`'s machinery (MNIST-1D test grid, 5,000 x 20, test seeds 0-4, f in {0.7, 0.5,
0.3}, one thread, TEST split; InfoBatch, random-dynamic and full data from the committed grid
cache) with `new` = `TED_s29`, `old_rerun` = `TED_s28b`; writes `s29-test.{json,md}`.
"""

from __future__ import annotations

import sys

import s28b_test_read as base

base.ARMS = {"new": "TED_s29", "old_rerun": "TED_s28b", "rd_rerun": "random_dynamic"}
base.STUDY = "s29"
main = base.main

if __name__ == "__main__":
    sys.exit(main())
