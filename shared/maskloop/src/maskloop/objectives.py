"""Objectives: what `fit` minimises, as a map from `(model, batch)` to per-sample losses.

An objective is any callable `objective(model, batch)` returning either a 1-D tensor of per-sample
losses `l_i` (one per sample of the batch, before any reduction) or a pair `(losses, logs)` where
`logs` is a mapping of extra values. The loop minimises the mean `L = (1/B) sum_i l_i` after the
`on_loss` callbacks (which may reweight the `l_i`). In `logs`, numbers and one-element tensors are
averaged over the epoch (sample-weighted) and recorded in the history as `train_<name>`; larger
tensors are only handed to callbacks (`state.logs`); a tensor under `"outputs"` becomes
`state.outputs` (the model's outputs, as the classification objective provides them).

Supervised classification is `classification()`; label-free feature matching, retrieval losses or an
ELBO are objectives too (see `docs/architecture.md`), so every method gets `Checkpoint` resume, DDP,
the progress bar and all eight callback hooks from the same loop. Under DDP the objective receives
the `DistributedDataParallel` wrapper: call the model itself (`model(x)`), not its submodules, so that
gradients are all-reduced (reach submodules through `getattr(model, "module", model)` only for
computations without parameters to train). An objective with its own state
(e.g. a temperature, a running estimate) implements `state_dict` / `load_state_dict`; `Checkpoint`
then saves and resumes it with the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, Union, runtime_checkable

import torch
from torch import nn

from maskloop.batches import forward, split_batch

__all__ = ["Classification", "Objective", "ObjectiveResult", "classification"]

ObjectiveResult = Union[torch.Tensor, "tuple[torch.Tensor, Mapping[str, Any]]"]


@runtime_checkable
class Objective(Protocol):
    """`objective(model, batch) -> losses` or `(losses, logs)`; `losses` has one entry per sample."""

    def __call__(self, model: nn.Module, batch: Any) -> ObjectiveResult: ...


def _cross_entropy(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(outputs, targets, reduction="none")


class Classification:
    """Supervised loss on `(inputs, targets[, indices])` or mapping batches: `l_i = loss_fn(f(x_i), y_i)`.

    `loss_fn(outputs, targets)` should return per-sample losses (`reduction="none"`, the default is
    cross-entropy) so callbacks can reweight them; a loss that reduces itself to a scalar still trains,
    but then `state.losses` is `None` for the callbacks (as in earlier versions of `fit`).
    Returns `(losses, {"outputs": logits})`.
    """

    def __init__(self, loss_fn: Callable[..., torch.Tensor] | None = None) -> None:
        if loss_fn is not None and not callable(loss_fn):
            raise TypeError(f"loss_fn must be callable, got {loss_fn!r}")
        self.loss_fn = loss_fn if loss_fn is not None else _cross_entropy

    def compute(
        self, model: nn.Module, inputs: Any, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(losses, outputs) of `model` on already split inputs and targets."""
        outputs = forward(model, inputs)
        return self.loss_fn(outputs, targets), outputs

    def __call__(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        inputs, targets, _ = split_batch(batch)
        losses, outputs = self.compute(model, inputs, targets)
        return losses, {"outputs": outputs}

    def __repr__(self) -> str:
        return f"classification({getattr(self.loss_fn, '__name__', self.loss_fn)!r})"


def classification(loss_fn: Callable[..., torch.Tensor] | None = None) -> Classification:
    """The supervised objective `fit` uses by default (per-sample cross-entropy unless `loss_fn`)."""
    return Classification(loss_fn)
