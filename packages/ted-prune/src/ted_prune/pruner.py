"""The interface every data pruner here shares, and its budget accounting.

A pruner decides, once per epoch, which samples are trained on (a `maskloop.Selection`), learns from
the training forward pass (`observe`: indices, logits, penultimate features, targets, per-sample
losses), and may re-score samples it did not train on at the end of the epoch (`end_epoch`). Every
epoch records how many samples received a gradient and how many were only scored (forward pass), so
methods are compared at the same *spent* budget, not at the same nominal keep ratio.
"""

from __future__ import annotations

import contextlib
import json
import numbers
import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import Selection, SelectionSampler
from maskloop.checks import check_int, check_keep
from maskloop.distributed import world_size
from maskloop.schedules import Schedule, constant, cubic
from torch import nn

__all__ = [
    "DataPruner",
    "ProgressiveSchedule",
    "keep_for_budget",
]


def _dataset_size(dataset: Any) -> int:
    if isinstance(dataset, bool):
        raise TypeError("dataset must be a map-style dataset or its length (int), got a bool")
    if isinstance(dataset, numbers.Integral):
        return check_int("dataset", dataset, 1)
    try:
        n = len(dataset)
    except TypeError as err:
        raise TypeError(
            f"dataset must be a map-style dataset (with len) or an int, got {type(dataset).__name__}"
        ) from err
    if n < 1:
        raise ValueError(f"dataset must hold at least one sample, got length {n}")
    return int(n)


def _as_cpu(t: Any, dtype: torch.dtype) -> torch.Tensor:
    """`t` as a detached 1-D/2-D CPU tensor of `dtype`, without copies or dispatches when it
    already is one (this runs for every training batch)."""
    if not isinstance(t, torch.Tensor):
        return torch.as_tensor(t, dtype=dtype)
    if t.requires_grad:
        t = t.detach()
    if t.dtype != dtype:
        t = t.to(dtype)
    if not t.is_cpu:
        t = t.cpu()
    return t


def index_range_error(indices: torch.Tensor, n: int, where: str = "") -> ValueError:
    """The `ValueError` for dataset indices outside [0, n) (`where` says which batch)."""
    lo, hi = (int(v) for v in torch.aminmax(indices))
    return ValueError(
        f"indices must lie in [0, {n}) (the dataset length); got [{lo}, {hi}]{where}: does the "
        "dataset match the pruner?"
    )


def indices_in_range(indices: torch.Tensor, n: int) -> bool:
    """Whether every entry of the 1-D int64 CPU tensor `indices` lies in [0, n), with ONE
    reduction: viewed as unsigned 64-bit integers, negative int64 values become >= 2^63 > n, so
    0 <= i < n  <=>  uint64(i) < n (one NumPy max instead of `aminmax` and two `.item()` calls)."""
    if indices.numel() == 0:
        return True
    return int(indices.numpy().view(np.uint64).max()) < n


