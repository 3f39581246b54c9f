"""Integrations of a `DataPruner` into training loops: `maskloop.fit` and a plain PyTorch loop.

Selection reaches every loop one way: the pruner's `maskloop.SelectionSampler`
(`pruner.sampler`), put into ONE DataLoader over the full dataset, whose items carry their index:

    loader = DataLoader(IndexedDataset(dataset), sampler=pruner.sampler, batch_size=64)

`maskloop.fit(model, loader, ..., callbacks=[PrunerCallback(pruner)])` then iterates that loader
(the callback checks that it holds the pruner's sampler and never replaces it); the callback feeds
the training forward pass to the pruner (`on_loss`, with features read by `maskloop.FeatureHook`),
reweights per-sample losses where the method asks (InfoBatch, TED's `selection="sample"`), and
closes each epoch (re-scoring, next selection). Its `state_dict` is the pruner's, so
`maskloop.Checkpoint` resumes the same scores and schedule.

Plain loop: iterate the same loader, call `pruner.update(losses, idx, logits, features, y)` per
batch and `pruner.end_epoch(model, dataset)` per epoch.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from maskloop import Callback, FeatureHook, IndexedDataset, LoopState, SelectionSampler

from ted_prune.pruner import DataPruner

__all__ = ["PrunerCallback", "find_sampler", "indexed"]


def indexed(dataset: Any) -> Any:
    """`dataset` whose items carry their index: (x, y) items are wrapped in `IndexedDataset`;
    mapping items and (x, y, index) items are used as they are."""
    item = dataset[0]
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return IndexedDataset(dataset)
    if isinstance(item, Mapping) and "index" not in item:
        raise ValueError("mapping items need an 'index' entry (the sample's dataset position)")
    return dataset


def find_sampler(loader: Any) -> SelectionSampler | None:
    """The `SelectionSampler` a DataLoader draws from: its `sampler`, or the sampler of its
    batch sampler (`batch_sampler=BatchSampler(pruner.sampler, ...)`, or a `BatchSampler` given
    as `sampler` with `batch_size=None`)."""
    for s in (getattr(loader, "sampler", None),
              getattr(getattr(loader, "batch_sampler", None), "sampler", None),
              getattr(getattr(loader, "sampler", None), "sampler", None)):  # fmt: skip
        if isinstance(s, SelectionSampler):
            return s
    return None


def _usage(pruner: DataPruner) -> str:
    return (
        "build the loader you pass to fit over the full dataset with the pruner's sampler: "
        "DataLoader(IndexedDataset(dataset), sampler=pruner.sampler, batch_size=...) "
        f"(dataset of {pruner.n} samples)"
    )


class PrunerCallback(Callback):
    """`maskloop.fit` callback running a `DataPruner` (TED or a baseline).

    Args:
        pruner: the pruner; the DataLoader given to `fit` must draw from `pruner.sampler`.
        dataset: the training dataset for the re-scoring passes (default: the loader's dataset,
            unwrapped from `maskloop.IndexedDataset`).
        batch_size, collate_fn: of the re-scoring passes (default: max(the loader's batch size,
            256) and the loader's collate_fn).
        layer: feature layer for `FeatureHook` (default: the pruner's `layer`, else last nn.Linear).
    """

    order = -5

    def __init__(
        self,
        pruner: DataPruner,
        dataset: Any = None,
        batch_size: int | None = None,
        collate_fn: Callable | None = None,
        layer: Any = None,
    ) -> None:
        if not isinstance(pruner, DataPruner):
            raise TypeError(f"pruner must be a DataPruner, got {type(pruner).__name__}")
        if dataset is not None and len(dataset) != pruner.n:
            raise ValueError(
                f"dataset has {len(dataset)} samples but the pruner was built for {pruner.n}"
            )
        self.pruner = pruner
        self.dataset = dataset
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.layer = layer if layer is not None else getattr(pruner, "layer", None)
        self.hook: FeatureHook | None = None

    def on_fit_start(self, state: LoopState) -> None:
        if self.pruner.epochs != state.epochs:
            raise ValueError(
                f"the pruner was built for epochs={self.pruner.epochs} but fit runs {state.epochs}"
            )
        loader = state.train_data
        sampler = find_sampler(loader)
        if sampler is None:
            raise ValueError(
                f"the DataLoader given to fit has no SelectionSampler: {_usage(self.pruner)}"
            )
        if sampler is not self.pruner.sampler:
            raise ValueError(
                f"the DataLoader given to fit draws from another SelectionSampler than this "
                f"pruner's: {_usage(self.pruner)}"
            )
        if (sampler.num_replicas, sampler.rank) != (state.world_size, state.rank):
            # the loader was built before fit started torch.distributed: shard over fit's ranks
            sampler.num_replicas, sampler.rank = state.world_size, state.rank
            sampler.set_selection(sampler.selection)  # recounts the per-rank samples
        if self.dataset is None:
            ds = getattr(loader, "dataset", None)
            self.dataset = ds.dataset if isinstance(ds, IndexedDataset) else ds
        if self.batch_size is None:
            self.batch_size = max(getattr(loader, "batch_size", None) or 0, 256)
        if self.collate_fn is None:
            self.collate_fn = getattr(loader, "collate_fn", None)
            if getattr(self.collate_fn, "__module__", "").startswith("torch.utils.data"):
                self.collate_fn = None  # the default collation: let the pruner slice tensors
        if self.pruner.uses_features:
            self.hook = FeatureHook(state.model, self.layer)

    def on_epoch_start(self, state: LoopState) -> None:
        if self.pruner.epoch != state.epoch:
            raise ValueError(
                f"fit is at epoch {state.epoch} but the pruner at epoch {self.pruner.epoch}: "
                "resume both from the same maskloop.Checkpoint"
            )
        self.pruner.select(state.epoch)  # hands the selection to pruner.sampler (already there)

    def on_loss(self, state: LoopState) -> None:
        if state.indices is None:
            raise ValueError(
                "batches carry no indices: the dataset must yield (x, y, index); wrap it in "
                "maskloop.IndexedDataset"
            )
        if state.losses is None:
            raise ValueError("loss_fn must return per-sample losses (reduction='none')")
        feats = self.hook.features if self.hook is not None else None
        w = self.pruner.observe_weights(
            state.indices, state.outputs, feats, state.targets, state.losses
        )
        if w is not None:
            state.losses = state.losses * w

    def on_epoch_end(self, state: LoopState) -> None:
        rec = self.pruner.end_epoch(
            state.model,
            self.dataset,
            batch_size=self.batch_size or 256,
            collate_fn=self.collate_fn,
            device=state.device,
        )
        state.metrics["prune_keep"] = rec["keep"]
        state.metrics["prune_trained"] = rec["trained"]
        state.metrics["prune_scored"] = rec["scored"]

    def on_fit_end(self, state: LoopState) -> None:
        if self.hook is not None:
            self.hook.remove()
            self.hook = None

    def state_dict(self) -> dict[str, Any]:
        return self.pruner.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.pruner.load_state_dict(state)
