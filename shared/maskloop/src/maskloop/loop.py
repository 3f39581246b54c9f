"""The training loop every method plugs into through an objective and callbacks.

`fit` minimises the mean of an objective's per-sample losses (`maskloop.objectives`; supervised
classification by default) with one extension point per moment a pruning method needs: per-sample
losses before the reduction (`on_loss`: data pruning reweights here), gradients before the step
(`on_after_backward`: SEVEN reads them here), and the step's end (`on_step_end`: masks are re-applied).
It runs unchanged under `torchrun` (DDP, gloo on CPU) and never hides an exception; a non-finite loss
stops training with a `NonFiniteLossError` (a `ValueError`) naming the epoch and step.
"""

from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from maskloop.batches import forward as _forward
from maskloop.batches import split_batch
from maskloop.batches import to_device as _to_device
from maskloop.checks import check_positive_int
from maskloop.objectives import Classification, classification

__all__ = [
    "Callback",
    "History",
    "LoopState",
    "NonFiniteLossError",
    "accuracy",
    "evaluate",
    "evaluate_objective",
    "fit",
    "seed_everything",
    "split_batch",
]


class NonFiniteLossError(ValueError, FloatingPointError):
    """Training produced a NaN or infinite loss; the message names the epoch and step.

    A `ValueError` (bad numbers reached the loss) and, for code written against earlier versions, a
    `FloatingPointError`.
    """


Metric = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a fresh `torch.Generator` seeded with `seed`."""
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def accuracy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample top-1 correctness (1.0 or 0.0) of logits `outputs` against class `targets`."""
    return (outputs.argmax(dim=-1) == targets).to(torch.float32)


@dataclass
class History:
    """Per-epoch records of a `fit` run: `h.epochs[i]` is a dict, `h["train_loss"]` a list."""

    epochs: list[dict[str, float]] = field(default_factory=list)

    def __getitem__(self, key: str) -> list[float]:
        if self.epochs and not any(key in e for e in self.epochs):
            raise KeyError(f"{key!r} was not recorded; recorded: {sorted(self.epochs[-1])}")
        return [e[key] for e in self.epochs if key in e]

    def __len__(self) -> int:
        return len(self.epochs)


@dataclass
class LoopState:
    """Everything a callback may read (and the fields it may change) during `fit`.

    `batch` is the batch on the device; `inputs` / `targets` / `indices` are filled when it follows
    the `split_batch` convention (else `None`). `objective` is what `fit` minimises and `logs` the
    extra values it returned for this batch; `loss_fn` is the classification objective's loss
    function (`None` for other objectives). `step` counts optimizer steps since the start of the run.
    """

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[..., torch.Tensor] | None
    train_data: Any
    epochs: int
    device: torch.device
    scheduler: Any = None
    callbacks: list[Callback] = field(default_factory=list)
    history: History = field(default_factory=History)
    epoch: int = 0
    step: int = 0
    batch_idx: int = 0
    batch: Any = None
    inputs: Any = None
    targets: torch.Tensor | None = None
    indices: torch.Tensor | None = None
    outputs: torch.Tensor | None = None
    losses: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    stop_training: bool = False
    rank: int = 0
    world_size: int = 1
    forward_model: nn.Module | None = None
    objective: Any = None
    logs: dict[str, Any] = field(default_factory=dict)


