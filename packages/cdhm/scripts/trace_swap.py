"""Trace a class swap of the untied (ADDA) CDHM epoch by epoch, guide by guide, term by term.

Diagnosis only (it reads target *test* labels to describe a failure; nothing is chosen on it).
Usage: ``python packages/cdhm/scripts/trace_swap.py SOURCE TARGET SEED [METHOD] [JSON]`` with
domain indices of the hard tier (A=0 .. D=3), a bench method name (default
``CDHM+adda+stickyz0.25``, the library default up to session 24; since then it is
``CDHM+adda+stickyz0.25+optcarry``) and optional JSON keyword overrides, e.g. ``3 1 159`` for the
D->B seed-159 normal <-> ball swap of the validation runs. It builds the data and the
estimator as ``cdhm bench --validate`` does (2 torch threads), so its final accuracy is the
bench's. Per epoch it prints, for the classes normal (n) and ball (b) only:

- ``src-guide``: the *source* guide's reading (fault head on its E_q[s_T]) of the held-out source
  windows and of the target-test windows, as [n->n, n->b, b->n, b->b] counts;
- ``tgt-guide``: the same for the target guide on the target-test windows (after the split;
  before it every window goes through the one shared guide, so it repeats ``src-guide``);
- ``near``: the source class whose source-train centroid of E_q[s_T] (source guide) is nearest to
  the centroid of target-test normal and of target-test ball (target guide after the split);
- ``terms``: the epoch means of the training logs (the Pyro loss per segment sample, the
  alignment term and its weight) and the source-train accuracy of the fault head;
- ``step``: the mean |change| of a parameter per optimiser step over the epoch (x 1e-4), for the
  source guide's parameters and the target guide's (GUIDE_PARTS: encoder, q_s, q_s_out, q_z,
  q_z_out); ``gap``: the mean distance between the target guide's and the source guide's
  E_q[s_T] of the target-test windows (0 before the split).

At the end it prints the target and held-out source confusion matrices (classes normal, inner,
ball, outer; rows true), each guide's.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from cdhm.bench import BenchConfig, _estimator, _task_data
from cdhm.causal_hmm import GUIDE_PARTS
from maskloop import Callback
from sklearn.metrics import confusion_matrix

NB = (0, 2)  # normal, ball


def _nb(true: np.ndarray, pred: np.ndarray) -> list[int]:
    """[n->n, n->b, b->n, b->b] counts."""
    return [int(np.sum((true == a) & (pred == b))) for a in NB for b in NB]


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    src, tgt, seed = (int(a) for a in argv[:3])
    method = argv[3] if len(argv) > 3 else "CDHM+adda+stickyz0.25"
    extra = json.loads(argv[4]) if len(argv) > 4 else {}
    cfg = BenchConfig(seeds=[seed], tasks=[(src, tgt)])
    (s_tr, s_te, t_tr, t_te), fe = _task_data(src, tgt, seed, cfg)
    f_str, f_ste, f_ttr, f_tte = fe[cfg.front_end]
    est = _estimator(method, cfg, seed).set_params(**extra)

    def read(x: np.ndarray, dom: np.ndarray, target_guide: bool) -> tuple[np.ndarray, np.ndarray]:
        """(E_q[s] (B, T, s_dim), head prediction) of windows x through one guide."""
        net = est.net_
        xt = est._tensor(x)
        c = torch.as_tensor(dom, dtype=torch.long)
        rows = torch.ones(len(xt), dtype=torch.bool) if target_guide else None
        with torch.no_grad():
            s = net.encode(xt, c, rows)["s_loc"]
            return s.numpy(), net.fault_logits(s).argmax(-1).numpy()

    def row(state) -> str:  # noqa: ANN001
        net = state.model
        net.eval()
        split = bool(net.target_split)
        s_src, _ = read(f_str.x, f_str.domain, False)
        _, p_ste = read(f_ste.x, f_ste.domain, False)
        s_tte_src, p_tte_src = read(f_tte.x, f_tte.domain, False)
        s_tte, p_tte = read(f_tte.x, f_tte.domain, split) if split else (s_tte_src, p_tte_src)
        net.train()
        cen = np.stack([s_src[f_str.y == k, -1].mean(0) for k in range(4)])
        near = [
            int(np.linalg.norm(cen - s_tte[t_te.y == k, -1].mean(0), axis=1).argmin()) for k in NB
        ]
        m = state.metrics
        gap = float(np.linalg.norm(s_tte[:, -1] - s_tte_src[:, -1], axis=1).mean())
        upd = {k: 1e4 * np.mean(v) if v else 0.0 for k, v in steps.items()}
        for v in steps.values():
            v.clear()
        return (
            f"ep {state.epoch:2d} split {int(split)} "
            f"src-guide src-test {_nb(s_te.y, p_ste)} tgt-test {_nb(t_te.y, p_tte_src)} "
            f"tgt-guide tgt-test {_nb(t_te.y, p_tte)} acc {100 * np.mean(p_tte == t_te.y):5.1f} "
            f"near n,b {near} terms pyro {m.get('train_loss_pyro', float('nan')):.3f} "
            f"align {m.get('train_align', float('nan')):.3f} "
            f"w {m.get('train_align_weight', float('nan')):.2f} "
            f"src-train-acc {100 * m.get('train_source_acc', float('nan')):5.1f} "
            f"step src/tgt {upd['source']:.2f}/{upd['target']:.2f} gap {gap:.3f}"
        )

    steps: dict[str, list[float]] = {"source": [], "target": []}

    def guide_params(net) -> dict[str, list[torch.Tensor]]:  # noqa: ANN001
        names = [n for n in GUIDE_PARTS if hasattr(net, n)]
        return {
            "source": [p for n in names for p in getattr(net, n).parameters()],
            "target": [p for n in names for p in net.target_guide[n].parameters()]
            if net.target_split
            else [],
        }

    class Trace(Callback):
        def on_batch_start(self, state):  # noqa: ANN001
            self.before = {
                k: [p.detach().clone() for p in v] for k, v in guide_params(state.model).items()
            }

        def on_step_end(self, state):  # noqa: ANN001
            for k, v in guide_params(state.model).items():
                if v and len(v) == len(self.before[k]):
                    d = torch.cat(
                        [(p.detach() - q).abs().flatten() for p, q in zip(v, self.before[k])]
                    )
                    steps[k].append(float(d.mean()))

        def on_epoch_end(self, state):  # noqa: ANN001
            print(row(state), flush=True)

    t0 = time.perf_counter()
    est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain, callbacks=[Trace()])
    pred = est.predict(f_tte.x)
    print(f"final: target {100 * np.mean(pred == t_te.y):.1f} % ({time.perf_counter() - t0:.0f} s)")
    split = bool(est.net_.target_split)
    for name, x, y, dom in (
        ("target", f_tte.x, t_te.y, f_tte.domain),
        ("source", f_ste.x, s_te.y, f_ste.domain),
    ):
        for guide in ("source", "target") if split else ("shared",):
            _, p = read(x, dom, guide == "target")
            cm = confusion_matrix(y, p, labels=range(4)).tolist()
            print(f"{name}-test windows, {guide} guide: {100 * np.mean(p == y):.1f} % {cm}")


if __name__ == "__main__":
    main(sys.argv[1:])
