"""MNIST-1D (Greydanus, 2020): a 1-D analogue of MNIST generated offline by the `mnist1d` package,
with label noise and near-duplicate variants, a validation split carved from the training data,
and a small 1-D CNN.

The data come from `mnist1d.data.make_dataset(args)` with `mnist1d.data.get_dataset_args()` (the
published generator; its download helpers are never called). Its train split (80%) is cut into
train and validation (the last `val_size` samples); its test split is only read for the report.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn
from torch.utils.data import TensorDataset

from ted_prune.data import symmetric_label_noise

__all__ = ["MNIST1DCNN", "mnist1d_splits", "near_duplicates"]


@functools.lru_cache(maxsize=2)
def _generate(num_samples: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "MNIST-1D needs the `mnist1d` package: pip install 'ted-prune[bench]'"
        ) from err
    args = get_dataset_args()
    args.num_samples = int(num_samples)
    d = make_dataset(args)  # generated offline (seed 42, the package's default arguments)
    return (
        d["x"].astype(np.float32),
        d["y"].astype(np.int64),
        d["x_test"].astype(np.float32),
        d["y_test"].astype(np.int64),
    )


def near_duplicates(
    x: torch.Tensor,
    y: torch.Tensor,
    fraction: float,
    seed: int,
    sources: float = 0.05,
    jitter: float = 0.05,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Replace a `fraction` of the samples by near-copies of a few others (redundant data).

    A `sources` fraction of the untouched samples is drawn; each replaced sample becomes a copy of a
    random source (its label too) plus Gaussian jitter of `jitter` times the data's std. Returns
    (x, y, bool mask of the replaced samples).
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"fraction must be in [0, 1), got {fraction!r}")
    n = len(y)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    n_dup = round(fraction * n)
    dup, rest = perm[:n_dup], perm[n_dup:]
    src = rest[: max(1, round(sources * rest.numel()))]
    pick = src[torch.randint(0, src.numel(), (n_dup,), generator=g)]
    x, y = x.clone(), y.clone()
    x[dup] = x[pick] + jitter * float(x.std()) * torch.randn(x[pick].shape, generator=g)
    y[dup] = y[pick]
    mask = torch.zeros(n, dtype=torch.bool)
    mask[dup] = True
    return x, y, mask


def mnist1d_splits(
    num_samples: int = 10_000,
    val_size: int = 1000,
    noise: float = 0.0,
    duplicates: float = 0.0,
    seed: int = 0,
) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """(train, validation, test) TensorDatasets of (N, 1, 40) signals and labels.

    `noise` flips that fraction of *training* labels symmetrically; `duplicates` replaces that
    fraction of training samples by near-copies (`near_duplicates`); validation and test stay clean.
    """
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 100:
        raise ValueError(f"num_samples must be an int >= 100, got {num_samples!r}")
    xtr, ytr, xte, yte = _generate(num_samples)
    if not 0 < val_size < len(ytr):
        raise ValueError(f"val_size must be in (0, {len(ytr)}), got {val_size!r}")
    x = torch.from_numpy(xtr).unsqueeze(1)
    y = torch.from_numpy(ytr)
    xv, yv = x[-val_size:], y[-val_size:]
    x, y = x[:-val_size], y[:-val_size]
    if duplicates > 0:
        x, y, _ = near_duplicates(x, y, duplicates, seed=seed + 17)
    if noise > 0:
        y, _ = symmetric_label_noise(y, noise, 10, seed=seed + 1)
    test = TensorDataset(torch.from_numpy(xte).unsqueeze(1), torch.from_numpy(yte))
    return TensorDataset(x, y), TensorDataset(xv, yv), test


class MNIST1DCNN(nn.Module):
    """Three strided 1-D conv layers (the mnist1d reference ConvBase shape, `width` channels) and a
    linear head; the head's input (width * 5 features) is what TED reads."""

    def __init__(self, width: int = 32, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv1d(1, width, 5, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv1d(width, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Linear(width * 5, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
