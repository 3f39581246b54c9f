"""Diagnosis: why a better-aligned s does not raise the fault head's target accuracy under the
stationary s prior (issue 18, session 30).

Usage: ``python packages/cdhm/scripts/diagnose_align_head.py TASKS SEEDS METHOD ...``, e.g.
``... A->D,B->C 202,203 CDHM+adda+stickyz0.25+optcarry+sskip+sar1 CDHM-no-align+adda+stickyz0.25+optcarry+sskip+sar1``.
Fits each METHOD (the bench's options and data, ``cdhm.bench._estimator``) on each hard-tier task
and seed, then reads the posterior means E_q s_T of the source's training windows (source guide)
and the target's training / test windows (the deployed target guide) and prints, on the target's
test windows:

- ``acc``: target accuracy % of the fault head f(s_T) (what the bench scores);
- ``std``: accuracy % of f on the target s_T moved per dimension onto the source's mean and
  standard deviation (moments from the unlabelled target *training* windows): what a class-free
  alignment of s's per-domain scale and centre could give the head at best;
- ``coral``: the same with the full covariance (whitening of the target, recolouring with the
  source's covariance);
- ``sep``: 5-fold CV accuracy % of a logistic regression trained on the target test windows' own
  true labels (diagnosis only): how separable the target classes are in s at all; ``sep`` well
  above ``acc`` means the classes are there but sit on the wrong source regions (a correspondence
  error), ``sep`` near ``acc`` that the target guide has lost them (nothing aligning s can undo);
- ``cent``: accuracy % of nearest soft target centroid (centroids from the target training windows
  weighted by f's probabilities, one step of SHOT's clustering, no balance term);
- ``minrec``: the lowest per-class recall % of ``acc`` (a drained class reads 0);
- ``swaps``: the class swaps of ``acc`` (``cdhm.bench.class_swaps``);
- ``|s|s`` / ``|s|t``: rms size of s_T per domain.

Nothing is written; nothing is chosen from it (the target labels are used only to score).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from cdhm.bench import class_swaps
from diagnose_align_moments import run
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score


def _head(est, s: np.ndarray) -> np.ndarray:
    net = est.net_
    with torch.no_grad():
        logits = net.fault_head(torch.as_tensor(s, dtype=torch.float32))
    return torch.softmax(logits, -1).numpy()


def stats(est, s_src, s_ttr, s_tte, yt) -> dict:
    acc = lambda p: 100 * float(np.mean(p.argmax(1) == yt))  # noqa: E731
    p = _head(est, s_tte)
    mu_s, sd_s = s_src.mean(0), s_src.std(0) + 1e-8
    mu_t, sd_t = s_ttr.mean(0), s_ttr.std(0) + 1e-8
    s_std = (s_tte - mu_t) / sd_t * sd_s + mu_s
    cs = np.cov(s_src.T) + 1e-6 * np.eye(s_src.shape[1])
    ct = np.cov(s_ttr.T) + 1e-6 * np.eye(s_src.shape[1])

    def msqrt(c, inv=False):
        w, v = np.linalg.eigh(c)
        w = np.clip(w, 1e-9, None) ** (-0.5 if inv else 0.5)
        return (v * w) @ v.T

    s_coral = (s_tte - mu_t) @ msqrt(ct, inv=True) @ msqrt(cs) + mu_s
    k = p.shape[1]
    n_fold = min(5, int(np.bincount(yt, minlength=k).min()))
    sep = cross_val_score(LogisticRegression(max_iter=2000), s_tte, yt, cv=n_fold).mean()
    p_tr = _head(est, s_ttr)
    cen = (p_tr.T @ s_ttr) / p_tr.sum(0)[:, None].clip(1e-12)
    d = ((s_tte[:, None, :] - cen[None]) ** 2).sum(-1)
    rec = [100 * float(np.mean(p.argmax(1)[yt == c] == c)) for c in range(k) if (yt == c).any()]
    return {
        "acc": acc(p),
        "std": acc(_head(est, s_std)),
        "coral": acc(_head(est, s_coral)),
        "sep": 100 * float(sep),
        "cent": 100 * float(np.mean(d.argmin(1) == yt)),
        "minrec": min(rec),
        "swaps": float(len(class_swaps(yt, p.argmax(1)))),
        "|s|s": float(np.sqrt(np.mean(s_src**2))),
        "|s|t": float(np.sqrt(np.mean(s_tte**2))),
    }


def _measure(est, data, fe) -> dict:
    """This diagnosis' row (`stats`) on the target's test windows, and the bench's own accuracy."""
    (_, _, _, t_te), (f_str, _, f_ttr, f_tte) = data, fe
    cls = list(est.classes_)
    yt = np.array([cls.index(v) for v in t_te.y])
    ss = est.transform(f_str.x, c=int(f_str.domain[0]), part="s")
    st_tr = est.transform(f_ttr.x, c=int(f_ttr.domain[0]), part="s")
    st = est.transform(f_tte.x, c=int(f_ttr.domain[0]), part="s")
    r = stats(est, ss, st_tr, st, yt)
    r["bench"] = 100 * float(np.mean(est.predict(f_tte.x) == t_te.y))  # est.predict: must equal acc
    return r


def main(argv: list[str]) -> None:
    run(argv, _measure, __doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
