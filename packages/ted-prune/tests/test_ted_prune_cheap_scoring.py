"""Cheap scoring (issue 15, deliver 3) changes no score and no selection.

The reference here is the scoring path before it, written out: every training batch written into
(N, ...) buffers at once, h~ = [h, 1] built and ||h~||^2 recomputed from the buffers each epoch,
and `selection="sample"` run class by class with `sample_keep`. The pruner (staged observations,
cached norms, all classes sampled at once) must give the same scores in float64 (to 1e-12) and the
same selections and loss weights, epoch after epoch, re-scoring epochs included.
"""

import pytest
import torch
from maskloop import FeatureHook, IndexedDataset, Selection
from ted_prune import TEDPruner
from ted_prune.observations import ObservationStore, _row_items
from ted_prune.sampling import group_quantiles, sample_groups
from ted_prune.ted import last_layer_factors, quantiles, sample_keep, ted_scores
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

N, C, E = 240, 4, 7


def _old_sample(labels, s, k, n, seed, epoch, floor, max_weight):
    """TEDPruner._sample before the change: largest-remainder class quotas, then the class loop."""
    total = Selection.kept_count(n, k)
    classes, counts = torch.unique(labels, return_counts=True)
    raw = counts.double() * total / n
    quota = raw.floor().long().clamp_min(1).minimum(counts)
    rest = total - int(quota.sum())
    for j in torch.argsort(raw - raw.floor(), descending=True).tolist():
        if rest == 0:
            break
        if quota[j] < counts[j]:
            quota[j] += 1
            rest -= 1
    return _old_sample_quota(labels, s, k, n, seed, epoch, floor, max_weight, quota)


class _OldBuffers:
    """Per-batch indexed writes and the old end-of-epoch scoring, float64."""

    def __init__(self):
        self.labels = torch.full((N,), -1, dtype=torch.long)
        self.logits = torch.zeros(N, C, dtype=torch.float32)
        self.feats = None
        self.fresh = torch.zeros(N, dtype=torch.bool)
        self.scores = torch.zeros(N, dtype=torch.float64)
        self.has = torch.zeros(N, dtype=torch.bool)

    def write(self, idx, y, logits, feats):
        if self.feats is None:
            self.feats = torch.zeros(N, feats.shape[1], dtype=torch.float32)
        self.labels.index_copy_(0, idx, y)
        self.fresh.index_fill_(0, idx, True)
        self.logits.index_copy_(0, idx, logits.float())
        self.feats.index_copy_(0, idx, feats.float())

    def end_epoch(self, sel_mask, beta):
        e, h = last_layer_factors(self.feats, self.logits, self.labels.clamp_min(0))
        e[self.labels < 0] = 0.0
        have = self.has | self.fresh
        t = have & sel_mask
        a, _ = ted_scores(e, h, t if t.any() else have)  # residual reading, (h * h).sum(1)
        upd = self.fresh
        a = a.clone()
        a[upd] = quantiles(a[upd])
        old = self.has & upd
        self.scores = torch.where(
            old, beta * self.scores + (1 - beta) * a, torch.where(upd, a, self.scores)
        )
        self.has |= upd
        self.fresh = torch.zeros(N, dtype=torch.bool)


