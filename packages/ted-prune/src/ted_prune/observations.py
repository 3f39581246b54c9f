"""TED's per-sample observation buffers: every sample's label, logits and classifier input at its
last observation, each batch's rows written straight into them when it is observed.

TED scores samples from the training forward pass (no second forward for the samples it trains
on), so every training batch hands over its logits and penultimate features. `ObservationStore`
writes each batch's rows into the preallocated (N, ...) buffers at once (`write`): one NumPy
fancy assignment per buffer, each row of a 2-D buffer one opaque item (`_row_items`, one memcpy
per row), while the batch is still in the cache. There is no staging ring and no per-epoch write
pass: until session 18 the rows were copied into staging buffers and scattered into the (N, ...)
buffers in one go when read, which read every observed row twice more (the staged copy, then the
scatter) and cost about a sixth of TED's scoring time on MNIST-1D. The result is the same bytes:
a sample observed twice keeps its last observation (within a batch too), and because the rows
are copied, nothing of a training batch is kept alive and a tensor the caller changes in place
after `observe` cannot alter what is scored.

Dataset indices are range-checked for every batch before any of its rows is written, with ONE
reduction (`indices_in_range`; a bad batch raises a `ValueError` naming `indices`, and nothing of
it is written).

The features buffer holds h~ = [h, 1] (the bias column of the last-layer gradient e h~^T), so the
closed-form factors need no (N, D+1) copy, and the squared row norms ||h~_i||^2 and the softmax
probabilities of each written row are computed when the row is written, in the scoring dtype,
not for all N rows every epoch (a row's sum or softmax does not depend on the other rows, so these
equal the full-matrix `(h * h).sum(1)` and `softmax(logits)` bit for bit; tested). Each batch's
h~ rows are assembled in a small scratch buffer (its ones column set once) that stays in the
cache, as do the norms' scratch and the batch's logits.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ted_prune.pruner import index_range_error, indices_in_range

__all__ = ["ObservationStore"]


class ObservationStore:
    """Labels (N,), logits (N, C), features with a ones column h~ (N, D+1), fresh flags (N,).

    Args:
        n: dataset size N.
        norm_dtype: dtype of the cached squared row norms ||h~_i||^2 and softmax rows (the scoring
            precision).
    """

    def __init__(self, n: int, norm_dtype: torch.dtype = torch.float32):
        self.n = n
        self.norm_dtype = norm_dtype
        self.labels: torch.Tensor | None = None  # (N,) long, -1: never observed
        self.logits: torch.Tensor | None = None  # (N, C) float32
        self.h: torch.Tensor | None = None  # (N, D+1) float32, last column 1
        self.hnorm2: torch.Tensor | None = None  # (N,) ||h~_i||^2 in norm_dtype
        self.probs: torch.Tensor | None = None  # (N, C) softmax of the logits in norm_dtype
        self.fresh = torch.zeros(n, dtype=torch.bool)  # observed since the last reset
        # per-batch scratch, kept from batch to batch: h~ rows (ones column set once), the batch's
        # logits, the products and norms in norm_dtype; and its views for each batch size seen
        self._scratch: tuple[torch.Tensor, ...] | None = None
        self._slices: dict[int, tuple[Any, ...]] = {}
        # NumPy views of the (N, ...) buffers (rows of 2-D ones as opaque items), rebuilt whenever
        # a buffer is replaced (`_targets`)
        self._views: tuple[Any, ...] = ()
        self._viewed: tuple[torch.Tensor | None, ...] = ()

    # -- buffers ----------------------------------------------------------------------------------
    def label_buffer(self) -> torch.Tensor:
        """The (N,) label buffer, created on first use (-1: never observed)."""
        if self.labels is None:
            with torch.inference_mode(False):
                self.labels = torch.full((self.n,), -1, dtype=torch.long)
        return self.labels

    @torch.inference_mode(False)  # normal tensors even when first written by a re-scoring pass
    def _allocate(self, classes: int, dim: int) -> None:
        self.logits = torch.zeros(self.n, classes, dtype=torch.float32)
        self.h = torch.zeros(self.n, dim + 1, dtype=torch.float32)
        self.h[:, -1] = 1.0
        self.hnorm2 = torch.ones(self.n, dtype=self.norm_dtype)  # ||[0, 1]||^2
        self.probs = torch.softmax(self.logits.to(self.norm_dtype), dim=1)
        self._scratch = None
        self._slices = {}

    @torch.inference_mode(False)  # views that outlive a re-scoring pass are normal tensors
    def _batch_slices(self, rows: int) -> tuple[Any, ...]:
        """Views of the scratch buffers for a batch of `rows` rows (grown when a batch is larger
        than any before): h~ (torch, NumPy view of its feature columns, row items), logits
        (torch, NumPy, row items), products and norms in norm_dtype (torch, NumPy); cached by
        size in `_slices` (`write` looks there first)."""
        assert self.logits is not None and self.h is not None
        classes, dim1 = self.logits.shape[1], self.h.shape[1]
        if self._scratch is None or self._scratch[0].shape[0] < rows:
            self._grow(rows, classes, dim1)
        h, lg, sq, hn = (t[:rows] for t in self._scratch)
        cached = (h, h.numpy()[:, :-1], _row_items(h), lg, lg.numpy(), _row_items(lg), sq, hn,
                  hn.numpy())  # fmt: skip
        self._slices[rows] = cached
        return cached

    def _grow(self, rows: int, classes: int, dim1: int) -> None:
        size = max(rows, 0 if self._scratch is None else self._scratch[0].shape[0])
        h = torch.empty(size, dim1, dtype=torch.float32)
        h[:, -1] = 1.0
        self._scratch = (
            h,
            torch.empty(size, classes, dtype=torch.float32),
            torch.empty(size, dim1, dtype=self.norm_dtype),
            torch.empty(size, dtype=self.norm_dtype),
        )
        self._slices = {}

    def _targets(self) -> tuple[Any, ...]:
        """NumPy views of the buffers a batch is written into (same memory): labels, logits rows,
        h~ rows, norms, softmax rows, fresh flags; rebuilt when a buffer was replaced."""
        bufs = (self.label_buffer(), self.logits, self.h, self.hnorm2, self.probs, self.fresh)
        if len(bufs) != len(self._viewed) or any(x is not y for x, y in zip(bufs, self._viewed)):
            labels, logits, h, hnorm2, probs, fresh = bufs
            assert logits is not None and h is not None and hnorm2 is not None
            assert probs is not None
            self._views = (labels.numpy(), _row_items(logits), _row_items(h), hnorm2.numpy(),
                           _row_items(probs), fresh.numpy())  # fmt: skip
            self._viewed = bufs
        return self._views

    @property
    def features(self) -> torch.Tensor | None:
        """(N, D) view of the stored penultimate features (h~ without its ones column)."""
        return None if self.h is None else self.h[:, :-1]

    def set_buffers(self, logits: torch.Tensor | None, features: torch.Tensor | None) -> None:
        """Replace the logits and features buffers (restoring a state)."""
        if logits is None or features is None:
            self.logits = self.h = self.hnorm2 = self.probs = None
            return
        self._allocate(logits.shape[1], features.shape[1])
        assert self.logits is not None and self.h is not None
        self.logits.copy_(logits)
        self.h[:, :-1].copy_(features)
        self.refresh_derived()

    def refresh_derived(self) -> None:
        """Recompute every cached ||h~_i||^2 and softmax row (after the buffers were changed in
        place)."""
        if self.h is not None and self.logits is not None:
            h = self.h.to(self.norm_dtype)
            self.hnorm2 = (h * h).sum(1)
            self.probs = torch.softmax(self.logits.to(self.norm_dtype), dim=1)

    # -- writing ----------------------------------------------------------------------------------
    def write(
        self,
        indices: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor,
    ) -> None:
        """Write one batch into the buffers (CPU tensors: indices/labels (B,), logits (B, C),
        features (B, D)).

        Checks the shapes and the index range first (nothing is written for a bad batch), then
        assembles the batch's h~ rows and logits in the scratch (copies: a later in-place change
        of these tensors cannot alter what is scored), computes their norms and softmax rows, and
        scatters every row into its sample's place. A sample repeated within the batch keeps its
        last row, as one observed in two batches keeps the later one."""
        if self.logits is None or self.h is None:
            self._allocate(logits.shape[1], features.shape[1])
        assert self.logits is not None and self.h is not None
        if logits.shape[1] != self.logits.shape[1] or features.shape[1] != self.h.shape[1] - 1:
            raise ValueError(
                f"feature/class sizes changed: got {features.shape[1]} features and "
                f"{logits.shape[1]} classes, expected {self.h.shape[1] - 1} and "
                f"{self.logits.shape[1]}"
            )
        if not indices_in_range(indices, self.n):
            raise index_range_error(indices, self.n)
        rows = _np(indices)
        b = rows.shape[0]
        if b > 1:
            ordered = np.sort(rows)
            if (ordered[1:] == ordered[:-1]).any():  # repeated samples: keep the last row of each
                keep = torch.from_numpy(_last_of_each(rows))
                indices, labels = indices[keep], labels[keep]
                logits, features = logits[keep], features[keep]
                rows, b = _np(indices), keep.numel()
        views = self._slices.get(b) or self._batch_slices(b)
        h, h_feats, h_items, lg, lg_np, lg_items, sq, hn, hn_np = views
        h_feats[...] = _np(features)
        lg_np[...] = _np(logits)
        part = h if self.norm_dtype == torch.float32 else h.to(self.norm_dtype)
        torch.mul(part, part, out=sq)
        torch.sum(sq, 1, out=hn)
        probs = torch.softmax(lg if self.norm_dtype == torch.float32 else lg.to(self.norm_dtype),
                              dim=1)  # fmt: skip
        t_labels, t_logits, t_h, t_hnorm2, t_probs, t_fresh = self._targets()
        t_labels[rows] = _np(labels)
        t_logits[rows] = lg_items
        t_h[rows] = h_items
        t_hnorm2[rows] = hn_np
        t_probs[rows] = _row_items(probs)
        t_fresh[rows] = True

    def mark_labels(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        """Record labels and freshness only (scoring without stored features, `grads="full"`)."""
        self.label_buffer().index_copy_(0, indices, labels)
        self.fresh.index_fill_(0, indices, True)

    def reset_fresh(self) -> None:
        """Mark every sample as not observed (a new epoch)."""
        self.fresh = torch.zeros(self.n, dtype=torch.bool)


def _last_of_each(rows: np.ndarray) -> np.ndarray:
    """Positions of the last occurrence of each distinct value of `rows`, ascending."""
    _, first_from_end = np.unique(rows[::-1], return_index=True)
    return np.sort(rows.shape[0] - 1 - first_from_end)


def _row_items(t: torch.Tensor) -> np.ndarray:
    """The rows of a C-contiguous 2-D CPU tensor as a 1-D NumPy array of opaque items (one
    `np.void` of the row's bytes each), sharing its memory (the buffers and the staged rows are
    always contiguous; anything else would be copied, and a scatter into a copy lost)."""
    a = t.numpy()
    assert a.flags.c_contiguous and a.ndim == 2
    return a.view(np.dtype((np.void, a.shape[1] * a.itemsize))).reshape(a.shape[0])


def _np(t: torch.Tensor) -> np.ndarray:
    """The NumPy view of a CPU tensor (of a detached copy when it records gradients)."""
    return (t.detach() if t.requires_grad else t).numpy()
