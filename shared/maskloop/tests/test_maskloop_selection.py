"""Selection, SelectionSampler and IndexedDataset."""

import math

import pytest
import torch
from maskloop import Callback, IndexedDataset, Selection, SelectionSampler, fit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


@pytest.mark.parametrize("keep", [0.01, 0.3, 0.5, 0.7, 1.0])
def test_from_scores_keeps_scheduled_size_and_the_top(keep: float) -> None:
    scores = torch.randn(101, generator=torch.Generator().manual_seed(0))
    sel = Selection.from_scores(scores, keep)
    assert len(sel) == max(1, math.floor(keep * 101 + 0.5)) == Selection.kept_count(101, keep)
    kept = sel.mask()
    assert scores[kept].min() >= scores[~kept].max() if (~kept).any() else True
    low = Selection.from_scores(scores, keep, largest=False)
    if (~low.mask()).any():
        assert scores[low.mask()].max() <= scores[~low.mask()].min()


def test_ties_keep_lower_index() -> None:
    sel = Selection.from_scores(torch.zeros(10), 0.3)
    assert sel.indices.tolist() == [0, 1, 2]


def test_random_is_seeded_and_sized() -> None:
    a = Selection.random(50, 0.4, generator=torch.Generator().manual_seed(1))
    b = Selection.random(50, 0.4, generator=torch.Generator().manual_seed(1))
    assert a == b and len(a) == 20 and a.keep == pytest.approx(0.4)


def test_subset_and_sampler_cover_exactly_the_selection() -> None:
    ds = TensorDataset(torch.arange(20).float(), torch.arange(20))
    sel = Selection([1, 3, 5, 19], 20)
    assert [int(ds_y) for _, ds_y in sel.subset(ds)] == [1, 3, 5, 19]
    seen = sorted(
        DataLoader(ds, batch_size=2, sampler=sel.sampler(seed=3)).dataset[i][1].item()
        for i in sel.sampler(seed=3)
    )
    assert seen == [1, 3, 5, 19]


def test_sampler_shards_across_ranks() -> None:
    sel = Selection(torch.arange(0, 30, 3), 30)  # 10 kept
    shards = [list(sel.sampler(num_replicas=3, rank=r, seed=7)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # ceil(10 / 3), padded by wrap-around
    union = set().union(*map(set, shards))
    assert union == set(sel.indices.tolist())
    s0 = sel.sampler(num_replicas=3, rank=0, seed=7)
    s0.set_epoch(1)
    assert list(s0) != shards[0] or len(sel) == 1  # a new permutation each epoch


def test_indexed_dataset_yields_indices() -> None:
    ds = IndexedDataset(TensorDataset(torch.randn(5, 2), torch.arange(5)))
    x, y, i = ds[3]
    assert i == 3 and int(y) == 3
    batch = next(iter(DataLoader(ds, batch_size=5)))
    assert batch[2].tolist() == [0, 1, 2, 3, 4]


def test_state_dict_roundtrip() -> None:
    sel = Selection([2, 4], 9)
    assert Selection.from_state_dict(sel.state_dict()) == sel


@pytest.mark.parametrize("keep", [0.0, -0.5, 1.01])
def test_bad_keep(keep: float) -> None:
    with pytest.raises(ValueError, match=r"keep must be in \(0, 1\]"):
        Selection.from_scores(torch.rand(5), keep)
    with pytest.raises(ValueError, match=r"keep must be in \(0, 1\]"):
        Selection.random(5, keep)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="at least one"):
        Selection([], 4)
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        Selection([0, 4], 4)
    with pytest.raises(ValueError, match="duplicates"):
        Selection([1, 1], 4)
    with pytest.raises(ValueError, match="n must be >= 1"):
        Selection.full(0)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        Selection.from_scores(torch.zeros(0), 0.5)
    with pytest.raises(ValueError, match="dataset has 3"):
        Selection([0], 4).subset(TensorDataset(torch.zeros(3)))
    with pytest.raises(ValueError, match="rank must be"):
        Selection([0], 4).sampler(num_replicas=2, rank=2)


class _Narrow(Callback):
    """A data-pruning method in miniature: each epoch keeps a different half through the sampler."""

    def __init__(self, sampler: SelectionSampler) -> None:
        self.sampler = sampler
        self.chosen: list[set[int]] = []
        self.seen: list[set[int]] = []

    def on_epoch_start(self, state):
        sel = Selection.random(40, 0.5, torch.Generator().manual_seed(state.epoch))
        self.sampler.set_selection(sel)
        self.chosen.append(set(sel.indices.tolist()))
        self.seen.append(set())

    def on_batch_start(self, state):
        self.seen[-1] |= set(state.indices.tolist())


def _indexed(n: int = 40) -> IndexedDataset:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 2, generator=g)
    return IndexedDataset(TensorDataset(x, (x[:, 0] > 0).long()))


