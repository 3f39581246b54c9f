"""Session 33's rule: soft targets averaged over three snapshots of the teacher's own run.

The rule is committed before any of its runs: `docs/benchmarks/lnpt_s33_rule.md`. The candidate:
`lnpt+label-free` with `teacher_snapshots=3` (`BenchConfig.label_free`; the teacher's run is read
at epochs 27, 53 and 80 of its 80, the last the teacher itself, and the soft-KD targets are
p_bar^tau = (1/3) sum_k softmax(z_k / tau), then `lnpt.LearningGap(target_snapshots=...)`; labels
were never read); fresh seeds 24-28. Rejected (C1 -0.61 [-1.17, +0.17]) and retired in session 34:
the option's code is at 7b1d953 (`git show 7b1d953:packages/lnpt/src/lnpt/learning_gap.py`). The
driver, shared with rule s32, is `label_free_rule.py` (study `S33`); usage:
`python packages/lnpt/scripts/label_free_rule_s33.py rule|left` re-derives the rule from the
committed units (`run` of the candidate now raises ValueError naming 7b1d953; run it at that
commit).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import label_free_rule as lfr  # noqa: E402

STUDY = lfr.S33
verdict = lfr.verdict_s33


def main(argv: list[str] | None = None) -> int:
    return lfr.main(STUDY, argv)


if __name__ == "__main__":
    sys.exit(main())
