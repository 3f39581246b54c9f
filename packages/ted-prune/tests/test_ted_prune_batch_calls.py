"""Session 24's per-batch and per-write reductions keep every value bit for bit.

`observe_weights` (one call per batch) against `observe` then `timed_weights` (two); staging by
`Tensor.copy_` into kept row views against the rows themselves; the epoch's write computing each
chunk's squared norms right after its scatter against a scatter and a second pass. float64 where
scores are compared; every comparison is exact (`torch.equal`)."""

from __future__ import annotations

import pytest
import torch
from maskloop import FeatureHook, IndexedDataset
from ted_prune import TEDPruner
from ted_prune.baselines import InfoBatch
from ted_prune.observations import ObservationStore, _row_items
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

N, C, E = 180, 4, 6


def _run(fused: bool, make) -> tuple[list[torch.Tensor], object]:  # noqa: ANN001
    """Train a small model with pruner `make()`; per batch either `observe_weights` (fused) or
    `observe` then `timed_weights`; returns every batch's weights (or None) and the pruner."""
    torch.manual_seed(0)
    x, y = torch.randn(N, 6, dtype=torch.float64), torch.randint(0, C, (N,))
    ds = TensorDataset(x, y)
    model = nn.Sequential(nn.Linear(6, 9), nn.Tanh(), nn.Linear(9, C)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.2)
    p = make()
    loader = DataLoader(IndexedDataset(ds), sampler=p.sampler, batch_size=32)
    hook = FeatureHook(model)
    seen = []
    for epoch in range(E):
        p.select(epoch)
        for xb, yb, idx in loader:
            logits = model(xb)
            losses = F.cross_entropy(logits, yb, reduction="none")
            if fused:
                w = p.observe_weights(idx, logits, hook.features, yb, losses)
            else:
                p.observe(idx, logits, hook.features, yb, losses)
                w = p.timed_weights(idx, losses) if p.reweights else None
            seen.append(None if w is None else w.clone())
            loss = losses.mean() if w is None else (losses * w).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        p.end_epoch(model, ds, batch_size=64)
    hook.remove()
    return seen, p


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        (u is None and v is None) or (u is not None and v is not None and torch.equal(u, v))
        for u, v in zip(a, b)
    )


@pytest.mark.parametrize("selection", ["sample", "topk"])
def test_ted_observe_weights_equals_observe_then_timed_weights(selection):
    def make():
        return TEDPruner(N, E, keep=0.4, warmup=1, ramp=2, rescore_every=2,
                         selection=selection, precision="float64", seed=3,
                         loss_weights="importance")  # fmt: skip

    w1, p1 = _run(True, make)
    w2, p2 = _run(False, make)
    assert _same(w1, w2)
    assert (w1[-1] is None) == (selection == "topk")
    assert any(w is not None and not torch.equal(w, torch.ones_like(w)) for w in w1) == (
        selection == "sample"
    )  # weights other than 1 were read
    for name in ("scores", "has_score", "last_alignment", "weight"):
        assert torch.equal(getattr(p1, name), getattr(p2, name)), name
    assert [r["trained"] for r in p1.log] == [r["trained"] for r in p2.log]
    assert [r["selected"] for r in p1.log] == [r["selected"] for r in p2.log]


def test_infobatch_observe_weights_equals_observe_then_timed_weights():
    def make():
        return InfoBatch(N, E, keep=0.5, seed=1)

    w1, p1 = _run(True, make)
    w2, p2 = _run(False, make)
    assert _same(w1, w2) and w1[-1] is not None
    assert [r["trained"] for r in p1.log] == [r["trained"] for r in p2.log]


