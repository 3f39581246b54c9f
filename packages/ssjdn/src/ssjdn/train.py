"""Training and evaluation of retrieval models (SSJDN and its ablations).

A paired image-caption loop rather than `maskloop.fit`: fit's ``loss_fn(outputs, targets)`` contract
is shaped for classification, while retrieval needs both modalities, the labels and the image ids of
a batch in one loss. The loop still uses maskloop's seeding.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ssjdn.data import RetrievalData
from ssjdn.metrics import retrieval_metrics
from ssjdn.ssjdn import SSJDN

__all__ = ["TrainHistory", "evaluate_retrieval", "train_retrieval"]


@dataclass
class TrainHistory:
    """Per-epoch mean loss, evaluation metrics (when eval data was given) and wall time."""

    loss: list[float] = field(default_factory=list)
    metrics: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def curve(self, key: str = "mR") -> list[float]:
        """One metric over epochs."""
        return [m[key] for m in self.metrics]

    def epochs_to_fraction(self, fraction: float = 0.9, key: str = "mR") -> int:
        """First epoch (1-based) whose metric reaches ``fraction`` of the final value."""
        curve = self.curve(key)
        if not curve:
            raise ValueError("no evaluation metrics were recorded (train with eval_data)")
        target = fraction * curve[-1]
        return next(i + 1 for i, v in enumerate(curve) if v >= target)


@torch.no_grad()
def evaluate_retrieval(model: SSJDN, data: RetrievalData) -> dict[str, float]:
    """R@1/5/10 both ways and mR on ``data``; with small-object flags also ``small_mR`` (queries
    about small objects only, full gallery)."""
    sims = model.similarity_of(
        model.encode_images(data.images), model.encode_texts(data.flat_captions)
    )
    out = retrieval_metrics(sims, data.caption_image)
    flags = data.caption_small, data.image_small
    if flags[0] is not None and flags[1] is not None and flags[0].any() and flags[1].any():
        small = retrieval_metrics(
            sims,
            data.caption_image,
            image_subset=data.image_small,
            caption_subset=data.caption_small,
        )
        out["small_mR"] = small["mR"]
    return out


def train_retrieval(
    model: SSJDN,
    train: RetrievalData,
    *,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 2e-3,
    weight_decay: float = 1e-4,
    warmup_epochs: int = 1,
    eval_data: RetrievalData | None = None,
    seed: int = 0,
    progress: bool = True,
) -> TrainHistory:
    """Train ``model`` on image-caption pairs (one random caption per image per epoch).

    Adam with cosine decay; during the first ``warmup_epochs`` the triplet loss sums all negatives
    (hardest-negative training from scratch is unstable at first, as VSE++ reports). With
    ``eval_data`` the retrieval metrics are recorded after every epoch.
    """
    if not isinstance(model, SSJDN):
        raise TypeError(f"model must be an SSJDN, got {type(model).__name__}")
    if not isinstance(train, RetrievalData):
        raise TypeError(f"train must be a RetrievalData, got {type(train).__name__}")
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be a positive int, got {v!r}")
    if batch_size < 2:
        raise ValueError(
            f"batch_size must be >= 2 (negatives come from the batch), got {batch_size}"
        )
    for name, v in (("lr", lr), ("weight_decay", weight_decay)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v < 0:
            raise ValueError(f"{name} must be a finite number >= 0, got {v!r}")
    if lr == 0:
        raise ValueError("lr must be > 0")
    if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
    if eval_data is not None and not isinstance(eval_data, RetrievalData):
        raise TypeError(
            f"eval_data must be a RetrievalData or None, got {type(eval_data).__name__}"
        )
    from maskloop import seed_everything

    gen = seed_everything(seed)
    rng = np.random.default_rng(seed)
    ids, mask = model.text.tokenize(train.flat_captions)
    cap_img = train.caption_image
    starts = np.concatenate([[0], np.cumsum([len(c) for c in train.captions])[:-1]])
    counts = np.asarray([len(c) for c in train.captions])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    steps_per_epoch = int(np.ceil(len(train) / batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    hist = TrainHistory()
    negatives = model.criterion.negatives
    t0 = time.perf_counter()
    bar = tqdm(range(epochs), desc="train", disable=not progress, leave=False)
    for epoch in bar:
        model.train()
        model.criterion.negatives = "sum" if epoch < warmup_epochs else negatives
        order = torch.randperm(len(train), generator=gen).numpy()
        caps = starts + rng.integers(0, counts)  # one caption per image this epoch
        total, n = 0.0, 0
        for k in range(0, len(order), batch_size):
            img_idx = order[k : k + batch_size]
            if len(img_idx) < 2:
                continue
            cap_idx = caps[img_idx]
            c_ids, c_mask = ids[cap_idx], mask[cap_idx]
            L = int(c_mask.sum(1).max())
            out = model(train.images[torch.as_tensor(img_idx)], c_ids[:, :L], c_mask[:, :L])
            labels = train.labels[torch.as_tensor(img_idx)]
            loss = model.loss(out, labels, torch.as_tensor(cap_img[cap_idx])).mean()
            step = epoch * steps_per_epoch + k // batch_size
            if not bool(torch.isfinite(loss)):
                raise ValueError(
                    f"training loss is {float(loss.detach())} at epoch {epoch + 1}, step {step + 1} "
                    f"(images {img_idx[:5].tolist()}...): stopped before the update; lower lr "
                    f"(now {lr}) or check the data"
                )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            norm = torch.nn.utils.clip_grad_norm_(params, 2.0)
            if not bool(torch.isfinite(norm)):
                raise ValueError(
                    f"gradient norm is {float(norm)} at epoch {epoch + 1}, step {step + 1}: "
                    "stopped before the update"
                )
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(img_idx)
            n += len(img_idx)
        hist.loss.append(total / max(n, 1))
        if eval_data is not None:
            hist.metrics.append(evaluate_retrieval(model, eval_data))
            bar.set_postfix(loss=f"{hist.loss[-1]:.3f}", mR=f"{hist.metrics[-1]['mR']:.1f}")
    model.criterion.negatives = negatives
    hist.seconds = time.perf_counter() - t0
    return hist
