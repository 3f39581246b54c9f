"""fit, evaluate, callbacks and Checkpoint resume."""

from typing import Any

import pytest
import torch
from maskloop import (
    Callback,
    Checkpoint,
    FeatureHook,
    IndexedDataset,
    MaskedTraining,
    Selection,
    WeightMask,
    evaluate,
    fit,
    prunable_parameters,
    seed_everything,
)
from maskloop.testing import EventRecorder
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def blobs(n: int = 96, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    centers = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [0.0, 2.5]])
    x = centers[y] + 0.5 * torch.randn(n, 2, generator=g)
    return TensorDataset(x, y)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 3))


def ce(outputs, targets):
    return nn.functional.cross_entropy(outputs, targets, reduction="none")


def test_fit_learns_and_records_history() -> None:
    seed_everything(0)
    model = mlp()
    data = DataLoader(blobs(), batch_size=16, shuffle=True)
    hist = fit(
        model,
        data,
        epochs=15,
        optimizer=torch.optim.Adam(model.parameters(), 0.05),
        loss_fn=ce,
        eval_data=DataLoader(blobs(seed=1), batch_size=32),
        progress=False,
    )
    assert len(hist) == 15
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    assert hist["eval_accuracy"][-1] > 0.9


class Recorder(EventRecorder):
    def __init__(self) -> None:
        super().__init__()
        self.indices: list[int] = []

    def on_loss(self, state):
        assert state.losses is not None and state.losses.shape == (len(state.targets),)
        self.indices += state.indices.tolist()
        state.losses = state.losses * 0.0  # reweighting is honoured: zero loss, zero grads
        super().on_loss(state)

    def on_after_backward(self, state):
        assert all(p.grad is None or torch.all(p.grad == 0) for p in state.model.parameters())
        super().on_after_backward(state)


def test_callback_order_indices_and_reweighting() -> None:
    model = mlp()
    before = [p.detach().clone() for p in model.parameters()]
    rec = Recorder()
    data = DataLoader(IndexedDataset(blobs(8)), batch_size=4)
    fit(
        model,
        data,
        epochs=1,
        optimizer=torch.optim.SGD(model.parameters(), 0.1),
        loss_fn=ce,
        callbacks=[rec],
        progress=False,
    )
    per_batch = ["batch_start", "loss", "after_backward", "step_end"]
    assert rec.events == [
        "fit_start",
        "epoch_start",
        *per_batch,
        *per_batch,
        "epoch_end",
        "fit_end",
    ]
    assert sorted(rec.indices) == list(range(8))
    for b, p in zip(before, model.parameters()):
        torch.testing.assert_close(b, p.detach())


