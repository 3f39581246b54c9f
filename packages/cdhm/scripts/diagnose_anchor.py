"""Which guide of the untied model reads the target better: the target guide or the source guide.

Diagnosis only, on the *validation* split (pseudo-target tasks of ``cdhm.bench.VALIDATION_TASKS``,
seeds 106-108 by default, those of ``diagnose_split.py``); the pseudo-target's labels are read only
to describe. It asked whether the source guide (never aligned) could anchor target pseudo-labels
(issue 18, session 20; README "Class correspondence on the target"): it could not, so both
pseudo-label readings label from the target guide. Usage:
``python packages/cdhm/scripts/diagnose_anchor.py [SEEDS]`` (comma-separated).

Per fit of the bench's ``CDHM+adda`` and per split (target-train ``tr``, target-test ``te``): the
accuracy of the fault head read through the target guide (``tgt``, what the bench scores) and
through the source guide (``src``), the share of windows with max probability >= 0.9 (``cov90``)
and the accuracy on those (``acc90``).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from cdhm.bench import VALIDATION_TASKS, BenchConfig, _estimator, _task_data


def _reading(p: np.ndarray, y: np.ndarray) -> str:
    conf = p.max(1) >= 0.9
    acc90 = np.mean(p.argmax(1)[conf] == y[conf]) if conf.any() else float("nan")
    return f"acc {np.mean(p.argmax(1) == y):.3f} cov90 {conf.mean():.2f} acc90 {acc90:.3f}"


def main(argv: list[str]) -> None:
    seeds = [int(s) for s in (argv[0] if argv else "106,107,108").split(",")]
    torch.set_num_threads(2)
    for seed in seeds:
        for s, t in VALIDATION_TASKS:
            cfg = BenchConfig(seeds=[seed], tasks=list(VALIDATION_TASKS), methods=("CDHM+adda",))
            _, fe = _task_data(s, t, seed, cfg)
            s_tr, _, t_tr, t_te = fe[cfg.front_end]
            est = _estimator("CDHM+adda", cfg, seed)
            est.fit(s_tr.x, s_tr.y, t_tr.x, s_tr.domain, t_tr.domain)
            net = est.net_
            net.eval()
            out = []
            for d in (t_tr, t_te):
                x = est._tensor(d.x)
                c = torch.zeros(len(x), dtype=torch.long)
                with torch.no_grad():
                    ps, pt = (
                        torch.softmax(net.fault_logits(net._encode(x, c, g)["s_loc"]), -1).numpy()
                        for g in (net, net.target_guide)
                    )
                out += [_reading(pt, d.y), _reading(ps, d.y)]
            print(
                f"{s}->{t} seed {seed} | tr tgt-guide {out[0]} | tr src-guide {out[1]} | "
                f"te tgt {out[2]} | te src {out[3]}",
                flush=True,
            )


if __name__ == "__main__":
    main(sys.argv[1:])
