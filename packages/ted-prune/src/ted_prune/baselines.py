"""Baselines TED is compared against, with the same interface and budget accounting.

- `FullData`: every sample every epoch (f = 1).
- `RandomStatic`: one random subset of size `keep * N`, fixed for the whole run.
- `RandomDynamic`: a fresh random subset each epoch, on TED's own `ProgressiveSchedule` (the key
  control: same spent budget, no scoring).
- `InfoBatch` (Qin et al., ICLR 2024, as the authors' code runs it): a fraction r of the samples
  whose last loss is below the mean is pruned at random, kept ones get their loss scaled by
  1/(1 - r); r <= 0.9; the last `anneal` fraction of epochs use all data with weights reset to 1.
  With `keep`, r is set per epoch (r = (1 - k) N / #below-mean, capped at 0.9) to approach a target
  kept fraction; where the cap binds the achieved f is higher than asked, and `budget()` says so.
- `RandomSizes`: random selection with another method's per-epoch sizes (its own schedule).
- `EL2N`, `GraNd` (Paul et al., NeurIPS 2021) and `Forgetting` (Toneva et al., ICLR 2019): static
  scores from the first `score_epochs` full-data epochs (from the training forward pass), then the
  highest-scored `keep * N` samples for the rest of the run. GraNd uses the closed-form last-layer
  gradient norm ||p - y|| * ||[h, 1]|| (an approximation of the full gradient norm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from maskloop import Selection
from maskloop.checks import check_int, check_keep
from maskloop.distributed import all_reduce_
from torch.nn import functional as F

from ted_prune.pruner import DataPruner, ScheduledPruner

__all__ = [
    "EL2N",
    "Forgetting",
    "FullData",
    "GraNd",
    "InfoBatch",
    "RandomDynamic",
    "RandomSizes",
    "RandomStatic",
    "static_keep_for_budget",
]


def static_keep_for_budget(budget: float, epochs: int, score_epochs: int) -> float:
    """Keep ratio k of a static method with `score_epochs` full epochs first: (w + (E-w) k)/E = f."""
    budget = check_keep(budget, "budget")
    if epochs <= score_epochs:
        raise ValueError(f"epochs ({epochs}) must exceed score_epochs ({score_epochs})")
    k = (budget * epochs - score_epochs) / (epochs - score_epochs)
    if k <= 0:
        raise ValueError(
            f"budget={budget} is below the {score_epochs} full scoring epochs out of {epochs}"
        )
    return min(1.0, k)


class FullData(DataPruner):
    """No pruning: the full dataset every epoch."""

    name = "full"


class RandomStatic(DataPruner):
    """One uniformly random subset of `keep * N` samples, used in every epoch."""

    name = "random_static"

    def __init__(self, dataset: Any, epochs: int, keep: float = 0.7, **kw: Any) -> None:
        super().__init__(dataset, epochs, **kw)
        self.keep = check_keep(keep, "keep")

    def keep_ratio(self, epoch: int | None = None) -> float:
        return self.keep

    def _select(self, epoch: int) -> Selection:
        g = torch.Generator().manual_seed(self.seed)
        return Selection.random(self.n, self.keep, generator=g)


class RandomDynamic(ScheduledPruner):
    """A new uniformly random subset each epoch, with TED's keep-ratio schedule."""

    name = "random_dynamic"

    def _select(self, epoch: int) -> Selection:
        k = self.keep_ratio(epoch)
        if k >= 1.0:
            return Selection.full(self.n)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        return Selection.random(self.n, k, generator=g)

    def _extra_state(self) -> dict[str, Any]:
        return {"schedule": self.schedule.state_dict()}


