"""One selection path: `pruner.sampler` (a maskloop.SelectionSampler) feeds fit and a plain loop alike."""

import pytest
import torch
from maskloop import Callback, FeatureHook, IndexedDataset, SelectionSampler, fit
from ted_prune import InfoBatch, PrunerCallback, RandomDynamic, TEDPruner
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

E = 5


def _data(n=80):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(n, 5, generator=g, dtype=torch.float64)
    y = (x[:, 0] - x[:, 1] > 0).long() + (x[:, 2] > 0.8).long()
    return TensorDataset(x, y)


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 12), nn.ReLU(), nn.Linear(12, 3)).double()


def _loss(o, t):
    return F.cross_entropy(o, t, reduction="none")


class CountingLoader(DataLoader):
    """A DataLoader that counts the batches it yields."""

    batches = 0

    def __iter__(self):
        for batch in super().__iter__():
            CountingLoader.batches += 1
            yield batch


class Seen(Callback):
    order = 50

    def __init__(self):
        self.seen, self.selected = {}, {}

    def on_epoch_start(self, state):
        self.selected[state.epoch] = state.train_data.sampler.selection.indices.tolist()

    def on_loss(self, state):
        self.seen.setdefault(state.epoch, []).extend(state.indices.tolist())


def _setup(make, loader_cls=DataLoader):
    """(dataset, pruner, model, optimizer, loader over the pruner's sampler) of one run."""
    ds = _data()
    pruner = make(ds)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    return ds, pruner, model, opt, loader_cls(IndexedDataset(ds), sampler=pruner.sampler,
                                              batch_size=16)  # fmt: skip


def _fit_run(make):
    _, pruner, model, opt, loader = _setup(make, CountingLoader)
    CountingLoader.batches = 0
    rec = Seen()
    fit(model, loader, epochs=E, optimizer=opt, loss_fn=_loss, progress=False,
        callbacks=[PrunerCallback(pruner), rec])  # fmt: skip
    _fit_run.selected = rec.selected
    return pruner, model, rec.seen, CountingLoader.batches


def _plain_run(make):
    ds, pruner, model, opt, loader = _setup(make)
    seen = {}
    with FeatureHook(model) as hook:
        for epoch in range(E):
            model.train()
            for x, y, idx in loader:
                seen.setdefault(epoch, []).extend(idx.tolist())
                opt.zero_grad(set_to_none=True)
                logits = model(x)
                pruner.update(_loss(logits, y), idx, logits, hook.features, y).backward()
                opt.step()
            pruner.end_epoch(model, ds)
    return pruner, model, seen


MAKERS = {
    "ted_sample": lambda ds: TEDPruner(ds, E, keep=0.5, warmup=1, ramp=1, rescore_every=1),
    "ted_topk": lambda ds: TEDPruner(ds, E, keep=0.5, warmup=1, ramp=1, selection="topk"),
    "infobatch": lambda ds: InfoBatch(ds, E, keep=0.6),
}


@pytest.mark.parametrize("name", list(MAKERS))
def test_fit_and_plain_loop_train_the_same_selection_to_the_same_weights(name):
    p1, m1, seen_fit, batches = _fit_run(MAKERS[name])
    p2, m2, seen_plain = _plain_run(MAKERS[name])
    # fit trained on the batches of the loader it was given, each epoch's selection once
    assert batches == sum(-(-int(r["selected"]) // 16) for r in p1.log)
    assert seen_fit == seen_plain  # same samples, same order, every epoch
    for e in range(E):
        assert len(seen_fit[e]) == int(p1.log[e]["selected"])
    assert torch.equal(p1.scores if hasattr(p1, "scores") else p1.loss,
                       p2.scores if hasattr(p2, "scores") else p2.loss)  # fmt: skip
    for a, b in zip(m1.parameters(), m2.parameters()):
        assert torch.equal(a, b)  # loss weights (sample/InfoBatch) reached the loss in both
    assert min(r["selected"] for r in p1.log) < 80  # the runs did prune


def test_fit_iterates_the_given_loader_and_its_selection():
    p, _, seen, batches = _fit_run(MAKERS["ted_topk"])
    assert batches == sum(-(-int(r["selected"]) // 16) for r in p.log)
    for e in range(E):
        assert sorted(seen[e]) == _fit_run.selected[e]
    assert len(_fit_run.selected[E - 1]) == int(p.log[-1]["selected"]) < 80


def test_sampler_is_one_object_following_the_epochs():
    ds = _data()
    p = RandomDynamic(ds, E, keep=0.5, warmup=1, ramp=0)
    s = p.sampler
    assert isinstance(s, SelectionSampler) and p.sampler is s
    assert len(s) == 80
    p.end_epoch()
    assert p.sampler is s and len(s) == 40 == len(list(s))
    assert s.selection == p.select(1)


def test_fit_without_the_pruners_sampler_says_what_to_do():
    ds = _data()
    p = TEDPruner(ds, E)
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for loader in (DataLoader(IndexedDataset(ds), batch_size=16),
                   DataLoader(IndexedDataset(ds), batch_size=16,
                              sampler=TEDPruner(ds, E).sampler)):  # fmt: skip
        with pytest.raises(ValueError, match=r"sampler=pruner\.sampler"):
            fit(model, loader, epochs=E, optimizer=opt, loss_fn=_loss, progress=False,
                callbacks=[PrunerCallback(p)])  # fmt: skip
