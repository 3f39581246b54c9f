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
    model.bsd_inputs = lambda _images: leaves  # each pass reads its own copy of the same maps
    try:
        out = model(images, ids, mask)
        loss = model.loss(out, labels, image_ids).mean()
        flat = leaves[0] + leaves[1]
        gp = torch.autograd.grad(loss, flat, allow_unused=True)
    finally:
        del model.bsd_inputs  # the class's method again
    gp = [torch.zeros_like(x) if g is None else g for g, x in zip(gp, flat)]
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


ROWS = [
    ("mR", "validation mR / hard mR of the probed model (= the cached bench run)"),
    ("keep_small_p0_s2", "f->c map on the small objects / their area share, scale 2"),
    ("keep_small_p0_s3", "the same, scale 3"),
    ("keep_small_p0_s4", "the same, scale 4"),
    ("keep_small_p1_s1", "c->f map on the small objects / their area share, scale 1"),
    ("keep_small_p1_s2", "the same, scale 2"),
    ("keep_small_p1_s3", "the same, scale 3"),
    ("map_corr_s2", "Pearson r of the two passes' maps, scale 2"),
    ("map_corr_s3", "the same, scale 3"),
    ("f2c_mass_damped_by_c2f_s2", "f->c kept mass where the c->f map is below its median, s2"),
    ("f2c_mass_damped_by_c2f_s3", "the same, scale 3 (0.5 = unrelated maps)"),
    ("alias_small_mass_s3", "f->c guide on small-object cells, bilinear / area pooling, s3"),
    ("alias_small_mass_s4", "the same, scale 4"),
    ("twin_sep_p0_s1", "twin distance / random-pair distance, f->c pass, scale 1 (guide)"),
    ("twin_sep_p0_s2", "the same, f->c pass, scale 2"),
    ("twin_sep_p0_s3", "the same, f->c pass, scale 3"),
    ("twin_sep_p0_s4", "the same, f->c pass, scale 4"),
    ("twin_sep_p1_s1", "the same, c->f pass, scale 1"),
    ("twin_sep_p1_s2", "the same, c->f pass, scale 2"),
    ("twin_sep_p1_s3", "the same, c->f pass, scale 3"),
    ("twin_sep_p1_s4", "the same, c->f pass, scale 4 (guide)"),
    ("grad_cos_shared", "cos(g_f2c, g_c2f) at the backbone + projection"),
    ("grad_cancel_shared", "‖g_f2c + g_c2f‖ / (‖g_f2c‖ + ‖g_c2f‖) (0.71 = orthogonal)"),
    ("grad_norm_ratio", "‖g_c2f‖ / ‖g_f2c‖"),
    ("batch_cos_shared", "calibration: cos of two half-batches' full gradients"),
    ("grad_cos_P_s2", "cos(g_f2c, g_c2f) at the projected map P_2"),
    ("grad_cos_P_s3", "the same at P_3"),
]


def _fmt(vals: list[float]) -> str:
    t = torch.tensor(vals, dtype=torch.float64)
    sd = float(t.std()) if len(vals) > 1 else 0.0
    return f"{float(t.mean()):.3f} ± {sd:.3f}"


def report(res: dict) -> str:
    """Markdown table of `res` (the JSON this script writes): mean ± std over the seeds and each
    seed's value, trained model; the gradient rows also at initialisation."""
    seeds = sorted(res["seeds"], key=int)
    head = "| probe | mean ± std | " + " | ".join(f"seed {s}" for s in seeds) + " |"
    lines = [head, "|---|---|" + "---|" * len(seeds)]
    for stage in ("trained", "init"):
        for key, text in ROWS:
            if stage == "init" and not key.startswith(("grad", "batch")):
                continue
            vals = [res["seeds"][s][stage][key] for s in seeds]
            cells = " | ".join(f"{v:.3f}" for v in vals)
            if key == "mR":
                hard = [res["seeds"][s][stage]["hard_mR"] for s in seeds]
                cells = " | ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(vals, hard))
                lines.append(f"| {text} | {_fmt(vals)} / {_fmt(hard)} | {cells} |")
                continue
            label = f"{text} (at initialisation)" if stage == "init" else text
            lines.append(f"| {label} | {_fmt(vals)} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[65, 66])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    ap.add_argument("--tiny", action="store_true", help="a small smoke run (not a result)")
    ap.add_argument(
        "--table", action="store_true", help="print the table of <out>'s JSON, run nothing"
    )
    args = ap.parse_args()
    if args.table:
        print(report(json.loads(Path(args.out, "ssjdn_s31_probe.json").read_text())), end="")
        return
    torch.set_num_threads(args.threads)
    settings = BenchSettings.quick()
    if args.tiny:
        settings = BenchSettings(n_train=130, n_test=40, image_size=64, epochs=1)
    path = Path(args.out or ".", "ssjdn_s31_probe.json")
    res = {"method": METHOD, "split": "val", "seeds": {}}
    if args.out and not args.tiny and path.is_file():  # earlier seeds stay (one seed per key)
        res = json.loads(path.read_text())
    for seed in args.seeds:
        res["seeds"][str(seed)] = probe_seed(seed, settings)
        for stage, vals in res["seeds"][str(seed)].items():
            print(f"== seed {seed} {stage}")
            for k, v in vals.items():
                print(f"  {k:36s} {v:.4f}")
    if args.out and not args.tiny:
        path.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
