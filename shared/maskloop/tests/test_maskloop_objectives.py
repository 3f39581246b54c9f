"""fit with a non-classification objective: every hook, Checkpoint resume, logs, bad objectives."""

import math

import pytest
import torch
from maskloop import (
    Callback,
    Checkpoint,
    NonFiniteLossError,
    classification,
    evaluate_objective,
    fit,
    seed_everything,
)
from maskloop.testing import EventRecorder
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class TinyVAE(nn.Module):
    def __init__(self, d: int = 4, k: int = 2) -> None:
        super().__init__()
        self.enc = nn.Linear(d, 2 * k)
        self.dec = nn.Linear(k, d)


class NegELBO:
    """Per-sample negative ELBO of a Gaussian VAE with a KL warm-up beta = min(1, calls / 10):
    l_i = ||x_i - dec(z_i)||^2 / 2 + beta * KL(N(mu_i, sigma_i^2) || N(0, I)), z_i = mu_i + sigma_i eps.
    The warm-up counter is state that Checkpoint must save and resume."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, model, batch):
        (x,) = batch
        mu, logvar = model.enc(x).chunk(2, dim=-1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        recon = 0.5 * ((x - model.dec(z)) ** 2).sum(-1)
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(-1)
        beta = min(1.0, self.calls / 10)
        if torch.is_grad_enabled():
            self.calls += 1
        return recon + beta * kl, {"kl": kl.mean(), "recon": recon.mean(), "z": z}

    def state_dict(self):
        return {"calls": self.calls}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])


def unlabelled(n: int = 48, seed: int = 0) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 4, generator=g, dtype=torch.float64))


class Hooks(EventRecorder):
    def on_batch_start(self, state):
        assert state.targets is None and state.inputs is None  # not a labelled batch
        super().on_batch_start(state)

    def on_loss(self, state):
        assert state.losses.shape == (len(state.batch[0]),)
        assert state.logs["z"].shape == (len(state.batch[0]), 2)
        super().on_loss(state)

    def on_after_backward(self, state):
        assert state.model.enc.weight.grad is not None
        super().on_after_backward(state)


def test_elbo_objective_trains_runs_every_hook_and_logs() -> None:
    seed_everything(0)
    model = TinyVAE().double()
    rec = Hooks()
    hist = fit(
        model,
        DataLoader(unlabelled(16), batch_size=8),
        epochs=2,
        optimizer=torch.optim.Adam(model.parameters(), 1e-2),
        objective=NegELBO(),
        eval_data=DataLoader(unlabelled(8, seed=1), batch_size=4),
        callbacks=[rec],
        progress=False,
    )
    step = ["batch_start", "loss", "after_backward", "step_end"]
    epoch = ["epoch_start", *step, *step, "epoch_end"]
    assert rec.events == ["fit_start", *epoch, *epoch, "fit_end"]
    for key in ("train_loss", "train_kl", "train_recon", "eval_loss", "eval_kl"):
        assert len(hist[key]) == 2 and all(math.isfinite(v) for v in hist[key])
    assert "train_z" not in hist.epochs[0]  # non-scalar logs go to callbacks only
    assert hist["train_samples"] == [16.0, 16.0]


def _elbo_run(tmp_path, interrupt_at=None):
    seed_everything(0)
    model = TinyVAE().double()
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    objective = NegELBO()

    class Interrupt(Callback):
        def on_epoch_end(self, state):
            if state.epoch == interrupt_at:
                raise KeyboardInterrupt

    data = DataLoader(unlabelled(), batch_size=8, shuffle=True)
    cbs = [Checkpoint(tmp_path), Interrupt()]
    hist = fit(
        model, data, epochs=4, optimizer=opt, objective=objective, callbacks=cbs, progress=False
    )
    return model, hist, objective


def test_elbo_objective_resumes_to_identical_weights(tmp_path) -> None:
    straight, hist_a, obj_a = _elbo_run(tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        _elbo_run(tmp_path / "b", interrupt_at=2)
    seed_everything(
        99
    )  # disturb every RNG (the objective samples eps): the checkpoint restores them
    resumed, hist_b, obj_b = _elbo_run(tmp_path / "b")
    for (n, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert a.dtype == torch.float64 and torch.equal(a, b), n
    assert obj_a.calls == obj_b.calls == 4 * 6
    assert hist_a["train_loss"] == hist_b["train_loss"]


def test_classification_objective_matches_loss_fn_exactly() -> None:
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 3, generator=g), torch.randint(0, 2, (32,), generator=g)
    runs = []
    for kwargs in (
        {"loss_fn": lambda o, t: nn.functional.cross_entropy(o, t, reduction="none")},
        {"objective": classification()},
        {},
    ):
        torch.manual_seed(1)
        model = nn.Linear(3, 2)
        hist = fit(
            model,
            DataLoader(TensorDataset(x, y), batch_size=8),
            epochs=2,
            optimizer=torch.optim.SGD(model.parameters(), 0.1),
            progress=False,
            **kwargs,
        )
        runs.append((model.weight.detach().clone(), hist["train_loss"]))
    for w, losses in runs[1:]:
        assert torch.equal(w, runs[0][0]) and losses == runs[0][1]
    out, logs = classification()(nn.Linear(3, 2), (x, y))
    assert out.shape == (32,) and logs["outputs"].shape == (32, 2)


def _fit(objective, epochs=1):
    model = TinyVAE().double()
    return fit(
        model,
        DataLoader(unlabelled(16), batch_size=8),
        epochs=epochs,
        optimizer=torch.optim.SGD(model.parameters(), 0.1),
        objective=objective,
        progress=False,
    )


def test_bad_objectives_raise_naming_the_step() -> None:
    with pytest.raises(
        ValueError, match=r"1-D tensor of per-sample losses.*shape \(\).*epoch 0, step 0"
    ):
        _fit(lambda m, b: NegELBO()(m, b)[0].mean())
    with pytest.raises(TypeError, match="tensor of per-sample losses, got float.*epoch 0, step 0"):
        _fit(lambda m, b: 1.0)
    with pytest.raises(ValueError, match="losses, logs"):
        _fit(lambda m, b: (m.dec.weight.sum(0), 3))
    with pytest.raises(TypeError, match="objective must be callable"):
        _fit("elbo")
    with pytest.raises(TypeError, match="not both"):
        fit(nn.Linear(2, 2), [1], epochs=1, optimizer=torch.optim.SGD(nn.Linear(1, 1).parameters(), 0.1),
            loss_fn=lambda o, t: o, objective=classification())  # fmt: skip


def test_non_finite_loss_stops_with_value_error_naming_epoch_and_step() -> None:
    calls = []

    def blows_up(model, batch):
        losses = NegELBO()(model, batch)[0]
        calls.append(1)
        return losses * (float("nan") if len(calls) == 3 else 1.0)

    with pytest.raises(ValueError, match=r"non-finite loss nan at epoch 1, step 2 \(batch 0"):
        _fit(blows_up, epochs=2)
    with pytest.raises(FloatingPointError):  # earlier versions raised FloatingPointError
        _fit(lambda m, b: NegELBO()(m, b)[0] * float("inf"))
    assert issubclass(NonFiniteLossError, ValueError)


def test_evaluate_objective_validates_and_restores_mode() -> None:
    model = TinyVAE().double().train()
    res = evaluate_objective(model, DataLoader(unlabelled(8), batch_size=4), NegELBO())
    assert set(res) == {"loss", "kl", "recon"} and model.training
    with pytest.raises(ValueError, match="empty"):
        evaluate_objective(model, [], NegELBO())
    with pytest.raises(TypeError, match="objective must be callable"):
        evaluate_objective(model, DataLoader(unlabelled(8)), None)
