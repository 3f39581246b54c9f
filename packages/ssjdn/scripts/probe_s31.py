"""Issue 19, session 31: do the two BSD passes fight over the same features? A post-hoc probe
of today's ``+bidirectional centered`` (``sgs_pool="centered"``, contrast guide, keep-salient).

Trains ``+bidirectional centered`` with the benchmark's budget on the validation training draw of
used bench seeds (default 65 and 66: decided by rule s28, never fresh) and reads, on the seed's
hard validation draw (every image a twin, so the small objects are located exactly):

1. **Where each pass reads** (`sgs_maps`): each pass's SGS map M_p as multiplied onto each scale
   it acts on (the f->c pass: scales 2-4 from the finest scale's contrast; the c->f pass: scales
   1-3 from the coarsest scale's contrast), with the pixel-level small-object mask pooled to that
   scale's grid (area average): the share of M_p's kept mass on small-object places over their
   area share (``keep_small_p{p}_s{j}``, 1 = ignores them), the Pearson correlation of the two
   passes' maps on the scales both act on (2, 3), and the share of the f->c pass's kept mass that
   the c->f map damps below its median (``f2c_mass_damped_by_c2f_s{j}``).
2. **Aliasing of the guide** (`guide_alias`): the f->c guide (32 x 32) is resized to the coarser
   grids by bilinear interpolation without antialiasing, which at 8 x 8 and 4 x 4 samples 2 x 2
   of every 4 x 4 / 8 x 8 block. ``alias_small_mass_s{j}``: the guide's mean on small-object cells
   as multiplied (bilinear) over the same with area pooling (1 = nothing lost).
3. **What each pass carries of the small objects** (`twin_separation`): for each pass and scale,
   the mean distance between an image's delivered feature and its twin's (they differ only in
   the small objects) over the mean distance between random pairs of images.
4. **Gradient conflict** (`gradient_conflict`): on training batches, the retrieval loss's
   gradient reaches the shared projected maps P_j (and through them the backbone and 1x1
   projection) along two paths, the f->c pass and the c->f pass; they add up exactly,
   g = g_f2c + g_c2f. ``grad_cos_P_s{j}``: cosine of the two paths' gradients at P_j;
   ``grad_cos_shared``: at the backbone and projection parameters; ``grad_cancel_shared`` =
   |g_f2c + g_c2f| / (|g_f2c| + |g_c2f|) (1 aligned, 0.71 orthogonal, 0 cancelling);
   ``grad_norm_ratio`` = |g_c2f| / |g_f2c|; ``batch_cos_shared``: for calibration, the cosine of
   the full gradients of two disjoint halves of the same batch. Read at initialisation and after
   training.

Run (about 1 min a seed on 2 idle cores, under the lock):
``flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python packages/ssjdn/scripts/probe_s31.py
--seeds 65 66 --out docs/benchmarks``. Writes ``<out>/ssjdn_s31_probe.json``.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from ssjdn.bench import BenchSettings, bench_data, build_method, train_with_settings
from ssjdn.diagnostics import twin_masks
from ssjdn.train import PairBatches, evaluate_retrieval

METHOD = "+bidirectional centered"


def grid_mask(masks: torch.Tensor, size) -> torch.Tensor:
    """Pixel masks (n, H, W) -> the share of each cell of a ``size`` grid that is small object."""
    return F.adaptive_avg_pool2d(masks.float().unsqueeze(1), tuple(size))


@torch.no_grad()
def pass_maps(model, images):
    """Per pass: {scale index: M_p at that scale's grid} and the projected maps."""
    bsd = model.bsd
    projected = model.bsd_inputs(images)
    _, maps = bsd.pass_features(projected, images)
    guides = bsd.pass_guides(maps, images)
    out = []
    for p, order in enumerate(bsd.orders):
        ms = {}
        for j in order[1:]:
            ms[j] = bsd.suppression(guides[p], projected[j].shape[2:], p)
        out.append(ms)
    return out, projected, guides


@torch.no_grad()
def sgs_maps(model, data) -> dict[str, float]:
    model.eval()
    idx, masks = twin_masks(data)
    images = data.images[torch.as_tensor(idx)]
    ms, _, _ = pass_maps(model, images)
    out = {}
    for p, per_scale in enumerate(ms):
        for j, m in per_scale.items():
            sm = grid_mask(masks, m.shape[2:])
            mass = (m * sm).sum((1, 2, 3)) / m.sum((1, 2, 3)).clamp(min=1e-12)
            area = sm.mean((1, 2, 3))
            has = area > 0
            out[f"keep_small_p{p}_s{j + 1}"] = float((mass[has] / area[has]).mean())
    for j in sorted(set(ms[0]) & set(ms[1])):
        a, b = ms[0][j].flatten(1), ms[1][j].flatten(1)
        a0, b0 = a - a.mean(1, keepdim=True), b - b.mean(1, keepdim=True)
        r = (a0 * b0).sum(1) / (a0.norm(dim=1) * b0.norm(dim=1)).clamp(min=1e-12)
        out[f"map_corr_s{j + 1}"] = float(r.mean())
        low = b < b.median(dim=1, keepdim=True).values
        out[f"f2c_mass_damped_by_c2f_s{j + 1}"] = float(
            ((a * low).sum(1) / a.sum(1).clamp(min=1e-12)).mean()
        )
    return out


@torch.no_grad()
def guide_alias(model, data) -> dict[str, float]:
    model.eval()
    idx, masks = twin_masks(data)
    images = data.images[torch.as_tensor(idx)]
    _, projected, guides = pass_maps(model, images)
    g = guides[0]  # the f->c guide at the finest grid
    out = {}
    for j in range(1, len(projected)):
        size = projected[j].shape[2:]
        sm = grid_mask(masks, size)
        on = sm > 0
        bil = F.interpolate(g, size=tuple(size), mode="bilinear", align_corners=False)
        area = F.adaptive_avg_pool2d(g, tuple(size))
        ratio = (bil * on).sum((1, 2, 3)) / (area * on).sum((1, 2, 3)).clamp(min=1e-12)
        has = on.flatten(1).any(1)
        out[f"alias_small_mass_s{j + 1}"] = float(ratio[has].mean())
    return out


@torch.no_grad()
def twin_separation(model, data) -> dict[str, float]:
    model.eval()
    idx, _ = twin_masks(data)
    images = data.images[torch.as_tensor(idx)]
    x = images.flatten(1)
    dist = torch.cdist(x, x, p=1)
    dist.fill_diagonal_(float("inf"))
    twin = dist.argmin(1)
    bsd = model.bsd
    feats, _ = bsd.pass_features(model.bsd_inputs(images), images)
    gen = torch.Generator().manual_seed(0)
    perm = torch.randperm(len(images), generator=gen)
    out = {}
    for p, chain in enumerate(feats):
        for j, f in enumerate(chain):
            dt = (f - f[twin]).norm(dim=1).mean()
            dr = (f - f[perm]).norm(dim=1).mean()
            out[f"twin_sep_p{p}_s{j + 1}"] = float(dt / dr.clamp(min=1e-12))
    return out


def _path_grads(model, batch):
    """Gradients of the batch's mean loss at the projected maps along each pass, and at the
    shared parameters along each pass."""
    images, ids, mask, labels, image_ids = batch
    shared = [p for m in (model.backbone, model.proj) for p in m.parameters() if p.requires_grad]
    projected = model.bsd_inputs(images)
    leaves = [[p.detach().requires_grad_(True) for p in projected] for _ in range(2)]
    original = model.bsd_inputs
    model.bsd_inputs = lambda _images: leaves  # each pass reads its own copy of the same maps
    try:
        out = model(images, ids, mask)
        loss = model.loss(out, labels, image_ids).mean()
        gp = torch.autograd.grad(loss, leaves[0] + leaves[1])
    finally:
        model.bsd_inputs = original
    n = len(projected)
    gP = [list(gp[:n]), list(gp[n:])]
    gS = []
    for k in range(2):
        g = torch.autograd.grad(projected, shared, grad_outputs=gP[k], retain_graph=True)
        gS.append(torch.cat([t.flatten() for t in g]))
    return gP, gS, shared


def _full_grad(model, batch, shared) -> torch.Tensor:
    images, ids, mask, labels, image_ids = batch
    loss = model.loss(model(images, ids, mask), labels, image_ids).mean()
    return torch.cat([t.flatten() for t in torch.autograd.grad(loss, shared)])


def gradient_conflict(model, train, seed: int, n_batches: int = 3) -> dict[str, float]:
    model = copy.deepcopy(model)  # train-mode BatchNorm would move the probed model's statistics
    model.train()
    ids, mask = model.text.tokenize(train.flat_captions)
    gen = torch.Generator().manual_seed(20_000 + seed)
    acc: dict[str, list[float]] = {}
    for b, batch in enumerate(PairBatches(train, ids, mask, 128, gen)):
        if b >= n_batches:
            break
        gP, gS, shared = _path_grads(model, batch)
        for j in range(len(gP[0])):
            c = F.cosine_similarity(gP[0][j].flatten(), gP[1][j].flatten(), dim=0)
            acc.setdefault(f"grad_cos_P_s{j + 1}", []).append(float(c))
        acc.setdefault("grad_cos_shared", []).append(
            float(F.cosine_similarity(gS[0], gS[1], dim=0))
        )
        acc.setdefault("grad_cancel_shared", []).append(
            float((gS[0] + gS[1]).norm() / (gS[0].norm() + gS[1].norm()).clamp(min=1e-30))
        )
        acc.setdefault("grad_norm_ratio", []).append(
            float(gS[1].norm() / gS[0].norm().clamp(min=1e-30))
        )
        h = len(batch[0]) // 2
        ga = _full_grad(model, tuple(t[:h] for t in batch), shared)
        gb = _full_grad(model, tuple(t[h:] for t in batch), shared)
        acc.setdefault("batch_cos_shared", []).append(float(F.cosine_similarity(ga, gb, dim=0)))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def probe_seed(seed: int, settings: BenchSettings) -> dict[str, dict[str, float]]:
    train, val, hard = bench_data(settings, seed, "val")
    model = build_method(METHOD, train, seed)
    res = {"init": gradient_conflict(model, train, seed)}
    train_with_settings(model, train, None, settings, seed)
    trained = {"mR": evaluate_retrieval(model, val)["mR"], "hard_mR": 0.0}
    trained["hard_mR"] = evaluate_retrieval(model, hard)["mR"]
    for fn in (sgs_maps, guide_alias, twin_separation):
        trained.update(fn(model, hard))
    trained.update(gradient_conflict(model, train, seed))
    res["trained"] = trained
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[65, 66])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tiny", action="store_true", help="a small smoke run (not a result)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = BenchSettings.quick()
    if args.tiny:
        settings = BenchSettings(n_train=130, n_test=40, image_size=64, epochs=1)
    res = {"method": METHOD, "split": "val", "seeds": {}}
    for seed in args.seeds:
        res["seeds"][str(seed)] = probe_seed(seed, settings)
        for stage, vals in res["seeds"][str(seed)].items():
            print(f"== seed {seed} {stage}")
            for k, v in vals.items():
                print(f"  {k:36s} {v:.4f}")
    if args.out and not args.tiny:
        Path(args.out, "ssjdn_s31_probe.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
