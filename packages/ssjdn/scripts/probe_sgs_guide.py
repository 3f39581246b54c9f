"""Why the learned SGS guide map misses the small objects, and what a local-contrast guide sees.

Trains ``+SGS (one direction)`` on the validation draw of one seed with the benchmark's budget and
probes it on the hard split's twin images (small objects located exactly by the twins):

- ``ceiling_z_s{i}``: contrast (`mask_contrast`) of the best map a scale's grid can hold, the
  small-object coverage of each cell (can the scale resolve them at all?);
- ``learned_z_s{i}`` / ``learned_logit_std_s{i}``: the learned SFE map's contrast and its logit's
  spatial std, at initialisation and trained;
- ``oracle_linear_z_s{i}``: a least-squares map from the scale's projected features to the
  coverage, fit on half of the images and scored on the other half (do the features carry them?);
- ``contrast_feat_z_s{i}`` / ``contrast_feat_noborder_z_s{i}`` / ``contrast_image_z_s{i}``: the
  local contrast (3 x 3 cells) of the projected features (with / without the border ring of
  cells, where the backbone's padding makes contrast) and of the image on the scale's grid;
- ``grad_z_small_caps`` / ``grad_z_large_caps``: contrast of -dL/d(guide logit) on the small
  objects, with small- / large-object captions (> 0: descent raises the guide there);
- ``rel_weight_change``, ``guide_map_corr_init_vs_trained``, ``pool_weight_share_small_s1`` vs
  ``area_share_small_s1``.

Writes ``<out>/ssjdn_sgs_guide_probe.json`` and the figure ``<out>/ssjdn_sgs_guide.png``.
Run: ``python packages/ssjdn/scripts/probe_sgs_guide.py --seed 0 --out docs/benchmarks`` (about
30 s on 2 idle cores; under ``flock /tmp/heavy.lock`` on the shared machine).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from ssjdn import local_contrast_salience
from ssjdn.bench import BenchSettings, bench_data, build_method, train_rung
from ssjdn.diagnostics import _save_figure, mask_contrast, twin_masks
from ssjdn.train import evaluate_retrieval

RUNG = "+SGS (one direction)"


def projected(model, x):
    feats = model.backbone(x)
    return [model.proj[k](feats[i]) for k, i in enumerate(model.scales)]


def local_feature_contrast(p: torch.Tensor, kernel: int = 3) -> torch.Tensor:
    return (p - F.avg_pool2d(p, kernel, 1, kernel // 2, count_include_pad=False)).norm(
        dim=1, keepdim=True
    )


@torch.no_grad()
def map_probes(model, x, masks) -> dict[str, float]:
    model.eval()
    m = masks.to(x.dtype)[:, None]
    out = {}
    for i, p in enumerate(projected(model, x)):
        g = p.shape[-1]
        cover = F.adaptive_avg_pool2d(m, g)
        out[f"ceiling_z_s{i + 1}"] = mask_contrast(cover, masks)
        z = model.bsd.chains[0][model.bsd.orders[0].index(i)].score(p)
        out[f"learned_z_s{i + 1}"] = mask_contrast(torch.sigmoid(z), masks)
        out[f"learned_logit_std_s{i + 1}"] = float(z.flatten(1).std(1).mean())
        n = p.shape[0] // 2
        feat = torch.cat([p, torch.ones_like(p[:, :1])], 1).permute(0, 2, 3, 1)
        feat = feat.reshape(-1, p.shape[1] + 1).double()
        tgt = cover.permute(0, 2, 3, 1).reshape(-1, 1).double()
        w = torch.linalg.lstsq(feat[: n * g * g], tgt[: n * g * g]).solution
        pred = (feat[n * g * g :] @ w).float().reshape(-1, 1, g, g)
        out[f"oracle_linear_z_s{i + 1}"] = mask_contrast(pred, masks[n:])
        if g >= 3:
            c = local_feature_contrast(p)
            out[f"contrast_feat_z_s{i + 1}"] = mask_contrast(c, masks)
            c[..., :1, :] = c[..., -1:, :] = 0
            c[..., :, :1] = c[..., :, -1:] = 0
            out[f"contrast_feat_noborder_z_s{i + 1}"] = mask_contrast(c, masks)
            out[f"contrast_image_z_s{i + 1}"] = mask_contrast(
                local_contrast_salience(x, (g, g), 3), masks
            )
    return out


def gradient_probe(model, hard, idx, x, masks, small_captions: bool) -> float:
    """Contrast on the small objects of -dL/dz, z the guide's salience logits."""
    model.eval()
    store = {}

    def hook(mod, inputs, out):
        out.retain_grad()
        store["z"] = out

    handle = model.bsd.chains[0][0].score.register_forward_hook(hook)
    caps = []
    for j in idx:
        flags = hard.caption_small.reshape(-1, 5)[j]
        pick = [c for c, f in zip(hard.captions[j], flags) if f == small_captions]
        caps.append(pick[0] if pick else hard.captions[j][0])
    ids, mask = model.text.tokenize(caps)
    out = model(x, ids, mask)
    loss = model.loss(out, hard.labels[torch.as_tensor(idx)], torch.as_tensor(idx)).mean()
    model.zero_grad()
    loss.backward()
    handle.remove()
    model.zero_grad()
    return mask_contrast(-store["z"].grad, masks)


