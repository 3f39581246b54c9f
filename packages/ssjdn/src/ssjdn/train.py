"""Training and evaluation of retrieval models (SSJDN, its ablations and the AMFMN-style peer).

Training runs through `maskloop.fit` with a retrieval objective (`RetrievalObjective`: a batch of
image-caption pairs -> per-pair L_STL + lambda L_LSD) on `PairBatches` (one random caption per image
per epoch, drawn from the batches' own torch generator, which `maskloop.Checkpoint` saves), so a run
resumes from a checkpoint to exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from maskloop import Callback, LoopState, fit

from ssjdn.data import RetrievalData
from ssjdn.metrics import retrieval_metrics
from ssjdn.ssjdn import SSJDN

__all__ = [
    "PairBatches",
    "RetrievalObjective",
    "TrainHistory",
    "evaluate_retrieval",
    "train_retrieval",
]


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


class PairBatches:
    """Batches of image-caption pairs for `maskloop.fit`: each epoch a fresh permutation of the
    images and one random caption per image, both drawn from ``generator`` (a `torch.Generator`
    that `maskloop.Checkpoint` saves and restores). A batch is ``(images, ids, mask, labels,
    image_ids)``; a last batch of a single image is dropped (its negatives come from the batch)."""

    def __init__(
        self,
        data: RetrievalData,
        ids: torch.Tensor,
        mask: torch.Tensor,
        batch_size: int,
        generator: torch.Generator,
    ) -> None:
        self.data, self.ids, self.mask = data, ids, mask
        self.batch_size = batch_size
        self.generator = generator
        counts = [len(c) for c in data.captions]
        self.counts = torch.as_tensor(counts)
        self.starts = torch.as_tensor(np.concatenate([[0], np.cumsum(counts)[:-1]]))
        self.cap_img = torch.as_tensor(data.caption_image)

    def __len__(self) -> int:
        n, b = len(self.data), self.batch_size
        return n // b + (1 if n % b >= 2 else 0)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.data)
        order = torch.randperm(n, generator=self.generator)
        pick = (torch.rand(n, generator=self.generator) * self.counts).long()
        caps = self.starts + pick.clamp(max=self.counts - 1)
        for k in range(0, n, self.batch_size):
            img_idx = order[k : k + self.batch_size]
            if len(img_idx) < 2:
                continue
            cap_idx = caps[img_idx]
            c_ids, c_mask = self.ids[cap_idx], self.mask[cap_idx]
            L = int(c_mask.sum(1).max())
            yield (
                self.data.images[img_idx],
                c_ids[:, :L],
                c_mask[:, :L],
                self.data.labels[img_idx],
                self.cap_img[cap_idx],
            )


class RetrievalObjective:
    """`maskloop.fit` objective: per-pair loss ``model.loss(model(images, ids, mask), labels,
    image_ids)`` (L_STL + lambda L_LSD for SSJDN), logged as ``loss``."""

    def __call__(self, model: torch.nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        images, ids, mask, labels, image_ids = batch
        net = getattr(model, "module", model)  # DDP-wrapped or not
        out = model(images, ids, mask)
        return net.loss(out, labels, image_ids), {}


class _RetrievalSchedule(Callback):
    """Summed negatives during the warm-up epochs, the LSD weight's schedule, gradient clipping with a finite-norm check, and
    the retrieval metrics of ``eval_data`` recorded after every epoch (as ``eval_<name>``)."""

    order = 10

    def __init__(self, warmup_epochs: int, clip: float, eval_data: RetrievalData | None) -> None:
        self.warmup_epochs, self.clip, self.eval_data = warmup_epochs, clip, eval_data
        self.negatives: str | None = None

    def on_fit_start(self, state: LoopState) -> None:
        self.negatives = state.model.criterion.negatives

    def on_epoch_start(self, state: LoopState) -> None:
        net = state.model
        net.criterion.negatives = "sum" if state.epoch < self.warmup_epochs else self.negatives

    def on_after_backward(self, state: LoopState) -> None:
        params = [p for p in state.model.parameters() if p.grad is not None]
        norm = torch.nn.utils.clip_grad_norm_(params, self.clip)
        if not bool(torch.isfinite(norm)):
            raise ValueError(
                f"gradient norm is {float(norm)} at epoch {state.epoch}, step {state.step}: "
                "stopped before the update; lower lr or check the data"
            )

    def on_epoch_end(self, state: LoopState) -> None:
        if self.eval_data is not None:
            for k, v in evaluate_retrieval(state.model, self.eval_data).items():
                state.metrics[f"eval_{k}"] = v

    def on_fit_end(self, state: LoopState) -> None:
        if self.negatives is not None:
            state.model.criterion.negatives = self.negatives


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
    callbacks: Sequence[Callback] = (),
) -> TrainHistory:
    """Train ``model`` on image-caption pairs with `maskloop.fit` and `RetrievalObjective`.

    Adam with cosine decay over the epochs; during the first ``warmup_epochs`` the triplet loss sums
    all negatives (hardest-negative training from scratch is unstable at first, as VSE++ reports);
    gradients clipped to norm 2. With ``eval_data`` the retrieval metrics are recorded after every
    epoch. ``callbacks`` go to `fit`, e.g. ``maskloop.Checkpoint(dir)`` to save every epoch and
    resume an interrupted run to identical weights. A non-finite loss raises
    `maskloop.NonFiniteLossError` (a ValueError) naming the epoch and step, before the update.
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
    if len(train) < 2:
        raise ValueError(f"train must hold at least 2 images, got {len(train)}")
    from maskloop import seed_everything

    gen = seed_everything(seed)
    ids, mask = model.text.tokenize(train.flat_captions)
    batches = PairBatches(train, ids, mask, batch_size, gen)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    t0 = time.perf_counter()
    history = fit(
        model,
        batches,
        epochs=epochs,
        optimizer=opt,
        objective=RetrievalObjective(),
        scheduler=sched,
        callbacks=[_RetrievalSchedule(warmup_epochs, 2.0, eval_data), *callbacks],
        progress=progress,
    )
    hist = TrainHistory(seconds=time.perf_counter() - t0)
    for e in history.epochs:
        hist.loss.append(float(e["train_loss"]))
        if eval_data is not None:
            hist.metrics.append({k[5:]: v for k, v in e.items() if k.startswith("eval_")})
    return hist