class ProgressiveSchedule:
    """TED's keep-ratio schedule k_e over epochs (reconstruction).

    k_e = 1 for the first `warmup` epochs, then a cubic ramp (`maskloop.schedules.cubic`) from 1 down
    to `keep` over `ramp` epochs, `keep` afterwards, and 1 again for the last `anneal` epochs
    (InfoBatch-style annealing). `kind="constant"` skips the ramp (keep from the end of warm-up on).
    """

    def __init__(
        self,
        epochs: int,
        keep: float,
        warmup: int = 1,
        ramp: int = 0,
        anneal: int = 0,
        kind: str = "cubic",
    ) -> None:
        self.epochs = check_int("epochs", epochs, 1)
        self.keep = check_keep(keep, "keep")
        self.warmup = check_int("warmup", warmup, 0)
        self.ramp = check_int("ramp", ramp, 0)
        self.anneal = check_int("anneal", anneal, 0)
        if kind not in ("cubic", "constant"):
            raise ValueError(f"kind must be 'cubic' or 'constant', got {kind!r}")
        self.kind = kind
        if self.warmup + self.anneal > self.epochs:
            raise ValueError(
                f"warmup + anneal must be <= epochs, got warmup={warmup}, anneal={anneal}, "
                f"epochs={epochs}"
            )
        if kind == "cubic" and self.ramp > 0:
            self._ramp: Schedule = cubic(1.0, self.keep, self.warmup, self.warmup + self.ramp)
        else:
            self._ramp = constant(self.keep)

    def __call__(self, epoch: int) -> float:
        epoch = check_int("epoch", epoch, 0)
        if epoch < self.warmup or epoch >= self.epochs - self.anneal:
            return 1.0
        return float(self._ramp(epoch))

    def fractions(self) -> list[float]:
        """k_e for every epoch."""
        return [self(e) for e in range(self.epochs)]

    def mean(self) -> float:
        """Nominal trained fraction sum_e k_e / E."""
        return sum(self.fractions()) / self.epochs

    def state_dict(self) -> dict[str, Any]:
        """The schedule's parameters."""
        return {
            "epochs": self.epochs,
            "keep": self.keep,
            "warmup": self.warmup,
            "ramp": self.ramp,
            "anneal": self.anneal,
            "kind": self.kind,
        }

    def __repr__(self) -> str:
        return (
            "ProgressiveSchedule("
            + ", ".join(f"{k}={v}" for k, v in self.state_dict().items())
            + ")"
        )


def keep_for_budget(
    budget: float,
    epochs: int,
    warmup: int = 1,
    ramp: int = 0,
    anneal: int = 0,
    kind: str = "cubic",
) -> float:
    """The final keep ratio rho whose `ProgressiveSchedule` spends a `budget` fraction on average.

    Solves mean_e k_e(rho) = budget by bisection (the mean is increasing in rho). Raises if the
    warm-up and annealing epochs alone already exceed the budget.
    """
    budget = check_keep(budget, "budget")
    lo_sched = ProgressiveSchedule(epochs, 1e-9, warmup, ramp, anneal, kind)
    if lo_sched.mean() > budget + 1e-12:
        raise ValueError(
            f"budget={budget} is below what warm-up/ramp/anneal alone spend "
            f"({lo_sched.mean():.3f}); shorten them or raise the budget"
        )
    lo, hi = 1e-9, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        if ProgressiveSchedule(epochs, mid, warmup, ramp, anneal, kind).mean() < budget:
            lo = mid
        else:
            hi = mid
    return hi


def _check_logits(logits: torch.Tensor, batch: int) -> None:
    """Raise ValueError unless `logits` is (batch, classes): `DataPruner.observe`'s check, on
    both its paths."""
    if logits.ndim != 2 or logits.shape[0] != batch:
        raise ValueError(
            f"logits must have shape (batch, classes) with batch={batch}, got {tuple(logits.shape)}"
        )


