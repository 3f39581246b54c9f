"""`TED`: the three-line integration (the way InfoBatch's users work).

    data = ted_prune.TED(train_set, epochs=E, budget=0.7)
    loader = DataLoader(data, batch_size=B, sampler=data.sampler)
    ...  loss = data.update(per_sample_loss)          # inside the training loop, per batch

`data` yields the items of `train_set` unchanged. `data.sampler` iterates the current epoch's
selection and remembers its order, so `update` knows the dataset indices of each batch (batches
are consumed in the sampler's order; `num_workers` and `drop_last` are fine). The logits and the
classifier's input features come from a forward hook TED installs itself: by default a global
`nn.Linear` forward hook that keeps the last Linear call of the training forward pass (the
classifier head); pass `model=` (and `layer=`, the head module or its name) to hook one model
only, which also enables the forward-only re-scoring of pruned samples. Labels are read from
`train_set` (`tensors[1]`, `.targets`, `.labels`, mapping items' "labels", or item[1]) or passed
as `update(loss, targets=y)`. Each epoch is closed (scores, budget record) when its last batch
was consumed or, with `drop_last`, when the sampler starts the next epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset, Sampler

from ted_prune.ted import TEDPruner

__all__ = ["TED"]


class _LastLinear:
    """Forward hook keeping (input, output) of the last `nn.Linear` call (or of one `layer`)."""

    def __init__(self, module: nn.Module | None) -> None:
        self.inputs: torch.Tensor | None = None
        self.outputs: torch.Tensor | None = None
        if module is None:
            self._handle = nn.modules.module.register_module_forward_hook(self._global)
        else:
            self._handle = module.register_forward_hook(self._hook)

    def _global(self, module: nn.Module, args: tuple, out: Any) -> None:
        if isinstance(module, nn.Linear):
            self._hook(module, args, out)

    def _hook(self, module: nn.Module, args: tuple, out: Any) -> None:
        if torch.is_grad_enabled() and args and isinstance(args[0], torch.Tensor):
            self.inputs = args[0]
            self.outputs = out if isinstance(out, torch.Tensor) else None

    def remove(self) -> None:
        self._handle.remove()


class _Sampler(Sampler[int]):
    """The epoch's selection, in a shuffled order that `TED.update` follows."""

    def __init__(self, owner: TED) -> None:
        self.owner = owner

    def __iter__(self) -> Iterator[int]:
        order = self.owner._start_epoch()
        return iter(order.tolist())

    def __len__(self) -> int:
        return len(self.owner.pruner.select())


