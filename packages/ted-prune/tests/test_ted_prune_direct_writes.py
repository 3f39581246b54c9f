"""Writing each batch straight into the per-sample buffers (session 19) stores the same bytes as
the staged writes it replaced.

`_StagedStore` is `ObservationStore` before the change, written out: rows copied into a staging
ring, then one write per epoch (or when the ring is full) that keeps the last row of each repeated
sample, scatters the rows, and computes the norms in chunks and the softmax rows of all written
rows at once. Both stores get the same batches (repeats within and across batches, ragged sizes,
-0.0, inf and NaN, several epochs, a re-scoring-sized batch) and must hold the same bytes in every
buffer, float32 and float64.
"""

import numpy as np
import pytest
import torch
from ted_prune.observations import ObservationStore, _last_of_each, _row_items


class _StagedStore:
    """The staged observation store of sessions 11-18 (its values, not its speed)."""

    def __init__(self, n, norm_dtype, capacity, chunk=5):
        self.n, self.norm_dtype, self.cap, self.chunk = n, norm_dtype, capacity, chunk
        self.labels = self.logits = self.h = self.hnorm2 = self.probs = None
        self.fresh = torch.zeros(n, dtype=torch.bool)
        self.staged = []

    def write(self, idx, labels, logits, feats):
        if self.logits is None:
            self.labels = torch.full((self.n,), -1, dtype=torch.long)
            self.logits = torch.zeros(self.n, logits.shape[1])
            self.h = torch.zeros(self.n, feats.shape[1] + 1)
            self.h[:, -1] = 1.0
            self.hnorm2 = torch.ones(self.n, dtype=self.norm_dtype)
            self.probs = torch.softmax(self.logits.to(self.norm_dtype), dim=1)
        h = torch.ones(idx.numel(), feats.shape[1] + 1)
        h[:, :-1] = feats
        self.staged.append((idx.clone(), labels.clone(), logits.clone(), h))
        if sum(s[0].numel() for s in self.staged) >= self.cap:
            self.flush()

    def flush(self):
        if not self.staged:
            return
        idx, labels, logits, h = (torch.cat(t) for t in zip(*self.staged))
        self.staged = []
        m = idx.numel()
        mark = torch.zeros(self.n, dtype=torch.bool).index_fill_(0, idx, True)
        if int(mark.sum()) != m:
            pos = torch.arange(m)
            last = torch.full((self.n,), -1, dtype=torch.long).scatter_reduce_(0, idx, pos, "amax")
            keep = torch.nonzero(last[idx] == pos).flatten()
            idx, labels, logits, h = idx[keep], labels[keep], logits[keep], h[keep]
        rows = idx.numpy()
        self.labels.numpy()[rows] = labels.numpy()
        _row_items(self.logits)[rows] = _row_items(logits)
        _row_items(self.h)[rows] = _row_items(h)
        norms = torch.empty(h.shape[0], dtype=self.norm_dtype)
        for s in range(0, h.shape[0], self.chunk):
            part = h[s : s + self.chunk].to(self.norm_dtype)
            norms[s : s + self.chunk] = torch.sum(torch.mul(part, part), 1)
        self.hnorm2.numpy()[rows] = norms.numpy()
        _row_items(self.probs)[rows] = _row_items(torch.softmax(logits.to(self.norm_dtype), dim=1))
        self.fresh |= mark

    def reset_fresh(self):
        self.flush()
        self.fresh = torch.zeros(self.n, dtype=torch.bool)


def _same_bytes(a, b):
    return (
        a.dtype == b.dtype and a.shape == b.shape and a.view(torch.uint8).equal(b.view(torch.uint8))
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_direct_writes_hold_the_bytes_of_the_staged_writes(dtype):
    n, c, d = 40, 10, 17
    g = torch.Generator().manual_seed(3)
    new, old = ObservationStore(n, norm_dtype=dtype), _StagedStore(n, dtype, capacity=23)
    for epoch in range(4):
        sizes = [8, 8, 5, 1, 13] if epoch % 2 else [16, 9, 16]  # ragged, capacity crossed
        for b in sizes:
            idx = torch.randint(0, n, (b,), generator=g)  # repeats within and across batches
            logits = torch.randn(b, c, generator=g) * 10.0 ** (epoch - 2)
            feats = torch.randn(b, d, generator=g) * 10.0 ** (2 - epoch)
            if b > 3:
                feats[0, 0], feats[1, 1], logits[2, 2] = -0.0, float("inf"), -0.0
            if epoch == 3 and b > 3:
                feats[3, 3] = float("nan")
            labels = torch.randint(0, c, (b,), generator=g)
            new.write(idx, labels, logits, feats)
            old.write(idx, labels, logits, feats)
        if epoch == 1:  # a re-scoring-sized batch of unique samples
            idx = torch.randperm(n, generator=g)[:30]
            logits, feats = torch.randn(30, c, generator=g), torch.randn(30, d, generator=g)
            new.write(idx, idx % c, logits, feats)
            old.write(idx, idx % c, logits, feats)
        old.flush()
        for name in ("labels", "logits", "h", "hnorm2", "probs", "fresh"):
            assert _same_bytes(getattr(new, name), getattr(old, name)), (epoch, name)
        new.reset_fresh()
        old.reset_fresh()


def test_repeats_within_a_batch_keep_the_last_row_whatever_numpy_does():
    store = ObservationStore(6)
    idx = torch.tensor([4, 1, 4, 4, 0, 1])
    feats = torch.arange(6, dtype=torch.float32)[:, None].repeat(1, 3)
    store.write(idx, idx % 2, feats[:, :2], feats)
    assert store.features is not None
    assert store.features[:, 0].tolist() == [4.0, 5.0, 0.0, 0.0, 3.0, 0.0]
    rows = np.array([7, 3, 7, 2, 3, 7])
    assert _last_of_each(rows).tolist() == [3, 4, 5]


def test_a_first_write_in_inference_mode_leaves_normal_buffers():
    # a re-scoring pass (inference mode) may allocate the buffers or grow the scratch; training
    # batches and a restored state write into them afterwards
    store = ObservationStore(6)
    with torch.inference_mode():
        store.write(
            torch.tensor([0, 1, 2]), torch.tensor([0, 1, 0]), torch.ones(3, 2), torch.ones(3, 4)
        )
    store.write(torch.tensor([3]), torch.tensor([1]), torch.zeros(1, 2), torch.zeros(1, 4))
    store.write(torch.tensor([4, 5]), torch.tensor([1, 1]), torch.zeros(2, 2), torch.zeros(2, 4))
    assert store.labels is not None and store.labels.tolist() == [0, 1, 0, 1, 1, 1]
    assert store.logits is not None and not store.logits.is_inference()
    store.logits[0] += 1.0  # in place, outside inference mode
    store.set_buffers(store.logits, store.features)