class SelectEachEpoch(Callback):
    """Replace the epoch's data with a Selection, as a data-pruning method does."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.seen: list[int] = []

    def on_epoch_start(self, state):
        sel = Selection.random(len(self.dataset), 0.5, torch.Generator().manual_seed(state.epoch))
        state.train_data = DataLoader(self.dataset, batch_size=8, sampler=sel.sampler())

    def on_epoch_end(self, state):
        self.seen.append(int(state.metrics["train_samples"]))


def test_callback_can_replace_train_data() -> None:
    ds = IndexedDataset(blobs(40))
    cb = SelectEachEpoch(ds)
    model = mlp()
    fit(
        model,
        DataLoader(ds, batch_size=8),
        epochs=3,
        optimizer=torch.optim.SGD(model.parameters(), 0.1),
        loss_fn=ce,
        callbacks=[cb],
        progress=False,
    )
    assert cb.seen == [20, 20, 20]


class Interrupt(Callback):
    def __init__(self, at: int) -> None:
        self.at = at

    def on_epoch_end(self, state):
        if state.epoch == self.at:
            raise KeyboardInterrupt


def _run(tmp_path, interrupt_at=None, ckpt=True):
    seed_everything(0)
    model = mlp()
    mask = WeightMask.from_scores(
        {n: torch.rand_like(p) for n, p in prunable_parameters(model).items()}, 0.5
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    data = DataLoader(blobs(64), batch_size=8, shuffle=True)
    cbs = [MaskedTraining(model, mask, opt)]
    if ckpt:
        cbs.append(Checkpoint(tmp_path / "ckpt"))
    if interrupt_at is not None:
        cbs.append(Interrupt(interrupt_at))
    hist = fit(
        model,
        data,
        epochs=5,
        optimizer=opt,
        loss_fn=ce,
        scheduler=sched,
        callbacks=cbs,
        progress=False,
    )
    return model, hist, mask


def test_checkpoint_resume_matches_uninterrupted_run(tmp_path) -> None:
    straight, hist_a, mask = _run(tmp_path / "a", ckpt=False)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path / "b", interrupt_at=2)
    seed_everything(123)  # disturb every RNG: the checkpoint must restore them
    resumed, hist_b, _ = _run(tmp_path / "b")
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    assert [e["train_loss"] for e in hist_a.epochs] == [e["train_loss"] for e in hist_b.epochs]
    w = resumed.state_dict()["0.weight"]
    assert torch.all(w[~mask["0.weight"]] == 0)


def test_evaluate_restores_mode_and_validates() -> None:
    model = mlp().train()
    res = evaluate(model, DataLoader(blobs(10), batch_size=5))
    assert 0.0 <= res["accuracy"] <= 1.0 and model.training
    with pytest.raises(ValueError, match="empty"):
        evaluate(model, [])
    with pytest.raises(TypeError, match="must be callable"):
        evaluate(model, DataLoader(blobs(10)), metrics={"x": 3})


def test_fit_bad_inputs() -> None:
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), 0.1)
    data = DataLoader(blobs(8), batch_size=4)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        fit(model, data, epochs=0, optimizer=opt, loss_fn=ce)
    with pytest.raises(ValueError, match="train_data is empty"):
        fit(model, [], epochs=1, optimizer=opt, loss_fn=ce)
    with pytest.raises(TypeError, match="optimizer"):
        fit(model, data, epochs=1, optimizer="adam", loss_fn=ce)
    with pytest.raises(TypeError, match="Callback"):
        fit(model, data, epochs=1, optimizer=opt, loss_fn=ce, callbacks=[object()])
    with pytest.raises(ValueError, match="a batch must be"):
        fit(model, [(torch.zeros(1, 2),)], epochs=1, optimizer=opt, loss_fn=ce, progress=False)
    bad = nn.Sequential(nn.Linear(2, 3))
    with torch.no_grad():
        bad[0].weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="non-finite loss"):
        fit(
            bad,
            data,
            epochs=1,
            optimizer=torch.optim.SGD(bad.parameters(), 0.1),
            loss_fn=ce,
            progress=False,
        )


def test_feature_hook_reads_penultimate_features() -> None:
    model = mlp()
    x = torch.randn(5, 2)
    with FeatureHook(model) as hook:
        model(x)
        torch.testing.assert_close(hook.features, model[1](model[0](x)))
    with FeatureHook(model, "0", which="output") as hook:
        model(x)
        torch.testing.assert_close(hook.features, model[0](x))
    with pytest.raises(ValueError, match="not a module"):
        FeatureHook(model, "head")
    with pytest.raises(ValueError, match="no nn.Linear"):
        FeatureHook(nn.Sequential(nn.ReLU()))


def test_feature_hook_unwraps_tuples_and_model_outputs_and_keeps_tensors() -> None:
    class Out:  # a Hugging Face style output object
        def __init__(self, t: torch.Tensor) -> None:
            self.last_hidden_state = t

    class Wrap(nn.Module):
        def __init__(self, kind: str) -> None:
            super().__init__()
            self.kind = kind

        def forward(self, x: torch.Tensor) -> Any:
            return {"tuple": (x * 2, x), "output": Out(x * 3), "tensor": x * 4}[self.kind]

    x = torch.randn(3, 2)
    for kind, scale in (("tuple", 2), ("output", 3), ("tensor", 4)):
        model = nn.Sequential(Wrap(kind))
        with FeatureHook(model, "0", which="output") as hook:
            model(x)
            assert type(hook.features) is torch.Tensor
            assert torch.equal(hook.features, x * scale)
    model = nn.Sequential(nn.Identity(), nn.Linear(2, 2))
    param = nn.Parameter(torch.randn(3, 2))  # a tensor subclass is kept as it is
    with FeatureHook(model) as hook:
        model(param)
        assert hook.features is param


def test_progress_keeps_one_line_per_epoch_with_losses(capsys) -> None:
    """The epoch bar stays on screen (as Keras prints): one finished line per epoch, with the
    training loss and the eval metrics."""
    seed_everything(0)
    model = mlp()
    fit(
        model,
        DataLoader(blobs(), batch_size=32),
        epochs=2,
        optimizer=torch.optim.SGD(model.parameters(), 0.1),
        loss_fn=ce,
        eval_data=DataLoader(blobs(seed=1), batch_size=32),
        progress=True,
    )
    err = capsys.readouterr().err
    lines = [line.split("\r")[-1] for line in err.split("\n") if line.strip()]
    finished = [line for line in lines if "3/3" in line]
    assert [line.split(":")[0] for line in finished] == ["epoch 1/2", "epoch 2/2"]
    assert all("loss=" in line and "eval_accuracy=" in line for line in finished), finished
