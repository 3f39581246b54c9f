"""Why the alignment rung adds nothing (issue 18, session 34): what the MK-MMD term does in a fit.

Usage: ``python packages/cdhm/scripts/diagnose_alignment.py OUT.json TASK:SEEDS [...] [--rows D,R]``,
e.g. ``... out.json 'A->D:202,203' 'B->C:202'``; ``--rows C`` fits session 34's ``+jmmd`` row. For each task-seed it fits the library default's
bench row D (``cdhm.bench.DEFAULT_ROW``) and its alignment rung R (``DEFAULT_LADDER[-1]``, the
same model with ``alignment=None``) on the bench's data (``cdhm.bench._task_data``, as
``scripts/screen_target_s.py``), and records (diagnosis only, used seeds; nothing is chosen):

- **during training** (every step): ``loss_pyro`` (the scaled −ELBO with the label and condition
  terms, per segment sample, what the fit minimises besides the alignment), the alignment term as
  it enters the loss, λ w(p) MMD²(s_T^src, s_T^tgt) (λ = ``lambda_align``, w the schedule), and in
  both rows the batch's MK-MMD² of s_T between the domains (R: measured, not trained on);
  every 4th step after the untied split, the gradient norms of the alignment term and of the rest
  of the loss on the target guide's parameters and on the target windows' posterior means s
  (their ratio and cosine);
- **after training** (source-test vs target-test windows, ``transform`` routing): the MK-MMD² of
  s_T and z_T between the domains (x 100), the mean over steps t of the MK-MMD² of s_t, the rms
  gap of the domain means of s_T, the rms size of s_T per domain, the bench's linear domain probe
  on s_T and on z_T, the fault head's target accuracy ``acc`` (deployed: target guide), ``sep``
  (5-fold logistic regression on the target's s_T with its true labels), ``acc_src_guide`` (the
  same head on the target windows read through the *source* guide, i.e. without what the target
  guide learned after the split) and the agreement of the two readings' predictions, and the
  ELBO blocks of the target windows (``CDHMClassifier.elbo_terms``).

Writes OUT.json (one entry per task-seed and row; per-epoch means of the step logs) and prints a
summary line per fit.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from cdhm.bench import (
    DEFAULT_LADDER,
    DEFAULT_ROW,
    BenchConfig,
    _estimator,
    _task_data,
    class_swaps,
    linear_probe,
)
from cdhm.data import DOMAIN_TIERS
from cdhm.models import joint_mmd, mk_mmd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score

#: The rows by tag: D the default, R its alignment rung, C session 34's joint alignment
#: (``--rows`` picks some; default D and R).
ROWS = {"D": DEFAULT_ROW, "R": DEFAULT_LADDER[-1], "C": DEFAULT_ROW + "+jmmd"}
GRAD_EVERY = 4


def _norm(gs) -> float:
    return float(torch.sqrt(sum((g.double() ** 2).sum() for g in gs if g is not None)))


def _cos(a, b) -> float:
    num = sum(
        (x.double() * y.double()).sum() for x, y in zip(a, b) if x is not None and y is not None
    )
    den = _norm(a) * _norm(b)
    return float(num / den) if den > 0 else float("nan")


def instrument(est) -> list[dict]:
    """Wrap `est._step` (instance attribute: the fit's objective calls it) to log every step."""
    log: list[dict] = []
    orig = est._step
    count = {"n": 0}

    def step(batch, progress):
        loss, logs = orig(batch, progress)
        net = est.net_
        ns = len(batch["xs"])
        rec = {"p": progress, "loss_pyro": logs["loss_pyro"], "loss": logs["loss"]}
        s_all = net._cache["s_loc"]
        s_al = torch.cat([s_all[:ns].detach(), s_all[ns:]])[:, -1]
        a = mk_mmd(s_al[:ns], s_al[ns:])
        rec["mmd_sT_batch"] = float(a.detach())
        if est.alignment == "jmmd":  # the term the fit trains on (as in CDHMClassifier._step)
            frozen = {k: v.detach() for k, v in net.fault_head.named_parameters()}
            pr = torch.softmax(torch.func.functional_call(net.fault_head, frozen, (s_al,)), -1)
            a = joint_mmd(s_al[:ns], s_al[ns:], pr[:ns], pr[ns:])
        w = logs.get("align_weight", 0.0)
        rec["align_weight"] = w
        rec["align_in_loss"] = est.lambda_align * w * float(a.detach()) if "align" in logs else 0.0
        if "align" in logs:  # the recomputed term is the fit's own
            assert abs(float(a.detach()) - logs["align"]) < 1e-5 * max(1.0, abs(logs["align"]))
        count["n"] += 1
        split = getattr(net, "target_split", False)
        if split and "align" in logs and w > 0 and count["n"] % GRAD_EVERY == 0:
            term = est.lambda_align * w * a
            params = [q for q in net.target_guide.parameters() if q.requires_grad]
            g_all = torch.autograd.grad(
                loss, params + [s_all], retain_graph=True, allow_unused=True
            )
            g_al = torch.autograd.grad(term, params + [s_all], retain_graph=True, allow_unused=True)
            k = len(params)
            zero = [torch.zeros_like(q) for q in params + [s_all]]
            g_all = [z if g is None else g for g, z in zip(g_all, zero)]
            g_al = [z if g is None else g for g, z in zip(g_al, zero)]
            g_rest = [x - y for x, y in zip(g_all, g_al)]
            rec["grad_guide_align"] = _norm(g_al[:k])
            rec["grad_guide_rest"] = _norm(g_rest[:k])
            rec["grad_guide_cos"] = _cos(g_al[:k], g_rest[:k])
            st_al, st_rest = g_al[k][ns:], g_rest[k][ns:]
            rec["grad_sT_align"] = _norm([st_al[:, -1]])
            rec["grad_sT_rest"] = _norm([st_rest[:, -1]])
            rec["grad_s_rest_all_steps"] = _norm([st_rest])
            rec["grad_sT_cos"] = _cos([st_al[:, -1]], [st_rest[:, -1]])
        log.append(rec)
        return loss, logs

    est._step = step
    return log


@torch.no_grad()
def end_metrics(est, f_ste, f_tte, t_te, target: int) -> dict:
    net = est.net_
    net.eval()
    cs, ct = f_ste.domain, f_tte.domain
    out: dict = {}
    s_src = est.transform(f_ste.x, cs, part="s")
    s_tgt = est.transform(f_tte.x, ct, part="s")
    z_src = est.transform(f_ste.x, cs, part="z")
    z_tgt = est.transform(f_tte.x, ct, part="z")
    t32 = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
    out["mmd_sT_x100"] = 100 * float(mk_mmd(t32(s_src), t32(s_tgt)))
    out["mmd_zT_x100"] = 100 * float(mk_mmd(t32(z_src), t32(z_tgt)))
    out["dmu_sT"] = float(np.sqrt(np.mean((s_src.mean(0) - s_tgt.mean(0)) ** 2)))
    out["size_sT_src"] = float(np.sqrt(np.mean(s_src**2)))
    out["size_sT_tgt"] = float(np.sqrt(np.mean(s_tgt**2)))
    # every step's s_t through the same routing as transform
    xs, cs_t = est.segments(f_ste.x, cs)
    xt, ct_t = est.segments(f_tte.x, ct)
    rows_t = est._target_rows(net, ct_t)
    ss_all = net.encode(xs, cs_t, est._target_rows(net, cs_t))["s_loc"]
    st_all = net.encode(xt, ct_t, rows_t)["s_loc"]
    out["mmd_s_t_x100"] = [100 * float(mk_mmd(ss_all[:, t], st_all[:, t])) for t in range(net.T)]
    dom = np.r_[np.zeros(len(s_src)), np.ones(len(s_tgt))].astype(int)
    out["probe_s_domain"] = linear_probe(np.r_[s_src, s_tgt], dom)
    out["probe_z_domain"] = linear_probe(np.r_[z_src, z_tgt], dom)
    cls = list(est.classes_)
    yt = np.array([cls.index(v) for v in t_te.y])
    pred = net.fault_head(t32(s_tgt)).argmax(-1).numpy()
    out["acc"] = 100 * float(np.mean(pred == yt))
    out["swaps"] = len(class_swaps(yt, pred))
    out["minrec"] = min(100 * float(np.mean(pred[yt == c] == c)) for c in np.unique(yt))
    n_fold = min(5, int(np.bincount(yt).min()))
    sep = cross_val_score(LogisticRegression(max_iter=2000), s_tgt, yt, cv=n_fold).mean()
    out["sep"] = 100 * float(sep)
    # the target windows through the source guide (what the head reads without the target guide)
    s_via_src = net.encode(xt, ct_t, None)["s_loc"][:, -1]
    pred_src = net.fault_head(s_via_src).argmax(-1).numpy()
    out["acc_src_guide"] = 100 * float(np.mean(pred_src == yt))
    out["agree_with_src_guide"] = 100 * float(np.mean(pred_src == pred))
    out["shift_tgt_vs_src_guide"] = float(np.sqrt(np.mean((s_via_src.numpy() - s_tgt) ** 2)))
    out["elbo_target"] = est.elbo_terms(f_tte.x, ct)
    out["elbo_source"] = est.elbo_terms(f_ste.x, cs)
    return out


def per_epoch(log: list[dict], n_epochs: int) -> dict:
    """Per-epoch means of the step logs (epoch e = the steps with p in its 1/n_epochs slice)."""
    keys = sorted({k for r in log for k in r} - {"p"})
    ep = np.minimum((np.array([r["p"] for r in log]) * n_epochs).astype(int), n_epochs - 1)
    out = {}
    for k in keys:
        v = np.array([r.get(k, np.nan) for r in log], dtype=float)
        out[k] = [
            float(np.nanmean(v[ep == e])) if np.isfinite(v[ep == e]).any() else None
            for e in range(n_epochs)
        ]
    return out


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit(__doc__)
    tags = ["D", "R"]
    if "--rows" in argv:  # e.g. --rows C
        i = argv.index("--rows")
        tags = argv[i + 1].split(",")
        argv = argv[:i] + argv[i + 2 :]
        if not tags or not set(tags) <= set(ROWS):
            raise SystemExit(f"--rows must be a comma list of {sorted(ROWS)}, got {tags}")
    out_file = Path(argv[0])
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    torch.set_num_threads(2)
    results = json.loads(out_file.read_text()) if out_file.exists() else {}
    for spec in argv[1:]:
        task, seeds = spec.split(":")
        src, tgt = (names.index(n) for n in task.split("->"))
        for seed in (int(v) for v in seeds.split(",")):
            cfg = BenchConfig(tasks=[(src, tgt)], seeds=[seed])
            splits, fe = _task_data(src, tgt, seed, cfg)
            f_str, f_ste, f_ttr, f_tte = fe[cfg.front_end]
            for tag in tags:
                method = ROWS[tag]
                key = f"{task}|{seed}|{tag}"
                if key in results:  # resumable
                    continue
                est = _estimator(method, cfg, seed)
                log = instrument(est)
                t0 = time.perf_counter()
                est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain)
                secs = time.perf_counter() - t0
                m = end_metrics(est, f_ste, f_tte, splits[3], tgt)
                results[key] = {
                    "method": method,
                    "train_seconds": secs,
                    "end": m,
                    "epochs": per_epoch(log, cfg.epochs),
                    "steps": len(log),
                }
                out_file.write_text(json.dumps(results, indent=1))
                print(
                    f"{key} acc {m['acc']:.2f} sep {m['sep']:.2f} src-guide {m['acc_src_guide']:.2f} "
                    f"agree {m['agree_with_src_guide']:.1f} mmd_sT {m['mmd_sT_x100']:.2f} "
                    f"probe_s {100 * m['probe_s_domain']:.1f} |s| {m['size_sT_src']:.2f}/"
                    f"{m['size_sT_tgt']:.2f} {secs:.1f}s",
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
