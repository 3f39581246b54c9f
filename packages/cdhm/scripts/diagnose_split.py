"""Why the s/z split adds little over the entangled model once the target encoder is untied.

Diagnosis only, on the *validation* split (pseudo-target tasks A->B, B->C, D->B, D->C of
``cdhm.bench.VALIDATION_TASKS``, fresh seeds 106..); the pseudo-target's test labels are read only
to describe, nothing is chosen on them. Usage:
``python packages/cdhm/scripts/diagnose_split.py [SEEDS] [METHODS]`` with comma-separated seeds
(default ``106,107,108``) and bench method names (default ``CDHM+adda,CDHM-entangled+adda``).

Per fit (the bench's own estimator, data and seed) it measures, on the pseudo-target's test
windows unless said otherwise:

* ``head``: accuracy of the fault head f(E_q s_T) (what the bench scores);
* ``lin_s`` / ``lin_z`` / ``lin_sz``: a logistic regression fitted on the *source-train* windows'
  s_T, z_T or [s_T, z_T] with source labels, scored on the target-test windows: the class
  information of each block that transfers (entangled: its one latent in ``lin_s``);
* ``cv_s`` / ``cv_z``: 5-fold linear probes of the fault *within* the target-test windows
  (pseudo-target labels, description only): the class information each block holds on the
  target, whether or not it transfers from the source;
* ``z_fixes``: of the target-test windows the head gets wrong, the share the within-target
  probe on z (``cv_z``, cross-validated predictions) gets right (class information the classifier
  on s lacks but z holds);
* ``dom_s`` / ``dom_z``: 5-fold linear domain probes on pooled source-test + target-test windows
  (chance 50 %), as the bench's probes;
* ``mmd_s``: MK-MMD^2 between source-test and target-test s_T (the kernel of the training term).
"""

from __future__ import annotations

import sys

import numpy as np
import torch
from cdhm.bench import VALIDATION_TASKS, BenchConfig, _estimator, _task_data, linear_probe
from cdhm.models import mk_mmd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def _probe():  # noqa: ANN202
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))


def _transfer_probe(f_src: np.ndarray, y_src: np.ndarray, f_tgt: np.ndarray) -> np.ndarray:
    return _probe().fit(f_src, y_src).predict(f_tgt)


def diagnose(method: str, source: int, target: int, seed: int) -> dict[str, float]:
    """The measures of the module docstring for one fit."""
    cfg = BenchConfig(seeds=[seed], tasks=list(VALIDATION_TASKS), methods=(method,))
    _, fe = _task_data(source, target, seed, cfg)
    s_tr, s_te, t_tr, t_te = fe[cfg.front_end]
    est = _estimator(method, cfg, seed)
    est.fit(s_tr.x, s_tr.y, t_tr.x, s_tr.domain, t_tr.domain)
    head = est.predict(t_te.x)
    split = not est.entangled

    def feats(d, part):  # noqa: ANN001, ANN202
        return est.transform(d.x, d.domain, part=part)

    out = {"head": float(np.mean(head == t_te.y))}
    out["lin_s"] = float(
        np.mean(_transfer_probe(feats(s_tr, "s"), s_tr.y, feats(t_te, "s")) == t_te.y)
    )
    out["cv_s"] = linear_probe(feats(t_te, "s"), t_te.y, seed)
    dom = np.concatenate([np.zeros(len(s_te.y)), np.ones(len(t_te.y))]).astype(int)
    s_both = np.concatenate([feats(s_te, "s"), feats(t_te, "s")])
    out["dom_s"] = linear_probe(s_both, dom, seed)
    out["mmd_s"] = float(
        mk_mmd(torch.from_numpy(feats(s_te, "s")), torch.from_numpy(feats(t_te, "s")))
    )
    if split:
        pz = _transfer_probe(feats(s_tr, "z"), s_tr.y, feats(t_te, "z"))
        out["lin_z"] = float(np.mean(pz == t_te.y))
        out["lin_sz"] = float(
            np.mean(_transfer_probe(feats(s_tr, "both"), s_tr.y, feats(t_te, "both")) == t_te.y)
        )
        zt = feats(t_te, "z")
        out["cv_z"] = linear_probe(zt, t_te.y, seed)
        cv_pz = cross_val_predict(_probe(), zt, t_te.y, cv=5)
        wrong = head != t_te.y
        out["z_fixes"] = float(np.mean(cv_pz[wrong] == t_te.y[wrong])) if wrong.any() else np.nan
        z_both = np.concatenate([feats(s_te, "z"), feats(t_te, "z")])
        out["dom_z"] = linear_probe(z_both, dom, seed)
    return out


def main(argv: list[str]) -> None:
    seeds = [int(s) for s in (argv[0] if argv else "106,107,108").split(",")]
    methods = (argv[1] if len(argv) > 1 else "CDHM+adda,CDHM-entangled+adda").split(",")
    torch.set_num_threads(2)
    rows: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for seed in seeds:
        for s, t in VALIDATION_TASKS:
            for m in methods:
                r = diagnose(m, s, t, seed)
                rows[m].append(r)
                print(
                    f"{m:22s} {s}->{t} seed {seed}: "
                    + "  ".join(f"{k} {v:.3f}" for k, v in r.items()),
                    flush=True,
                )
    print(f"\nmean over task-seeds (n = {len(seeds) * len(VALIDATION_TASKS)}):")
    for m, rs in rows.items():
        cells = []
        for k in rs[0]:
            v = np.nanmean([r[k] for r in rs])
            cells.append(f"{k} {v:.4f}" if k == "mmd_s" else f"{k} {100 * v:.2f}")
        print(f"{m:22s} " + "  ".join(cells))


if __name__ == "__main__":
    main(sys.argv[1:])