class Callback:
    """Base class of loop callbacks: override the hooks you need; each receives the `LoopState`.

    Callbacks run in ascending `order` (stable). A callback with state implements `state_dict` /
    `load_state_dict` so `Checkpoint` can save and resume it.
    """

    order: int = 0

    def on_fit_start(self, state: LoopState) -> None:
        """Before the first epoch (after a resume, if any)."""

    def on_epoch_start(self, state: LoopState) -> None:
        """Before an epoch; may replace `state.train_data` (e.g. this epoch's data selection)."""

    def on_batch_start(self, state: LoopState) -> None:
        """After the batch is on the device, before the forward pass.

        May replace `state.inputs` / `state.targets` (classification) or `state.batch` (any other
        objective) to change what this step trains on.
        """

    def on_loss(self, state: LoopState) -> None:
        """After the objective; may replace `state.losses` (per-sample) to reweight samples."""

    def on_after_backward(self, state: LoopState) -> None:
        """Gradients are in `.grad`, before the optimizer step."""

    def on_step_end(self, state: LoopState) -> None:
        """After `optimizer.step()`."""

    def on_epoch_end(self, state: LoopState) -> None:
        """After the epoch and its evaluation; `state.metrics` holds the epoch's record."""

    def on_fit_end(self, state: LoopState) -> None:
        """After the last epoch."""

    def state_dict(self) -> dict[str, Any]:
        """The callback's resumable state (default: none)."""
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned."""


def _check_data(name: str, data: Any) -> None:
    if data is None or not isinstance(data, Iterable):
        raise TypeError(f"{name} must be a DataLoader or an iterable of batches, got {data!r}")
    try:
        n = len(data)
    except TypeError:
        return
    if n == 0:
        raise ValueError(f"{name} is empty: it yields no batches")


class _Distributed:
    """What `fit` does differently under torchrun: process group, DDP wrapper, sharded loaders."""

    def __init__(self, device: torch.device) -> None:
        import torch.distributed as dist

        self.created = False
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world > 1 and dist.is_available() and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            self.created = True
        self.active = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        self.rank = dist.get_rank() if self.active else 0
        self.world_size = dist.get_world_size() if self.active else 1
        self._resharded: dict[int, Any] = {}

    def wrap(self, model: nn.Module) -> nn.Module:
        if not self.active or isinstance(model, nn.parallel.DistributedDataParallel):
            return model
        return nn.parallel.DistributedDataParallel(model)

    def loader(self, data: Any) -> Any:
        """Shard a plain DataLoader with a DistributedSampler (same seed on every rank)."""
        from torch.utils.data import DataLoader, RandomSampler, SequentialSampler
        from torch.utils.data.distributed import DistributedSampler

        if not self.active or not isinstance(data, DataLoader):
            return data
        if not isinstance(data.sampler, (RandomSampler, SequentialSampler)):
            return data  # a sampler of its own (e.g. maskloop's SelectionSampler) shards itself
        key = id(data)
        if key not in self._resharded:
            sampler = DistributedSampler(
                data.dataset,
                num_replicas=self.world_size,
                rank=self.rank,
                shuffle=isinstance(data.sampler, RandomSampler),
            )
            self._resharded[key] = DataLoader(
                data.dataset,
                batch_size=data.batch_size,
                sampler=sampler,
                num_workers=data.num_workers,
                collate_fn=data.collate_fn,
                pin_memory=data.pin_memory,
                drop_last=data.drop_last,
            )
        return self._resharded[key]

    def close(self, ok: bool = True) -> None:
        if self.created:
            import torch.distributed as dist

            if ok:  # no rank tears the group down while another still uses it
                dist.barrier()
            dist.destroy_process_group()


def fit(
    model: nn.Module,
    train_data: Any,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    objective: Callable[[nn.Module, Any], Any] | None = None,
    eval_data: Any = None,
    metrics: Mapping[str, Metric] | None = None,
    scheduler: Any = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train `model` for `epochs` epochs on the mean of `objective`'s per-sample losses.

    `objective(model, batch)` returns per-sample losses `l_i` (a 1-D tensor, one per sample) or
    `(losses, logs)` (see `maskloop.objectives`); each step minimises `(1/B) sum_i l_i` after the
    `on_loss` callbacks. The default is `classification(loss_fn)`: `loss_fn(outputs, targets)` with
    per-sample losses (`reduction="none"`; cross-entropy when `loss_fn` is omitted). Pass `loss_fn` or
    `objective`, not both. `scheduler.step()` runs once per epoch. With `eval_data`, `evaluate` (for
    classification, or whenever `metrics` is given) or else `evaluate_objective` runs after each epoch
    and its results are recorded as `eval_<name>`. The objective's scalar logs are recorded as
    `train_<name>`. A NaN or infinite loss raises `NonFiniteLossError` (a `ValueError`) naming the
    epoch and step; a history is never returned with a non-finite loss in it.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = check_positive_int("epochs", epochs)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if loss_fn is not None and objective is not None:
        raise TypeError(
            "pass loss_fn or objective, not both: loss_fn is shorthand for "
            "objective=maskloop.objectives.classification(loss_fn)"
        )
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
    if objective is None:
        objective = classification(loss_fn)
    elif not callable(objective):
        raise TypeError(f"objective must be callable as objective(model, batch), got {objective!r}")
    _check_data("train_data", train_data)
    if eval_data is not None:
        _check_data("eval_data", eval_data)
    for cb in callbacks:
        if not isinstance(cb, Callback):
            raise TypeError(
                f"callbacks must be maskloop.Callback instances, got {type(cb).__name__}"
            )
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)
    model.to(device)

    dist = _Distributed(device)
    state = LoopState(
        model=model,
        optimizer=optimizer,
        loss_fn=objective.loss_fn if isinstance(objective, Classification) else None,
        train_data=train_data,
        epochs=epochs,
        device=device,
        scheduler=scheduler,
        callbacks=sorted(callbacks, key=lambda c: c.order),
        rank=dist.rank,
        world_size=dist.world_size,
        objective=objective,
    )
    state.forward_model = dist.wrap(model)
    try:
        _run(state, dist, eval_data, metrics, progress)
    except BaseException:
        dist.close(ok=False)
        raise
    dist.close()
    return state.history


def _where(state: LoopState) -> str:
    return f"at epoch {state.epoch}, step {state.step} (batch {state.batch_idx} of the epoch)"


def _unpack(result: Any, state: LoopState, scalar_ok: bool) -> tuple[torch.Tensor, dict[str, Any]]:
    """Validate an objective's return value: (1-D per-sample losses, logs)."""
    logs: Any = {}
    if isinstance(result, tuple):
        if len(result) != 2 or not isinstance(result[1], Mapping):
            raise ValueError(
                f"the objective must return losses or (losses, logs: dict); got a tuple of "
                f"{len(result)} ({', '.join(type(r).__name__ for r in result)}) {_where(state)}"
            )
        result, logs = result
    if not isinstance(result, torch.Tensor):
        raise TypeError(
            f"the objective must return a tensor of per-sample losses, got "
            f"{type(result).__name__} {_where(state)}"
        )
    if not result.is_floating_point():
        raise TypeError(
            f"the objective's losses must be a real floating tensor, got {result.dtype} "
            f"{_where(state)}"
        )
    if not (result.ndim == 1 or (scalar_ok and result.ndim == 0)) or result.numel() == 0:
        raise ValueError(
            "the objective must return a non-empty 1-D tensor of per-sample losses (one per "
            f"sample, before any reduction), got shape {tuple(result.shape)} {_where(state)}"
        )
    return result, dict(logs)


