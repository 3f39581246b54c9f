"""TED and the baselines inside maskloop.fit and a plain loop: sizes, budget, resume."""

import pytest
import torch
from maskloop import Callback, Checkpoint, FeatureHook, IndexedDataset, Selection, fit
from ted_prune import (
    EL2N,
    Forgetting,
    FullData,
    GraNd,
    InfoBatch,
    PrunerCallback,
    RandomDynamic,
    RandomStatic,
    TEDPruner,
)
from ted_prune.ted import SPEC_READING
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

E = 6


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return TensorDataset(x, y)


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 3))


def _loss(o, t):
    return F.cross_entropy(o, t, reduction="none")


def _fit(pruner, ds, epochs=E, callbacks=(), seed=0):
    model = _model(seed)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hist = fit(
        model,
        DataLoader(IndexedDataset(ds), sampler=pruner.sampler, batch_size=16),
        epochs=epochs,
        optimizer=opt,
        loss_fn=_loss,
        callbacks=[PrunerCallback(pruner), *callbacks],
        progress=False,
    )
    return model, hist


def test_ted_in_fit_follows_schedule_and_budget_adds_up():
    ds = _data()
    p = TEDPruner(ds, epochs=E, keep=0.5, warmup=1, ramp=2, rescore_every=2)
    _, hist = _fit(p, ds)
    sizes = [int(r["selected"]) for r in p.log]
    assert sizes == [Selection.kept_count(96, p.keep_ratio(e)) for e in range(E)]
    assert sizes[0] == 96 and sizes[-1] == 48
    assert hist["train_samples"] == [float(s) for s in sizes]  # trained what was selected
    b = p.budget()
    scored = sum(r["scored"] for r in p.log)
    assert scored > 0  # pruned samples were re-scored by forward passes
    assert b["trained"] == pytest.approx(sum(sizes) / (E * 96))
    assert b["f"] == pytest.approx(b["trained"] + scored / 3 / (E * 96))
    assert hist["prune_keep"][-1] == pytest.approx(0.5)
    assert p.has_score.all()


def test_ted_prunes_mislabelled_samples_first():
    """With labels flipped on 15% of a separable problem, the spec reading's pruned set is enriched
    in them (the default prune_aligned/residual reading keeps large gradients, so it does not)."""
    ds = _data(200, seed=1)
    x, y = ds.tensors
    flip = torch.zeros(200, dtype=torch.bool)
    flip[torch.randperm(200, generator=torch.Generator().manual_seed(0))[:30]] = True
    ynoisy = torch.where(flip, (y + 1) % 3, y)
    noisy = TensorDataset(x, ynoisy)
    p = TEDPruner(noisy, epochs=8, keep=0.6, warmup=2, ramp=0, rescore_every=1, **SPEC_READING)
    _fit(p, noisy, epochs=8)
    pruned = ~p.select(7).mask()
    frac_noisy_pruned = (pruned & flip).sum().item() / flip.sum().item()
    assert frac_noisy_pruned > 0.6  # vs 0.4 for a random 60% selection


@pytest.mark.parametrize(
    "make",
    [
        lambda ds: FullData(ds, E),
        lambda ds: RandomStatic(ds, E, keep=0.5),
        lambda ds: RandomDynamic(ds, E, keep=0.5, warmup=1, ramp=2),
        lambda ds: InfoBatch(ds, E, keep=0.6),
        lambda ds: EL2N(ds, E, keep=0.5, score_epochs=2),
        lambda ds: GraNd(ds, E, keep=0.5, score_epochs=2),
        lambda ds: Forgetting(ds, E, keep=0.5, score_epochs=2),
    ],
)
def test_baselines_in_fit(make):
    ds = _data()
    p = make(ds)
    _, hist = _fit(p, ds)
    assert len(p.log) == E
    assert hist["train_samples"] == [r["selected"] for r in p.log]
    b = p.budget()
    assert 0 < b["f"] <= 1.0
    if isinstance(p, (EL2N, GraNd, Forgetting)):
        assert [r["selected"] for r in p.log] == [96, 96, 48, 48, 48, 48]
        assert p.select(3) == p.select(5)  # static after the scoring epochs
    if isinstance(p, RandomDynamic):
        assert p.select(4) != p.select(5)  # a fresh draw each epoch


