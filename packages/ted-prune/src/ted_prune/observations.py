"""TED's per-sample observation buffers: every sample's label, logits and classifier input at its
last observation, written in bulk.

TED scores samples from the training forward pass (no second forward for the samples it trains
on), so every training batch hands over its logits and penultimate features. Writing them into the
(N, ...) buffers batch by batch cost one indexed copy per buffer per batch, and on a CPU every
small op issued between the training kernels costs 10-30 us (cold caches): about 4% of an
MNIST-1D epoch. `ObservationStore` instead *stages* each batch: its rows are copied, in order, into
staging buffers kept from write to write (`capacity` rows; one `Tensor.copy_` per buffer into
views of the contiguous next rows, kept from epoch to epoch, the batch still in the cache), and
written into the (N, ...) buffers in one go when anything reads them (`flush`, called by the readers: end of epoch,
re-scoring, `state_dict`), or when `capacity` rows are staged. The result is the same as writing
batch by batch: a sample observed twice keeps its last observation. Because the rows are copied
when staged, nothing of a training batch is kept alive until the write (its activations go back
to the allocator at once), the write needs no `cat` of the staged batches, and a tensor the caller
changes in place after `observe` cannot alter what is scored.

Dataset indices are range-checked before any staged row is written: the first batch after each
write when it is staged (so a dataset that does not match the pruner fails at its first batch),
every other one with the whole write in ONE reduction (`indices_in_range`), which raises the same
`ValueError` naming the batch instead of one `aminmax` and two `.item()` calls per training batch
(about 19 us each inside the training loop, ~5% of TED's scoring on MNIST-1D). Nothing of the
staged rows is written then: they are dropped with the error. (`TEDPruner.weights` checks every
batch whose loss weights are read at once as well, so with `selection="sample"` a bad batch
still raises when it is passed.)

The features buffer holds h~ = [h, 1] (the bias column of the last-layer gradient e h~^T), so the
closed-form factors need no (N, D+1) copy, and the squared row norms ||h~_i||^2 and the softmax
probabilities of the written rows are computed at write time in the scoring dtype, not for all N
rows every epoch (a row's sum or softmax does not depend on the other rows, so these equal the
full-matrix `(h * h).sum(1)` and `softmax(logits)` bit for bit).

With `keep_written=True` (TED's `score_rows="fresh"`) the store also keeps, until the next batch is
staged, the rows of its last write in the order they were staged: dataset indices, labels, softmax
rows, squared norms and h~ (`written_rows`), so the scores of an epoch's observed rows can be
computed from these contiguous rows, without gathering them from the (N, ...) buffers. Such a
store also defers the (N, ...) squared norms and softmax rows (`hnorm2`, `probs`): a write only
marks them stale, and the first read recomputes them from the logits and h~ buffers (the same
row-wise `softmax` and chunked `(h * h).sum(1)` as a write, so the same bits as writing them row
by row; a test compares both stores). The "fresh" scores read the written rows instead, so with
one write per epoch nothing pays for these spreads (MNIST-1D 25,000 x 30: about 2-4 ms an epoch);
only the fallback path and `TEDPruner.factors()` read them. A write of every one of the N rows (a
full-data epoch) leaves no row stale, so it spreads its softmax rows and norms as the eager store
does; a deferred write keeps its (rows, softmax rows, norms) pending (the latest ones, at most 2N
rows), and a read whose pending writes together cover every row (an epoch whose pruned rows were
re-scored: its training rows and the re-scored ones) spreads them, oldest first, instead of
recomputing; only other reads recompute every row. The values are the same bits either way (each
row holds its last write's); what is saved is the softmax of 10-wide rows, which costs ~0.2 us a
row on CPU (~5 ms for 25,000 rows), in each of the epochs whose scores take the fallback path.

A write allocates no large temporary: the staged features already sit in the staging buffer (its
ones column set once, so its rows are h~), and the norms are computed in chunks of
`_CHUNK` rows through one small scratch buffer. On a CPU whose memory is shared with training, a
fresh (rows, D+1) allocation per epoch costs page faults and cache misses that took as long as the
write itself (MNIST-1D, 13,650 rows of 161: about 15 ms with fresh temporaries, 7 ms without).
"""