def _scalar_logs(logs: Mapping[str, Any]) -> dict[str, float]:
    out = {}
    for k, v in logs.items():
        if isinstance(v, torch.Tensor):
            if v.numel() == 1:
                out[k] = float(v.detach())
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def _run(
    state: LoopState,
    dist: _Distributed,
    eval_data: Any,
    metrics: Mapping[str, Metric] | None,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    cbs = state.callbacks
    objective = state.objective
    supervised = isinstance(objective, Classification)
    for cb in cbs:
        cb.on_fit_start(state)
    while state.epoch < state.epochs and not state.stop_training:
        state.metrics = {"epoch": float(state.epoch)}
        for cb in cbs:
            cb.on_epoch_start(state)
        data = dist.loader(state.train_data)
        _check_data("train_data", data)
        sampler = getattr(data, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(state.epoch)
        state.model.train()
        total, count, start = 0.0, 0, time.perf_counter()
        log_sums: dict[str, float] = {}
        try:
            n_batches: int | None = len(data)
        except TypeError:
            n_batches = None
        # updated by hand: iterating a tqdm closes it at the last batch, before eval (each epoch's
        # line stays on screen with its training loss and eval metrics, as Keras prints them), and
        # `tqdm.auto`'s constructor calls `iter(data)` itself: a second DataLoader iterator per
        # epoch (workers started twice, the sampler drawn twice, the global RNG advanced)
        bar = tqdm(
            total=n_batches,
            desc=f"epoch {state.epoch + 1}/{state.epochs}",
            disable=not progress or state.rank != 0,
            leave=True,
        )
        for state.batch_idx, batch in enumerate(data):
            state.batch = _to_device(batch, state.device)
            if supervised:
                state.inputs, state.targets, state.indices = split_batch(state.batch)
            else:
                try:
                    state.inputs, state.targets, state.indices = split_batch(state.batch)
                except ValueError:
                    state.inputs = state.targets = state.indices = None
            for cb in cbs:
                cb.on_batch_start(state)
            state.optimizer.zero_grad(set_to_none=True)
            if supervised:
                losses, state.outputs = objective.compute(
                    state.forward_model, state.inputs, state.targets
                )
                state.logs = {"outputs": state.outputs}
            else:
                losses, state.logs = _unpack(
                    objective(state.forward_model, state.batch), state, scalar_ok=False
                )
                state.outputs = state.logs.get("outputs")
            if supervised and (not isinstance(losses, torch.Tensor) or losses.ndim > 1):
                _unpack(losses, state, scalar_ok=True)  # raises the clear error
            state.losses = losses if losses.ndim > 0 else None
            for cb in cbs:
                cb.on_loss(state)
            state.loss = state.losses.mean() if state.losses is not None else losses
            # ONE conversion of the loss per step, read by the finiteness check and the epoch's
            # mean (a `torch.isfinite` kernel plus its `bool` on top of it cost about 10 us a step)
            loss_value = float(state.loss.detach())
            if not math.isfinite(loss_value):
                raise NonFiniteLossError(
                    f"non-finite loss {loss_value} {_where(state)}: lower the learning "
                    "rate or check the inputs and the objective"
                )
            state.loss.backward()
            for cb in cbs:
                cb.on_after_backward(state)
            state.optimizer.step()
            state.step += 1
            for cb in cbs:
                cb.on_step_end(state)
            n = len(state.targets) if supervised else losses.numel()
            total += loss_value * n
            count += n
            for k, v in _scalar_logs(state.logs).items():
                log_sums[k] = log_sums.get(k, 0.0) + v * n
            bar.set_postfix(loss=f"{total / count:.4f}", refresh=False)
            bar.update(1)
        if state.scheduler is not None:
            state.scheduler.step()
        state.metrics["train_loss"] = total / max(count, 1)
        for k, v in log_sums.items():
            state.metrics[f"train_{k}"] = v / max(count, 1)
        state.metrics["train_samples"] = float(count)
        state.metrics["time"] = time.perf_counter() - start
        if eval_data is not None:
            if supervised or metrics is not None:
                results = evaluate(state.model, eval_data, metrics, device=state.device)
            else:
                results = evaluate_objective(state.model, eval_data, objective, state.device)
            for k, v in results.items():
                state.metrics[f"eval_{k}"] = v
            bar.set_postfix(
                loss=f"{state.metrics['train_loss']:.4f}",
                **{f"eval_{k}": f"{v:.4g}" for k, v in results.items()},
            )
        bar.close()
        state.history.epochs.append(state.metrics)
        state.epoch += 1
        for cb in cbs:
            cb.on_epoch_end(state)
    for cb in cbs:
        cb.on_fit_end(state)


@torch.no_grad()
def evaluate_objective(
    model: nn.Module,
    data: Any,
    objective: Callable[[nn.Module, Any], Any],
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Sample-weighted mean of `objective`'s per-sample losses (`"loss"`) and scalar logs over
    `data`, in eval mode without gradients; the model's train/eval mode is restored afterwards."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(objective):
        raise TypeError(f"objective must be callable, got {objective!r}")
    _check_data("data", data)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    probe = LoopState(model, None, None, data, 1, torch.device(device))  # type: ignore[arg-type]
    was_training = model.training
    model.eval()
    sums: dict[str, float] = {"loss": 0.0}
    count = 0
    try:
        for probe.batch_idx, batch in enumerate(data):
            losses, logs = _unpack(
                objective(model, _to_device(batch, torch.device(device))), probe, True
            )
            n = max(losses.numel(), 1)
            sums["loss"] += float(losses.sum()) if losses.ndim else float(losses) * n
            for k, v in _scalar_logs(logs).items():
                sums[k] = sums.get(k, 0.0) + v * n
            count += n
    finally:
        model.train(was_training)
    return {k: v / count for k, v in sums.items()}


@torch.no_grad()
def evaluate(
    model: nn.Module,
    data: Any,
    metrics: Mapping[str, Metric] | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Average per-sample `metrics` (default: accuracy) of `model` over `data`, in eval mode.

    Each metric maps (outputs, targets) to a per-sample tensor; results are sample-weighted means.
    The model's train/eval mode is restored afterwards.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    _check_data("data", data)
    metrics = dict(metrics) if metrics is not None else {"accuracy": accuracy}
    if not metrics:
        raise ValueError("metrics must name at least one metric")
    for name, fn in metrics.items():
        if not callable(fn):
            raise TypeError(f"metrics[{name!r}] must be callable, got {fn!r}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    sums = dict.fromkeys(metrics, 0.0)
    count = 0
    try:
        for batch in data:
            inputs, targets, _ = split_batch(_to_device(batch, torch.device(device)))
            outputs = _forward(model, inputs)
            for name, fn in metrics.items():
                sums[name] += float(fn(outputs, targets).sum())
            count += len(targets)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("data yielded no samples to evaluate")
    return {k: v / count for k, v in sums.items()}