def _like(w: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Loss weights `w` on the device and in the dtype of `like` (no copy when they already are)."""
    if w.dtype != like.dtype or not (like.is_cpu and w.is_cpu):
        w = w.to(like.device, like.dtype)
    return w


class DataPruner:
    """Base class: per-epoch `Selection`, observation hooks, budget accounting, state_dict.

    Subclasses implement `_select(epoch) -> Selection` and, if they learn from training, `_observe`
    and `_end_epoch`. Usage in any loop::

        loader = DataLoader(IndexedDataset(ds), sampler=pruner.sampler, batch_size=B)
        for epoch in range(E):
            for x, y, idx in loader:           # this epoch's kept samples
                ...  loss = pruner.update(losses, idx, logits, features, y)
            pruner.end_epoch(model, ds)        # re-scoring (if any), next epoch's selection

    `forward_cost` is the cost of a forward-only scoring pass relative to a training step on the
    same sample (about 1/3: one forward of forward + backward); it converts scored samples into
    sample-gradient equivalents in `budget()`.
    """

    name = "pruner"
    uses_features = False
    exact_plan = True  # planned_sizes() are the exact selection sizes
    reweights = False  # whether weights() can differ from 1 (InfoBatch)
    uses_losses = True  # whether _observe reads the per-sample losses
    # whether `_observe` checks the index range itself, before any row of the batch is written
    # (TED's staged observations: the first batch after each write at once, the others in one
    # reduction per write, and every batch whose loss weights are read); else `observe` checks
    # every batch
    checks_indices_later = False

    def __init__(self, dataset: Any, epochs: int, *, forward_cost: float = 1 / 3, seed: int = 0):
        self.n = _dataset_size(dataset)
        self.epochs = check_int("epochs", epochs, 1)
        self.forward_cost = check_keep(forward_cost, "forward_cost")
        self.seed = check_int("seed", seed, 0)
        self.epoch = 0
        self.log: list[dict[str, float]] = []
        self._current: Selection | None = None
        self._current_epoch = -1
        self._sampler: SelectionSampler | None = None
        self._sampler_epoch = -1
        self._trained = 0
        self._scored = 0
        self.score_seconds = 0.0
        # whether `_observe` does anything: the random and full-data baselines learn nothing from
        # a training batch, and `observe` then only checks the batch's shapes and counts it
        self._learns = type(self)._observe is not DataPruner._observe

    # --- selection -----------------------------------------------------------------------------
    def keep_ratio(self, epoch: int | None = None) -> float:
        """Nominal keep ratio of `epoch` (default: the current epoch)."""
        return 1.0

    def _select(self, epoch: int) -> Selection:
        return Selection.full(self.n)

    def planned_sizes(self) -> list[int]:
        """Selection size of every epoch as planned before training (used to size LR schedules).

        Exact for schedule-driven and static methods; `InfoBatch` gives its expected sizes."""
        return [Selection.kept_count(self.n, self.keep_ratio(e)) for e in range(self.epochs)]

    def planned_budget(self) -> dict[str, float]:
        """The budget the plan spends: trained fraction and f (no scoring passes by default)."""
        tr = sum(self.planned_sizes()) / (self.epochs * self.n)
        return {"trained": tr, "scored": 0.0, "f": tr}

    def select(self, epoch: int | None = None) -> Selection:
        """This epoch's `maskloop.Selection` (computed once per epoch, then cached)."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        if epoch != self.epoch:
            self.epoch = epoch
        if self._current is None or self._current_epoch != epoch:
            t0 = time.perf_counter()
            with single_thread():
                self._current = self._select(epoch)
            self._current_epoch = epoch
            self.score_seconds += time.perf_counter() - t0  # selecting is part of scoring
        self._push(epoch)
        return self._current

    @property
    def sampler(self) -> SelectionSampler:
        """The one `maskloop.SelectionSampler` this pruner drives (created on first use).

        Build the training loader once over the full dataset with it,
        `DataLoader(IndexedDataset(dataset), sampler=pruner.sampler, batch_size=B)`, and every loop
        (`maskloop.fit` with `PrunerCallback`, your own loop, Hugging Face `Trainer`) iterates this
        epoch's selection: `select(epoch)` and `end_epoch` hand each new selection to the sampler
        (`set_selection`) and reseed its shuffling generator with `seed + epoch`, so the order
        depends only on the pruner's epoch (not on the epoch number a loop passes to `set_epoch`).
        Under `torch.distributed` it shards the selection across ranks (see `make_sampler`).
        """
        if self._sampler is None:
            self.make_sampler()
        assert self._sampler is not None
        return self._sampler

    def make_sampler(
        self,
        *,
        shuffle: bool = True,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> SelectionSampler:
        """Create (or replace) `pruner.sampler`: shuffled or in index order, sharded over
        `num_replicas` ranks (default: the `torch.distributed` world, else 1; pass
        `num_replicas=1, rank=0` where a library shards batches itself, e.g. accelerate)."""
        self._sampler = SelectionSampler.full(
            self.n,
            shuffle=shuffle,
            generator=torch.Generator(),
            num_replicas=num_replicas,
            rank=rank,
            seed=self.seed,
        )
        self._sampler_epoch = -1
        if self.epoch < self.epochs:
            self.select(self.epoch)
        return self._sampler

    def refresh_sampler(self) -> None:
        """Hand the current epoch's selection to `sampler` again (after something else, e.g. a
        Trainer sizing its run from the full dataset, set the sampler's selection)."""
        if self._sampler is not None and self.epoch < self.epochs:
            self._sampler_epoch = -1
            self.select(self.epoch)

    def _push(self, epoch: int) -> None:
        """Hand epoch `epoch`'s selection to the sampler (once per epoch)."""
        s = self._sampler
        if s is None or self._current is None or self._sampler_epoch == epoch:
            return
        s.set_selection(self._current)
        s.set_epoch(epoch)
        assert s.generator is not None
        s.generator.manual_seed(self.seed + epoch)
        self._sampler_epoch = epoch

    # --- observation ---------------------------------------------------------------------------
    def weights(self, indices: torch.Tensor) -> torch.Tensor:
        """Per-sample loss weights for `indices` (1 here; InfoBatch rescales kept easy samples)."""
        return torch.ones(len(indices))

    def observe(
        self,
        indices: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        losses: torch.Tensor | None = None,
    ) -> None:
        """Record a training batch: dataset `indices` (B,), `logits` (B, C), penultimate
        `features` (B, D; needed by feature-based scores), class `targets` (B,), per-sample `losses`.

        A pruner that learns nothing from batches (`_observe` not overridden: full data, the random
        baselines) only checks the shapes and counts the samples: none of the conversions, index
        range check and timing below, which cost about 65 us of a 3.5 ms MNIST-1D CNN step inside
        a training loop (cold caches), a per-batch cost of no use to it."""
        if not self._learns:
            self._count(indices, logits, targets)
            return
        t0 = time.perf_counter()
        self._take(indices, logits, features, targets, losses)
        self.score_seconds += time.perf_counter() - t0

    def _take(
        self,
        indices: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor | None,
        targets: torch.Tensor | None,
        losses: torch.Tensor | None,
    ) -> torch.Tensor:
        """`observe`'s checks and conversions, then `_observe`; returns the indices as the 1-D
        int64 CPU tensor it converted them to (untimed: the callers time it)."""
        indices = _as_cpu(indices, torch.long)
        if indices.ndim != 1:
            indices = indices.flatten()
        batch = indices.shape[0]
        _check_logits(logits, batch)
        if not self.checks_indices_later and not indices_in_range(indices, self.n):
            raise index_range_error(indices, self.n)
        if self.uses_features:
            if features is None:
                raise ValueError(
                    f"{type(self).__name__} needs the penultimate features (features=None): read "
                    "them with maskloop.FeatureHook(model) (the input of the last nn.Linear)"
                )
            if features.ndim != 2 or features.shape[0] != batch:
                raise ValueError(
                    "features must be (batch, dim) penultimate activations, got shape "
                    f"{tuple(features.shape)}; point FeatureHook at the classifier head"
                )
        if targets is None:
            raise ValueError("targets must be given (class indices, shape (batch,))")
        targets = _as_cpu(targets, torch.long)
        if targets.ndim != 1:
            targets = targets.flatten()
        if targets.shape[0] != batch:
            raise ValueError(f"targets has {targets.numel()} entries, indices {batch}")
        self._trained += batch
        # every tensor is detached here, so the subclass's work records no graph (no no_grad
        # context needed: entering one costs as much as the rest of a cheap observation)
        self._observe(
            indices,
            _as_cpu(logits, torch.float32),
            None if features is None else _as_cpu(features, torch.float32),
            targets,
            None if losses is None or not self.uses_losses else _as_cpu(losses, torch.float32),
        )
        return indices

    def observe_weights(
        self,
        indices: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
        losses: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """`observe(indices, logits, features, targets, losses)`, then the batch's loss weights
        as `timed_weights(indices, losses)` returns them, or None when the method does not
        reweight: the per-batch call of the integrations (`update`, `PrunerCallback`).

        One call and one timer for both: the indices are converted and checked once, and the
        weights read from them directly (`_batch_weights`). Inside a training loop every library
        call costs microseconds on cold caches, so each one saved counts (session 24). The
        weights and everything observed are those of the two calls in turn."""
        if not self.reweights:
            self.observe(indices, logits, features, targets, losses)
            return None
        if losses is None:
            raise ValueError("losses must be given (per-sample losses) to read the loss weights")
        if not self._learns:
            self._count(indices, logits, targets)
            return self.timed_weights(indices, losses)
        t0 = time.perf_counter()
        w = _like(
            self._batch_weights(self._take(indices, logits, features, targets, losses)), losses
        )
        self.score_seconds += time.perf_counter() - t0
        return w

    def _batch_weights(self, indices: torch.Tensor) -> torch.Tensor:
        """`weights` of indices already converted by `_take` (1-D int64 on the CPU)."""
        return self.weights(indices)

    def _count(self, indices: Any, logits: torch.Tensor, targets: torch.Tensor | None) -> None:
        """`observe` of a pruner that learns nothing from batches: shape checks and the count."""
        batch = indices.numel() if isinstance(indices, torch.Tensor) else len(indices)
        _check_logits(logits, batch)
        if targets is None:
            raise ValueError("targets must be given (class indices, shape (batch,))")
        nt = targets.numel() if isinstance(targets, torch.Tensor) else len(targets)
        if nt != batch:
            raise ValueError(f"targets has {nt} entries, indices {batch}")
        self._trained += batch

    def _observe(self, indices, logits, features, targets, losses) -> None:  # noqa: ANN001
        """Subclass hook (tensors on the CPU, detached)."""

    def update(
        self,
        losses: torch.Tensor,
        indices: torch.Tensor,
        logits: torch.Tensor,
        features: torch.Tensor | None = None,
        targets: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The per-sample loss hook (InfoBatch-style): observe the batch, return the weighted mean loss."""
        if losses.ndim != 1:
            raise ValueError(
                f"losses must be per-sample (reduction='none'), got shape {tuple(losses.shape)}"
            )
        w = self.observe_weights(indices, logits, features, targets, losses)
        return losses.mean() if w is None else (losses * w).mean()

    def timed_weights(self, indices: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """`weights(indices)` on the device and dtype of `like`, its time counted as scoring
        (the loss weights are part of the method's selection, `budget()["score_seconds"]`)."""
        t0 = time.perf_counter()
        w = _like(self.weights(_as_cpu(indices, torch.long)), like)
        self.score_seconds += time.perf_counter() - t0
        return w

    # --- epoch end -----------------------------------------------------------------------------
    def end_epoch(
        self,
        model: nn.Module | None = None,
        dataset: Any = None,
        *,
        batch_size: int = 256,
        collate_fn: Callable | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, float]:
        """Close the epoch: sync across DDP ranks, update scores (re-scoring with `model` over
        `dataset` where the method needs it), record the epoch's budget, advance the epoch."""
        sel = self.select(self.epoch)
        t0 = time.perf_counter()
        scored = self._end_epoch(model, dataset, batch_size, collate_fn, device)
        self.score_seconds += time.perf_counter() - t0
        self._scored += int(scored)
        trained = self._trained
        world = world_size()
        if world > 1:
            t = torch.tensor([float(trained)])
            torch.distributed.all_reduce(t)
            trained = int(t.item())
        if trained == 0:  # no observe() calls: count the selection as trained
            trained = len(sel)
        rec = {
            "epoch": float(self.epoch),
            "keep": self.keep_ratio(self.epoch),
            "selected": float(len(sel)),
            "trained": float(trained),
            "scored": float(self._scored),
            "score_seconds": self.score_seconds,
        }
        self.log.append(rec)
        self._trained = 0
        self._scored = 0
        self.score_seconds = 0.0
        self.epoch += 1
        if self._sampler is not None and self.epoch < self.epochs:
            self.select(self.epoch)  # the sampler iterates the next epoch's selection
        return rec

    def _end_epoch(self, model, dataset, batch_size, collate_fn, device) -> int:  # noqa: ANN001
        """Subclass hook; returns how many samples were scored with extra forward passes."""
        return 0

    # --- accounting ----------------------------------------------------------------------------
    def budget(self) -> dict[str, float]:
        """Spent budget so far, as fractions of `epochs * n` sample-gradients.

        trained = sum_e |trained_e| / (E n); scored = sum_e |scored_e| / (E n);
        f = trained + forward_cost * scored (the achieved fraction of sample-gradients spent).
        `selected` uses the selection sizes (equals `trained` up to DDP padding).
        """
        denom = self.epochs * self.n
        tr = sum(r["trained"] for r in self.log) / denom
        sc = sum(r["scored"] for r in self.log) / denom
        se = sum(r["selected"] for r in self.log) / denom
        return {
            "epochs_done": float(len(self.log)),
            "selected": se,
            "trained": tr,
            "scored": sc,
            "f": tr + self.forward_cost * sc,
            "score_seconds": sum(r["score_seconds"] for r in self.log),
        }

    # --- state ---------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue: epoch, log, and the subclass's scores."""
        return {
            "name": self.name,
            "n": self.n,
            "epochs": self.epochs,
            "seed": self.seed,
            "epoch": self.epoch,
            "log": [dict(r) for r in self.log],
            "in_epoch": {"trained": self._trained, "scored": self._scored},
            "extra": self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore `state_dict()` output (the pruner must be built with the same arguments)."""
        for key in ("n", "epochs"):
            if int(state[key]) != getattr(self, key):
                raise ValueError(
                    f"state_dict has {key}={state[key]} but this pruner has {key}={getattr(self, key)}"
                )
        if state.get("name") != self.name:
            raise ValueError(
                f"state_dict is from a {state.get('name')!r} pruner, not {self.name!r}"
            )
        self.epoch = int(state["epoch"])
        self.log = [dict(r) for r in state["log"]]
        self._current = None
        self._current_epoch = -1
        in_epoch = state.get("in_epoch", {})
        self._trained = int(in_epoch.get("trained", 0))
        self._scored = int(in_epoch.get("scored", 0))
        self._load_extra(state["extra"])
        self.refresh_sampler()

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        pass

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write `state_dict()` as `<path>.safetensors` (every tensor) + `<path>.json` (the rest)."""
        from safetensors.torch import save_file

        base = Path(path)
        base.parent.mkdir(parents=True, exist_ok=True)
        tensors: dict[str, torch.Tensor] = {}

        def split(obj: Any, key: str) -> Any:
            if isinstance(obj, torch.Tensor):
                tensors[key] = obj.detach().cpu().contiguous()
                return {"__tensor__": key}
            if isinstance(obj, Mapping):
                return {str(k): split(v, f"{key}.{k}") for k, v in obj.items()}
            if isinstance(obj, (list, tuple)):
                return [split(v, f"{key}.{i}") for i, v in enumerate(obj)]
            return obj

        doc = split(self.state_dict(), "state")
        st, js = base.with_suffix(".safetensors"), base.with_suffix(".json")
        save_file(tensors, str(st))
        js.write_text(json.dumps({"format": "ted-prune.state/1", "state": doc}, indent=1))
        return st, js

    def load(self, path: str | os.PathLike[str]) -> None:
        """Restore what `save(path)` wrote (safetensors + JSON only; nothing is unpickled).

        Raises ValueError naming the file and entry when a file is missing, malformed or does not
        match this pruner."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        base = Path(path)
        st, js = base.with_suffix(".safetensors"), base.with_suffix(".json")
        for f in (st, js):
            if not f.is_file():
                raise ValueError(f"{f}: no such file (written by DataPruner.save)")
        try:
            doc = json.loads(js.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{js}: not JSON ({err})") from err
        if not isinstance(doc, dict) or doc.get("format") != "ted-prune.state/1":
            raise ValueError(f"{js}: entry 'format' must be 'ted-prune.state/1'")
        try:
            tensors = load_file(str(st))
        except (SafetensorError, OSError, ValueError) as err:
            raise ValueError(f"{st}: not a safetensors file ({err})") from err

        def join(obj: Any) -> Any:
            if isinstance(obj, dict) and set(obj) == {"__tensor__"}:
                if obj["__tensor__"] not in tensors:
                    raise ValueError(f"{st}: missing tensor entry {obj['__tensor__']!r}")
                return tensors[obj["__tensor__"]]
            if isinstance(obj, dict):
                return {k: join(v) for k, v in obj.items()}
            if isinstance(obj, list):
                return [join(v) for v in obj]
            return obj

        state = join(doc.get("state"))
        if not isinstance(state, dict):
            raise ValueError(f"{js}: entry 'state' must be an object")
        missing = [k for k in ("name", "n", "epochs", "epoch", "log", "extra") if k not in state]
        if missing:
            raise ValueError(f"{js}: missing entries {missing} in 'state'")
        self.load_state_dict(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={self.n}, epochs={self.epochs}, epoch={self.epoch})"


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run small CPU tensor work on one thread (restored afterwards).

    Scoring and selection touch N x (C + D) numbers once per epoch: too little to gain from
    intra-op parallelism, while on a busy machine a parallel region can wait milliseconds for its
    second thread. Model forward passes are never run inside this."""
    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def forward_logits(model: nn.Module, inputs: Any, device: torch.device) -> torch.Tensor:
    """Run `model` on `inputs` (tensor or mapping) and return its logits."""
    if isinstance(inputs, Mapping):
        out = model(**{k: v.to(device) for k, v in inputs.items()})
    else:
        out = model(inputs.to(device))
    return out.logits if hasattr(out, "logits") else out


class ScheduledPruner(DataPruner):
    """A pruner whose keep ratio follows a `ProgressiveSchedule` (TED and random-dynamic share it).

    Give either `keep` (the final ratio rho) or `budget` (the average fraction of sample-gradients
    to spend; rho is then solved with `keep_for_budget`). Schedule defaults: `warmup = round(0.1 E)`,
    `ramp = round(0.2 E)`, `anneal = 0`; or pass a ready `schedule=ProgressiveSchedule(...)`.
    """

    def __init__(
        self,
        dataset: Any,
        epochs: int,
        keep: float | None = 0.7,
        *,
        budget: float | None = None,
        schedule: ProgressiveSchedule | None = None,
        warmup: int | None = None,
        ramp: int | None = None,
        anneal: int = 0,
        forward_cost: float = 1 / 3,
        seed: int = 0,
    ) -> None:
        super().__init__(dataset, epochs, forward_cost=forward_cost, seed=seed)
        if schedule is not None:
            if not isinstance(schedule, ProgressiveSchedule):
                raise TypeError(
                    f"schedule must be a ProgressiveSchedule, got {type(schedule).__name__}"
                )
            if schedule.epochs != self.epochs:
                raise ValueError(
                    f"schedule.epochs={schedule.epochs} differs from epochs={self.epochs}"
                )
            self.schedule = schedule
        else:
            warmup = round(0.1 * self.epochs) if warmup is None else warmup
            ramp = round(0.2 * self.epochs) if ramp is None else ramp
            if budget is not None:
                keep = keep_for_budget(budget, self.epochs, warmup, ramp, anneal)
            if keep is None:
                raise ValueError("give keep (final keep ratio in (0, 1]) or budget")
            self.schedule = ProgressiveSchedule(self.epochs, keep, warmup, ramp, anneal)
        self.keep = self.schedule.keep

    def keep_ratio(self, epoch: int | None = None) -> float:
        """k_e of the schedule."""
        return self.schedule(self.epoch if epoch is None else epoch)
