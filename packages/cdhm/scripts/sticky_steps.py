"""How sticky the fault chain is: segment-to-segment steps of s with and without ``sticky_s``.

Usage: ``python packages/cdhm/scripts/sticky_steps.py SEED [SEED ...]`` (validation seeds). For
the pseudo-target tasks D->C and B->C of each seed it fits ``CDHM+adda`` and
``CDHM+adda+sticky0.25`` as the bench does (same data, seed and budget) and prints, on the
pseudo-target's test windows (encoded by the target guide) and the source's test windows (source
guide): the mean |s_t - s_{t-1}| of the posterior means over steps, dimensions and windows, and
the mean posterior sd of s_t for t >= 1. Prints no accuracy.
"""

from __future__ import annotations

import sys

import torch
from cdhm.bench import BenchConfig, _estimator, _task_data
from cdhm.data import DOMAIN_TIERS

TASKS: tuple[tuple[int, int], ...] = ((3, 2), (1, 2))
METHODS: tuple[str, ...] = ("CDHM+adda", "CDHM+adda+sticky0.25")


def steps(est: object, x: object, c: object, target: bool) -> tuple[float, float]:
    """(mean |s_t - s_{t-1}|, mean posterior sd of s_t, t >= 1) of windows `x` (conditions c)."""
    xs, cs = est.segments(x, c)  # type: ignore[attr-defined]
    rows = torch.full((len(xs),), target)
    with torch.no_grad():
        post = est.net_.encode(xs, cs, rows)  # type: ignore[attr-defined]
    loc = post["s_loc"]
    return float((loc[:, 1:] - loc[:, :-1]).abs().mean()), float(post["s_scale"][:, 1:].mean())


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    cfg = BenchConfig()
    names = {i: d.name for i, d in enumerate(DOMAIN_TIERS["hard"])}
    for seed in map(int, argv):
        for src, tgt in TASKS:
            _, fe = _task_data(src, tgt, seed, cfg)
            s_tr, s_te, t_tr, t_te = fe[cfg.front_end]
            for m in METHODS:
                est = _estimator(m, cfg, seed)
                est.fit(s_tr.x, s_tr.y, t_tr.x, s_tr.domain, t_tr.domain)
                st, sd = steps(est, t_te.x, t_te.domain, True)
                ss, ssd = steps(est, s_te.x, s_te.domain, False)
                print(
                    f"{names[src]}->{names[tgt]} seed {seed} {m:22s} target: step {st:.3f} "
                    f"sd {sd:.3f}  source: step {ss:.3f} sd {ssd:.3f}"
                )


if __name__ == "__main__":
    main(sys.argv[1:])
