"""TED's per-sample observation buffers: every sample's label, logits and classifier input at its
last observation, written in bulk.

TED scores samples from the training forward pass (no second forward for the samples it trains
on), so every training batch hands over its logits and penultimate features. Writing them into the
(N, ...) buffers batch by batch cost one indexed copy per buffer per batch (a few hundred
microseconds per batch on a busy CPU, about 4% of an MNIST-1D epoch). `ObservationStore` instead
*stages* each batch with plain slice copies into preallocated contiguous blocks (values are taken
at observation time, as before) and writes the staged rows into the buffers with one `index_copy_`
per buffer when anything reads them (`flush`, called by the readers: end of epoch, re-scoring,
`state_dict`). The result is the same as writing batch by batch: a sample observed twice keeps its
last observation.

The features buffer holds h~ = [h, 1] (the bias column of the last-layer gradient e h~^T), so the
closed-form factors need no (N, D+1) copy, and the squared row norms ||h~_i||^2 of the written rows
are computed at write time in the scoring dtype (a row sum does not depend on the other rows, so
these equal the full-matrix `(h * h).sum(1)` bit for bit).
"""

from __future__ import annotations

import torch

__all__ = ["ObservationStore"]


class ObservationStore:
    """Labels (N,), logits (N, C), features with a ones column h~ (N, D+1), fresh flags (N,).

    Args:
        n: dataset size N.
        norm_dtype: dtype of the cached squared row norms ||h~_i||^2 (the scoring precision).
        capacity: staged rows before a write is forced (bounds the staging memory).
    """

    def __init__(self, n: int, norm_dtype: torch.dtype = torch.float32, capacity: int = 65536):
        self.n = n
        self.norm_dtype = norm_dtype
        self.labels: torch.Tensor | None = None  # (N,) long, -1: never observed
        self.logits: torch.Tensor | None = None  # (N, C) float32
        self.h: torch.Tensor | None = None  # (N, D+1) float32, last column 1
        self.hnorm2: torch.Tensor | None = None  # (N,) ||h~_i||^2 in norm_dtype
        self.fresh = torch.zeros(n, dtype=torch.bool)  # observed since the last reset
        self._cap = max(1, min(n, capacity))
        self._pos = 0
        self._st_idx: torch.Tensor | None = None
        self._st_y: torch.Tensor | None = None
        self._st_logits: torch.Tensor | None = None
        self._st_h: torch.Tensor | None = None

    # -- buffers ----------------------------------------------------------------------------------
    def label_buffer(self) -> torch.Tensor:
        """The (N,) label buffer, created on first use (-1: never observed)."""
        if self.labels is None:
            self.labels = torch.full((self.n,), -1, dtype=torch.long)
        return self.labels

    def _allocate(self, classes: int, dim: int) -> None:
        self.logits = torch.zeros(self.n, classes, dtype=torch.float32)
        self.h = torch.zeros(self.n, dim + 1, dtype=torch.float32)
        self.h[:, -1] = 1.0
        self.hnorm2 = torch.ones(self.n, dtype=self.norm_dtype)  # ||[0, 1]||^2

    @property
    def features(self) -> torch.Tensor | None:
        """(N, D) view of the stored penultimate features (h~ without its ones column)."""
        return None if self.h is None else self.h[:, :-1]

    def set_buffers(self, logits: torch.Tensor | None, features: torch.Tensor | None) -> None:
        """Replace the logits and features buffers (restoring a state; pending rows are dropped)."""
        self._pos = 0
        if logits is None or features is None:
            self.logits = self.h = self.hnorm2 = None
            return
        self._allocate(logits.shape[1], features.shape[1])
        assert self.logits is not None and self.h is not None
        self.logits.copy_(logits)
        self.h[:, :-1].copy_(features)
        self.refresh_norms()

    def refresh_norms(self) -> None:
        """Recompute every cached ||h~_i||^2 (after the buffers were changed in place)."""
        if self.h is not None:
            h = self.h.to(self.norm_dtype)
            self.hnorm2 = (h * h).sum(1)

    # -- staging ----------------------------------------------------------------------------------
    def stage(
        self,
        indices: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor,
    ) -> None:
        """Stage one batch (CPU tensors: indices/labels (B,), logits (B, C), features (B, D))."""
        if self.logits is None or self.h is None:
            self._allocate(logits.shape[1], features.shape[1])
        assert self.logits is not None and self.h is not None
        if logits.shape[1] != self.logits.shape[1] or features.shape[1] != self.h.shape[1] - 1:
            raise ValueError(
                f"feature/class sizes changed: got {features.shape[1]} features and "
                f"{logits.shape[1]} classes, expected {self.h.shape[1] - 1} and "
                f"{self.logits.shape[1]}"
            )
        b = indices.numel()
        if self._pos + b > self._cap:
            self.flush()
        if b > self._cap:  # a batch larger than the staging area: write it directly
            self._write(indices, labels, logits, torch.cat([features, features.new_ones(b, 1)], 1))
            return
        if self._st_idx is None or self._st_h is None or self._st_h.shape[1] != self.h.shape[1]:
            self._st_idx = torch.empty(self._cap, dtype=torch.long)
            self._st_y = torch.empty(self._cap, dtype=torch.long)
            self._st_logits = torch.empty(self._cap, self.logits.shape[1], dtype=torch.float32)
            self._st_h = torch.ones(self._cap, self.h.shape[1], dtype=torch.float32)
        assert self._st_y is not None and self._st_logits is not None
        lo, hi = self._pos, self._pos + b
        self._st_idx[lo:hi].copy_(indices)
        self._st_y[lo:hi].copy_(labels)
        self._st_logits[lo:hi].copy_(logits)
        self._st_h[lo:hi, :-1].copy_(features)
        self._pos = hi

    def flush(self) -> None:
        """Write the staged rows into the buffers (a sample staged twice keeps its last row)."""
        if self._pos == 0:
            return
        assert self._st_idx is not None and self._st_y is not None
        assert self._st_logits is not None and self._st_h is not None
        m, self._pos = self._pos, 0
        self._write(self._st_idx[:m], self._st_y[:m], self._st_logits[:m], self._st_h[:m])

    def _write(
        self, idx: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor, h: torch.Tensor
    ) -> None:
        assert self.logits is not None and self.h is not None
        m = idx.numel()
        mark = torch.zeros(self.n, dtype=torch.bool)
        mark.index_fill_(0, idx, True)
        if int(mark.sum()) != m:  # repeated samples: keep the last row of each
            pos = torch.arange(m)
            last = torch.full((self.n,), -1, dtype=torch.long).scatter_reduce_(0, idx, pos, "amax")
            keep = torch.nonzero(last[idx] == pos).flatten()
            idx, labels, logits, h = idx[keep], labels[keep], logits[keep], h[keep]
        self.label_buffer().index_copy_(0, idx, labels)
        self.logits.index_copy_(0, idx, logits)
        self.h.index_copy_(0, idx, h)
        hn = h.to(self.norm_dtype)
        assert self.hnorm2 is not None
        self.hnorm2.index_copy_(0, idx, (hn * hn).sum(1))
        self.fresh |= mark

    def mark_labels(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        """Record labels and freshness only (scoring without stored features, `grads="full"`)."""
        self.flush()
        self.label_buffer().index_copy_(0, indices, labels)
        self.fresh.index_fill_(0, indices, True)

    def reset_fresh(self) -> None:
        """Mark every sample as not observed (a new epoch); staged rows are written first."""
        self.flush()
        self.fresh = torch.zeros(self.n, dtype=torch.bool)
