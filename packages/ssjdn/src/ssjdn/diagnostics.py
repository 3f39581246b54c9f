"""Why a component does or does not add: probes of a trained SSJDN (issue 19 point 1).

- `label_accuracy`: how well LSD's shared classifier predicts the category from images and from
  captions (can the label head learn what the scenes make learnable?).
- `chain_agreement`: correlation of the two BSD passes' salience maps per scale, and the test mR
  with either pass's features zeroed before the fusion layer (do the passes fight or help?).
- `salience_contrast`: how much the salience maps vary inside an image (a flat map makes SGS a
  uniform rescaling that suppresses nothing in particular).
- `suppression_focus`: where the SGS guide maps point: their contrast on the small objects (located
  exactly by the twin scenes, which differ only there) and whether the maps differ between scales.
- `pass_interplay`: do the two BSD passes duplicate or undo each other (cosine of their pooled
  features per scale, and of their contributions to the fused vector)?
- `semantic_reach`: does LSD's semantic part reach the matching score (its share of the similarity,
  mR of the residual and of the semantic part alone)?
- `pass_overlap`: do the two passes' SGS maps keep (or damp) the same places, and which of them
  keeps the small objects?
- `sgs_effect`: does SGS turn the other scales' pooled features (cosine with and without the
  multiplication), or only rescale them?
- `label_probe`: how much category information the retrieval embeddings carry without LSD (a
  least-squares probe: are LSD's labels something retrieval does not learn anyway?).
- `loss_gradients` / `LSDTrace`: LSD's label accuracy per epoch and the gradients of the retrieval
  loss and of lambda L_LSD on the encoders and on LSD's heads during training.
- `plot_suppression`: a figure of what SGS keeps and suppresses on a few scenes (the map each
  pass multiplies onto the other scales, and SFE's salience per scale).
- `plot_retrievals`: the top-5 images of a few caption queries (the benchmark's example figure).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from maskloop import Callback, LoopState

from ssjdn.data import RetrievalData
from ssjdn.metrics import retrieval_metrics
from ssjdn.ssjdn import SSJDN
from ssjdn.train import evaluate_retrieval

__all__ = [
    "LSDTrace",
    "chain_agreement",
    "label_accuracy",
    "label_probe",
    "loss_gradients",
    "mask_contrast",
    "pass_interplay",
    "linear_r2",
    "pass_overlap",
    "pass_redundancy",
    "plot_retrievals",
    "plot_suppression",
    "salience_contrast",
    "semantic_reach",
    "sgs_effect",
    "suppression_focus",
    "twin_masks",
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


def _bidirectional(model: SSJDN) -> Any:
    """The model's BSD unit, which must have two passes (``sgs="both"``)."""
    bsd = model.bsd
    if bsd is None or len(bsd.orders) != 2:
        raise ValueError("the model has no bidirectional BSD (config.sgs='both')")
    return bsd


def _pearson_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of each row of ``a`` with the same row of ``b`` (n, k) -> (n,)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp(min=1e-12)


