"""Shared fixtures of the ted-prune tests."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from maskloop import IndexedDataset, fit
from ted_prune import PrunerCallback, TEDPruner
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def script(monkeypatch) -> Callable[[str], ModuleType]:
    """`script(name)`: the module `scripts/<name>.py`, imported with `scripts/` first on
    `sys.path` for the test (the scripts import their siblings; `monkeypatch` undoes it)."""
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module


def _small_problem(n: int) -> tuple[TensorDataset, nn.Module]:
    """`n` fixed 3-class float64 samples (5 features, generator seed 3; label = [x0 > x1] +
    [x2 > 0.8]) and a float64 MLP 5-12-3 initialised after `torch.manual_seed(0)`."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] - x[:, 1] > 0).long() + (x[:, 2] > 0.8).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3)).double()
    return TensorDataset(x, y), model


@pytest.fixture
def small_problem() -> Callable[[int], tuple[TensorDataset, nn.Module]]:
    """`small_problem(n)`: the fixed 3-class float64 data of `n` samples and a seeded MLP (the
    builder `small_ted_fit` and `test_ted_prune_score_every` share)."""
    return _small_problem


def _small_ted_fit(**options: Any) -> tuple[TEDPruner, list[int], list[torch.Tensor]]:
    """Train a float64 MLP for 8 epochs on 120 fixed 3-class samples (`_small_problem`) with a
    `TEDPruner(ds, 8, keep=0.4, seed=2, **options)`; return the pruner and, per epoch, the
    selection's size and a copy of the loss weights at its start."""
    ds, model = _small_problem(120)
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


class EpochLosses:
    """The noise detectors' made-up epochs (tests of `noise_schedule="late_epoch0"` and
    `noise_min_keep`): `observe(p, high_at, seed)` feeds one epoch in `p.select()`'s order, the
    sample at position j getting p(label) ~ 0.002 (loss ~ 6.1 > 1.5 ln 4 = 2.08) if
    `high_at(j, m)`, else ~ 0.95 (4 classes, 5 features, float64), and returns the indices;
    `every(k)` is high at every k-th position of the last half only (share 1/k there);
    `run(p, high_at, epochs)` is epoch 0 with `high_at`, the rest with `every(50)`."""

    classes, features = 4, 5

    def observe(self, p: TEDPruner, high_at: Any, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        idx = p.select().indices
        m = idx.numel()
        high = torch.tensor([high_at(j, m) for j in range(m)])
        labels = idx % self.classes
        logits = torch.zeros(m, self.classes, dtype=torch.float64)
        logits[torch.arange(m), labels] = torch.where(high, -5.0, 4.0).double()
        logits += 0.1 * torch.randn(logits.shape, generator=g, dtype=torch.float64)
        feats = torch.randn(m, self.features, generator=g, dtype=torch.float64)
        for b in range(0, m, 128):
            sl = slice(b, b + 128)
            p.observe(idx[sl], logits[sl], feats[sl], labels[sl])
        p.end_epoch()
        return idx

    @staticmethod
    def every(k: int) -> Any:
        return lambda j, m: j >= m - m // 2 and j % k == 0

    def run(self, p: TEDPruner, high_at: Any, epochs: int = 20) -> list[torch.Tensor]:
        return [
            self.observe(p, high_at if e == 0 else self.every(50), seed=e) for e in range(epochs)
        ]


@pytest.fixture
def epoch_losses() -> EpochLosses:
    """`EpochLosses`: made-up epochs of training-pass losses for the noise detectors' tests."""
    return EpochLosses()
