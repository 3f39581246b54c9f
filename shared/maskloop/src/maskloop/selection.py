"""Data masks: which samples of a dataset of size N are trained on (one `Selection` per epoch).

A dynamic data-pruning method produces a `Selection` each epoch; `sampler()` turns it into a
`DataLoader` sampler (sharded across DDP ranks, so every rank trains on its share of the same
selection), `subset()` into a dataset view. `IndexedDataset` makes loaders yield sample indices so a
method can attribute per-sample losses to dataset positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, Sampler, Subset

from maskloop.checks import check_fraction, check_positive_int

__all__ = ["IndexedDataset", "Selection", "SelectionSampler"]


def _dataset_len(dataset: Any, name: str = "dataset") -> int:
    try:
        return len(dataset)
    except TypeError as err:
        raise TypeError(
            f"{name} must have a length (a map-style Dataset), got {type(dataset).__name__}"
        ) from err


class Selection:
    """The kept indices (sorted, unique) of a dataset of size `n`."""

    def __init__(self, indices: torch.Tensor | Sequence[int], n: int) -> None:
        n = check_positive_int("n", n)
        idx = torch.as_tensor(indices)
        if idx.numel() == 0:
            raise ValueError("a Selection must keep at least one sample; got no indices")
        if idx.dtype == torch.bool:
            raise TypeError(
                "indices must be integer positions; use Selection.from_mask for a bool mask"
            )
        if idx.is_floating_point() or idx.is_complex():
            raise TypeError(f"indices must be integers, got dtype {idx.dtype}")
        src = idx
        idx = idx.to(torch.long).flatten()
        # already strictly increasing (what selections usually are): no sort needed
        ascending = idx.numel() < 2 or bool((idx[1:] > idx[:-1]).all())
        lo, hi = (int(idx[0]), int(idx[-1])) if ascending else (int(idx.min()), int(idx.max()))
        if lo < 0 or hi >= n:
            raise ValueError(f"indices must lie in [0, {n}); got min {lo}, max {hi}")
        if ascending:
            uniq = idx.clone() if idx.data_ptr() == src.data_ptr() else idx  # never the caller's
        else:
            uniq = torch.unique(idx, sorted=True)
        if uniq.numel() != idx.numel():
            raise ValueError(f"indices contain {idx.numel() - uniq.numel()} duplicates")
        self.indices: torch.Tensor = uniq
        self.n = n

    @classmethod
    def full(cls, n: int) -> Selection:
        """Every sample."""
        n = check_positive_int("n", n)
        return cls(torch.arange(n), n)

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> Selection:
        """The samples where the boolean `mask` (shape (n,)) is True."""
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool or mask.ndim != 1:
            raise TypeError("mask must be a 1-D bool tensor")
        return cls(torch.nonzero(mask).flatten(), mask.numel())

    @classmethod
    def from_scores(cls, scores: torch.Tensor, keep: float, largest: bool = True) -> Selection:
        """Keep the `max(1, floor(keep * n + 0.5))` highest (or lowest) scored samples.

        Ties are broken deterministically: among equal scores the lower index is kept.
        """
        keep = check_fraction("keep", keep, low_inclusive=False, high_inclusive=True)
        scores = torch.as_tensor(scores)
        if scores.ndim != 1 or scores.numel() == 0:
            raise ValueError(
                f"scores must be a non-empty 1-D tensor, got shape {tuple(scores.shape)}"
            )
        scores = scores.detach().to(torch.float64).cpu()
        if torch.isnan(scores).any():
            raise ValueError("scores contain NaN")
        n = scores.numel()
        k = cls.kept_count(n, keep)
        key = -scores if largest else scores
        order = torch.argsort(key, stable=True)
        return cls(order[:k], n)

    @classmethod
    def random(cls, n: int, keep: float, generator: torch.Generator | None = None) -> Selection:
        """A uniformly random subset of `Selection.kept_count(n, keep)` samples."""
        n = check_positive_int("n", n)
        keep = check_fraction("keep", keep, low_inclusive=False, high_inclusive=True)
        perm = torch.randperm(n, generator=generator)
        return cls(perm[: cls.kept_count(n, keep)], n)

    @staticmethod
    def kept_count(n: int, keep: float) -> int:
        """How many of `n` samples a keep ratio retains: max(1, floor(keep * n + 0.5)) (half rounds up)."""
        return max(1, min(n, math.floor(keep * n + 0.5)))

    @property
    def keep(self) -> float:
        """The achieved kept fraction."""
        return self.indices.numel() / self.n

    def __len__(self) -> int:
        return self.indices.numel()

    def __repr__(self) -> str:
        return f"Selection({len(self)} of {self.n}, keep={self.keep:.4f})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Selection)
            and other.n == self.n
            and torch.equal(other.indices, self.indices)
        )

    __hash__ = None  # type: ignore[assignment]

    def mask(self) -> torch.Tensor:
        """Boolean (n,) tensor, True for kept samples."""
        m = torch.zeros(self.n, dtype=torch.bool)
        m[self.indices] = True
        return m

    def _check_dataset(self, dataset: Any) -> None:
        size = _dataset_len(dataset)
        if size != self.n:
            raise ValueError(f"the selection is over {self.n} samples but the dataset has {size}")

    def subset(self, dataset: Dataset) -> Subset:
        """A `torch.utils.data.Subset` view of the kept samples."""
        self._check_dataset(dataset)
        return Subset(dataset, self.indices.tolist())

    def sampler(
        self,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> SelectionSampler:
        """A sampler over the kept indices of the full dataset (DDP-aware; see `SelectionSampler`)."""
        return SelectionSampler(self, shuffle, generator, num_replicas, rank, seed)

    def state_dict(self) -> dict[str, Any]:
        """The selection as plain data."""
        return {"indices": self.indices.clone(), "n": self.n}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> Selection:
        """Inverse of `state_dict`."""
        return cls(state["indices"], int(state["n"]))


class SelectionSampler(Sampler[int]):
    """Yields the kept indices, shuffled per epoch, sharded across DDP ranks.

    Under `torch.distributed` (or with explicit `num_replicas` / `rank`), every rank draws the same
    permutation (from `seed + epoch` when no generator is given) and takes every `num_replicas`-th
    element, padding by wrap-around so ranks see equal counts, as `DistributedSampler` does.

    The one way a data selection reaches a loop: build the loader once over the FULL dataset with this
    sampler, and let a method call `set_selection(sel)` (e.g. in `on_epoch_start`, or a Hugging Face
    `on_epoch_begin`) to change what the next epoch iterates. `fit`, a plain `for batch in loader`
    loop and a `Trainer` whose `get_train_dataloader` uses the sampler then all see the selection;
    nobody replaces the dataset or the loader. `SelectionSampler.full(n)` starts from every sample.
    """

    def __init__(
        self,
        selection: Selection,
        shuffle: bool = True,
        generator: torch.Generator | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        seed: int = 0,
    ) -> None:
        if not isinstance(selection, Selection):
            raise TypeError(f"selection must be a Selection, got {type(selection).__name__}")
        import torch.distributed as dist

        ddp = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if ddp else 1
        if rank is None:
            rank = dist.get_rank() if ddp else 0
        num_replicas = check_positive_int("num_replicas", num_replicas)
        if isinstance(rank, bool) or not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be an int in [0, {num_replicas}), got {rank!r}")
        self.selection = selection
        self.shuffle = shuffle
        self.generator = generator
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = int(seed)
        self.epoch = 0
        self.num_samples = math.ceil(len(selection) / num_replicas)

    @classmethod
    def full(cls, n: int, **kwargs: Any) -> SelectionSampler:
        """A sampler over all `n` samples (until `set_selection` narrows it)."""
        return cls(Selection.full(n), **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch's permutation (used when no generator is given)."""
        self.epoch = int(epoch)

    def set_selection(self, selection: Selection) -> None:
        """Iterate `selection` from the next `iter()` on (same dataset size `n`)."""
        if not isinstance(selection, Selection):
            raise TypeError(f"selection must be a Selection, got {type(selection).__name__}")
        if selection.n != self.selection.n:
            raise ValueError(
                f"selection is over {selection.n} samples but this sampler's dataset has "
                f"{self.selection.n}"
            )
        self.selection = selection
        self.num_samples = math.ceil(len(selection) / self.num_replicas)

    def state_dict(self) -> dict[str, Any]:
        """The current selection and epoch (a callback owning the sampler saves this)."""
        return {"selection": self.selection.state_dict(), "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.set_selection(Selection.from_state_dict(state["selection"]))
        self.epoch = int(state["epoch"])

    def _order(self) -> torch.Tensor:
        idx = self.selection.indices
        if not self.shuffle:
            return idx
        g = self.generator
        if g is None:
            g = torch.Generator().manual_seed(self.seed + self.epoch)
        return idx[torch.randperm(len(idx), generator=g)]

    def __iter__(self) -> Iterator[int]:
        order = self._order()
        total = self.num_samples * self.num_replicas
        if total > len(order):
            reps = math.ceil(total / len(order))
            order = order.repeat(reps)[:total]
        return iter(order[self.rank : total : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.num_samples


class IndexedDataset(Dataset):
    """Wraps a dataset of (x, y) items so items become (x, y, index)."""

    def __init__(self, dataset: Dataset) -> None:
        _dataset_len(dataset)
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> tuple[Any, Any, int]:
        item = self.dataset[i]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise ValueError(
                f"IndexedDataset expects items (inputs, target); item {i} is {type(item).__name__}"
            )
        return item[0], item[1], i
