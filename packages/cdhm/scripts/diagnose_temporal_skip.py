"""Diagnosis: what the s chain's Markov prior does to q(s) when the linear skip is on.

Usage: ``python packages/cdhm/scripts/diagnose_temporal_skip.py TASK SEEDS METHOD[:K=V,...] ...``,
e.g. ``... A->D 190,191 CDHM+adda+stickyz0.25+optcarry+sskip CDHM-no-temporal+adda+optcarry+sskip``.
Fits each METHOD (the bench's options, ``cdhm.bench._estimator``, with optional overrides after a
colon) on the hard-tier TASK at each seed (the bench's data, front end and budget) and prints, on
the target's test windows (read by the deployed, target guide) and the source's test windows
(source guide), per step t = 0 and averaged over t >= 1:

- ``kl``: the analytic KL(q(s_t) || p(s_t | s_{t-1})) (s_{t-1} the guide's sample), nats;
- ``p_sd`` / ``q_sd``: the mean scale of the prior and of q(s_t);
- ``pull``: ||E_q s_t - E_p s_t|| / p_sd, the posterior mean's distance from the prior's mean in
  prior standard deviations (rms over dimensions): how hard the prior pulls on the mean;
- ``skip``: ||r_t|| / ||E_q s_t|| with r_t the skip's term W mean(x_1..x_t) (0 without a skip);
- ``|s_T|``: the rms norm of E_q s_T; ``step``: rms ||E_q s_t - E_q s_{t-1}|| for t >= 1;
- ``rho`` (``s_transition="ar1"`` only): the learned correlation of the s chain, mean over dims.

Nothing is written; nothing is chosen from it.
"""

from __future__ import annotations

import ast
import sys
import time

import numpy as np
import pyro
import torch
from cdhm.bench import BenchConfig, _estimator, _task_data
from cdhm.data import DOMAIN_TIERS
from pyro import poutine
from torch.distributions import kl_divergence


@torch.no_grad()
def chain_stats(est, X, cond: int) -> dict[str, float]:
    """The per-step statistics of the module docstring on windows X of condition `cond`."""
    net = est.net_
    net.eval()
    x = est._tensor(X)
    c = torch.full((len(x),), cond, dtype=torch.long)
    rows = est._target_rows(net, c)
    pyro.set_rng_seed(0)
    with pyro.validation_enabled(False):
        g = poutine.trace(net.guide).get_trace(x, c, target_rows=rows)
        m = poutine.trace(poutine.replay(net.model, trace=g)).get_trace(x, c, target_rows=rows)
    post = net._cache
    parts = net.target_guide if rows is not None and bool(rows.all()) else net
    skip = getattr(parts, "s_skip", None)
    if skip is not None and parts is not net and net.target_skip != "adapted":
        skip = net.s_skip if net.target_skip == "source" else None
    r = skip(x) if skip is not None else torch.zeros_like(post["s_loc"])
    out: dict[str, list[float]] = {k: [] for k in ("kl", "p_sd", "q_sd", "pull", "skip")}
    for t in range(net.T):
        q = g.nodes[f"s_{t}"]["fn"].base_dist
        p = m.nodes[f"s_{t}"]["fn"].base_dist
        out["kl"].append(float(kl_divergence(q, p).sum(-1).mean()))
        out["p_sd"].append(float(p.scale.mean()))
        out["q_sd"].append(float(q.scale.mean()))
        out["pull"].append(float(((q.loc - p.loc) / p.scale).pow(2).mean().sqrt()))
        out["skip"].append(float(r[:, t].norm(dim=-1).mean() / q.loc.norm(dim=-1).mean()))
    s = post["s_loc"]
    res = {f"{k}0": v[0] for k, v in out.items()}
    res.update({f"{k}1+": float(np.mean(v[1:])) for k, v in out.items()})
    res["|s_T|"] = float(s[:, -1].pow(2).mean().sqrt())
    res["step"] = float((s[:, 1:] - s[:, :-1]).pow(2).mean().sqrt())
    if hasattr(net, "p_s_ar"):  # s_transition="ar1": the learned correlation, mean over dims
        res["rho"] = float(net.p_s_ar.rho().mean())
    return res


def main(argv: list[str]) -> None:
    if len(argv) < 3:
        raise SystemExit(__doc__)
    task, seeds, *methods = argv
    names = [d.name for d in DOMAIN_TIERS["hard"]]
    src, tgt = task.split("->")
    s_i, t_i = names.index(src), names.index(tgt)
    torch.set_num_threads(2)
    cfg = BenchConfig()
    specs = []
    for spec in methods:
        method, _, opts = spec.partition(":")
        overrides = {}
        for pair in filter(None, opts.split(",")):
            k, _, v = pair.partition("=")
            overrides[k] = ast.literal_eval(v)
        specs.append((spec, method, overrides))
    accs: dict[str, list[float]] = {spec: [] for spec, _, _ in specs}
    rows: dict[str, dict[str, list]] = {spec: {"target": [], "source": []} for spec, _, _ in specs}
    for seed in (int(v) for v in seeds.split(",")):  # seed by seed: one task's data at a time
        (s_tr, s_te, _, t_te), fe = _task_data(s_i, t_i, seed, cfg)
        f_str, f_ste, f_ttr, f_tte = fe[cfg.front_end]
        for spec, method, overrides in specs:
            est = _estimator(method, cfg, seed).set_params(**overrides)
            t0 = time.perf_counter()
            est.fit(f_str.x, f_str.y, f_ttr.x, f_str.domain, f_ttr.domain)
            acc = 100 * float(np.mean(est.predict(f_tte.x) == t_te.y))
            accs[spec].append(acc)
            rows[spec]["target"].append(chain_stats(est, f_tte.x, int(f_ttr.domain[0])))
            rows[spec]["source"].append(chain_stats(est, f_ste.x, int(f_str.domain[0])))
            print(f"{task} seed {seed} {spec}: {acc:.1f} % ({time.perf_counter() - t0:.1f} s)")
            sys.stdout.flush()
    for spec, _, _ in specs:
        keys = list(rows[spec]["target"][0])
        print(f"== {spec}: acc {np.mean(accs[spec]):.2f} ± {np.std(accs[spec], ddof=1):.2f} %")
        print("   " + " ".join(f"{k:>7}" for k in ["windows", *keys]))
        for side, vals in rows[spec].items():
            means = [np.mean([v[k] for v in vals]) for k in keys]
            print("   " + f"{side:>7} " + " ".join(f"{m:7.3f}" for m in means))


if __name__ == "__main__":
    main(sys.argv[1:])