def test_update_is_the_weighted_mean_of_the_weights_observe_weights_returns():
    kw = {"precision": "float64", "loss_weights": "importance"}  # weights to read
    p = TEDPruner(10, 3, keep=0.5, warmup=0, ramp=0, **kw)
    q = TEDPruner(10, 3, keep=0.5, warmup=0, ramp=0, **kw)
    g = torch.Generator().manual_seed(0)
    first = (torch.arange(10), torch.randn(10, 3, generator=g), torch.randn(10, 2, generator=g),
             torch.arange(10) % 3)  # fmt: skip
    for pr in (p, q):  # one observed epoch, so that the second one samples with weights
        pr.select(0)
        pr.observe(*first)
        pr.end_epoch()
    idx, y = torch.tensor([1, 7, 3]), torch.tensor([1, 1, 0])
    logits, feats = torch.randn(3, 3, generator=g), torch.randn(3, 2, generator=g)
    losses = torch.rand(3, dtype=torch.float64)
    loss = p.update(losses, idx, logits, feats, y)
    w = q.observe_weights(idx, logits, feats, y, losses)
    assert w is not None and w.dtype == torch.float64
    assert torch.equal(loss, (losses * w).mean())


def test_observe_weights_errors_name_the_argument():
    p = TEDPruner(10, 3, keep=0.5, warmup=0, ramp=0, loss_weights="importance")
    with pytest.raises(ValueError, match="losses must be given"):
        p.observe_weights(
            torch.tensor([1]), torch.zeros(1, 3), torch.zeros(1, 2), torch.tensor([0])
        )
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 10\)"):
        p.observe_weights(torch.tensor([1, 12]), torch.zeros(2, 3), torch.zeros(2, 2),
                          torch.tensor([0, 1]), torch.ones(2))  # fmt: skip
    with pytest.raises(ValueError, match="targets must be given"):
        p.observe_weights(
            torch.tensor([1]), torch.zeros(1, 3), torch.zeros(1, 2), None, torch.ones(1)
        )


def test_staging_by_copy_into_row_views_records_no_graph_and_keeps_the_rows():
    store = ObservationStore(9, capacity=5)  # several writes, and views reused across them
    w = torch.ones(3, requires_grad=True)
    g = torch.Generator().manual_seed(2)
    expect_logits, expect_feats = torch.zeros(9, 3), torch.zeros(9, 4)
    for idx in ([0, 4], [8, 1], [4, 2], [7, 3], [5, 6]):
        idx = torch.tensor(idx)
        logits = torch.randn(2, 3, generator=g) * w  # records a graph
        feats = torch.randn(2, 4, 3, generator=g)[:, :, 1]  # a strided view
        store.stage(idx, idx % 2, logits, feats)
        expect_logits[idx], expect_feats[idx] = logits.detach(), feats
    store.flush()
    assert store._stage is not None and not any(t.requires_grad for t in store._stage)
    assert store.logits is not None and store.features is not None
    assert torch.equal(store.logits, expect_logits) and torch.equal(store.features, expect_feats)
    assert len(store._views) >= 2  # offsets 0 and 2 were staged at again after each write


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_write_norms_per_scattered_chunk_equal_a_scatter_then_a_second_pass(monkeypatch, dtype):
    import ted_prune.observations as obs

    monkeypatch.setattr(obs, "_CHUNK", 7)  # several chunks and a ragged last one
    g = torch.Generator().manual_seed(0)
    store = ObservationStore(60, norm_dtype=dtype)
    store.stage(torch.arange(1), torch.zeros(1, dtype=torch.long), torch.zeros(1, 3),
                torch.zeros(1, 11))  # fmt: skip
    store.flush()
    assert store.h is not None
    h = torch.randn(45, 12, generator=g) * 10.0
    h[:, -1] = 1.0
    h[0, 0], h[1, 1] = -0.0, float("inf")
    rows = torch.randperm(60, generator=g)[:45].numpy()
    want_h = store.h.clone()
    _row_items(want_h)[rows] = _row_items(h)
    want = store._squared_norms(h)
    got = store._scatter_norms(rows, h)
    assert got.dtype == dtype and torch.equal(got, want)
    assert store.h.view(torch.uint8).equal(want_h.view(torch.uint8))
    hd = h.to(dtype)
    assert torch.equal(got, (hd * hd).sum(1))  # the whole-matrix expression, bit for bit