def test_selection_sampler_reaches_fit_without_replacing_the_data() -> None:
    ds = _indexed()
    sampler = SelectionSampler.full(len(ds), seed=3)
    loader = DataLoader(ds, batch_size=8, sampler=sampler)
    cb = _Narrow(sampler)
    model = nn.Linear(2, 2)
    hist = fit(model, loader, epochs=3, optimizer=torch.optim.SGD(model.parameters(), 0.1),
               loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"),
               callbacks=[cb], progress=False)  # fmt: skip
    assert hist["train_samples"] == [20.0, 20.0, 20.0]
    assert cb.seen == cb.chosen and cb.chosen[0] != cb.chosen[1]


def test_selection_sampler_in_a_plain_loop_and_bad_selections() -> None:
    ds = _indexed()
    sampler = SelectionSampler.full(len(ds), shuffle=False)
    loader = DataLoader(ds, batch_size=16, sampler=sampler)
    assert sum(len(b[2]) for b in loader) == 40
    sel = Selection(torch.tensor([3, 5, 7]), 40)
    sampler.set_selection(sel)
    assert len(loader) == 1 and [i for b in loader for i in b[2].tolist()] == [3, 5, 7]
    # two ranks share the selection: disjoint shards that cover it (padded by wrap-around)
    shards = [list(SelectionSampler(sel, shuffle=False, num_replicas=2, rank=r)) for r in (0, 1)]
    assert shards == [[3, 7], [5, 3]]
    state = sampler.state_dict()
    other = SelectionSampler.full(40)
    other.load_state_dict(state)
    assert other.selection == sel
    with pytest.raises(ValueError, match="over 10 samples but this sampler's dataset has 40"):
        sampler.set_selection(Selection.full(10))
    with pytest.raises(TypeError, match="must be a Selection"):
        sampler.set_selection([1, 2])


@pytest.mark.parametrize(
    "indices",
    [[0, 4, 7], [7, 0, 4], torch.tensor([0, 4, 7]), torch.tensor([0, 4, 7], dtype=torch.int32),
     torch.tensor([0, 2, 4, 6, 7, 9])[::2], [5]],
)  # fmt: skip
def test_indices_are_sorted_and_never_alias_the_input(indices) -> None:
    sel = Selection(indices, 10)
    assert sel.indices.tolist() == sorted(torch.as_tensor(indices).tolist())
    assert sel.indices.dtype == torch.long
    if isinstance(indices, torch.Tensor):  # ascending input takes the no-sort path: still a copy
        before = sel.indices.clone()
        indices.fill_(3)
        assert torch.equal(sel.indices, before)


@pytest.mark.parametrize(
    ("indices", "match"),
    [([0, 10], r"\[0, 10\); got min 0, max 10"), ([-1, 3], "min -1, max 3"),
     ([3, 3], "1 duplicates"), ([4, 1, 4], "1 duplicates"), ([9, 12, 1], "min 1, max 12")],
)  # fmt: skip
def test_bad_indices_are_reported_on_both_paths(indices, match) -> None:
    with pytest.raises(ValueError, match=match):
        Selection(indices, 10)