class TED(Dataset):
    """TED dynamic data pruning as a dataset wrapper with a sampler and a per-sample loss hook.

    Args:
        dataset: the training set (map-style).
        epochs: the number of epochs you will train (E).
        budget: the fraction of sample-gradients to spend (achieved f; see `TEDPruner`).
        model: optional; hook only this model (its last nn.Linear, or `layer`) and re-score pruned
            samples with forward-only passes every `rescore_every` epochs. Without it, a global
            Linear hook is used and scores come from the training forward pass only.
        layer: the classifier head (module or name in `model`) whose input are the features.
        batch_size: batch size of the re-scoring passes (with `model`).
        **options: any `TEDPruner` option (direction, target, rank, selection, balance, ...).
    """

    def __init__(
        self,
        dataset: Any,
        epochs: int,
        budget: float = 0.7,
        *,
        model: nn.Module | None = None,
        layer: str | nn.Module | None = None,
        batch_size: int = 256,
        **options: Any,
    ) -> None:
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module or None, got {type(model).__name__}")
        if model is None and layer is not None and not isinstance(layer, nn.Module):
            raise ValueError("layer given by name needs model=: pass the model it belongs to")
        if model is None:
            options.setdefault("rescore_every", 0)
        self.pruner = TEDPruner(dataset, epochs, budget=budget, layer=layer, **options)
        self.dataset = dataset
        self.model = model
        self.batch_size = batch_size
        head = None
        if model is not None:
            from maskloop import FeatureHook

            probe = FeatureHook(model, layer)  # resolves names, errors if there is no Linear
            head = probe.module
            probe.remove()
        elif isinstance(layer, nn.Module):
            head = layer
        self._hook = _LastLinear(head)
        self.sampler = _Sampler(self)
        self._labels = _fast_labels(dataset)
        self._order: torch.Tensor | None = None
        self._cursor = 0
        self._open = False

    # -- dataset -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:
        return self.dataset[index]

    # -- epochs --------------------------------------------------------------------------------
    def _start_epoch(self) -> torch.Tensor:
        if self._open:
            self._close()
        if self.pruner.epoch >= self.pruner.epochs:
            raise RuntimeError(
                f"TED was built for epochs={self.pruner.epochs} and all of them have run"
            )
        g = torch.Generator().manual_seed(self.pruner.seed * 1_000_003 + self.pruner.epoch)
        sel = self.pruner.select().indices
        self._order = sel[torch.randperm(sel.numel(), generator=g)]
        self._cursor = 0
        self._open = True
        return self._order

    def _close(self) -> None:
        if self.model is not None:
            self.pruner.end_epoch(self.model, self.dataset, batch_size=self.batch_size)
        else:
            self.pruner.end_epoch()
        self._open = False

    # -- the loss hook -------------------------------------------------------------------------
    def update(self, losses: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """Record the batch (per-sample `losses`, reduction='none') and return the mean loss to
        back-propagate (weighted when `selection="sample"`)."""
        if not isinstance(losses, torch.Tensor) or losses.ndim != 1:
            raise ValueError(
                "update() takes the per-sample losses, shape (batch,) (use reduction='none'); got "
                f"{getattr(losses, 'shape', type(losses).__name__)}"
            )
        if not bool(torch.isfinite(losses.detach()).all()):
            raise ValueError("losses contain NaN or inf")
        if not self._open or self._order is None:
            raise RuntimeError("iterate a DataLoader built with sampler=data.sampler first")
        b = losses.shape[0]
        idx = self._order[self._cursor : self._cursor + b]
        if idx.numel() != b:
            raise ValueError(
                f"batch of {b} losses but only {idx.numel()} samples left in this epoch: is the "
                "DataLoader built with sampler=data.sampler, and update() called once per batch?"
            )
        feats, logits = self._hook.inputs, self._hook.outputs
        if feats is None or logits is None or feats.ndim != 2 or logits.shape[:1] != (b,):
            raise ValueError(
                "TED could not read the classifier's input and logits for this batch from a "
                "forward hook (no nn.Linear head with a (batch, features) input ran). Pass "
                "model= and layer= (the classifier head module) to TED(...)."
            )
        if targets is None:
            targets = self._targets(idx)
        self._cursor += b
        loss = self.pruner.update(losses, idx, logits, feats, targets)
        if self._cursor >= self._order.numel():
            self._close()
        return loss

    def _targets(self, idx: torch.Tensor) -> torch.Tensor:
        if self._labels is not None:
            return self._labels[idx]
        out = []
        for i in idx.tolist():
            item = self.dataset[i]
            if isinstance(item, Mapping) and "labels" in item:
                out.append(int(item["labels"]))
            elif isinstance(item, (tuple, list)) and len(item) >= 2:
                out.append(int(item[1]))
            else:
                raise ValueError(
                    "cannot read labels from the dataset's items: pass update(loss, targets=y)"
                )
        return torch.tensor(out, dtype=torch.long)

    def budget(self) -> dict[str, float]:
        """The spent budget so far (`TEDPruner.budget`)."""
        return self.pruner.budget()

    def close(self) -> None:
        """Remove the forward hook (the object stays readable)."""
        self._hook.remove()

    def __del__(self) -> None:  # the global hook must not outlive the wrapper
        hook = getattr(self, "_hook", None)
        if hook is not None:
            hook.remove()


def _fast_labels(dataset: Any) -> torch.Tensor | None:
    """Labels of every sample without loading items, where the dataset exposes them."""
    tensors = getattr(dataset, "tensors", None)
    if isinstance(tensors, (tuple, list)) and len(tensors) >= 2:
        return torch.as_tensor(tensors[1]).long().cpu()
    for name in ("targets", "labels"):
        v = getattr(dataset, name, None)
        if v is not None and not callable(v):
            try:
                t = torch.as_tensor(v).long().cpu()
            except (TypeError, ValueError):
                continue
            if t.ndim == 1 and t.numel() == len(dataset):
                return t
    return None