class InfoBatch(DataPruner):
    """InfoBatch (Qin et al., ICLR 2024) as its authors run it: soft random pruning of below-mean-loss
    samples with loss rescaling, a ratio capped at 0.9 and annealing on full data.

    Follows the authors' `infobatch.InfoBatch` (github.com/NUS-HPC-AI-Lab/InfoBatch), checked side
    by side on identical loss sequences (see docs): every sample's score is its last training loss,
    all equal at the start (so epoch 0 prunes nothing); in a pruning epoch the well-learned set is
    W = {i : s_i < mean(s)}, exactly int((1 - r) |W|) of them are kept uniformly at random and get the
    loss weight 1 / (1 - r), every other weight is 1; the ratio is capped, r <= `max_ratio` = 0.9
    (the authors' `keep_ratio = max(0.1, 1 - prune_ratio)`); pruning stops once e + 1 > (1 - anneal) E
    (the authors' `delta = 0.875`), and every weight is reset to 1 in those annealing epochs.

    `prune_ratio` fixes r (the authors' form). `keep` instead sets r_e = min(max_ratio,
    (1 - keep) N / |W_e|) per epoch, aiming at a kept fraction `keep` (budget matching by
    sample-gradient count); where the cap binds, the kept fraction stays above `keep` and the
    achieved f (`budget()`) shows it: InfoBatch cannot go below N - 0.9 |W_e| samples per epoch.
    """

    name = "infobatch"
    exact_plan = False  # kept counts depend on |W_e|
    reweights = True  # kept below-mean samples get 1 / (1 - r)

    def __init__(
        self,
        dataset: Any,
        epochs: int,
        keep: float | None = 0.7,
        *,
        prune_ratio: float | None = None,
        anneal: float = 0.125,
        max_ratio: float = 0.9,
        **kw: Any,
    ) -> None:
        super().__init__(dataset, epochs, **kw)
        if (keep is None) == (prune_ratio is None):
            raise ValueError("give exactly one of keep (target kept fraction) and prune_ratio")
        self.keep = None if keep is None else check_keep(keep, "keep")
        if isinstance(max_ratio, bool) or not isinstance(max_ratio, (int, float)):
            raise TypeError(f"max_ratio must be a float in [0, 1), got {max_ratio!r}")
        if not 0 <= max_ratio < 1:
            raise ValueError(f"max_ratio must be in [0, 1), got {max_ratio!r}")
        self.max_ratio = float(max_ratio)
        if prune_ratio is not None:
            if isinstance(prune_ratio, bool) or not isinstance(prune_ratio, (int, float)):
                raise TypeError(f"prune_ratio must be a float in [0, 1), got {prune_ratio!r}")
            if not 0 <= prune_ratio < 1:
                raise ValueError(f"prune_ratio must be in [0, 1), got {prune_ratio!r}")
        self.prune_ratio = None if prune_ratio is None else min(float(prune_ratio), self.max_ratio)
        if isinstance(anneal, bool) or not isinstance(anneal, (int, float)) or not 0 <= anneal <= 1:
            raise ValueError(f"anneal must be a fraction of epochs in [0, 1], got {anneal!r}")
        self.anneal = float(anneal)
        # the authors prune while (e + 1) <= delta * E, delta = 1 - anneal
        self.stop_epoch = min(self.epochs, math.floor((1.0 - self.anneal) * self.epochs + 1e-9))
        self.loss = torch.ones(self.n, dtype=torch.float64)
        self._pending = torch.zeros(self.n, dtype=torch.float64)
        self._seen = torch.zeros(self.n, dtype=torch.bool)
        self.weight = torch.ones(self.n, dtype=torch.float64)
        self.ratio = 0.0

    def keep_ratio(self, epoch: int | None = None) -> float:
        epoch = self.epoch if epoch is None else epoch
        if epoch >= self.stop_epoch:
            return 1.0
        return self.keep if self.keep is not None else 1.0 - float(self.prune_ratio or 0.0)

    def planned_sizes(self) -> list[int]:
        """Expected selection sizes: epoch 0 and the annealing epochs keep all samples (all losses
        start equal), the others about `keep * N` (with `prune_ratio`, `(1 - r) N`, an estimate:
        r applies to the below-mean samples only)."""
        return [
            self.n if e == 0 else Selection.kept_count(self.n, self.keep_ratio(e))
            for e in range(self.epochs)
        ]

    def _select(self, epoch: int) -> Selection:
        self.weight = torch.ones(self.n, dtype=torch.float64)  # reset (annealing included)
        self.ratio = 0.0
        if epoch >= self.stop_epoch:
            return Selection.full(self.n)
        well = self.loss < self.loss.mean()
        nw = int(well.sum())
        if nw == 0:
            return Selection.full(self.n)
        if self.prune_ratio is not None:
            r = self.prune_ratio
        else:
            r = min(self.max_ratio, (1.0 - self.keep) * self.n / nw)
        # the authors' keep_ratio = max(0.1, 1 - r): rounded so 1 - 0.9 is 0.1, not 0.0999...
        kf = max(round(1.0 - self.max_ratio, 12), 1.0 - r)
        g = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        well_idx = torch.nonzero(well).flatten()
        kept = well_idx[torch.randperm(nw, generator=g)[: int(kf * nw)]]
        mask = ~well
        mask[kept] = True
        if kept.numel():
            self.weight[kept] = 1.0 / kf
        self.ratio = 1.0 - kf
        return Selection.from_mask(mask)

    def weights(self, indices: torch.Tensor) -> torch.Tensor:
        self.select(self.epoch)
        return self.weight[torch.as_tensor(indices).long().cpu()].float()

    def _observe(self, indices, logits, features, targets, losses) -> None:  # noqa: ANN001
        if losses is None:
            losses = F.cross_entropy(logits, targets, reduction="none")
        self._pending[indices] = losses.double()
        self._seen[indices] = True

    def _end_epoch(self, model, dataset, batch_size, collate_fn, device) -> int:  # noqa: ANN001
        cnt = self._seen.double()
        val = torch.where(self._seen, self._pending, torch.zeros_like(self._pending))
        all_reduce_(cnt)
        all_reduce_(val)
        upd = cnt > 0
        self.loss[upd] = val[upd] / cnt[upd]
        self._seen[:] = False
        return 0

    def _extra_state(self) -> dict[str, Any]:
        return {"loss": self.loss.clone()}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        self.loss = extra["loss"].clone()


