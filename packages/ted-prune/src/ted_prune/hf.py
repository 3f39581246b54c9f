"""Hugging Face `Trainer` integration: a sampler that follows the pruner's per-epoch selection,
a per-sample loss hook (`PrunedTrainer.compute_loss`) and a `TrainerCallback` that closes each epoch.

The training dataset's items are mappings with 'labels' and 'index' (the sample's position; see
`WithIndex`). `PrunedTrainer` removes 'index' before the model call, computes per-sample
cross-entropy, feeds logits and penultimate features (a `maskloop.FeatureHook` on the classifier
head, the last `nn.Linear` by default) to the pruner, and returns the weighted mean. Note: the
Trainer sizes its LR schedule from the first (full) epoch, so with pruning the schedule does not
reach its end; pass `max_steps` or a constant schedule if that matters.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from maskloop import FeatureHook
from torch.nn import functional as F
from torch.utils.data import Dataset, Sampler
from transformers import Trainer, TrainerCallback

from ted_prune.pruner import DataPruner

__all__ = ["PrunedTrainer", "PrunerSampler", "PrunerTrainerCallback", "WithIndex"]


class WithIndex(Dataset):
    """Adds the 'index' entry to mapping items of `dataset` (e.g. a tokenised dataset)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.dataset[i]
        if not isinstance(item, Mapping):
            raise TypeError(f"items must be mappings, item {i} is {type(item).__name__}")
        return {**item, "index": i}


class PrunerSampler(Sampler[int]):
    """Iterates the pruner's current selection; `set_epoch(e)` (called by the Trainer) moves to epoch e.

    Not sharded: under DDP, accelerate shards the batches of this single sequence across ranks, and
    every rank computes the same selection (scores are synchronised in `end_epoch`).
    """

    def __init__(self, pruner: DataPruner) -> None:
        self.pruner = pruner

    def set_epoch(self, epoch: int) -> None:
        self.pruner.select(int(epoch))

    def __iter__(self) -> Iterator[int]:
        return iter(self.pruner.sampler(num_replicas=1, rank=0))

    def __len__(self) -> int:
        return len(self.pruner.select())


class PrunerTrainerCallback(TrainerCallback):
    """Closes the pruner's epoch (re-scoring, budget record) at each Trainer epoch end."""

    def __init__(self, pruner: DataPruner, dataset: Any, collate_fn: Any = None) -> None:
        self.pruner = pruner
        self.dataset = dataset
        self.collate_fn = collate_fn

    def on_epoch_end(
        self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
    ) -> None:
        rec = self.pruner.end_epoch(
            model,
            self.dataset,
            batch_size=max(args.per_device_train_batch_size, 64),
            collate_fn=self.collate_fn,
            device=getattr(model, "device", None),
        )
        state.log_history.append(
            {"epoch": state.epoch, **{f"prune_{k}": v for k, v in rec.items()}}
        )


class PrunedTrainer(Trainer):
    """`transformers.Trainer` that trains on a `DataPruner`'s per-epoch selection.

    Usage: `PrunedTrainer(pruner=TEDPruner(train_ds, epochs=E), model=..., args=..., train_dataset=
    WithIndex(train_ds), data_collator=...)`. The dataset must yield 'index' (use `WithIndex`);
    `args.num_train_epochs` must equal the pruner's `epochs`.
    """

    def __init__(
        self, *args: Any, pruner: DataPruner, feature_layer: Any = None, **kw: Any
    ) -> None:
        if not isinstance(pruner, DataPruner):
            raise TypeError(f"pruner must be a DataPruner, got {type(pruner).__name__}")
        super().__init__(*args, **kw)
        if self.train_dataset is None or len(self.train_dataset) != pruner.n:
            size = None if self.train_dataset is None else len(self.train_dataset)
            raise ValueError(f"train_dataset has {size} samples, the pruner expects {pruner.n}")
        if int(self.args.num_train_epochs) != pruner.epochs:
            raise ValueError(
                f"args.num_train_epochs={self.args.num_train_epochs} but pruner.epochs={pruner.epochs}"
            )
        self.pruner = pruner
        layer = feature_layer if feature_layer is not None else getattr(pruner, "layer", None)
        self.feature_hook = FeatureHook(self.model, layer) if pruner.uses_features else None
        self.add_callback(PrunerTrainerCallback(pruner, self.train_dataset, self.data_collator))

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and "index" not in self._signature_columns:
            self._signature_columns.append("index")  # keep 'index' through column removal

    def _get_train_sampler(self, train_dataset: Any = None) -> Sampler:
        return PrunerSampler(self.pruner)

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        inputs = dict(inputs)
        index = inputs.pop("index", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
        losses = F.cross_entropy(logits.float(), labels, reduction="none")
        if model.training:
            if index is None:
                raise ValueError("training batches need 'index' (wrap the dataset in WithIndex)")
            feats = self.feature_hook.features if self.feature_hook is not None else None
            loss = self.pruner.update(losses, index, logits, feats, labels)
        else:
            loss = losses.mean()
        return (loss, outputs) if return_outputs else loss
