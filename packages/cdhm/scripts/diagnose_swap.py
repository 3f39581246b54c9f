"""Trace one bench fit epoch by epoch: when does a target class swap, and where does it sit in s?

Diagnosis only (it reads target *test* labels to describe a failure; nothing is chosen on it).
Usage: ``python packages/cdhm/scripts/diagnose_swap.py SOURCE TARGET SEED [METHOD] [JSON]``
with domain indices of the hard tier (A=0 .. D=3), a bench method name (default "CDHM") and
optional JSON keyword overrides, e.g. ``3 0 1`` for the D->A seed-1 collapse of the test run.
Per epoch it prints the target-test accuracy and confusion matrix (rows true, columns predicted:
normal, inner, ball, outer), the source-test accuracy, the training source accuracy, the
alignment weight, the KL weight, the predicted class counts on the target-train windows, and for
each target class the source class whose training centroid of E_q[s_T] is nearest to its own.
Runs with 2 torch threads, as the bench (the thread count changes float summation order).
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from cdhm.bench import BenchConfig, _estimator, _task_data
from cdhm.data import transfer_tasks
from maskloop import Callback
from sklearn.metrics import confusion_matrix


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    src, tgt, seed = (int(a) for a in argv[:3])
    method = argv[3] if len(argv) > 3 else "CDHM"
    extra = json.loads(argv[4]) if len(argv) > 4 else {}
    cfg = BenchConfig(seeds=[seed])
    cfg.tasks = transfer_tasks(4)
    (s_tr, s_te, t_tr, t_te), fe = _task_data(src, tgt, seed, cfg)
    f_str, f_ste, f_ttr, f_tte = fe[cfg.front_end]
    est = _estimator(method, cfg, seed).set_params(**extra)

    class Trace(Callback):
        def on_epoch_end(self, state):  # noqa: ANN001
            net = state.model
            net.eval()
            with torch.no_grad():
                pt = est._logits(est._tensor(f_tte.x)).argmax(-1).numpy()
                ps = est._logits(est._tensor(f_ste.x)).argmax(-1).numpy()
                ptr = est._logits(est._tensor(f_ttr.x)).argmax(-1).numpy()
            s_src = est.transform(f_str.x, f_str.domain, part="s")  # (transform keeps eval mode)
            s_tgt = est.transform(f_tte.x, f_tte.domain, part="s")
            net.train()
            cen = np.stack([s_src[f_str.y == k].mean(0) for k in range(4)])
            near = [
                int(np.linalg.norm(cen - s_tgt[t_te.y == k].mean(0), axis=1).argmin())
                for k in range(4)
            ]
            m = state.metrics
            print(
                f"ep {state.epoch:2d} tgt {100 * (pt == t_te.y).mean():5.1f} "
                f"src-test {100 * (ps == s_te.y).mean():5.1f} "
                f"src-train {100 * m.get('train_source_acc', float('nan')):5.1f} "
                f"w_align {m.get('train_align_weight', float('nan')):.2f} "
                f"beta {m.get('train_beta', float('nan')):.2f} "
                f"tgt-train-pred {np.bincount(ptr, minlength=4).tolist()} "
                f"nearest-src-centroid {near} "
                f"tgt-cm {confusion_matrix(t_te.y, pt, labels=range(4)).tolist()}",
                flush=True,
            )

    t0 = time.perf_counter()
    est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain, callbacks=[Trace()])
    pred = est.predict(f_tte.x)
    print(
        f"final: target {100 * np.mean(pred == t_te.y):.1f} %, source-test "
        f"{100 * est.score(f_ste.x, s_te.y):.1f} %, {time.perf_counter() - t0:.1f} s"
    )
    print("target confusion", confusion_matrix(t_te.y, pred, labels=range(4)).tolist())
    print("source-test confusion", confusion_matrix(s_te.y, est.predict(f_ste.x)).tolist())


if __name__ == "__main__":
    main(sys.argv[1:])
