"""Is the 0 dB source's normal-vs-ball evidence there at all on its held-out recordings?

Diagnosis only, on the *validation* split (source domains of ``cdhm.bench.VALIDATION_TASKS``,
fresh seeds; nothing is chosen on it). Usage:
``python packages/cdhm/scripts/source_separability.py [SEEDS] [DOMAIN]`` with comma-separated seeds
(default ``172,173,174,175,176,177``) and a hard-tier domain index (default 3, the 0 dB domain D).

Per seed it builds the bench's data of that source domain (the same recordings, split by recording
and front end as ``cdhm bench --validate``) and fits two non-neural classifiers on the domain's
*training* recordings, scored on its *held-out* recordings (the split CDHM's source guide gets
100 % / ~55 % on):

* ``physics``: :class:`cdhm.baselines.PhysicsReference` (log envelope spectrum at orders
  0.5-12 + logistic regression) on the raw windows and their shaft speeds;
* ``front-end``: a standardised logistic regression on the flattened order-envelope front end
  (the input every neural method gets).

It prints each one's held-out accuracy, its train accuracy and the held-out [n->n, n->b, b->n, b->b]
counts (classes normal and ball), then the means over seeds.
"""

from __future__ import annotations

import sys

import numpy as np
from cdhm.baselines import PhysicsReference
from cdhm.bench import BenchConfig, _task_data
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

NB = (0, 2)  # normal, ball


def _nb(true: np.ndarray, pred: np.ndarray) -> list[int]:
    """[n->n, n->b, b->n, b->b] counts."""
    return [int(np.sum((true == a) & (pred == b))) for a in NB for b in NB]


def main(argv: list[str]) -> None:
    seeds = [int(s) for s in (argv[0] if argv else "172,173,174,175,176,177").split(",")]
    dom = int(argv[1]) if len(argv) > 1 else 3
    other = 1 if dom != 1 else 2  # any target: only the source side is read
    rows: dict[str, list[tuple[float, float]]] = {"physics": [], "front-end": []}
    for seed in seeds:
        cfg = BenchConfig(seeds=[seed], tasks=[(dom, other)])
        (s_tr, s_te, _, _), fe = _task_data(dom, other, seed, cfg)
        f_tr, f_te = fe[cfg.front_end][:2]
        phys = PhysicsReference(fs=s_tr.fs).fit(s_tr.x, s_tr.y, rpm=s_tr.rpm)
        fits = {
            "physics": (
                phys.predict(s_te.x, rpm=s_te.rpm),
                phys.score(s_tr.x, s_tr.y, rpm=s_tr.rpm),
            ),
        }
        lin = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
        lin.fit(f_tr.x.reshape(len(f_tr.x), -1), f_tr.y)
        fits["front-end"] = (
            lin.predict(f_te.x.reshape(len(f_te.x), -1)),
            lin.score(f_tr.x.reshape(len(f_tr.x), -1), f_tr.y),
        )
        for name, (pred, train_acc) in fits.items():
            acc = float(np.mean(pred == s_te.y))
            rows[name].append((acc, float(train_acc)))
            print(
                f"domain {dom} seed {seed} {name:9s} held-out {100 * acc:5.1f} % "
                f"train {100 * train_acc:5.1f} % normal/ball {_nb(s_te.y, pred)}",
                flush=True,
            )
    for name, v in rows.items():
        a = np.array(v)
        print(
            f"mean over {len(a)} seeds {name:9s} held-out {100 * a[:, 0].mean():5.1f} ± "
            f"{100 * a[:, 0].std(ddof=1) if len(a) > 1 else 0.0:4.1f} % "
            f"train {100 * a[:, 1].mean():5.1f} %"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
