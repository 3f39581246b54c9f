"""Main's per-batch and write path (main `58c1666`, before session 24), kept as the paired timing's
"before" arm (`scoring_paired.py --study s24`, arm "main").

Session 24 changed three things, each keeping every staged row, weight, score and selection bit
for bit: the staging copies (NumPy views and slice assignments -> `Tensor.copy_` into kept row
views), the per-batch calls (`observe`, then `timed_weights` -> one `observe_weights`), and the
epoch's write (scatter of h~, then a second pass for the squared norms -> the norms of each chunk
right after its scatter). `MainPathTED` is a `TEDPruner` taking main's code for all three: the
methods below are main's, verbatim but for names, so one process can time both paths in turn.
Both arms must select alike: `scoring_paired.py --study s24 --check-digests`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ted_prune.observations import ObservationStore, _np, _row_items
from ted_prune.pruner import DataPruner, _as_cpu, index_range_error, indices_in_range
from ted_prune.ted import TEDPruner

__all__ = ["MainPathStore", "MainPathTED"]


class MainPathStore(ObservationStore):
    """`ObservationStore` with main's `stage` (NumPy slice assignments) and write (two passes)."""

    _stage_np: tuple[np.ndarray, ...] = ()

    def _make_stage(self, rows: int, classes: int, dim: int) -> None:
        super()._make_stage(rows, classes, dim)
        assert self._stage is not None
        st = self._stage
        self._stage_np = (st[0].numpy(), st[1].numpy(), st[2].numpy(), st[3][:, :-1].numpy())

    def stage(self, indices: torch.Tensor, labels: torch.Tensor, logits: torch.Tensor,
              features: torch.Tensor) -> None:  # fmt: skip
        if self.logits is None or self.h is None:
            self._allocate(logits.shape[1], features.shape[1])
        assert self.logits is not None and self.h is not None
        if logits.shape[1] != self.logits.shape[1] or features.shape[1] != self.h.shape[1] - 1:
            raise ValueError("feature/class sizes changed")
        self._written = None
        r = self._rows
        if not r and not indices_in_range(indices, self.n):
            raise index_range_error(indices, self.n)
        b = indices.shape[0]
        if r + b > self._stage_np[0].shape[0]:
            self._make_stage(r + b, logits.shape[1], features.shape[1])
        st_idx, st_labels, st_logits, st_feats = self._stage_np
        st_idx[r : r + b] = _np(indices)
        st_labels[r : r + b] = _np(labels)
        st_logits[r : r + b] = _np(logits)
        st_feats[r : r + b] = _np(features)
        self._sizes.append(b)
        self._rows = r + b
        if self._rows >= self._cap:
            self.flush()

    def _scatter_norms(self, rows: np.ndarray, h: torch.Tensor) -> torch.Tensor:
        assert self.h is not None
        _row_items(self.h)[rows] = _row_items(h)
        return self._squared_norms(h)


class MainPathTED(TEDPruner):
    """`TEDPruner` taking main's per-batch calls (observe, then timed_weights) and store."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        old = self._obs
        self._obs = MainPathStore(old.n, old.norm_dtype, keep_written=old.keep_written)

    def observe_weights(self, indices, logits, features=None, targets=None, losses=None):  # noqa: ANN001, ANN201
        DataPruner.observe(self, indices, logits, features, targets, losses)
        if not self.reweights:
            return None
        return self.timed_weights(indices, losses)

    def weights(self, indices: torch.Tensor) -> torch.Tensor:
        if (
            self._current is None
            or self._current_epoch != self.epoch
            or (self._sampler is not None and self._sampler_epoch != self.epoch)
        ):
            self.select()
        if self._weight32 is None:
            self._weight32 = self.weight.float()
        indices = _as_cpu(indices, torch.long)
        if indices.ndim != 1:
            indices = indices.flatten()
        try:
            return self._weight32.index_select(0, indices)
        except (IndexError, RuntimeError) as err:
            if indices_in_range(indices, self.n):
                raise
            raise index_range_error(indices, self.n) from err