from __future__ import annotations

import numpy as np
import torch

from ted_prune.pruner import index_range_error, indices_in_range

__all__ = ["ObservationStore"]

_CHUNK = 2048  # rows per chunk of the norm computation (its scratch stays in the cache)


class ObservationStore:
    """Labels (N,), logits (N, C), features with a ones column h~ (N, D+1), fresh flags (N,).

    Args:
        n: dataset size N.
        norm_dtype: dtype of the cached squared row norms ||h~_i||^2 (the scoring precision).
        capacity: staged rows before a write is forced (bounds the staging memory).
        keep_written: keep the last write's rows (`written_rows`).
    """

    def __init__(
        self,
        n: int,
        norm_dtype: torch.dtype = torch.float32,
        capacity: int = 65536,
        keep_written: bool = False,
    ):
        self.n = n
        self.norm_dtype = norm_dtype
        self.labels: torch.Tensor | None = None  # (N,) long, -1: never observed
        self.logits: torch.Tensor | None = None  # (N, C) float32
        self.h: torch.Tensor | None = None  # (N, D+1) float32, last column 1
        self._hnorm2: torch.Tensor | None = None  # (N,) ||h~_i||^2 in norm_dtype (`hnorm2`)
        self._probs: torch.Tensor | None = None  # (N, C) softmax of the logits (`probs`)
        self._stale = False  # `keep_written`: _hnorm2/_probs not yet recomputed since a write
        # `keep_written`: the (rows, softmax rows, norms) of the latest deferred writes, oldest
        # first, at most 2N rows in all (`_materialise` spreads them when they cover every row)
        self._pending: list[tuple[np.ndarray, torch.Tensor, torch.Tensor]] = []
        self.fresh = torch.zeros(n, dtype=torch.bool)  # observed since the last reset
        self._cap = max(1, min(n, capacity))
        self._scratch: torch.Tensor | None = None  # (_CHUNK, D+1) for the squared norms
        # staging buffers (rows in the order staged; created with the (N, ...) buffers): dataset
        # indices, labels, logits and h~ = [features, 1] (last column set once), each a tensor
        # and a NumPy view of it (same memory) for the per-batch slice assignments
        self._stage: tuple[torch.Tensor, ...] | None = None
        self._views: dict[tuple[int, int], tuple[torch.Tensor, ...]] = {}  # `_row_views`
        self._room = 0  # rows the staging buffers hold
        self._classes = self._dim = -1  # C and D of the buffers (-1: none yet)
        self._sizes: list[int] = []  # rows of each batch staged since the last write
        self._rows = 0
        self.keep_written = keep_written
        self._written: tuple[torch.Tensor, ...] | None = None  # the last write's rows
        self._writes = 0  # writes since the last `reset_fresh`

    # -- buffers ----------------------------------------------------------------------------------
    @property
    def hnorm2(self) -> torch.Tensor | None:
        """(N,) ||h~_i||^2 in the norm dtype (recomputed here when a `keep_written` write left it
        stale)."""
        if self._stale:
            self._materialise()
        return self._hnorm2

    @property
    def probs(self) -> torch.Tensor | None:
        """(N, C) softmax of the stored logits in the norm dtype (recomputed here when a
        `keep_written` write left it stale)."""
        if self._stale:
            self._materialise()
        return self._probs

    def _materialise(self) -> None:
        """Bring the deferred squared norms and softmax rows of every row up to date: spread the
        pending writes' rows, oldest first, when together they cover all N rows (each row then
        holds its last write's values), else recompute every row from the buffers (a row's value
        does not depend on the other rows: the bits a write computes for it)."""
        assert self.h is not None and self.logits is not None
        pending, self._pending = self._pending, []
        covered = torch.zeros(self.n, dtype=torch.bool)
        cover = covered.numpy()
        for rows, _, _ in pending:
            cover[rows] = True
        if pending and bool(covered.all()):
            if self._hnorm2 is None or self._probs is None:
                self._hnorm2 = torch.empty(self.n, dtype=self.norm_dtype)
                self._probs = torch.empty(self.n, pending[0][1].shape[1], dtype=self.norm_dtype)
            for rows, probs, norms in pending:
                self._spread(rows, probs, norms)
        else:
            self._hnorm2 = self._squared_norms(self.h)
            self._probs = torch.softmax(self.logits.to(self.norm_dtype), dim=1)
        self._stale = False

    def _spread(self, rows: np.ndarray, probs: torch.Tensor, norms: torch.Tensor) -> None:
        """Write the softmax rows and squared norms of `rows` into the (N, ...) buffers."""
        assert self._hnorm2 is not None and self._probs is not None
        self._hnorm2.numpy()[rows] = norms.numpy()
        _row_items(self._probs)[rows] = _row_items(probs)

    def label_buffer(self) -> torch.Tensor:
        """The (N,) label buffer, created on first use (-1: never observed)."""
        if self.labels is None:
            self.labels = torch.full((self.n,), -1, dtype=torch.long)
        return self.labels

    def _allocate(self, classes: int, dim: int) -> None:
        self.logits = torch.zeros(self.n, classes, dtype=torch.float32)
        self.h = torch.zeros(self.n, dim + 1, dtype=torch.float32)
        self.h[:, -1] = 1.0
        self._pending = []
        if self.keep_written:  # computed when first read
            self._hnorm2 = self._probs = None
            self._stale = True
        else:
            self._hnorm2 = torch.ones(self.n, dtype=self.norm_dtype)  # ||[0, 1]||^2
            self._probs = torch.softmax(self.logits.to(self.norm_dtype), dim=1)
        self._scratch = None
        self._sizes, self._rows = [], 0  # staged rows of other sizes are dropped
        self._make_stage(self._cap, classes, dim)

    def _make_stage(self, rows: int, classes: int, dim: int) -> None:
        """(Re)create the staging buffers with room for `rows` rows (staged rows are kept)."""
        old, kept = self._stage, self._rows
        h = torch.empty(rows, dim + 1, dtype=torch.float32)
        h[:, -1] = 1.0
        stage = (
            torch.empty(rows, dtype=torch.long),
            torch.empty(rows, dtype=torch.long),
            torch.empty(rows, classes, dtype=torch.float32),
            h,
        )
        if old is not None and kept:
            for new, prev in zip(stage, old):
                new[:kept] = prev[:kept]
        self._stage = stage
        self._views = {}
        self._room, self._classes, self._dim = rows, classes, dim

    @property
    def features(self) -> torch.Tensor | None:
        """(N, D) view of the stored penultimate features (h~ without its ones column)."""
        return None if self.h is None else self.h[:, :-1]

    def set_buffers(self, logits: torch.Tensor | None, features: torch.Tensor | None) -> None:
        """Replace the logits and features buffers (restoring a state; pending rows are dropped)."""
        self._sizes, self._rows = [], 0
        self._written = None
        self._pending = []
        if logits is None or features is None:
            self.logits = self.h = self._hnorm2 = self._probs = None
            self._stage, self._views, self._room = None, {}, 0
            self._classes = self._dim = -1
            self._stale = False
            return
        self._allocate(logits.shape[1], features.shape[1])
        assert self.logits is not None and self.h is not None
        self.logits.copy_(logits)
        self.h[:, :-1].copy_(features)
        self.refresh_derived()

    def refresh_derived(self) -> None:
        """Recompute every cached ||h~_i||^2 and softmax row (after the buffers were changed in
        place)."""
        self._written = None
        self._pending = []
        if self.h is not None and self.logits is not None:
            h = self.h.to(self.norm_dtype)
            self._hnorm2 = (h * h).sum(1)
            self._probs = torch.softmax(self.logits.to(self.norm_dtype), dim=1)
            self._stale = False

    # -- staging ----------------------------------------------------------------------------------
    def stage(
        self,
        indices: torch.Tensor,
        labels: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor,
    ) -> None:
        """Stage one batch (CPU tensors: indices/labels (B,), logits (B, C), features (B, D)).

        Copies the rows into the next B rows of the staging buffers, one `Tensor.copy_` per
        buffer into row views kept from epoch to epoch (`_row_views`): the batch is still in the
        cache, and the training loop keeps torch's own copy path warm, where NumPy views and
        slice assignments, used nowhere else in the loop, ran cold on every batch (session 24).
        Nothing of the batch is kept, so a later in-place change of these tensors cannot alter
        what is scored. Writes the staged rows when `capacity` rows are staged."""
        if self._stage is None:
            self._allocate(logits.shape[1], features.shape[1])
        if logits.shape[1] != self._classes or features.shape[1] != self._dim:
            raise ValueError(
                f"feature/class sizes changed: got {features.shape[1]} features and "
                f"{logits.shape[1]} classes, expected {self._dim} and {self._classes}"
            )
        self._written = None  # its rows live in the staging buffers about to be overwritten
        r = self._rows
        if not r and not indices_in_range(indices, self.n):
            # the first batch after a write is checked at once; the others when written (`flush`)
            raise index_range_error(indices, self.n)
        b = indices.shape[0]
        if r + b > self._room:  # a batch larger than the room left
            self._make_stage(r + b, self._classes, self._dim)
        views = self._views.get((r, b))
        if views is None:
            views = self._row_views(r, b)
        views[0].copy_(indices)
        views[1].copy_(labels)
        views[2].copy_(logits.detach() if logits.requires_grad else logits)
        views[3].copy_(features.detach() if features.requires_grad else features)
        self._sizes.append(b)
        self._rows = r + b
        if self._rows >= self._cap:
            self.flush()

    def _row_views(self, start: int, rows: int) -> tuple[torch.Tensor, ...]:
        """Views of staging rows [start, start + rows) of the four buffers (features without the
        ones column), created once per (start, rows) and kept until the buffers are replaced: a
        training loop stages batches of one size at the same offsets every epoch."""
        assert self._stage is not None
        idx, labels, logits, h = self._stage
        stop = start + rows
        views = (idx[start:stop], labels[start:stop], logits[start:stop], h[start:stop, :-1])
        self._views[(start, rows)] = views
        return views

    def flush(self) -> None:
        """Write the staged rows into the buffers (a sample staged twice keeps its last row)."""
        m = self._rows
        if not m:
            self._sizes = []
            return
        assert self._stage is not None
        sizes = self._sizes
        self._sizes, self._rows = [], 0
        idx, labels, logits, h = (t[:m] for t in self._stage)
        if not indices_in_range(idx, self.n):  # one reduction for every staged batch
            start = 0
            for k, size in enumerate(sizes):
                part = idx[start : start + size]
                if not indices_in_range(part, self.n):
                    raise index_range_error(
                        part,
                        self.n,
                        f" in the {_ordinal(k + 1)} batch observed since the last write",
                    )
                start += size
        self._write(idx, labels, logits, h)

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
        # row scatters through NumPy views of the buffers (same memory, same bytes): each row of a
        # 2-D buffer is one opaque item (`_row_items`), so a fancy-indexed assignment copies it
        # with one memcpy instead of a strided loop over its elements (h~: ~25% faster, the
        # 10-wide logits and softmax rows ~2.5x, than NumPy's 2-D fancy assignment)
        rows = idx.numpy()
        self.label_buffer().numpy()[rows] = labels.numpy()
        _row_items(self.logits)[rows] = _row_items(logits)
        norms = self._scatter_norms(rows, h)
        probs = torch.softmax(logits.to(self.norm_dtype), dim=1)
        if self.keep_written and rows.shape[0] < self.n:  # deferred: spread or recomputed on read
            self._stale = True
            self._pending.append((rows.copy(), probs, norms))  # `rows` views the staging buffer
            while sum(p[0].shape[0] for p in self._pending[1:]) >= 2 * self.n:
                self._pending.pop(0)  # older rows than 2N: only a recompute could need them
        else:  # eager, or a write of every row (it leaves nothing stale: spread it, no recompute)
            if self._stale:
                self._hnorm2 = torch.empty(self.n, dtype=self.norm_dtype)
                self._probs = torch.empty(self.n, probs.shape[1], dtype=self.norm_dtype)
                self._stale = False
                self._pending = []
            self._spread(rows, probs, norms)
        self.fresh |= mark
        self._writes += 1
        if self.keep_written:
            self._written = (idx, labels, probs, norms, h)

    def written_rows(self) -> tuple[torch.Tensor, ...] | None:
        """The rows of the only write since `reset_fresh`, in staged order: (dataset indices,
        labels, softmax rows, ||h~||^2, h~), each row as written into the buffers (no repeats).
        None unless `keep_written`, or when there was another write since `reset_fresh`, or a
        batch was staged since (these rows live in the staging buffers)."""
        self.flush()
        return self._written if self._writes == 1 else None

    def _scatter_norms(self, rows: np.ndarray, h: torch.Tensor) -> torch.Tensor:
        """Scatter the rows of `h` into the h~ buffer at `rows` and return their squared norms,
        chunk by chunk: each chunk's norms are computed right after its scatter read it, while it
        is still in the cache, instead of a second pass over all the rows (which read them from
        memory again). The same chunks and row sums as `_squared_norms(h)`, so the same bits; the
        same rows written (no row appears twice here)."""
        assert self.h is not None
        out = torch.empty(h.shape[0], dtype=self.norm_dtype)
        if self._scratch is None or self._scratch.dtype != self.norm_dtype:
            self._scratch = torch.empty(_CHUNK, h.shape[1], dtype=self.norm_dtype)
        dst, src = _row_items(self.h), _row_items(h)
        for start in range(0, h.shape[0], _CHUNK):
            stop = start + _CHUNK
            dst[rows[start:stop]] = src[start:stop]
            part = h[start:stop].to(self.norm_dtype)
            sq = self._scratch[: part.shape[0]]
            torch.mul(part, part, out=sq)
            torch.sum(sq, 1, out=out[start:stop])
        return out

    def _squared_norms(self, h: torch.Tensor) -> torch.Tensor:
        """`(h * h).sum(1)` in the norm dtype, chunk by chunk through one scratch buffer (each
        row's sum is computed exactly as in the whole-matrix expression)."""
        out = torch.empty(h.shape[0], dtype=self.norm_dtype)
        if self._scratch is None or self._scratch.dtype != self.norm_dtype:
            self._scratch = torch.empty(_CHUNK, h.shape[1], dtype=self.norm_dtype)
        for start in range(0, h.shape[0], _CHUNK):
            part = h[start : start + _CHUNK].to(self.norm_dtype)
            sq = self._scratch[: part.shape[0]]
            torch.mul(part, part, out=sq)
            torch.sum(sq, 1, out=out[start : start + _CHUNK])
        return out

    def mark_labels(self, indices: torch.Tensor, labels: torch.Tensor) -> None:
        """Record labels and freshness only (scoring without stored features, `grads="full"`)."""
        self.flush()
        self._written = None
        self.label_buffer().index_copy_(0, indices, labels)
        self.fresh.index_fill_(0, indices, True)

    def reset_fresh(self) -> None:
        """Mark every sample as not observed (a new epoch); staged rows are written first."""
        self.flush()
        self.fresh = torch.zeros(self.n, dtype=torch.bool)
        self._written, self._writes = None, 0


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


def _ordinal(k: int) -> str:
    """1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, 21st, ..."""
    suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
    return f"{k}{suffix}"
