"""Screen of a CDHM reading on a few validation task-seeds: what the target's s holds.

Usage: ``python packages/cdhm/scripts/screen_target_s.py TASK SEEDS METHOD ...``, e.g.
``... 'A->D' 202,203 CDHM+adda+stickyz0.25+optcarry+sskip+sar1 CDHM+adda+...+sar1+st0.9``.
Fits each bench METHOD (``cdhm.bench._estimator``, the bench's data of hard-tier task TASK and
each seed) and prints, on the target's test windows, the columns of session 30's diagnosis
(``git show e375864:packages/cdhm/scripts/diagnose_align_head.py``, same definitions):

- ``acc``: target accuracy % of the fault head f(E_q s_T) (what the bench scores);
- ``sep``: 5-fold CV accuracy % of a logistic regression on the target test windows' s_T with
  their true labels (diagnosis only): how separable the target classes are in s at all;
- ``minrec``: the lowest per-class recall % of ``acc``; ``swaps``: ``cdhm.bench.class_swaps``;
- ``|s|s`` / ``|s|t``: rms size of s_T of the source's training / target's test windows.

Nothing is written and nothing is chosen from the target labels: a rule decides (and only on
used seeds, a screen only picks what goes to fresh seeds).
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch
from cdhm.bench import BenchConfig, _estimator, _task_data, class_swaps
from cdhm.data import DOMAIN_TIERS
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

COLUMNS = ("acc", "sep", "minrec", "swaps", "|s|s", "|s|t")


def target_s_stats(est, s_src: np.ndarray, s_tte: np.ndarray, yt: np.ndarray) -> dict:
    """The screen's row for one fitted estimator (s_T of source-train and target-test windows,
    `yt` the target-test labels as class indices)."""
    with torch.no_grad():
        p = torch.softmax(est.net_.fault_head(torch.as_tensor(s_tte, dtype=torch.float32)), -1)
    pred = p.numpy().argmax(1)
    k = p.shape[1]
    n_fold = min(5, int(np.bincount(yt, minlength=k).min()))
    sep = cross_val_score(LogisticRegression(max_iter=2000), s_tte, yt, cv=n_fold).mean()
    rec = [100 * float(np.mean(pred[yt == c] == c)) for c in range(k) if (yt == c).any()]
    return {
        "acc": 100 * float(np.mean(pred == yt)),
        "sep": 100 * float(sep),
        "minrec": min(rec),
        "swaps": float(len(class_swaps(yt, pred))),
        "|s|s": float(np.sqrt(np.mean(s_src**2))),
        "|s|t": float(np.sqrt(np.mean(s_tte**2))),
    }


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    src, tgt = (names.index(n) for n in argv[0].split("->"))
    seeds = [int(v) for v in argv[1].split(",")]
    torch.set_num_threads(2)
    cfg = BenchConfig(tasks=[(src, tgt)], seeds=seeds)
    print("task seed method " + " ".join(COLUMNS) + " bench secs")
    for seed in seeds:
        (_, _, _, t_te), fe = _task_data(src, tgt, seed, cfg)
        f_str, _, f_ttr, f_tte = fe[cfg.front_end]
        for method in argv[2:]:
            t0 = time.perf_counter()
            est = _estimator(method, cfg, seed)
            est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain)
            secs = time.perf_counter() - t0
            cls = list(est.classes_)
            yt = np.array([cls.index(v) for v in t_te.y])
            ss = est.transform(f_str.x, c=int(f_str.domain[0]), part="s")
            st = est.transform(f_tte.x, c=int(f_ttr.domain[0]), part="s")
            r = target_s_stats(est, ss, st, yt)
            bench = 100 * float(np.mean(est.predict(f_tte.x) == t_te.y))  # must equal acc
            cells = " ".join(f"{r[c]:.3f}" for c in COLUMNS)
            print(f"{argv[0]} {seed} {method} {cells} {bench:.3f} {secs:.1f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
