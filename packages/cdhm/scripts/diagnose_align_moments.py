"""Diagnosis: what the alignment term does to s's per-domain moments, with and without the
stationary (``s_transition="ar1"``) prior (issue 18, session 29).

Usage: ``python packages/cdhm/scripts/diagnose_align_moments.py TASKS SEEDS METHOD ...``, e.g.
``... A->D,D->C 196 CDHM+adda+stickyz0.25+optcarry+sskip+sar1 CDHM-no-align+adda+stickyz0.25+optcarry+sskip+sar1``.
Fits each METHOD (the bench's options, ``cdhm.bench._estimator``) on each hard-tier task and
seed (the bench's data, front end and budget) and prints, on the posterior means E_q s_T of the
source's test windows (source guide) and the target's test windows (the deployed target guide):

- ``acc``: target accuracy %;
- ``mmd``: the MK-MMD^2 between the two domains' s_T (the kernel of the alignment term, x 100);
- ``dmu``: ||mu_t - mu_s|| (rms over dimensions): the gap of the marginal means;
- ``cov``: ||Sigma_t - Sigma_s||_F / ||Sigma_s||_F: the gap of the marginal covariances;
- ``|s|s`` / ``|s|t``: rms size of s_T per domain (N(0, I) has 1);
- ``cmmd``: the MK-MMD^2 of each class's s_T between the domains (true labels, diagnosis only),
  mean over classes (x 100): the class-conditional gap;
- ``cgap``: mean_k ||mu_t,k - mu_s,k|| / mean_{k != l} ||mu_s,k - mu_s,l||: the class-centroid
  gap relative to the source's class spacing (true labels, diagnosis only);
- ``ncc``: target accuracy % of the nearest source class centroid.

Nothing is written; nothing is chosen from it (the target labels are used only to score).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from cdhm.bench import BenchConfig, _estimator, _task_data
from cdhm.data import DOMAIN_TIERS
from cdhm.models import mk_mmd


def moments(s_src: np.ndarray, y_src: np.ndarray, s_tgt: np.ndarray, y_tgt: np.ndarray) -> dict:
    """The statistics of the module docstring (labels as class indices)."""
    a, b = torch.as_tensor(s_src, dtype=torch.float64), torch.as_tensor(s_tgt, dtype=torch.float64)
    mu_s, mu_t = s_src.mean(0), s_tgt.mean(0)
    cs, ct = np.cov(s_src.T), np.cov(s_tgt.T)
    classes = [k for k in np.unique(y_src) if (y_tgt == k).sum() > 1]
    cen_s = np.stack([s_src[y_src == k].mean(0) for k in classes])
    cen_t = np.stack([s_tgt[y_tgt == k].mean(0) for k in classes])
    spacing = np.mean(
        [np.linalg.norm(cen_s[i] - cen_s[j]) for i in range(len(classes)) for j in range(i)]
    )
    d = ((s_tgt[:, None, :] - cen_s[None]) ** 2).sum(-1)
    ncc = 100 * float(np.mean(np.asarray(classes)[d.argmin(1)] == y_tgt))
    cmmd = np.mean(
        [
            float(mk_mmd(a[torch.as_tensor(y_src == k)], b[torch.as_tensor(y_tgt == k)]))
            for k in classes
        ]
    )
    return {
        "mmd": 100 * float(mk_mmd(a, b)),
        "dmu": float(np.sqrt(np.mean((mu_t - mu_s) ** 2))),
        "cov": float(np.linalg.norm(ct - cs) / np.linalg.norm(cs)),
        "|s|s": float(np.sqrt(np.mean(s_src**2))),
        "|s|t": float(np.sqrt(np.mean(s_tgt**2))),
        "cmmd": 100 * float(cmmd),
        "cgap": float(np.mean(np.linalg.norm(cen_t - cen_s, axis=1)) / spacing),
        "ncc": ncc,
    }


def run(argv: list[str], measure: Callable[..., dict], doc: str | None = __doc__) -> None:
    """The session-29/30 diagnoses' loop: ``argv`` = TASKS SEEDS METHOD ...; fit each METHOD (the
    bench's options and data, ``cdhm.bench._estimator``) on each hard-tier task and seed, then
    print ``measure(est, data, fe)``'s row (``data`` = (source train, source test, target train,
    target test), ``fe`` the same splits through the bench's front end) and the means per method."""
    if len(argv) < 3:
        raise SystemExit(doc)
    tasks, seeds, *methods = argv
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    torch.set_num_threads(2)
    cfg = BenchConfig()
    rows: dict[str, list[dict]] = {m: [] for m in methods}
    for task in tasks.split(","):
        src, tgt = task.split("->")
        s_i, t_i = names.index(src), names.index(tgt)
        for seed in (int(v) for v in seeds.split(",")):
            data, fronts = _task_data(s_i, t_i, seed, cfg)
            fe = fronts[cfg.front_end]
            f_str, _, f_ttr, _ = fe
            for method in methods:
                est = _estimator(method, cfg, seed)
                t0 = time.perf_counter()
                est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain)
                r = measure(est, data, fe)
                rows[method].append(r)
                print(
                    f"{task} seed {seed} {method}: "
                    + " ".join(f"{k} {v:.3f}" for k, v in r.items())
                    + f" ({time.perf_counter() - t0:.1f} s)"
                )
                sys.stdout.flush()
    keys = list(rows[methods[0]][0])
    print("== mean over task-seeds")
    print(f"{'method':>52} " + " ".join(f"{k:>7}" for k in keys))
    for method in methods:
        means = [np.mean([v[k] for v in rows[method]]) for k in keys]
        print(f"{method:>52} " + " ".join(f"{m:7.3f}" for m in means))


def _measure(est, data, fe) -> dict:
    """This diagnosis' row: target accuracy and the moments of s (source test vs target test)."""
    (_, s_te, _, t_te), (f_str, f_ste, f_ttr, f_tte) = data, fe
    acc = 100 * float(np.mean(est.predict(f_tte.x) == t_te.y))
    cls = list(est.classes_)
    ys = np.array([cls.index(v) for v in s_te.y])
    yt = np.array([cls.index(v) for v in t_te.y])
    ss = est.transform(f_ste.x, c=int(f_str.domain[0]), part="s")
    st = est.transform(f_tte.x, c=int(f_ttr.domain[0]), part="s")
    return {"acc": acc, **moments(ss, ys, st, yt)}


def main(argv: list[str]) -> None:
    run(argv, _measure)


if __name__ == "__main__":
    main(sys.argv[1:])
