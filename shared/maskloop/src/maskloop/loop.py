"""The training loop every method plugs into through callbacks.

`fit` is a plain supervised loop with one extension point per moment a pruning method needs: per-sample
losses before the reduction (`on_loss`: data pruning reweights here), gradients before the step
(`on_after_backward`: SEVEN reads them here), and the step's end (`on_step_end`: masks are re-applied).
It runs unchanged under `torchrun` (DDP, gloo on CPU) and never hides an exception.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from maskloop._checks import check_positive_int

__all__ = [
    "Callback",
    "History",
    "LoopState",
    "accuracy",
    "evaluate",
    "fit",
    "seed_everything",
    "split_batch",
]

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
    """Everything a callback may read (and the fields it may change) during `fit`."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_fn: Callable[..., torch.Tensor]
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
        """After the batch is on the device, before the forward pass."""

    def on_loss(self, state: LoopState) -> None:
        """After the forward pass; may replace `state.losses` (per-sample) to reweight samples."""

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


def _to_device(obj: Any, device: torch.device) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def split_batch(batch: Any) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """(inputs, targets, indices) from an (x, y), (x, y, index) or mapping batch with 'labels'.

    The batch convention of `fit`, public so methods reading batches in their own passes agree.
    """
    if isinstance(batch, Mapping):
        if "labels" not in batch:
            raise ValueError(f"a mapping batch needs a 'labels' entry; got keys {sorted(batch)}")
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
        return inputs, batch["labels"], batch.get("index")
    if isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    raise ValueError(
        "a batch must be (inputs, targets), (inputs, targets, indices) or a mapping with 'labels'; "
        f"got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
    )


def _forward(model: nn.Module, inputs: Any) -> torch.Tensor:
    out = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return out.logits if hasattr(out, "logits") else out


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

    def close(self) -> None:
        if self.created:
            import torch.distributed as dist

            dist.destroy_process_group()


def fit(
    model: nn.Module,
    train_data: Any,
    *,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[..., torch.Tensor],
    eval_data: Any = None,
    metrics: Mapping[str, Metric] | None = None,
    scheduler: Any = None,
    callbacks: Sequence[Callback] = (),
    device: torch.device | str | None = None,
    progress: bool = True,
) -> History:
    """Train `model` for `epochs` epochs and return its `History`.

    `loss_fn(outputs, targets)` should return per-sample losses (`reduction="none"`) so callbacks can
    reweight them; the step minimises their mean. `scheduler.step()` runs once per epoch. With
    `eval_data`, `evaluate` runs after each epoch and its metrics are recorded as `eval_<name>`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    epochs = check_positive_int("epochs", epochs)
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(
            f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
        )
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
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
        loss_fn=loss_fn,
        train_data=train_data,
        epochs=epochs,
        device=device,
        scheduler=scheduler,
        callbacks=sorted(callbacks, key=lambda c: c.order),
        rank=dist.rank,
        world_size=dist.world_size,
    )
    state.forward_model = dist.wrap(model)
    try:
        _run(state, dist, eval_data, metrics, progress)
    finally:
        dist.close()
    return state.history


def _run(
    state: LoopState,
    dist: _Distributed,
    eval_data: Any,
    metrics: Mapping[str, Metric] | None,
    progress: bool,
) -> None:
    from tqdm.auto import tqdm

    cbs = state.callbacks
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
        bar = tqdm(
            data,
            desc=f"epoch {state.epoch + 1}/{state.epochs}",
            disable=not progress or state.rank != 0,
            leave=False,
        )
        for state.batch_idx, batch in enumerate(bar):
            state.batch = _to_device(batch, state.device)
            state.inputs, state.targets, state.indices = split_batch(state.batch)
            for cb in cbs:
                cb.on_batch_start(state)
            state.optimizer.zero_grad(set_to_none=True)
            state.outputs = _forward(state.forward_model, state.inputs)
            losses = state.loss_fn(state.outputs, state.targets)
            state.losses = losses if losses.ndim > 0 else None
            for cb in cbs:
                cb.on_loss(state)
            state.loss = state.losses.mean() if state.losses is not None else losses
            if not torch.isfinite(state.loss):
                raise FloatingPointError(
                    f"non-finite loss {state.loss.item()} at epoch {state.epoch}, batch "
                    f"{state.batch_idx}: lower the learning rate or check the inputs"
                )
            state.loss.backward()
            for cb in cbs:
                cb.on_after_backward(state)
            state.optimizer.step()
            state.step += 1
            for cb in cbs:
                cb.on_step_end(state)
            n = len(state.targets)
            total += float(state.loss.detach()) * n
            count += n
            bar.set_postfix(loss=f"{total / count:.4f}")
        bar.close()
        if state.scheduler is not None:
            state.scheduler.step()
        state.metrics["train_loss"] = total / max(count, 1)
        state.metrics["train_samples"] = float(count)
        state.metrics["time"] = time.perf_counter() - start
        if eval_data is not None:
            for k, v in evaluate(state.model, eval_data, metrics, device=state.device).items():
                state.metrics[f"eval_{k}"] = v
        state.history.epochs.append(state.metrics)
        state.epoch += 1
        for cb in cbs:
            cb.on_epoch_end(state)
    for cb in cbs:
        cb.on_fit_end(state)


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