def test_infobatch_prunes_only_below_mean_and_rescales():
    p = InfoBatch(10, epochs=8, keep=0.8)
    p.loss = torch.tensor([0.1, 0.1, 0.1, 0.1, 0.1, 2, 2, 2, 2, 2], dtype=torch.float64)
    sel = p.select(1)
    m = sel.mask()
    assert m[5:].all()  # above-mean samples always kept
    assert p.ratio == pytest.approx(0.4)  # (1 - 0.8) * 10 / 5
    assert int(m[:5].sum()) == int(0.6 * 5)  # the authors' exact count int((1 - r) |W|)
    w = p.weights(torch.arange(10)).double()
    assert torch.allclose(w[:5][m[:5]], torch.full((3,), 1 / 0.6, dtype=torch.float64))
    assert (w[5:] == 1).all()
    assert len(p.select(7)) == 10  # annealing: the last epoch uses all data


def _plain_loop(pruner, ds, model, opt, epochs):
    hook = FeatureHook(model)
    loader = DataLoader(IndexedDataset(ds), sampler=pruner.sampler, batch_size=16)
    for _ in range(epochs):
        torch.manual_seed(1000 + pruner.epoch)
        for x, y, idx in loader:
            logits = model(x)
            loss = pruner.update(_loss(logits, y), idx, logits, hook.features, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        pruner.end_epoch(model, ds)
    hook.remove()


def test_plain_loop_resume_reproduces_uninterrupted_run():
    ds = _data()

    def make():
        return TEDPruner(ds, epochs=E, keep=0.5, warmup=1, ramp=2, rescore_every=2)

    m1 = _model()
    o1 = torch.optim.SGD(m1.parameters(), lr=0.1, momentum=0.9)
    p1 = make()
    _plain_loop(p1, ds, m1, o1, E)

    m2 = _model()
    o2 = torch.optim.SGD(m2.parameters(), lr=0.1, momentum=0.9)
    p2 = make()
    _plain_loop(p2, ds, m2, o2, 3)
    saved = (p2.state_dict(), m2.state_dict(), o2.state_dict())
    m3 = _model(seed=5)
    o3 = torch.optim.SGD(m3.parameters(), lr=0.1, momentum=0.9)
    p3 = make()
    p3.load_state_dict(saved[0])
    m3.load_state_dict(saved[1])
    o3.load_state_dict(saved[2])
    _plain_loop(p3, ds, m3, o3, E - 3)

    assert p3.epoch == p1.epoch == E
    assert torch.equal(p3.scores, p1.scores)
    assert [r["selected"] for r in p3.log] == [r["selected"] for r in p1.log]
    for a, b in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(a, b)


class _StopAfter(Callback):
    """Interrupts fit after `epochs` epochs (Checkpoint saves on a stop)."""

    order = 50

    def __init__(self, epochs):
        self.epochs = epochs

    def on_epoch_end(self, state):
        if state.epoch == self.epochs:
            state.stop_training = True


@pytest.mark.parametrize("selection", ["sample", "topk"])
def test_fit_resumes_from_checkpoint_to_the_uninterrupted_run(tmp_path, selection):
    """TED in fit, interrupted after 3 of 6 epochs and resumed by maskloop.Checkpoint into a fresh
    model, optimizer and pruner, ends with the same weights, scores and log as one uninterrupted
    run (SGD with momentum: the optimizer state must come back too)."""
    ds = _data()

    def run(epochs_cb, folder, seed=0):
        p = TEDPruner(ds, epochs=E, keep=0.5, warmup=1, ramp=2, rescore_every=2,
                      selection=selection)  # fmt: skip
        model = _model(seed)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        cbs = [PrunerCallback(p), *epochs_cb]
        if folder is not None:
            cbs.append(Checkpoint(folder))
        loader = DataLoader(IndexedDataset(ds), sampler=p.sampler, batch_size=16)
        fit(model, loader, epochs=E, optimizer=opt, loss_fn=_loss, callbacks=cbs, progress=False)
        return p, model

    p1, m1 = run([], None)
    p2, _ = run([_StopAfter(3)], tmp_path)
    assert p2.epoch == 3
    p3, m3 = run([], tmp_path, seed=5)  # other initial weights: all must come from the checkpoint
    assert p3.epoch == p1.epoch == E
    assert torch.equal(p3.scores, p1.scores)
    strip = [{k: v for k, v in r.items() if k != "score_seconds"} for r in p1.log]
    assert [{k: v for k, v in r.items() if k != "score_seconds"} for r in p3.log] == strip
    assert strip[-1]["selected"] == 48
    for a, b in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(a, b)
