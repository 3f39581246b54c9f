"""Why a component does or does not add: probes of a trained SSJDN (issue 19 point 1).

- `label_accuracy`: how well LSD's shared classifier predicts the category from images and from
  captions (can the label head learn what the scenes make learnable?).
- `chain_agreement`: correlation of the two BSD passes' salience maps per scale, and the test mR
  with either pass's features zeroed before the fusion layer (do the passes fight or help?).
- `salience_contrast`: how much the salience maps vary inside an image (a flat map makes SGS a
  uniform rescaling that suppresses nothing in particular).
- `plot_suppression`: a figure of what SGS suppresses on a few scenes (salience per scale of each
  pass, i.e. the places the next scales lose).
- `plot_retrievals`: the top-5 images of a few caption queries (the benchmark's example figure).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssjdn.data import RetrievalData
from ssjdn.ssjdn import SSJDN
from ssjdn.train import evaluate_retrieval

__all__ = [
    "chain_agreement",
    "label_accuracy",
    "plot_retrievals",
    "plot_suppression",
    "salience_contrast",
]


@torch.no_grad()
def label_accuracy(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """Accuracy (%) of LSD's classifier on the images and on every caption of ``data``."""
    if model.lsd is None:
        raise ValueError("the model has no LSD heads (config.lsd=False)")
    model.eval()
    v, _ = model.image_features(data.images)
    img_pred = model.lsd.classifier(model.lsd.mlp_v(v)).argmax(1)
    ids, mask = model.text.tokenize(data.flat_captions)
    t = model.text(ids, mask)
    txt_pred = model.lsd.classifier(model.lsd.mlp_t(t)).argmax(1)
    labels = data.labels
    cap_labels = labels[torch.as_tensor(data.caption_image)]
    out = {
        "lsd_img_acc": float(100 * (img_pred == labels).float().mean()),
        "lsd_txt_acc": float(100 * (txt_pred == cap_labels).float().mean()),
    }
    if data.caption_small is not None:
        sm = torch.as_tensor(data.caption_small)
        if sm.any():
            out["lsd_txt_acc_small"] = float(100 * (txt_pred == cap_labels)[sm].float().mean())
        if (~sm).any():
            out["lsd_txt_acc_large"] = float(100 * (txt_pred == cap_labels)[~sm].float().mean())
    return out


@torch.no_grad()
def chain_agreement(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """For a bidirectional BSD: per-scale Pearson correlation of the two passes' salience maps
    (``corr_s1``..``corr_s4``), and the mR with the fine->coarse or the coarse->fine pass's pooled
    features zeroed before the fusion layer (``mR_without_f2c``, ``mR_without_c2f``)."""
    bsd = model.bsd
    if bsd is None or len(bsd.orders) != 2:
        raise ValueError("the model has no bidirectional BSD (config.sgs='both')")
    model.eval()
    feats = model.backbone(data.images)
    projected = [model.proj[k](feats[i]) for k, i in enumerate(model.scales)]
    _, maps = bsd(projected)
    fwd = dict(zip(bsd.orders[0], maps[0]))
    bwd = dict(zip(bsd.orders[1], maps[1]))
    out: dict[str, float] = {}
    for i in sorted(fwd):
        a = fwd[i].flatten(1)
        b = bwd[i].flatten(1)
        a = a - a.mean(1, keepdim=True)
        b = b - b.mean(1, keepdim=True)
        corr = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)
        out[f"corr_s{i + 1}"] = float(corr.mean())
    for k, name in ((0, "f2c"), (1, "c2f")):
        bsd.drop_chain = k
        try:
            out[f"mR_without_{name}"] = evaluate_retrieval(model, data)["mR"]
        finally:
            bsd.drop_chain = None
    return out