@torch.no_grad()
def chain_agreement(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """For a bidirectional BSD: per-scale Pearson correlation of the two passes' salience maps
    (``corr_s1``..``corr_s4``), and the mR with the fine->coarse or the coarse->fine pass's pooled
    features zeroed before the fusion layer (``mR_without_f2c``, ``mR_without_c2f``)."""
    bsd = _bidirectional(model)
    model.eval()
    _, maps = bsd(model.bsd_inputs(data.images), data.images)
    fwd = dict(zip(bsd.orders[0], maps[0]))
    bwd = dict(zip(bsd.orders[1], maps[1]))
    out: dict[str, float] = {}
    for i in sorted(fwd):
        corr = _pearson_rows(fwd[i].flatten(1), bwd[i].flatten(1))
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


def twin_masks(data: RetrievalData, tol: float = 0.02) -> tuple[np.ndarray, torch.Tensor]:
    """Small-object masks from the twin scenes: (indices of the images that have a twin, boolean
    masks (n, H, W) of the pixels where each differs from its twin by more than ``tol``).

    Twins repeat a scene and differ only in the small group's colour or kind, so these pixels are
    the small objects (of either twin, since both share the placement). A twin is the nearest image
    in L1 among the flagged ones."""
    if data.image_small is None or not data.image_small.any():
        raise ValueError("data has no twin images (image_small is None or all False)")
    idx = np.flatnonzero(data.image_small)
    x = data.images[torch.as_tensor(idx)]
    dist = torch.cdist(x.flatten(1), x.flatten(1), p=1)
    dist.fill_diagonal_(float("inf"))
    twin = dist.argmin(1)
    masks = (x - x[twin]).abs().amax(1) > tol
    return idx, masks


def mask_contrast(maps: torch.Tensor, masks: torch.Tensor) -> float:
    """Contrast of maps (n, 1, h, w) on boolean masks (n, H, W): each map resized to (H, W)
    (bilinear), z = (mean on the mask - mean off it) / spatial std, averaged over the images whose
    mask is not empty (0: the map ignores the masked places; > 0: it marks them)."""
    up = F.interpolate(maps, size=tuple(masks.shape[-2:]), mode="bilinear", align_corners=False)
    up, m = up.flatten(1), masks.to(up.dtype).flatten(1)
    on = (up * m).sum(1) / m.sum(1).clamp(min=1)
    off = (up * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1)
    return float(((on - off) / up.std(1).clamp(min=1e-8))[m.sum(1) > 0].mean())


def _bsd_passes(
    model: SSJDN, images: torch.Tensor
) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """Pooled features (scale order) and salience maps (chain order) of every BSD pass."""
    if model.bsd is None:
        raise ValueError("the model has no BSD (config.multiscale=False)")
    return model.bsd.pass_features(model.bsd_inputs(images), images)


@torch.no_grad()
def suppression_focus(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """Where the salience maps of each BSD pass point, on the images of ``data`` that have a twin.

    - ``small_z_p{pass}_s{scale}``: (mean A on the small objects - mean A elsewhere) / spatial std of
      A, averaged over images (0: the map ignores the small objects; > 0: it marks them), for the
      SFE map of each scale.
    - ``guide_z_p{pass}``: the same contrast for the map SGS multiplies onto the other scales (the
      first scale's SFE map, or its local contrast with ``sgs_guide="contrast"``).
    - ``damp_small_ratio``: mean damping 1 - M of the first pass's SGS map on the small objects
      divided by its mean damping elsewhere (> 1: SGS damps the small objects more than the rest).
    - ``corr_scales_p0``: mean Pearson correlation, over images and pairs of scales, of the first
      pass's maps resized to the image (do the scales look at different places?).
    """
    model.eval()
    idx, masks = twin_masks(data)
    images = data.images[torch.as_tensor(idx)]
    _, maps = _bsd_passes(model, images)
    size = masks.shape[-2:]
    m = masks.float().flatten(1)
    has = m.sum(1) > 0
    out: dict[str, float] = {}
    up0 = []

    bsd = model.bsd
    guides = bsd.pass_guides(maps, images)
    for p, (order, chain_maps) in enumerate(zip(bsd.orders, maps)):
        for scale, a in zip(order, chain_maps):
            out[f"small_z_p{p}_s{scale + 1}"] = mask_contrast(a, masks)
            if p == 0:
                up = F.interpolate(a, size=tuple(size), mode="bilinear", align_corners=False)
                up0.append(up.flatten(1))
        if bsd.sgs != "none":
            out[f"guide_z_p{p}"] = mask_contrast(guides[p], masks)
    if bsd.sgs != "none":
        g = F.interpolate(guides[0], size=tuple(size), mode="bilinear", align_corners=False)
        damp = 1 - bsd.suppression(g, size).flatten(1)
        on = (damp * m).sum(1) / m.sum(1).clamp(min=1)
        off = (damp * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1)
        out["damp_small_ratio"] = float((on[has] / off[has].clamp(min=1e-8)).mean())
    corrs = []
    for i in range(len(up0)):
        for j in range(i + 1, len(up0)):
            corrs.append(_pearson_rows(up0[i], up0[j]))
    if corrs:
        out["corr_scales_p0"] = float(torch.stack(corrs).mean())
    return out


@torch.no_grad()
def pass_interplay(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """For a bidirectional BSD: ``pass_feat_cos``, the mean cosine between the two passes' pooled
    features at the same scale (near 1: the passes duplicate each other), and, with u_p = W_p f_p
    the contribution of pass p to the fused vector (W_p its block of the fusion layer),
    ``pass_contrib_cos`` = cos(u_0, u_1) (< 0: the passes push the image vector in opposite
    directions) and ``pass_cancel`` = |u_0 + u_1| / (|u_0| + |u_1|) (1: aligned, ~0.71:
    orthogonal, near 0: they undo each other)."""
    bsd = _bidirectional(model)
    model.eval()
    feats, _ = _bsd_passes(model, data.images)
    cos = [F.cosine_similarity(a, b, dim=1).mean() for a, b in zip(*feats)]
    u0, u1 = bsd.pass_contributions(feats)
    cancel = (u0 + u1).norm(dim=1) / (u0.norm(dim=1) + u1.norm(dim=1)).clamp(min=1e-12)
    return {
        "pass_feat_cos": float(torch.stack(cos).mean()),
        "pass_contrib_cos": float(F.cosine_similarity(u0, u1, dim=1).mean()),
        "pass_cancel": float(cancel.mean()),
    }


def linear_r2(x: torch.Tensor, y: torch.Tensor, ridge: float = 0.1) -> float:
    """Held-out R^2 of a ridge least-squares map from ``x`` (n, p) to ``y`` (n, q): fit on one
    half of the rows, scored on the other, both ways, averaged; R^2 = 1 - SSE / SST with SST about
    the scored half's mean (1: y is a linear function of x; 0: no better than the mean). The
    ridge is ``ridge`` times the mean eigenvalue of the fitted half's centred x^T x, so that p
    close to n / 2 does not fit noise. Computed in float64."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0] or x.shape[0] < 4:
        raise ValueError(
            f"x and y must be (n, p) and (n, q) with the same n >= 4, got {tuple(x.shape)} and "
            f"{tuple(y.shape)}"
        )
    x, y = x.double(), y.double()
    half = x.shape[0] // 2
    parts = [(slice(0, half), slice(half, None)), (slice(half, None), slice(0, half))]
    scores = []
    for fit, score in parts:
        mx, my = x[fit].mean(0), y[fit].mean(0)
        xf = x[fit] - mx
        gram = xf.T @ xf
        lam = ridge * float(gram.diagonal().mean())
        w = torch.linalg.solve(
            gram + lam * torch.eye(x.shape[1], dtype=x.dtype), xf.T @ (y[fit] - my)
        )
        pred = (x[score] - mx) @ w + my
        sse = ((y[score] - pred) ** 2).sum()
        sst = ((y[score] - y[score].mean(0)) ** 2).sum().clamp(min=1e-12)
        scores.append(float(1 - sse / sst))
    return sum(scores) / len(scores)


@torch.no_grad()
def pass_redundancy(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """For a bidirectional BSD: how much of what one pass hands the fusion layer (its pooled
    features of every scale concatenated) is a linear function of what the other hands it, `linear_r2`
    over the images of ``data``: ``pass_r2_c2f_from_f2c`` and ``pass_r2_f2c_from_c2f`` (near 1:
    the second direction hands the fusion layer nothing a linear layer could not get from the
    first). ``pass_r2_fine_from_coarse``: the coarse->fine pass's fine half of the scales from
    the fine->coarse pass's coarse half."""
    _bidirectional(model)  # raises unless the model has two BSD passes
    model.eval()
    feats, _ = _bsd_passes(model, data.images)
    f2c, c2f = (torch.cat(list(chain), dim=1) for chain in feats)
    half = len(feats[0]) // 2
    coarse = torch.cat(list(feats[0][half:]), dim=1)
    fine = torch.cat(list(feats[1][:half]), dim=1)
    return {
        "pass_r2_c2f_from_f2c": linear_r2(f2c, c2f),
        "pass_r2_f2c_from_c2f": linear_r2(c2f, f2c),
        "pass_r2_fine_from_coarse": linear_r2(coarse, fine),
    }


@torch.no_grad()
def semantic_reach(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """How much LSD's semantic part enters the matching score (``lsd_combine="concat"``).

    The embedding is [residual ; semantic] (up to one norm), so the cosine is the sum of a residual
    and a semantic term. ``sem_var_share``: variance of the semantic term over all image-caption
    pairs / (its variance + the residual term's); ``mR_residual_only`` / ``mR_semantic_only``: mR
    ranking by one term alone; ``sem_same_class_gap``: mean semantic term of same-class pairs minus
    that of other-class pairs."""
    lsd = model.lsd
    if lsd is None or lsd.out_dim_factor != 2:
        raise ValueError("the model has no concatenated LSD semantic part (lsd, lsd_mix > 0)")
    model.eval()
    img, txt = model.encode_images(data.images), model.encode_texts(data.flat_captions)
    d = img.shape[1] // 2
    res, sem = img[:, :d] @ txt[:, :d].T, img[:, d:] @ txt[:, d:].T
    cap_lab = data.labels[torch.as_tensor(data.caption_image)]
    same = data.labels[:, None] == cap_lab[None, :]
    return {
        "sem_var_share": float(sem.var() / (sem.var() + res.var()).clamp(min=1e-12)),
        "mR_residual_only": retrieval_metrics(res, data.caption_image)["mR"],
        "mR_semantic_only": retrieval_metrics(sem, data.caption_image)["mR"],
        "sem_same_class_gap": float(sem[same].mean() - sem[~same].mean()),
    }


@torch.no_grad()
def pass_overlap(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """Do the two BSD passes' SGS maps act on the same places? Each pass's map M_p (what its
    guiding scale multiplies onto the other scales) resized to the image:

    - ``sgs_map_corr``: mean Pearson correlation of M_0 and M_1 over each image's pixels;
    - ``sgs_damp_overlap``: soft IoU of the damping 1 - M_p, sum min / sum max (1: both passes
      damp the same places as much, 0: disjoint places);
    - ``sgs_damp_mean_p{p}``: mean damping of pass p (0: it changes nothing);
    - with twin images (the small objects located exactly), ``keep_small_p{p}``: mean M_p on the
      small objects / mean M_p elsewhere (> 1: the pass keeps the small objects, < 1: it damps them).
    """
    bsd = _bidirectional(model)
    model.eval()
    images = data.images
    size = tuple(images.shape[-2:])
    _, maps = _bsd_passes(model, images)
    ms = []
    for guide in bsd.pass_guides(maps, images):
        g = F.interpolate(
            guide,
            size=size,
            mode="bilinear",
            align_corners=False,
        )
        ms.append(bsd.suppression(g, size, len(ms)).flatten(1))
    d0, d1 = 1 - ms[0], 1 - ms[1]
    out = {
        "sgs_map_corr": float(_pearson_rows(ms[0], ms[1]).mean()),
        "sgs_damp_overlap": float(
            (torch.minimum(d0, d1).sum(1) / torch.maximum(d0, d1).sum(1).clamp(min=1e-12)).mean()
        ),
        "sgs_damp_mean_p0": float(d0.mean()),
        "sgs_damp_mean_p1": float(d1.mean()),
    }
    if data.image_small is not None and data.image_small.any():
        idx, masks = twin_masks(data)
        m = masks.to(images.dtype).flatten(1)
        has = m.sum(1) > 0
        for p, mp in enumerate(ms):
            mp = mp[torch.as_tensor(idx)]
            on = (mp * m).sum(1) / m.sum(1).clamp(min=1)
            off = (mp * (1 - m)).sum(1) / (1 - m).sum(1).clamp(min=1)
            out[f"keep_small_p{p}"] = float((on[has] / off[has].clamp(min=1e-8)).mean())
    return out


@torch.no_grad()
def sgs_effect(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """What SGS does to the pooled features of the scales it acts on (every scale but the guiding
    one), per pass p: ``sgs_dir_cos_p{p}``, the mean cosine between a scale's pooled feature with
    SGS and without it (the same model with beta = 0, i.e. M = 1; near 1: SGS only rescales the
    feature, which the fusion layer can undo), and ``sgs_norm_ratio_p{p}``, the mean ratio of
    their norms."""
    bsd = model.bsd
    if bsd is None or bsd.sgs == "none":
        raise ValueError("the model has no SGS (config.multiscale=False or sgs='none')")
    model.eval()
    projected = model.bsd_inputs(data.images)
    with_sgs, _ = bsd.pass_features(projected, data.images)
    beta = bsd.beta
    bsd.beta = 0.0
    try:
        without, _ = bsd.pass_features(projected, data.images)
    finally:
        bsd.beta = beta
    out: dict[str, float] = {}
    for p, order in enumerate(bsd.orders):
        acted = order[1:]  # the guiding scale (the first of the pass) is not multiplied
        cos = [F.cosine_similarity(with_sgs[p][j], without[p][j], dim=1).mean() for j in acted]
        ratio = [
            (with_sgs[p][j].norm(dim=1) / without[p][j].norm(dim=1).clamp(min=1e-12)).mean()
            for j in acted
        ]
        out[f"sgs_dir_cos_p{p}"] = float(torch.stack(cos).mean())
        out[f"sgs_norm_ratio_p{p}"] = float(torch.stack(ratio).mean())
    return out


@torch.no_grad()
def label_probe(
    model: SSJDN, train: RetrievalData, data: RetrievalData, ridge: float = 1e-2
) -> dict[str, float]:
    """Category information in the retrieval embeddings themselves: a ridge least-squares map from
    the embeddings (`encode_images` / `encode_texts`) to one-hot labels, fit on ``train``, scored
    on ``data`` (accuracy % on images ``probe_img_acc`` and on large- / small-object captions
    ``probe_txt_acc_large`` / ``probe_txt_acc_small``). Run on a model without LSD it says how much
    of what LSD's labels teach the retrieval embeddings already hold."""
    k = max(2, len(train.class_names))

    def fit(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, torch.ones_like(x[:, :1])], 1).double()
        target = F.one_hot(y.clamp(min=0), k).double() * (y >= 0)[:, None]
        eye = torch.eye(x.shape[1], dtype=x.dtype)
        return torch.linalg.solve(x.T @ x + ridge * len(x) * eye, x.T @ target)

    def predict(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return (torch.cat([x, torch.ones_like(x[:, :1])], 1).double() @ w).argmax(1)

    cap_train = train.labels[torch.as_tensor(train.caption_image)]
    cap_data = data.labels[torch.as_tensor(data.caption_image)]
    wi = fit(model.encode_images(train.images), train.labels)
    wt = fit(model.encode_texts(train.flat_captions), cap_train)
    img_ok = predict(wi, model.encode_images(data.images)) == data.labels
    txt_ok = predict(wt, model.encode_texts(data.flat_captions)) == cap_data
    out = {"probe_img_acc": float(100 * img_ok.float().mean())}
    small = (
        torch.as_tensor(data.caption_small)
        if data.caption_small is not None
        else torch.zeros(len(txt_ok), dtype=torch.bool)
    )
    for name, sel in (("large", ~small), ("small", small)):
        if sel.any():
            out[f"probe_txt_acc_{name}"] = float(100 * txt_ok[sel].float().mean())
    return out


def loss_gradients(model: SSJDN, batch: tuple[torch.Tensor, ...]) -> dict[str, float]:
    """Gradients of the two training losses on one batch ``(images, ids, mask, labels,
    image_ids)``, on a copy of ``model`` (in train mode; the model itself, its BatchNorm statistics
    and its ``.grad`` are untouched):

    - ``grad_stl_enc`` / ``grad_stl_heads``: norm of the retrieval loss's gradient on the encoders
      (backbone, projections, BSD, text encoder) and on LSD's heads and classifier;
    - ``grad_lsd_enc`` / ``grad_lsd_heads``: the same for lambda L_LSD as trained (0 on the
      encoders with ``lsd_detach=True``);
    - ``grad_cos_heads``: cosine of the two gradients on LSD's heads;
    - ``grad_ce_enc_ratio`` / ``grad_ce_enc_cos``: for the cross-entropy taken *through* the
      encoders (what ``lsd_detach=False`` trains), the norm of lambda times its encoder gradient
      over the retrieval loss's, and the cosine of the two (< 0: the labels pull the encoders
      against retrieval).
    """
    from ssjdn.ssjdn import SemanticDecoupling

    if model.lsd is None:
        raise ValueError("the model has no LSD heads (config.lsd=False)")
    net = copy.deepcopy(model).train()
    images, ids, mask, labels, image_ids = batch
    heads = [p for p in net.lsd.parameters() if p.requires_grad]
    head_ids = {id(p) for p in heads}
    enc = [p for p in net.parameters() if p.requires_grad and id(p) not in head_ids]
    lam = net.config.lsd_weight

    def grads(loss: torch.Tensor, params: list[torch.nn.Parameter]) -> torch.Tensor:
        g = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return torch.cat(
            [(x if x is not None else torch.zeros_like(p)).flatten() for x, p in zip(g, params)]
        )

    v = net._paired_image_features(images, ids)
    t = net.text(ids, mask)
    sem = net.lsd(v, t)
    img, txt = F.normalize(sem["v"], dim=-1), F.normalize(sem["t"], dim=-1)
    stl = net.criterion(img, txt, labels, image_ids).mean()
    lsd = lam * SemanticDecoupling.loss(sem["v_logits"], sem["t_logits"], labels).mean()
    ce_through = (
        lam
        * SemanticDecoupling.loss(
            net.lsd.classifier(net.lsd.mlp_v(v)), net.lsd.classifier(net.lsd.mlp_t(t)), labels
        ).mean()
    )
    g_stl_e, g_stl_h = grads(stl, enc), grads(stl, heads)
    g_lsd_e, g_lsd_h = grads(lsd, enc), grads(lsd, heads)
    g_ce_e = grads(ce_through, enc)
    cos = F.cosine_similarity
    return {
        "grad_stl_enc": float(g_stl_e.norm()),
        "grad_stl_heads": float(g_stl_h.norm()),
        "grad_lsd_enc": float(g_lsd_e.norm()),
        "grad_lsd_heads": float(g_lsd_h.norm()),
        "grad_cos_heads": float(cos(g_stl_h, g_lsd_h, dim=0)),
        "grad_ce_enc_ratio": float(g_ce_e.norm() / g_stl_e.norm().clamp(min=1e-12)),
        "grad_ce_enc_cos": float(cos(g_stl_e, g_ce_e, dim=0)),
    }


class LSDTrace(Callback):
    """Records, after every epoch, LSD's label accuracy on ``data`` (`label_accuracy`) and the
    gradients of the two losses on ``batch`` (`loss_gradients`), both on a copy of the model, so
    that training follows exactly the path it takes without the trace. ``records[e]`` is epoch
    e's dict."""

    order = 20

    def __init__(self, data: RetrievalData, batch: tuple[torch.Tensor, ...]) -> None:
        self.data, self.batch = data, batch
        self.records: list[dict[str, float]] = []

    def on_epoch_end(self, state: LoopState) -> None:
        model = getattr(state.model, "module", state.model)
        rec = loss_gradients(model, self.batch)
        rec.update(label_accuracy(copy.deepcopy(model), self.data))
        self.records.append(rec)


@torch.no_grad()
def plot_suppression(
    models: dict[str, SSJDN], data: RetrievalData, path: str | Path, n_scenes: int = 3
) -> Path:
    """Figure: for ``n_scenes`` twin scenes, the image and, for each model, the SGS map M that
    each BSD pass multiplies onto the other scales' features (at the image's size; bright = kept,
    dark = suppressed), then the SFE salience A per scale of its first pass."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx = np.flatnonzero(data.image_small)[:n_scenes] if data.image_small is not None else []
    if len(idx) < n_scenes:
        idx = np.arange(min(n_scenes, len(data)))
    per = [
        len(m.bsd.orders) * (m.bsd.sgs != "none") + len(m.bsd.orders[0]) if m.bsd is not None else 1
        for m in models.values()
    ]
    cols = 1 + sum(per)
    fig, axes = plt.subplots(len(idx), cols, figsize=(1.6 * cols, 1.7 * len(idx)), squeeze=False)
    for r, i in enumerate(idx):
        x = data.images[int(i)]
        axes[r][0].imshow(x.permute(1, 2, 0).numpy(), interpolation="nearest")
        small = [
            c for c, s in zip(data.captions[int(i)], data.caption_small.reshape(-1, 5)[i]) if s
        ]
        axes[r][0].set_title((small[0] if small else data.captions[int(i)][0])[:40], fontsize=5)
        col = 1
        for name, model in models.items():
            model.eval()
            bsd = model.bsd
            panels = []
            if bsd is not None and bsd.sgs != "none":
                _, maps = _bsd_passes(model, x[None])
                for k, (order, chain_maps) in enumerate(zip(bsd.orders, maps)):
                    g = bsd.guide_salience(chain_maps[0], x[None])
                    m = bsd.suppression(g, x.shape[-2:], k)
                    arrow = "f→c" if order[0] < order[-1] else "c→f"
                    panels.append((f"M {arrow} (S{order[0] + 1} guides)", m[0, 0]))
            _, maps = model.image_features(x[None])
            order = bsd.orders[0] if bsd is not None else [0]
            panels += [(f"A{s + 1}", a[0, 0]) for s, a in zip(order, maps[0])]
            for k, (title, img) in enumerate(panels):
                ax = axes[r][col + k]
                ax.imshow(img.numpy(), cmap="magma", vmin=0, vmax=1, interpolation="nearest")
                if r == 0:
                    ax.set_title(f"{name}\n{title}" if k == 0 else title, fontsize=6)
            col += len(panels)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(
        "SGS: the map M each pass multiplies onto the other scales (bright = kept) and SFE's "
        "salience A per scale (first pass)",
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
