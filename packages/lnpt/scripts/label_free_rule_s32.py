"""Session 32's rule: the teacher-confidence filter on the label-free training, digits CNN 95%.

The rule is committed before any of its runs: `docs/benchmarks/lnpt_s32_rule.md` (decided:
rejected). The candidate: `lnpt+label-free` with `confidence=0.9` added
(`lnpt.LearningGap(confidence=c)`: the logit term of a student input whose teacher top-class
probability at temperature 1 is below c is 0; labels are never read); fresh seeds 19-23. The
driver, shared with rule s33, is `label_free_rule.py` (study `S32`); usage:
`python packages/lnpt/scripts/label_free_rule_s32.py run|rule|left [--budget-s S]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import label_free_rule as lfr  # noqa: E402

STUDY = lfr.S32
verdict = lfr.verdict_s32


def main(argv: list[str] | None = None) -> int:
    return lfr.main(STUDY, argv)


if __name__ == "__main__":
    sys.exit(main())
