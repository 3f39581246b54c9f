"""Session ted-30's exact cuts of the default's suspect tail: `sampling.group_top_quantile`
(`_tail_mask` without a sort) and `_split_tail`'s split ids from one `bincount`, each against
main's code (`scripts/s30_old_path.py`, verbatim) bit for bit: the masks and splits on made-up
inputs with ties, -0.0, infinities and NaN, and the kept sets and final weights of a float64
training run."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from maskloop import IndexedDataset, fit
from ted_prune import PrunerCallback, TEDPruner
from ted_prune.sampling import group_quantiles, group_top_quantile, stable_group_argsort
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture
def old_path(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))
    import s30_old_path

    return s30_old_path.OldPathTED


def _groups(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    gid = torch.randint(0, k, (n,), generator=g)
    gid[:k] = torch.arange(k)  # every group present
    counts = torch.bincount(gid, minlength=k)
    return gid, counts, stable_group_argsort(gid)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("threshold", [0.8, 0.9, 0.5, 2 / 3, 0.0, 1.0, -0.5, 0.999])
def test_group_top_quantile_is_the_sorted_quantiles_set(seed, threshold):
    n, k = 700 + 37 * seed, 1 + seed * 3  # groups of 1 and 2 samples appear for large k
    gid, counts, members = _groups(n, k, seed)
    g = torch.Generator().manual_seed(100 + seed)
    v = torch.randn(n, generator=g, dtype=torch.float64)
    if seed % 2:  # heavy ties, signed zeros and infinities
        v = torch.round(v * 2) / 2
        v[torch.randint(0, n, (40,), generator=g)] = 0.0
        v[torch.randint(0, n, (40,), generator=g)] = -0.0
        v[torch.randint(0, n, (5,), generator=g)] = float("inf")
        v[torch.randint(0, n, (5,), generator=g)] = float("-inf")
    for values in (v, v.float()):
        ref = group_quantiles(values, gid, counts) > threshold
        assert torch.equal(group_top_quantile(values, members, counts, threshold), ref)


def test_group_top_quantile_small_groups_and_nan():
    gid, counts, members = _groups(300, 150, 7)  # groups of 1-5 samples (torch.argsort path)
    v = torch.randn(300, dtype=torch.float64)
    for thr in (0.8, 0.5, 0.0):
        ref = group_quantiles(v, gid, counts) > thr
        assert torch.equal(group_top_quantile(v, members, counts, thr), ref)
    v[[3, 50, 51]] = float("nan")  # NaN: group_quantiles' own order
    gid, counts, members = _groups(300, 3, 7)
    ref = group_quantiles(v, gid, counts) > 0.8
    assert torch.equal(group_top_quantile(v, members, counts, 0.8), ref)


def test_group_top_quantile_can_fail_on_a_wrong_tie_order():
    # the stable sort ranks tied values by index: the top of [1, 1] is the second one
    v = torch.ones(2, dtype=torch.float64)
    counts, members = torch.tensor([2]), torch.tensor([0, 1])
    assert group_top_quantile(v, members, counts, 0.5).tolist() == [False, True]


def test_group_top_quantile_rejects_bad_shapes():
    with pytest.raises(ValueError, match="members"):
        group_top_quantile(torch.zeros(3), torch.arange(2), torch.tensor([3]), 0.5)
    with pytest.raises(ValueError, match="counts"):
        group_top_quantile(torch.zeros(3), torch.arange(3), torch.tensor([2]), 0.5)


@pytest.mark.parametrize("tail_rate", [1.0, 0.5])
@pytest.mark.parametrize("tail", [0.2, 0.1, "misclassified"])
def test_split_tail_equals_main(stored_tail, old_path, tail, tail_rate):
    made_up, pruner = stored_tail
    logits, labels, scores = made_up(n=900, classes=5, seed=3)
    logits[::7] = logits[::14].repeat_interleave(2, 0)[: logits[::7].shape[0]]  # tied losses
    opts = {"tail": tail, "tail_rate": tail_rate}
    new, old = pruner(logits, labels, scores, **opts), pruner(logits, labels, scores, **opts)
    old.__class__ = old_path
    _, gid, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    members = stable_group_argsort(gid)
    quota = (counts * 0.4).long()
    a = new._split_tail(gid, counts, quota, members)
    b = old._split_tail(gid, counts, quota)
    assert len(a) == len(b) == 5
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and torch.equal(x, y)
    assert torch.equal(new._tail_mask(gid, counts), old._tail_mask(gid, counts))
    for e in (5, 6):
        assert torch.equal(new._select(e).indices, old._select(e).indices)


def _fit(cls: type, **options) -> tuple[list[torch.Tensor], list[torch.Tensor], TEDPruner]:
    g = torch.Generator().manual_seed(11)
    x = torch.randn(400, 6, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long() + (x[:, 2] > 1).long()
    y[::9] = (y[::9] + 1) % 4  # some wrong labels: a suspect tail to find
    ds = TensorDataset(x, y)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 4)).double()
    pruner = cls(ds, 12, budget=0.6, seed=4, precision="float64", **options)
    loader = DataLoader(IndexedDataset(ds), sampler=pruner.sampler, batch_size=32)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    kept: list[torch.Tensor] = []

    class Rec(PrunerCallback):
        def on_epoch_start(self, state):
            super().on_epoch_start(state)
            kept.append(pruner.sampler.selection.indices.clone())

    fit(model, loader, epochs=12, optimizer=opt, progress=False,
        loss_fn=lambda o, t: F.cross_entropy(o, t, reduction="none"),
        callbacks=[Rec(pruner, ds, batch_size=64)])  # fmt: skip
    return kept, [p.detach().clone() for p in model.parameters()], pruner


@pytest.mark.parametrize("options", [{}, {"tail_rate": 0.5}, {"noise_schedule": "off"}])
def test_training_run_is_bit_identical_to_main(old_path, options):
    kept_new, w_new, p_new = _fit(TEDPruner, **options)
    kept_old, w_old, p_old = _fit(old_path, **options)
    assert len(kept_new) == 12
    assert any(k.numel() < 400 for k in kept_new)  # pruned epochs, so the tail path ran
    for a, b in zip(kept_new, kept_old):
        assert torch.equal(a, b)
    for a, b in zip(w_new, w_old):
        assert torch.equal(a, b)
    assert torch.equal(p_new.scores, p_old.scores)