class RandomSizes(DataPruner):
    """Random selection on another method's own schedule: the control that separates a method's
    selection rule from its schedule.

    `sizes[e]` samples are kept in epoch e (e.g. the sizes InfoBatch or EL2N actually trained on,
    `[r["selected"] for r in pruner.log]`), drawn uniformly at random, afresh every epoch
    (`dynamic=True`) or once per distinct size (`dynamic=False`: the static control of a static
    method such as EL2N, whose kept set is fixed after its scoring epochs). Weights are all 1.
    """

    name = "random_sizes"

    def __init__(
        self, dataset: Any, epochs: int, sizes: Any, *, dynamic: bool = True, **kw: Any
    ) -> None:
        super().__init__(dataset, epochs, **kw)
        try:
            sizes = [int(s) for s in sizes]
        except (TypeError, ValueError) as err:
            raise TypeError(f"sizes must be a sequence of ints, got {sizes!r}") from err
        if len(sizes) != self.epochs:
            raise ValueError(f"sizes has {len(sizes)} entries, epochs is {self.epochs}")
        bad = [(e, s) for e, s in enumerate(sizes) if not 1 <= s <= self.n]
        if bad:
            raise ValueError(f"sizes must lie in [1, {self.n}]; bad (epoch, size): {bad}")
        if not isinstance(dynamic, bool):
            raise TypeError(f"dynamic must be a bool, got {dynamic!r}")
        self.sizes = sizes
        self.dynamic = dynamic

    def keep_ratio(self, epoch: int | None = None) -> float:
        return self.sizes[self.epoch if epoch is None else epoch] / self.n

    def planned_sizes(self) -> list[int]:
        return list(self.sizes)

    def _select(self, epoch: int) -> Selection:
        k = self.sizes[epoch]
        if k >= self.n:
            return Selection.full(self.n)
        stream = epoch if self.dynamic else k
        g = torch.Generator().manual_seed(self.seed * 100_003 + stream)
        return Selection(torch.randperm(self.n, generator=g)[:k], self.n)

    def _extra_state(self) -> dict[str, Any]:
        return {"sizes": list(self.sizes), "dynamic": self.dynamic}


