"""Integrations of a `DataPruner` into training loops: `maskloop.fit` and a plain PyTorch loop.

`maskloop.fit`: pass `PrunerCallback(pruner, dataset)` in `callbacks`; it swaps in each epoch's
loader (sampler over the selection, DDP-aware), feeds the training forward pass to the pruner
(`on_loss`, with features read by `maskloop.FeatureHook`), reweights per-sample losses where the
method asks (InfoBatch), and re-scores at epoch end. Its `state_dict` is the pruner's, so
`maskloop.Checkpoint` resumes the same scores and schedule.

Plain loop: `PrunedLoader(pruner, dataset, batch_size)` is iterable per epoch and yields
(x, y, index) batches; call `pruner.update(losses, idx, logits, hook.features, y)` for the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from maskloop import Callback, FeatureHook, IndexedDataset, LoopState
from torch.utils.data import DataLoader

from ted_prune.pruner import DataPruner

__all__ = ["PrunedLoader", "PrunerCallback", "indexed"]


def indexed(dataset: Any) -> Any:
    """`dataset` whose items carry their index: (x, y) items are wrapped in `IndexedDataset`;
    mapping items and (x, y, index) items are used as they are."""
    item = dataset[0]
    if isinstance(item, (tuple, list)) and len(item) == 2:
        return IndexedDataset(dataset)
    if isinstance(item, Mapping) and "index" not in item:
        raise ValueError("mapping items need an 'index' entry (the sample's dataset position)")
    return dataset


class PrunedLoader:
    """Per-epoch DataLoader over the pruner's current selection (for your own loop).

    `iter(loader)` builds the epoch's loader from `pruner.select()`; batches carry indices.
    """

    def __init__(
        self,
        pruner: DataPruner,
        dataset: Any,
        batch_size: int = 64,
        collate_fn: Callable | None = None,
        shuffle: bool = True,
        **loader_kw: Any,
    ) -> None:
        if not isinstance(pruner, DataPruner):
            raise TypeError(f"pruner must be a DataPruner, got {type(pruner).__name__}")
        if len(dataset) != pruner.n:
            raise ValueError(
                f"dataset has {len(dataset)} samples but the pruner was built for {pruner.n}"
            )
        self.pruner = pruner
        self.dataset = indexed(dataset)
        self.batch_size = batch_size
        self.collate_fn = collate_fn
        self.shuffle = shuffle
        self.loader_kw = loader_kw

    def loader(self) -> DataLoader:
        """This epoch's DataLoader."""
        return DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self.pruner.sampler(shuffle=self.shuffle),
            collate_fn=self.collate_fn,
            **self.loader_kw,
        )

    def __iter__(self) -> Iterator[Any]:
        return iter(self.loader())

    def __len__(self) -> int:
        return len(self.loader())


class PrunerCallback(Callback):
    """`maskloop.fit` callback running a `DataPruner` (TED or a baseline).

    Args:
        pruner: the pruner; its `n` must equal `len(dataset)`.
        dataset: the training dataset (items (x, y), (x, y, index) or mappings with 'labels' and
            'index'); the callback builds each epoch's loader from it, ignoring `fit`'s train_data.
        batch_size, collate_fn: for the epoch loaders and the re-scoring pass.
        layer: feature layer for `FeatureHook` (default: the pruner's `layer`, else last nn.Linear).
    """

    order = -5

    def __init__(
        self,
        pruner: DataPruner,
        dataset: Any,
        batch_size: int = 64,
        collate_fn: Callable | None = None,
        layer: Any = None,
    ) -> None:
        self.loader = PrunedLoader(pruner, dataset, batch_size, collate_fn)
        self.pruner = pruner
        self.raw_dataset = dataset
        self.layer = layer if layer is not None else getattr(pruner, "layer", None)
        self.hook: FeatureHook | None = None

    def on_fit_start(self, state: LoopState) -> None:
        if self.pruner.epochs != state.epochs:
            raise ValueError(
                f"the pruner was built for epochs={self.pruner.epochs} but fit runs {state.epochs}"
            )
        if self.pruner.uses_features:
            self.hook = FeatureHook(state.model, self.layer)

    def on_epoch_start(self, state: LoopState) -> None:
        self.pruner.select(state.epoch)
        state.train_data = self.loader.loader()

    def on_loss(self, state: LoopState) -> None:
        if state.indices is None:
            raise ValueError("batches carry no indices: the dataset must yield (x, y, index)")
        if state.losses is None:
            raise ValueError("loss_fn must return per-sample losses (reduction='none')")
        feats = self.hook.features if self.hook is not None else None
        self.pruner.observe(state.indices, state.outputs, feats, state.targets, state.losses)
        if self.pruner.reweights:
            w = self.pruner.weights(state.indices.cpu())
            state.losses = state.losses * w.to(state.losses.device, state.losses.dtype)

    def on_epoch_end(self, state: LoopState) -> None:
        rec = self.pruner.end_epoch(
            state.model,
            self.raw_dataset,
            batch_size=max(self.loader.batch_size, 256),
            collate_fn=self.loader.collate_fn,
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
