"""Shared fixtures of the ted-prune tests."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from maskloop import IndexedDataset, fit
from ted_prune import PrunerCallback, TEDPruner
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


@pytest.fixture
def made_up_rows():
    """Made-up validation rows for the session-25 study rules (`scripts/*_validation.py`):
    `rows(arms, seeds)` with `arms` = {arm: (clean delta, noise20 delta)} gives, per arm, setting
    and seed, accuracy = base(setting, seed) + delta, plus a seed-dependent wobble for the arms
    with a non-zero delta so paired CIs have width; every row keeps `min_class` of each class."""

    def rows(
        arms: dict[str, tuple[float, float]], seeds: list[int], min_class: float = 0.5
    ) -> list[dict[str, Any]]:
        out = []
        for arm, (clean, noise) in arms.items():
            for setting, d in (("clean", clean), ("noise20", noise)):
                for i, s in enumerate(seeds):
                    acc = (
                        80.0 - 10 * (setting == "noise20") + i + d + (0.2 * (-1) ** i if d else 0.0)
                    )
                    out.append({"arm": arm, "setting": setting, "seed": s, "val_accuracy": acc,
                                "min_class_kept": min_class})  # fmt: skip
        return out

    return rows


def _small_ted_fit(**options: Any) -> tuple[TEDPruner, list[int], list[torch.Tensor]]:
    """Train a float64 MLP for 8 epochs on 120 fixed 3-class samples with a `TEDPruner(ds, 8,
    keep=0.4, seed=2, **options)`; return the pruner and, per epoch, the selection's size and a
    copy of the loss weights at its start."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(120, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] - x[:, 1] > 0).long() + (x[:, 2] > 0.8).long()
    ds = TensorDataset(x, y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    pruner = TEDPruner(ds, 8, keep=0.4, seed=2, **options)
    loader = DataLoader(IndexedDataset(ds), sampler=pruner.sampler, batch_size=16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sizes: list[int] = []
    weights: list[torch.Tensor] = []

    class Rec(PrunerCallback):
        def on_epoch_start(self, state):
            super().on_epoch_start(state)
            sizes.append(pruner.sampler.selection.indices.numel())
            weights.append(pruner.weight.clone())

    fit(model, loader, epochs=8, optimizer=opt, progress=False,
        loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"), callbacks=[Rec(pruner)])  # fmt: skip
    return pruner, sizes, weights


@pytest.fixture
def small_ted_fit():
    """`small_ted_fit(**options)`: (pruner, per-epoch selection sizes, per-epoch loss weights) of
    one small seeded training run with `TEDPruner(..., **options)`."""
    return _small_ted_fit


@pytest.fixture
def stored_tail():
    """The suspect-tail tests' made-up state: `made_up(n, classes, seed)` gives float64 stored
    logits (each sample's own class raised by 1, so most but not all are classified correctly),
    labels and scores; `pruner(logits, labels, scores, keep=0.5, seed=0, **options)` gives a
    float64 `TEDPruner` at a pruned epoch (5, warm-up 1, no ramp) holding them."""

    def made_up(
        n: int = 800, classes: int = 4, seed: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        g = torch.Generator().manual_seed(seed)
        labels = torch.arange(n) % classes
        logits = torch.randn(n, classes, generator=g, dtype=torch.float64)
        logits[torch.arange(n), labels] += 1.0
        return logits, labels, torch.rand(n, generator=g, dtype=torch.float64)

    def pruner(
        logits: torch.Tensor,
        labels: torch.Tensor,
        scores: torch.Tensor,
        keep: float = 0.5,
        seed: int = 0,
        **options: Any,
    ) -> TEDPruner:
        n = labels.numel()
        p = TEDPruner(n, 10, keep=keep, warmup=1, ramp=0, seed=seed, precision="float64", **options)
        p._obs.label_buffer().copy_(labels)
        p._obs.set_buffers(logits, torch.zeros(n, 3))
        p.scores = scores.double()
        p.has_score = torch.ones(n, dtype=torch.bool)
        p.epoch = 5
        return p

    return made_up, pruner