@torch.no_grad()
def salience_contrast(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """Mean over images of the spatial standard deviation of the first BSD pass's salience map at
    each scale (``sal_std_s1``..``sal_std_s4``), and its mean level (``sal_mean``)."""
    if model.bsd is None:
        raise ValueError("the model has no BSD (config.multiscale=False)")
    model.eval()
    _, maps = model.image_features(data.images)
    out: dict[str, float] = {}
    levels = []
    for i, a in zip(model.bsd.orders[0], maps[0]):
        f = a.flatten(1)
        out[f"sal_std_s{i + 1}"] = float(f.std(1).mean())
        levels.append(float(f.mean()))
    out["sal_mean"] = float(np.mean(levels))
    return out


@torch.no_grad()
def plot_suppression(
    models: dict[str, SSJDN], data: RetrievalData, path: str | Path, n_scenes: int = 3
) -> Path:
    """Figure: for ``n_scenes`` twin scenes, the image and each model's salience maps per scale of
    its first BSD pass (what the next scales of that pass lose under SGS: M = 1 - beta * A)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.flatnonzero(data.image_small)[:n_scenes] if data.image_small is not None else []
    if len(idx) < n_scenes:
        idx = np.arange(min(n_scenes, len(data)))
    cols = 1 + 4 * len(models)
    fig, axes = plt.subplots(len(idx), cols, figsize=(1.6 * cols, 1.7 * len(idx)), squeeze=False)
    for r, i in enumerate(idx):
        x = data.images[int(i)]
        axes[r][0].imshow(x.permute(1, 2, 0).numpy(), interpolation="nearest")
        small = [
            c for c, s in zip(data.captions[int(i)], data.caption_small.reshape(-1, 5)[i]) if s
        ]
        axes[r][0].set_title((small[0] if small else data.captions[int(i)][0])[:40], fontsize=5)
        for m, (name, model) in enumerate(models.items()):
            model.eval()
            _, maps = model.image_features(x[None])
            order = model.bsd.orders[0] if model.bsd is not None else [0]
            for k, (scale, a) in enumerate(zip(order, maps[0])):
                ax = axes[r][1 + 4 * m + k]
                ax.imshow(a[0, 0].numpy(), cmap="magma", vmin=0, vmax=1, interpolation="nearest")
                if r == 0:
                    ax.set_title(f"{name}\nA{scale + 1}", fontsize=6)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "SGS: salience of the first pass per scale (bright = suppressed at the next scales)",
        fontsize=8,
    )
    return _save_figure(fig, path, dpi=110)


def plot_retrievals(
    model: SSJDN, data: RetrievalData, path: str | Path, n_queries: int = 4, seed: int = 0
) -> Path:
    """Figure: query captions (half about small objects) and their top-5 images; the right image is
    framed green, wrong ones red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    caps = data.flat_captions
    cap_img = data.caption_image
    small = data.caption_small if data.caption_small is not None else np.zeros(len(caps), bool)
    pool_small, pool_big = np.flatnonzero(small), np.flatnonzero(~small)
    k_small = min(n_queries // 2, len(pool_small))
    queries = [
        *rng.choice(pool_small, k_small, replace=False).tolist(),
        *rng.choice(pool_big, min(n_queries - k_small, len(pool_big)), replace=False).tolist(),
    ]
    sims = model.similarity(data.images, [caps[q] for q in queries])
    fig, axes = plt.subplots(len(queries), 5, figsize=(10, 2.3 * len(queries)), squeeze=False)
    for r, q in enumerate(queries):
        top = torch.argsort(sims[:, r], descending=True)[:5].tolist()
        for c, i in enumerate(top):
            ax = axes[r][c]
            ax.imshow(data.images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "tab:green" if i == cap_img[q] else "tab:red"
            for s in ax.spines.values():
                s.set_edgecolor(colour)
                s.set_linewidth(4)
            if c == 0:
                ax.set_title(f"“{caps[q]}”", loc="left", fontsize=8)
    fig.suptitle(
        "SSJDN text→image on the hard split: top-5 images per query (green = the captioned image)",
        fontsize=9,
    )
    return _save_figure(fig, path, dpi=100)


def _save_figure(fig: Any, path: str | Path, dpi: int) -> Path:
    """Lay out ``fig``, write it to ``path`` (creating the folder) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