class _StaticScore(DataPruner):
    """Full data for `score_epochs` epochs while scoring, then the top `keep * N` samples, fixed."""

    def __init__(
        self, dataset: Any, epochs: int, keep: float = 0.7, *, score_epochs: int = 2, **kw: Any
    ) -> None:
        super().__init__(dataset, epochs, **kw)
        self.keep = check_keep(keep, "keep")
        self.score_epochs = check_int("score_epochs", score_epochs, 1)
        self.scores = torch.zeros(self.n, dtype=torch.float64)
        self._acc = torch.zeros(self.n, dtype=torch.float64)
        self._cnt = torch.zeros(self.n, dtype=torch.float64)

    def keep_ratio(self, epoch: int | None = None) -> float:
        epoch = self.epoch if epoch is None else epoch
        return 1.0 if epoch < self.score_epochs else self.keep

    def _select(self, epoch: int) -> Selection:
        if epoch < self.score_epochs:
            return Selection.full(self.n)
        return Selection.from_scores(self.scores, self.keep, largest=True)

    def _record(self, indices: torch.Tensor, value: torch.Tensor) -> None:
        if self.epoch < self.score_epochs:
            self._acc.index_add_(0, indices, value.double())
            self._cnt.index_add_(0, indices, torch.ones(len(indices), dtype=torch.float64))

    def _end_epoch(self, model, dataset, batch_size, collate_fn, device) -> int:  # noqa: ANN001
        if self.epoch == self.score_epochs - 1:
            acc, cnt = self._acc.clone(), self._cnt.clone()
            all_reduce_(acc)
            all_reduce_(cnt)
            self.scores = self._finish(acc, cnt)
        return 0

    def _finish(self, acc: torch.Tensor, cnt: torch.Tensor) -> torch.Tensor:
        return acc / cnt.clamp_min(1)

    def _extra_state(self) -> dict[str, Any]:
        return {"scores": self.scores.clone(), "acc": self._acc.clone(), "cnt": self._cnt.clone()}

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        self.scores = extra["scores"].clone()
        self._acc = extra["acc"].clone()
        self._cnt = extra["cnt"].clone()


class EL2N(_StaticScore):
    """EL2N: mean over the scoring epochs of ||softmax(f(x_i)) - y_i||_2; keep the largest."""

    name = "el2n"

    def _observe(self, indices, logits, features, targets, losses) -> None:  # noqa: ANN001
        e = torch.softmax(logits.double(), 1) - F.one_hot(targets, logits.shape[1]).double()
        self._record(indices, e.norm(dim=1))


class GraNd(_StaticScore):
    """GraNd: mean per-sample gradient norm, closed-form last layer ||p - y|| * ||[h, 1]||."""

    name = "grand"
    uses_features = True

    def _observe(self, indices, logits, features, targets, losses) -> None:  # noqa: ANN001
        e = torch.softmax(logits.double(), 1) - F.one_hot(targets, logits.shape[1]).double()
        hn = torch.sqrt(features.double().pow(2).sum(1) + 1.0)
        self._record(indices, e.norm(dim=1) * hn)


class Forgetting(_StaticScore):
    """Forgetting events (correct -> incorrect) counted over the scoring epochs; never-learned
    samples count as unforgettable-hard (score = score_epochs + 1). Keep the most forgotten."""

    name = "forgetting"

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.prev = torch.zeros(self.n, dtype=torch.bool)
        self.learned = torch.zeros(self.n, dtype=torch.bool)

    def _observe(self, indices, logits, features, targets, losses) -> None:  # noqa: ANN001
        if self.epoch >= self.score_epochs:
            return
        correct = logits.argmax(1) == targets
        forgot = self.prev[indices] & ~correct
        self._acc.index_add_(0, indices, forgot.double())
        self.prev[indices] = correct
        self.learned[indices] |= correct

    def _extra_state(self) -> dict[str, Any]:
        return {
            **super()._extra_state(),
            "prev": self.prev.clone(),
            "learned": self.learned.clone(),
        }

    def _load_extra(self, extra: Mapping[str, Any]) -> None:
        super()._load_extra(extra)
        self.prev = extra["prev"].clone()
        self.learned = extra["learned"].clone()

    def _finish(self, acc: torch.Tensor, cnt: torch.Tensor) -> torch.Tensor:
        learned = self.learned.double()
        all_reduce_(learned)
        return torch.where(learned > 0, acc, torch.full_like(acc, self.score_epochs + 1.0))