def figure(model, x, masks, path: Path, n: int = 4) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model.eval()
    with torch.no_grad():
        p1 = projected(model, x[:n])[0]
        learned = torch.sigmoid(model.bsd.chains[0][0].score(p1))
        contrast = local_contrast_salience(x[:n], p1.shape[-2:], 3)
        z_l = [mask_contrast(learned[k : k + 1], masks[k : k + 1]) for k in range(n)]
        z_c = [mask_contrast(contrast[k : k + 1], masks[k : k + 1]) for k in range(n)]
    cols = ["image", "small objects (twins)", "learned guide A_1 (trained)", "contrast guide"]
    fig, axes = plt.subplots(n, 4, figsize=(7.2, 1.9 * n), squeeze=False)
    for r in range(n):
        lo, hi = float(learned[r].min()), float(learned[r].max())
        panels = [
            (x[r].permute(1, 2, 0).numpy(), {}),
            (masks[r].numpy(), {"cmap": "gray"}),
            (learned[r, 0].numpy(), {"cmap": "magma", "vmin": lo, "vmax": hi}),
            (contrast[r, 0].numpy(), {"cmap": "magma", "vmin": 0, "vmax": 1}),
        ]
        for c, (img, kw) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img, interpolation="nearest", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            title = cols[c] if r == 0 else ""
            if c == 2:
                title += f"\nz = {z_l[r]:+.2f} (range {lo:.3f}-{hi:.3f})"
            if c == 3:
                title += f"\nz = {z_c[r]:+.2f}"
            ax.set_title(title, fontsize=6)
    fig.suptitle(
        "SGS guide of the fine→coarse pass on hard-split twins (bright = damped at scales 2-4)",
        fontsize=8,
    )
    return _save_figure(fig, path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="docs/benchmarks")
    ap.add_argument("--images", type=int, default=160, help="twin images probed")
    args = ap.parse_args()
    torch.set_num_threads(2)
    settings = BenchSettings.quick()
    train, test, hard = bench_data(settings, args.seed, "val")
    idx, masks = twin_masks(hard)
    idx, masks = idx[: args.images], masks[: args.images]
    x = hard.images[torch.as_tensor(idx)]
    model, _ = train_rung(RUNG, train, None, settings, args.seed)
    init = build_method(RUNG, train, args.seed)  # the trained model's initialisation
    res: dict = {"rung": RUNG, "seed": args.seed, "split": "val", "images": len(idx)}
    res["small_area_share"] = float(masks.float().mean())
    for tag, mdl in (("init", init), ("trained", model)):
        res[tag] = map_probes(mdl, x, masks)
        for small in (True, False):
            key = "grad_z_small_caps" if small else "grad_z_large_caps"
            res[tag][key] = gradient_probe(mdl, hard, idx, x, masks, small)
    res["rel_weight_change"] = {
        f"score_s{i + 1}": float(
            (model.bsd.chains[0][k].score.weight - init.bsd.chains[0][k].score.weight).norm()
            / init.bsd.chains[0][k].score.weight.norm()
        )
        for k, i in enumerate(model.bsd.orders[0])
    }
    with torch.no_grad():
        z0 = init.bsd.chains[0][0].score(projected(init.eval(), x)[0]).flatten(1)
        z1 = model.bsd.chains[0][0].score(projected(model.eval(), x)[0]).flatten(1)
        c0, c1 = z0 - z0.mean(1, keepdim=True), z1 - z1.mean(1, keepdim=True)
        res["guide_map_corr_init_vs_trained"] = float(
            ((c0 * c1).sum(1) / (c0.norm(dim=1) * c1.norm(dim=1)).clamp(min=1e-12)).mean()
        )
        a = torch.sigmoid(z1).view(len(idx), 1, *projected(model, x[:1])[0].shape[-2:])
        cover = F.adaptive_avg_pool2d(masks.float()[:, None], a.shape[-1])
        res["pool_weight_share_small_s1"] = float(
            ((a * cover).sum((1, 2, 3)) / a.sum((1, 2, 3))).mean()
        )
        res["area_share_small_s1"] = float(cover.mean())
    res["val_metrics"] = evaluate_retrieval(model, test)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "ssjdn_sgs_guide_probe.json").write_text(json.dumps(res, indent=1))
    figure(model, x, masks, out / "ssjdn_sgs_guide.png")
    print(json.dumps(res, indent=1, default=lambda v: float(np.asarray(v))))


if __name__ == "__main__":
    main()