@pytest.mark.parametrize("batch", [16, 50])
def test_scores_and_selections_equal_the_per_batch_path(batch):
    torch.manual_seed(0)
    x = torch.randn(N, 6)
    y = torch.randint(0, C, (N,))
    ds = TensorDataset(x, y)
    model = nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, C))
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    p = TEDPruner(N, E, keep=0.4, warmup=1, ramp=2, rescore_every=2, precision="float64", seed=3,
                  loss_weights="importance", tail="none", score_every=1)  # fmt: skip
    assert p.selection == "sample" and p.rank == "residual" and p.target == "retained"
    ref = _OldBuffers()
    loader = DataLoader(IndexedDataset(ds), sampler=p.sampler, batch_size=batch)
    hook = FeatureHook(model)
    rescored = 0
    for epoch in range(E):
        sel = p.select(epoch)
        for xb, yb, idx in loader:
            logits = model(xb)
            feats = hook.features
            ref.write(idx, yb, logits.detach(), feats.detach())
            loss = p.update(F.cross_entropy(logits, yb, reduction="none"), idx, logits, feats, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        if p._needs_rescore():  # the old path's forward-only pass over the unobserved samples
            idx = torch.nonzero(~ref.fresh).flatten()
            with torch.no_grad():
                ref.write(idx, y[idx], model(x[idx]), model[1](model[0](x[idx])))
        rec = p.end_epoch(model, ds, batch_size=64)
        rescored += rec["scored"]
        ref.end_epoch(sel.mask(), p.beta)
        torch.testing.assert_close(p.scores, ref.scores, rtol=1e-12, atol=1e-12)
        assert torch.equal(p.has_score, ref.has)
        if epoch + 1 < E:
            nxt = p.select(epoch + 1)
            k = p.keep_ratio(epoch + 1)
            if k < 1.0:
                s = torch.where(ref.has, ref.scores, torch.full_like(ref.scores, float("inf")))
                want, weight = _old_sample(ref.labels, s, k, N, 3, epoch + 1, p.floor, p.max_weight)
                assert torch.equal(nxt.indices, want.indices)
                torch.testing.assert_close(p.weight, weight, rtol=1e-12, atol=0)
    hook.remove()
    assert rescored > 0  # the re-scoring epochs were exercised


@pytest.mark.parametrize("floor", [0.0, 0.05, 0.5])
def test_sample_groups_equals_the_class_loop(floor):
    g0 = torch.Generator().manual_seed(1)
    n = 500
    labels = torch.randint(-1, 6, (n,), generator=g0)  # -1: never observed, a group of its own
    labels[labels == 4] = 5  # class 4 absent
    s = torch.randn(n, generator=g0, dtype=torch.float64)
    s[:40] = s[40:80]  # ties are broken by index, as quantiles() does
    s[100:110] = float("inf")  # never-scored samples rank first
    classes, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    for k in (0.05, 0.3, 0.8):
        quota = (counts.double() * k).floor().long().clamp_min(1)
        quota[2] = counts[2]  # one class kept whole: no random draw for it
        want, weight = _old_sample_quota(labels, s, k, n, 7, 2, floor, 4.0, quota)
        g = torch.Generator().manual_seed(7 * 100_003 + 2)
        kept, p = sample_groups(s, gid, counts, quota, floor, g)
        assert torch.equal(torch.sort(kept).values, want.indices)
        got_w = torch.ones(n, dtype=torch.float64)
        got_w[kept] = (k / p[kept]).clamp(max=4.0)
        torch.testing.assert_close(got_w, weight, rtol=1e-12, atol=0)


def _old_sample_quota(labels, s, k, n, seed, epoch, floor, max_weight, quota):
    """The class loop with given quotas."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    kept, probs = [], torch.ones(n, dtype=torch.float64)
    for c, qc in zip(torch.unique(labels).tolist(), quota.tolist()):
        idx = torch.nonzero(labels == c).flatten()
        sel, p = sample_keep(quantiles(s[idx]).clamp_min(1e-6), int(qc), floor, g)
        kept.append(idx[sel])
        probs[idx] = p
    kept_idx = torch.cat(kept)
    weight = torch.ones(n, dtype=torch.float64)
    weight[kept_idx] = (k / probs[kept_idx]).clamp(max=max_weight)
    return Selection(kept_idx, n), weight


def test_group_quantiles_are_per_group_quantiles():
    g = torch.Generator().manual_seed(2)
    s = torch.randint(0, 20, (300,), generator=g).double()  # many ties
    labels = torch.randint(0, 5, (300,), generator=g)
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    got = group_quantiles(s, gid, counts)
    for c in range(5):
        idx = torch.nonzero(labels == c).flatten()
        assert torch.equal(got[idx], quantiles(s[idx]))


def test_observation_store_keeps_the_last_row_and_flushes_on_read():
    store = ObservationStore(10, capacity=4)  # small: forces writes while staging
    rows = torch.arange(30, dtype=torch.float32).reshape(10, 3)

    def stage(idx, shift):
        idx = torch.tensor(idx)
        store.stage(idx, idx % 3, rows[idx, :2] + shift, rows[idx] + shift)

    stage([0, 1, 2], 0.0)
    stage([3, 1], 100.0)  # reaches the capacity: both batches are written, in order
    stage([5, 5], 200.0)  # a repeated sample within a batch: its last row wins
    stage([6, 7, 8, 9, 0, 1], 300.0)  # larger than the staging capacity
    store.flush()
    assert store.labels is not None and store.features is not None and store.h is not None
    assert store.labels.tolist() == [0, 1, 2, 0, -1, 2, 0, 1, 2, 0]
    for i, shift in [(0, 300.0), (1, 300.0), (2, 0.0), (3, 100.0), (5, 200.0), (9, 300.0)]:
        assert torch.equal(store.features[i], rows[i] + shift)
    assert torch.equal(store.features[4], torch.zeros(3))
    assert torch.equal(store.h[:, -1], torch.ones(10))
    assert torch.equal(store.hnorm2, (store.h * store.h).sum(1))  # cached per written row
    assert torch.equal(store.probs, torch.softmax(store.logits, dim=1))
    assert store.fresh.tolist() == [True] * 4 + [False] + [True] * 5
    with pytest.raises(ValueError, match="feature/class sizes changed"):
        store.stage(torch.tensor([1]), torch.tensor([1]), torch.zeros(1, 2), torch.zeros(1, 4))


def test_pruner_buffers_are_readable_mid_epoch_and_in_its_state():
    p = TEDPruner(6, 3, keep=0.5, warmup=1, ramp=1, precision="float64")
    idx = torch.tensor([4, 1])
    p.observe(idx, torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.ones(2, 3), torch.tensor([1, 0]))
    assert p.labels.tolist() == [-1, 0, -1, -1, 1, -1]
    assert p.fresh.tolist() == [False, True, False, False, True, False]
    state = p.state_dict()
    assert torch.equal(state["extra"]["logits"][4], torch.tensor([1.0, 2.0]))
    q = TEDPruner(6, 3, keep=0.5, warmup=1, ramp=1, precision="float64")
    q.load_state_dict(state)
    p.end_epoch()
    q.end_epoch()
    assert torch.equal(p.scores, q.scores)


def test_staged_rows_are_copied_so_a_later_in_place_change_is_not_scored():
    store = ObservationStore(5)
    idx, labels = torch.tensor([0, 1]), torch.tensor([0, 1])
    logits, feats = torch.zeros(2, 3), torch.ones(2, 4)
    store.stage(idx, labels, logits, feats)
    for t in (idx, labels, logits, feats):  # e.g. reused output buffers
        t.add_(1)
    store.flush()
    assert store.labels is not None and store.logits is not None and store.features is not None
    assert store.labels.tolist() == [0, 1, -1, -1, -1]
    assert store.fresh.tolist() == [True, True, False, False, False]
    assert torch.equal(store.logits[:2], torch.zeros(2, 3))
    assert torch.equal(store.features[:2], torch.ones(2, 4))
    assert torch.equal(store.probs[:2], torch.full((2, 3), 1 / 3))


def test_views_and_tensors_that_record_gradients_are_staged_by_value():
    store = ObservationStore(5)
    hidden = torch.randn(2, 7, 4)
    want = hidden[:, 0].clone()
    w = torch.ones(3, requires_grad=True)
    logits = torch.randn(2, 3) * w  # part of a graph
    store.stage(torch.tensor([3, 1]), torch.tensor([0, 1]), logits, hidden[:, 0])  # strided view
    hidden.zero_()
    store.flush()
    assert store.features is not None and store.logits is not None
    assert torch.equal(store.features[[3, 1]], want)
    assert torch.equal(store.logits[[3, 1]], logits.detach())


def test_staging_grows_for_a_batch_larger_than_the_room_left_and_keeps_order():
    store = ObservationStore(8, capacity=3)
    g = torch.Generator().manual_seed(1)
    writes = []
    for idx in ([0, 1], [1, 2, 3, 4, 5], [5], [6, 7, 0]):  # the 2nd and 4th overflow the room
        idx = torch.tensor(idx)
        feats = torch.randn(idx.numel(), 2, generator=g)
        store.stage(idx, idx % 2, torch.randn(idx.numel(), 3, generator=g), feats)
        writes.append((idx, feats))
    store.flush()
    expect = torch.zeros(8, 2)
    for idx, feats in writes:  # batch by batch: a later observation wins
        expect[idx] = feats
    assert store.features is not None and torch.equal(store.features, expect)
    assert torch.equal(store.h[:, -1], torch.ones(8))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_norms_in_chunks_and_the_reused_staging_buffer_equal_the_whole_matrix(monkeypatch, dtype):
    import ted_prune.observations as obs

    monkeypatch.setattr(obs, "_CHUNK", 7)  # several chunks and a ragged last one
    store = ObservationStore(50, norm_dtype=dtype)
    g = torch.Generator().manual_seed(0)
    for epoch in range(3):  # the staging buffer is reused from write to write
        idx = torch.randperm(50, generator=g)[: 20 + 10 * epoch]
        for part in idx.split(9):
            feats = torch.randn(part.numel(), 5, generator=g) * 10.0 ** (epoch - 1)
            store.stage(part, part % 3, torch.randn(part.numel(), 4, generator=g), feats)
        store.flush()
        assert store.h is not None and store.logits is not None
        h = store.h.to(dtype)
        assert torch.equal(store.hnorm2, (h * h).sum(1))  # bit for bit
        assert torch.equal(store.probs, torch.softmax(store.logits.to(dtype), dim=1))
        assert torch.equal(store.h[:, -1], torch.ones(50))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_row_item_scatter_writes_the_same_bytes_as_a_two_dim_scatter(dtype):
    # `_write` scatters whole rows as opaque items: same memory as the buffer, same bytes as
    # NumPy's 2-D fancy assignment (rows of 161 and of 10 values, -0.0, inf and NaN included)
    torch.manual_seed(0)
    for cols in (161, 10):
        rows = torch.randn(40, cols, dtype=dtype)
        rows[0, 0], rows[1, 1], rows[2, 2] = -0.0, float("inf"), float("nan")
        idx = torch.randperm(64)[:40].numpy()
        want = torch.zeros(64, cols, dtype=dtype)
        want.numpy()[idx] = rows.numpy()
        got = torch.zeros(64, cols, dtype=dtype)
        _row_items(got)[idx] = _row_items(rows)
        assert got.view(torch.uint8).equal(want.view(torch.uint8))
    with pytest.raises(AssertionError):  # a strided view would be written through a copy
        _row_items(torch.zeros(8, 12)[:, :10])
