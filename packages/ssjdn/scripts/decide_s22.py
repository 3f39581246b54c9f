"""Issue 19, twenty-second session: the pre-registered decision on fresh validation seeds 25..29,
read from the bench's cache. Rule: ``docs/benchmarks/ssjdn_validation_s22_rule.md`` (committed
before any run it decides).

- B1 (the bidirectional rung with the passes averaged): ``+bidirectional mean`` -
  ``+SGS (one direction)``, CI lower bound > 0.
- B2 (the full model is not worse): ``BSD mean`` - ``+STL (full SSJDN)``, mean >= 0 and CI lower
  bound > -0.5.
- Adopted on validation (``sgs_fusion="mean"`` the default) iff B1 and B2 pass.

Reported, not deciding: today's rung (``+bidirectional`` - ``+SGS (one direction)``), the mean
against the concatenation on both rungs, full - dual encoder, the pass-redundancy probes.
Prints every comparison it can form and the decision (``partial`` while a check lacks seeds).
The checks live in `decide.py`'s ``RULES["s22"]`` (this script is
``decide.py --rule s22``). Writes nothing. Run (seconds, reads JSON only):
``.venv/bin/python packages/ssjdn/scripts/decide_s22.py [--metric hard_mR]``.
"""

from __future__ import annotations

import sys

from decide import main as decide_main  # this folder: on sys.path


def main() -> int:
    return decide_main(["--rule", "s22", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
