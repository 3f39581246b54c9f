"""Why CDHM does not beat MK-MMD: the alignment term's strength and what it aligns, side by side.

Diagnosis only, on the *validation* split (pseudo-target tasks A->B, B->C, D->B, D->C of
``cdhm.bench.VALIDATION_TASKS``, fresh seeds 100..); target-test labels are read only to describe
(per-class MMD), nothing is chosen on them. Usage:
``python packages/cdhm/scripts/diagnose_gap.py [SEEDS] [METHODS]`` with comma-separated seeds
(default ``100,101``) and bench method names (default ``CDHM,MK-MMD``).

Per fit it re-runs the bench's fit (same data, seed, 2 torch threads: identical weights, since the
extra ``torch.autograd.grad`` calls draw no random numbers) and records, per optimiser step, the
gradient norm over all parameters of (a) the whole loss, (b) the weighted alignment term
lambda_a w(p) MMD^2 and (c) the rest, before the loop's clipping at norm 10. After training it
measures, on held-out windows, what the classifier reads (CDHM: E_q[s_T]; MK-MMD: h_T): MK-MMD^2
between source-test and target-test (the kernel of the training term), a linear domain probe,
the per-class MMD^2 between source and target windows of one class and the ratio of between-class
to within-class spread; for CDHM also the posterior scale of s_T against the spread of its means
(how noisy the fault head's training input is, since it is trained on samples of s_T).
"""

from __future__ import annotations

import sys

import cdhm.baselines as baselines
import cdhm.causal_hmm as causal_hmm
import numpy as np
import torch
from cdhm.bench import VALIDATION_TASKS, BenchConfig, _estimator, _task_data, linear_probe
from cdhm.models import mk_mmd

_LAST: dict[str, torch.Tensor] = {}


def _recording_mmd(a: torch.Tensor, b: torch.Tensor, *args: object) -> torch.Tensor:
    out = mk_mmd(a, b, *args)
    _LAST["mmd"] = out
    return out


def _norm(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> float:
    gs = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return float(torch.sqrt(sum((g**2).sum() for g in gs if g is not None)))


def instrument(est) -> list[dict[str, float]]:  # noqa: ANN001
    """Wrap ``est._step`` to log per-step gradient norms of the alignment term and the rest."""
    rows: list[dict[str, float]] = []
    orig = est._step

    def step(batch, progress):  # noqa: ANN001, ANN202
        _LAST.clear()
        loss, logs = orig(batch, progress)
        params = [p for p in est.net_.parameters() if p.requires_grad]
        w = logs.get("align_weight", causal_hmm.ganin_lambda(progress))
        row = {"p": progress, "total": _norm(loss, params)}
        if "mmd" in _LAST:
            al = est.lambda_align * w * _LAST["mmd"]
            row["align"] = _norm(al, params)
            row["rest"] = _norm(loss - al, params)
            row["mmd"] = float(_LAST["mmd"].detach())
        rows.append(row)
        return loss, logs

    est._step = step
    return rows


def held_out(est, method: str, f_ste, f_tte, s_te, t_te) -> dict[str, float]:  # noqa: ANN001
    """What the classifier reads, measured on held-out source and target windows."""
    cdhm_like = isinstance(est, causal_hmm.CDHMClassifier)
    if cdhm_like:
        fs = est.transform(f_ste.x, f_ste.domain, part="s")
        ft = est.transform(f_tte.x, f_tte.domain, part="s")
    else:
        fs, ft = est.transform(f_ste.x), est.transform(f_tte.x)
    a, b = torch.from_numpy(fs).double(), torch.from_numpy(ft).double()
    out = {"mmd_held_out": float(mk_mmd(a, b))}
    dom = np.r_[np.zeros(len(fs)), np.ones(len(ft))].astype(int)
    out["probe_domain"] = 100 * linear_probe(np.concatenate([fs, ft]), dom, 0)
    per_class = [
        float(mk_mmd(a[s_te.y == k], b[t_te.y == k])) for k in np.unique(s_te.y)
    ]  # diagnosis only: target-test labels describe, nothing is chosen on them
    out["mmd_same_class"] = float(np.mean(per_class))
    cen = np.stack([fs[s_te.y == k].mean(0) for k in np.unique(s_te.y)])
    within = np.mean([fs[s_te.y == k].var(0).sum() for k in np.unique(s_te.y)])
    out["between_over_within"] = float(cen.var(0).sum() / within)
    if cdhm_like:
        net = est.net_
        with torch.no_grad():
            post = net.encode(est._tensor(f_ste.x), torch.zeros(len(f_ste.x), dtype=torch.long))
        scale = post["s_scale"][:, -1].pow(2).mean(0).sum()
        spread = post["s_loc"][:, -1].var(0).sum()
        out["s_noise_over_spread"] = float(scale / spread)
    return out


def main(argv: list[str]) -> None:
    torch.set_num_threads(2)
    seeds = [int(s) for s in (argv[0] if argv else "100,101").split(",")]
    methods = (argv[1] if len(argv) > 1 else "CDHM,MK-MMD").split(",")
    causal_hmm.mk_mmd = _recording_mmd
    baselines.mk_mmd = _recording_mmd
    names = "ABCD"
    for seed in seeds:
        cfg = BenchConfig(seeds=[seed], tasks=list(VALIDATION_TASKS))
        for src, tgt in VALIDATION_TASKS:
            (s_tr, s_te, t_tr, t_te), fe = _task_data(src, tgt, seed, cfg)
            f_str, f_ste, f_ttr, f_tte = fe[cfg.front_end]
            for m in methods:
                est = _estimator(m, cfg, seed)
                rows = instrument(est)
                est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain)
                acc_t = 100 * float(np.mean(est.predict(f_tte.x) == t_te.y))
                acc_s = 100 * est.score(f_ste.x, s_te.y)
                ho = held_out(est, m, f_ste, f_tte, s_te, t_te)
                parts = []
                for lo, hi in ((0.0, 0.3), (0.3, 1.01)):
                    r = [x for x in rows if lo <= x["p"] < hi and "align" in x]
                    if r:
                        parts.append(
                            f"p[{lo:.1f},{min(hi, 1):.1f}) |g| {np.mean([x['total'] for x in r]):6.2f}"
                            f" clip {np.mean([x['total'] > 10 for x in r]):.2f}"
                            f" |g_al|/|g_rest| {np.mean([x['align'] / x['rest'] for x in r]):.3f}"
                            f" mmd {np.mean([x['mmd'] for x in r]):.3f}"
                        )
                print(
                    f"{names[src]}->{names[tgt]} seed {seed} {m:8s} tgt {acc_t:5.1f} src {acc_s:5.1f} "
                    + " ".join(f"{k} {v:.3f}" for k, v in ho.items())
                    + " | "
                    + " | ".join(parts),
                    flush=True,
                )


if __name__ == "__main__":
    main(sys.argv[1:])
