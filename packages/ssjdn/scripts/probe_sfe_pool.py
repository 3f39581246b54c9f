"""Issue 19, session 25: do the two BSD passes hand over near-copies because SFE pools each
scale over the whole image? A post-hoc probe of other poolings on one trained model.

Trains ``+bidirectional`` (today's defaults) on the validation training draw of one old bench
seed (default 0; seeds 45..49 stay fresh) with the benchmark's budget, then recomputes every
pass's per-scale features from the same salience maps A (SFE), SGS maps M and projected maps P
under other poolings, and prints, per pooling, the held-out R^2 of the coarse->fine pass's
features from the fine->coarse pass's (`ssjdn.diagnostics.linear_r2`, both ways) and the mean
same-scale cosine of the two passes' features:

- ``today``: f = sum_hw A M P / sum_hw A (SFE's image-wide pooling of the suppressed maps);
- ``kept``: f = sum_hw A M P / sum_hw A M (salience-weighted mean over what SGS keeps);
- ``kept_centered``: ``kept`` minus the scale's plain mean over all places (what the kept
  places hold beyond what every place shares);
- ``region2``: ``today`` per cell of a 2 x 2 grid (4 x the width);
- ``region2_kept``: ``kept`` per cell of a 2 x 2 grid;
- ``region2_kept_centered``: ``region2_kept`` minus each cell's plain mean.

The model was trained with ``today``, so the other rows say what the same maps would hand
over, not what a model trained with them learns. Also at initialisation (``init_*``). Evaluated
on ``--n-eval`` images of the validation evaluation draw's generator seed (5000 + seed).
Run (about 1 min on 2 idle cores; under ``flock /tmp/heavy.lock`` on the shared machine):
``python packages/ssjdn/scripts/probe_sfe_pool.py --seed 0 --out docs/benchmarks``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from ssjdn.bench import BenchSettings, bench_data, build_method, train_with_settings
from ssjdn.diagnostics import linear_r2
from ssjdn.scenes import make_multiscale_scenes

RUNG = "+bidirectional"


@torch.no_grad()
def pass_parts(model, images):
    """Per pass, per scale (scale order): (A, M or None, P) as the default BSD forward uses them."""
    bsd = model.bsd
    per_pass = bsd.per_pass_inputs(model.bsd_inputs(images))
    out = []
    for k, (order, units) in enumerate(zip(bsd.orders, bsd.chains)):
        prev = None
        parts = [None] * len(order)
        for i in order:
            p = per_pass[k][i]
            m = None
            if prev is not None:
                m = bsd.suppression(prev, p.shape[2:], k)
            a, _ = units[i](p if m is None else p * m)
            parts[i] = (a, m, p)
            if prev is None:
                prev = bsd.guide_salience(a, images)
        out.append(parts)
    return out


def pool(a, m, p, how: str) -> torch.Tensor:
    w = a if m is None else a * m
    if how == "today":
        return (w * p).sum((2, 3)) / a.sum((2, 3)).clamp(min=1e-6)
    if how == "kept":
        return (w * p).sum((2, 3)) / w.sum((2, 3)).clamp(min=1e-6)
    if how == "kept_centered":
        return pool(a, m, p, "kept") - p.mean((2, 3))
    if how.startswith("region2"):
        g = 2
        h = p.shape[2]
        if h < g:  # a 1x1 grid: one region
            return pool(a, m, p, how.replace("region2_", "").replace("region2", "today"))
        num = F.adaptive_avg_pool2d(w * p, g)
        if how == "region2":
            den = F.adaptive_avg_pool2d(a, g)
        else:
            den = F.adaptive_avg_pool2d(w, g)
        f = num / den.clamp(min=1e-6)
        if how == "region2_kept_centered":
            f = f - F.adaptive_avg_pool2d(p, g)
        return f.flatten(1)
    raise ValueError(how)


POOLS = ("today", "kept", "kept_centered", "region2", "region2_kept", "region2_kept_centered")


@torch.no_grad()
def probes(model, images, prefix: str) -> dict[str, float]:
    model.eval()
    parts = pass_parts(model, images)
    out = {}
    for how in POOLS:
        feats = [[pool(a, m, p, how) for a, m, p in chain] for chain in parts]
        f2c, c2f = (torch.cat(chain, dim=1) for chain in feats)
        out[f"{prefix}{how}_r2_c2f_from_f2c"] = linear_r2(f2c, c2f)
        out[f"{prefix}{how}_r2_f2c_from_c2f"] = linear_r2(c2f, f2c)
        cos = [F.cosine_similarity(x, y, dim=1).mean() for x, y in zip(*feats)]
        out[f"{prefix}{how}_cos"] = float(torch.stack(cos).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-eval", type=int, default=800)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = BenchSettings.quick()
    train, _, _ = bench_data(settings, args.seed, "val")
    ev = make_multiscale_scenes(args.n_eval, settings.image_size, 5000 + args.seed)
    model = build_method(RUNG, train, args.seed)
    res = {"seed": args.seed, "n_eval": args.n_eval}
    res.update(probes(model, ev.images, "init_"))
    model.train()
    train_with_settings(model, train, None, settings, args.seed)
    res.update(probes(model, ev.images, ""))
    shapes = [tuple(a.shape[2:]) for a, _, _ in pass_parts(model, ev.images[:2])[0]]
    res["grids"] = str(shapes)
    for k, v in res.items():
        print(f"{k:40s} {v:.3f}" if isinstance(v, float) else f"{k:40s} {v}")
    if args.out:
        Path(args.out, "ssjdn_sfe_pool_probe.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
