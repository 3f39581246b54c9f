"""The pruner machinery every method here shares: targets, global selection, schedules, masking.

A pruner owns a `maskloop.WeightMask` over its target weights and a `maskloop.MaskedTraining` that keeps
pruned weights at exactly zero. Two families share one interface:

- `GradualPruner`: scores are updated from each step's gradients inside a window of `window` steps that
  begins at step `start`; the global keep-ratio follows the cubic schedule and the mask is frozen after
  the window (SEVEN_dyn, Taylor, movement, PLATON, ...). With `mode="pre"` the same rule runs over
  `window` batches of gradients at the pretrained weights before fine-tuning (no weight update).
- `OneShotPruner`: one score at the start, one global cut (magnitude, random, SNIP, GraSP).

Every pruner is also a `maskloop.Callback` (`fit(..., callbacks=[pruner])`) and can be driven from a
plain loop (`pruner.step()` after `optimizer.step()`) or from Hugging Face `Trainer` (`SevenCallback`).
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from maskloop import Callback, LoopState, MaskedTraining, WeightMask, prunable_parameters, schedules
from torch import nn

__all__ = [
    "DEFAULT_TARGETS",
    "GradualPruner",
    "OneShotPruner",
    "Pruner",
    "batch_loss",
    "layer_type",
    "select_global",
    "sparsity_by_layer_type",
    "target_parameters",
]

#: Default target patterns (regular expressions searched in parameter names, `nn.Linear` weights
#: only): every Linear inside the encoder blocks of Hugging Face BERT / RoBERTa / ELECTRA
#: (`...encoder.layer.<i>....`), ViT in transformers >= 5 (`vit.layers.<i>....`) and DistilBERT
#: (`...transformer.layer.<i>....`), plus the BERT pooler dense layer, as in the official SEVEN code.
#: Embeddings, LayerNorms, biases and task heads stay dense.
DEFAULT_TARGETS: tuple[str, ...] = (
    r"(^|\.)encoder\.layers?\.\d+\.",
    r"(^|\.)layers\.\d+\.",
    r"(^|\.)transformer\.layer\.\d+\.",
    r"(^|\.)pooler\.dense\.weight$",
)

_LAYER_TYPES: tuple[tuple[str, str], ...] = (
    ("query", r"(q_lin|query|q_proj)\.weight$"),
    ("key", r"(k_lin|key|k_proj)\.weight$"),
    ("value", r"(v_lin|value|v_proj)\.weight$"),
    ("attn_out", r"(attention\.output\.dense|out_lin|o_proj|out_proj)\.weight$"),
    ("ffn_in", r"(intermediate\.dense|ffn\.lin1|fc1|up_proj)\.weight$"),
    ("ffn_out", r"(layer\.\d+\.output\.dense|ffn\.lin2|fc2|down_proj)\.weight$"),
    ("pooler", r"pooler\.dense\.weight$"),
)


def layer_type(name: str) -> str:
    """The role of an encoder weight from its name: query, key, value, attn_out, ffn_in, ffn_out,
    pooler, or other."""
    for kind, pattern in _LAYER_TYPES:
        if re.search(pattern, name):
            return kind
    return "other"


def sparsity_by_layer_type(mask: WeightMask) -> dict[str, float]:
    """Achieved sparsity per layer role (weighted by entries), plus `"all"` for the whole mask."""
    if not isinstance(mask, WeightMask):
        raise TypeError(f"mask must be a maskloop.WeightMask, got {type(mask).__name__}")
    pruned: dict[str, int] = {}
    total: dict[str, int] = {}
    for name, m in mask.items():
        kind = layer_type(name)
        pruned[kind] = pruned.get(kind, 0) + int((~m).sum())
        total[kind] = total.get(kind, 0) + m.numel()
    out = {k: pruned[k] / total[k] for k in total}
    out["all"] = mask.sparsity
    return out


def target_parameters(
    model: nn.Module,
    targets: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The Linear weights a pruner masks, keyed by name.

    `targets` are regular expressions searched in parameter names (default `DEFAULT_TARGETS`: the
    encoder Linears of BERT/RoBERTa/ViT-style models and the pooler); `exclude` removes matches.
    Raises ValueError naming the patterns when nothing matches.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    include = DEFAULT_TARGETS if targets is None else targets
    if not isinstance(include, str) and (
        not isinstance(include, Sequence)
        or not include
        or not all(isinstance(t, str) for t in include)
    ):
        raise TypeError(
            f"targets must be a regex string or a non-empty sequence of regex strings, got {targets!r}"
        )
    try:
        return prunable_parameters(model, types=(nn.Linear,), include=include, exclude=exclude)
    except ValueError as err:
        if "no prunable parameters" not in str(err):
            raise
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:6]
        raise ValueError(
            f"targets={include!r} (exclude={exclude!r}) match no nn.Linear weight of "
            f"{type(model).__name__}; Linear modules look like {linears}. Pass `targets=` patterns "
            "that match your model's parameter names."
        ) from None


def select_global(
    scores: Mapping[str, torch.Tensor], n_keep: int, previous: WeightMask | None = None
) -> WeightMask:
    """Keep exactly the `n_keep` highest scores over all tensors together; the rest are pruned.

    Entries pruned in `previous` stay pruned (score -inf). Ties at the threshold are broken like
    `WeightMask.from_scores`: among equal scores, the entry earlier in the mapping order and in
    flattened order is pruned first. Uses one partial selection (`numpy.partition`) instead of a full
    sort, which matters for millions of weights on a CPU.
    """
    names = list(scores)
    flat = [scores[n].detach().reshape(-1).float() for n in names]
    allflat = torch.cat([f.cpu() for f in flat])  # a fresh tensor: safe to edit in place
    if previous is not None:
        for n, f in zip(names, flat):
            if n not in previous or previous[n].numel() != f.numel():
                raise ValueError(f"previous mask has no entry of {f.numel()} elements for {n!r}")
        pruned = ~torch.cat([previous[n].reshape(-1).cpu() for n in names])
        allflat.masked_fill_(pruned, -math.inf)
    total = allflat.numel()
    if isinstance(n_keep, bool) or not isinstance(n_keep, int) or not 0 <= n_keep <= total:
        raise ValueError(f"n_keep must be an int in [0, {total}], got {n_keep!r}")
    if torch.isnan(allflat).any():
        raise ValueError("scores contain NaN; scores must be comparable numbers")
    n_prune = total - n_keep
    if n_prune == 0:
        keep = torch.ones(total, dtype=torch.bool)
    elif n_keep == 0:
        keep = torch.zeros(total, dtype=torch.bool)
    else:
        # the n_prune-th smallest score: numpy's introselect (SIMD-sorted partitions) is an order
        # of magnitude faster than torch.kthvalue over millions of floats on a CPU
        thr = float(np.partition(allflat.numpy(), n_prune - 1)[n_prune - 1])
        keep = allflat > thr
        extra = n_keep - int(keep.sum())
        if extra > 0:  # ties at the threshold: keep the last `extra` of them (earlier ones pruned)
            tied = torch.nonzero(allflat == thr).flatten()
            keep[tied[-extra:]] = True
    out, offset = {}, 0
    for n, f in zip(names, flat):
        out[n] = keep[offset : offset + f.numel()].reshape(scores[n].shape).to(scores[n].device)
        offset += f.numel()
    return WeightMask(out)


def batch_loss(
    model: nn.Module, batch: Any, loss_fn: Callable[..., torch.Tensor] | None = None
) -> torch.Tensor:
    """The scalar training loss of one batch.

    A mapping batch is passed as keyword arguments (Hugging Face style): with `loss_fn` the loss is
    `loss_fn(logits, batch["labels"]).mean()`, otherwise the model's own `.loss`. A tuple batch
    `(inputs, targets[, indices])` needs `loss_fn`.
    """
    device = next(model.parameters()).device
    if isinstance(batch, Mapping):
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        if loss_fn is None:
            out = model(**{k: v for k, v in batch.items() if k != "index"})
            loss = getattr(out, "loss", None)
            if loss is None:
                raise ValueError(
                    "the model returned no .loss for a mapping batch: include 'labels' or pass loss_fn"
                )
            return loss
        if "labels" not in batch:
            raise ValueError(
                f"a mapping batch needs 'labels' when loss_fn is given; got {sorted(batch)}"
            )
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
        out = model(**inputs)
        logits = out.logits if hasattr(out, "logits") else out
        return loss_fn(logits, batch["labels"]).mean()
    if isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        if loss_fn is None:
            raise ValueError("a tuple batch (inputs, targets) needs loss_fn")
        x, y = batch[0].to(device), batch[1].to(device)
        out = model(x)
        logits = out.logits if hasattr(out, "logits") else out
        return loss_fn(logits, y).mean()
    raise TypeError(
        f"a batch must be a mapping (Hugging Face style) or a tuple (inputs, targets), got "
        f"{type(batch).__name__}"
    )


def _check_sparsity(sparsity: object) -> float:
    if isinstance(sparsity, bool) or not isinstance(sparsity, (int, float)):
        raise TypeError(f"sparsity must be a float in [0, 1), got {type(sparsity).__name__}")
    s = float(sparsity)
    if math.isnan(s) or not 0.0 <= s < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity!r}")
    return s


def _check_alpha(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__}")
    v = float(value)
    if math.isnan(v) or not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value!r}")
    return v


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"{name} must be an int >= {minimum}, got {type(value).__name__} ({value!r})"
        )
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return value


class Pruner(Callback):
    """Base class: targets, the mask, masked training, timing, the callback hooks and persistence."""

    #: "gradual" (scores from training gradients in a window) or "oneshot" (one cut before training)
    family: str = "gradual"

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        targets: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.model = model
        self.sparsity = _check_sparsity(sparsity)
        self.params = target_parameters(model, targets, exclude)
        self.names = list(self.params)
        self.numel = sum(p.numel() for p in self.params.values())
        self.mask = WeightMask.dense(self.params)
        self.masked = MaskedTraining(model, self.mask, optimizer).attach()
        self.t = 0  # number of step() calls so far
        self.pruned_before_training = False
        self.seconds = 0.0  # wall time spent inside step() and mask updates

    # ------------------------------------------------------------------ shared helpers
    def _set_mask(self, mask: WeightMask) -> None:
        """Adopt `mask`, zero the pruned weights and re-hook masked training."""
        self.masked.load_state_dict({"mask": mask.state_dict()})
        self.mask = self.masked.mask

    def _grads(self) -> list[torch.Tensor]:
        """This step's gradients of the targets (zeros for a target the loss did not reach)."""
        grads = [p.grad for p in self.params.values()]
        if all(g is None for g in grads):
            raise RuntimeError(
                f"{type(self).__name__}.step() found no gradients on the target weights: call it "
                "after loss.backward() and optimizer.step(), before the next zero_grad()"
            )
        return [
            torch.zeros_like(p) if g is None else g.detach()
            for g, p in zip(grads, self.params.values())
        ]

    def _weights(self) -> list[torch.Tensor]:
        return [p.detach() for p in self.params.values()]

    @property
    def achieved_sparsity(self) -> float:
        """Fraction of target weights that are pruned now."""
        return self.mask.sparsity

    def sparsity_by_layer_type(self) -> dict[str, float]:
        """Achieved sparsity per layer role (query, key, value, attn_out, ffn_in, ffn_out, pooler)."""
        return sparsity_by_layer_type(self.mask)

    def step(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def prune_before_training(
        self,
        batches: Iterable[Any],
        loss_fn: Callable[..., torch.Tensor] | None = None,
        progress: bool = False,
    ) -> WeightMask:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def needs_pre_pruning(self) -> bool:
        """True when `prune_before_training` must run before fine-tuning (and has not yet)."""
        return False

    # ------------------------------------------------------------------ maskloop.Callback
    def on_fit_start(self, state: LoopState) -> None:
        if self.needs_pre_pruning:
            self.prune_before_training(state.train_data, loss_fn=state.loss_fn)

    def on_step_end(self, state: LoopState) -> None:
        self.step()

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {"class": type(self).__name__, "sparsity": self.sparsity, "names": list(self.names)}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume mid-schedule: step, mask, scores/moments, configuration."""
        return {
            "config": self._config(),
            "t": self.t,
            "pruned_before_training": self.pruned_before_training,
            "mask": self.mask.state_dict(),
            **self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned (the pruner must be built with the same settings)."""
        if not isinstance(state, Mapping) or "config" not in state:
            raise TypeError("state must be a mapping returned by Pruner.state_dict()")
        mine, theirs = self._config(), dict(state["config"])
        if mine != theirs:
            diff = {
                k: (theirs.get(k), mine.get(k))
                for k in set(mine) | set(theirs)
                if mine.get(k) != theirs.get(k)
            }
            raise ValueError(f"state was saved by a differently configured pruner: {diff}")
        self.t = int(state["t"])
        self.pruned_before_training = bool(state["pruned_before_training"])
        self._set_mask(WeightMask(state["mask"]))
        self._load_extra_state(state)

    def remove(self) -> None:
        """Detach the masked-training hooks (weights keep their zeros)."""
        self.masked.remove()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sparsity={self.sparsity}, tensors={len(self.names)}, "
            f"numel={self.numel}, achieved={self.achieved_sparsity:.4f}, t={self.t})"
        )


class GradualPruner(Pruner):
    """A pruner whose scores follow the training gradients, with a cubic keep-ratio schedule.

    At step `t` (the count of earlier `step()` calls), for `start <= t < start + window - 1`, with
    `k = t - start`: update the scores from this step's weights and gradients, then (every `delta_t`
    steps and on the window's last step) keep the `floor(r_k * N)` highest scores over all targets,
    never reviving a pruned weight, where

        r_k = r_f + (1 - r_f) * (1 - (k + 1) / K)^3,   r_f = 1 - sparsity,  K = window

    (`maskloop.schedules.cubic(1, r_f, 0, K)` at `k + 1`). After the window the mask is frozen. This
    is the schedule of the official SEVEN code; note that its last update is at `k = K - 2`, so the
    final sparsity falls short of the target by `sparsity / K^3` (negligible for K in the hundreds;
    use `final_exact=True` to make the last update cut to the exact target).

    `mode="pre"` (reconstruction): `prune_before_training(batches)` runs the same score rule over
    `window` batches at the pretrained weights (gradients only, no weight update), pruning along the
    cubic schedule over the batches to exactly the target, then `step()` only keeps the mask.
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        mode: str = "dyn",
        start: int = 0,
        window: int = 100,
        delta_t: int = 1,
        final_exact: bool = False,
        targets: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        if mode not in ("dyn", "pre"):
            raise ValueError(
                f"mode must be 'dyn' (during fine-tuning) or 'pre' (before), got {mode!r}"
            )
        self.mode = mode
        self.start = _check_int("start", start, 0)
        self.window = _check_int("window", window, 1)
        self.delta_t = _check_int("delta_t", delta_t, 1)
        self.final_exact = bool(final_exact)
        super().__init__(model, sparsity, targets=targets, exclude=exclude, optimizer=optimizer)
        self.schedule = schedules.cubic(1.0, 1.0 - self.sparsity, 0, self.window)
        self.state: dict[str, list[torch.Tensor]] = {}
        self.updates = 0  # number of score updates so far (k of the next update)

    # ------------------------------------------------------------------ the rule (subclasses)
    #: names of the per-weight state tensors the rule keeps (allocated at zero when pruning starts)
    state_names: tuple[str, ...] = ("S",)

    def update_scores(self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int) -> None:
        """Fold one step's weights and gradients into `self.state` (k = 0 on the first update)."""
        raise NotImplementedError

    def current_scores(self) -> list[torch.Tensor]:
        """The scores the mask is cut on (higher = more important)."""
        return self.state["S"]

    # ------------------------------------------------------------------ schedule
    def keep_ratio(self, k: int) -> float:
        """r_k = r_f + (1 - r_f) (1 - (k+1)/K)^3: the fraction of targets kept after update k."""
        return self.schedule(k + 1)

    def n_keep(self, k: int) -> int:
        """floor(r_k * N): the number of target weights kept after update k."""
        return min(self.numel, math.floor(self.keep_ratio(k) * self.numel + 1e-9))

    @property
    def last_k(self) -> int:
        """The last update index: K - 2 during fine-tuning (official rule), K - 1 before it (and
        with `final_exact`, or K = 1, where the single update cuts straight to the target)."""
        if self.mode == "pre" or self.final_exact or self.window == 1:
            return self.window - 1
        return self.window - 2

    def _ensure_state(self) -> None:
        if not self.state:
            self.state = {
                s: [torch.zeros_like(p, dtype=torch.float32) for p in self.params.values()]
                for s in self.state_names
            }

    @torch.no_grad()
    def _update(self, k: int) -> None:
        self._ensure_state()
        weights = self._weights()
        grads = self._grads()
        self.update_scores(weights, grads, k)
        if (k + 1) % self.delta_t == 0 or k == self.last_k:
            self._cut(k)
        self.updates = k + 1

    @torch.no_grad()
    def _cut(self, k: int) -> None:
        scores = self.current_scores()
        for n, s in zip(self.names, scores):
            # S[M == 0] <- 0: pruned weights never come back (also excluded by `previous`)
            s.masked_fill_(~self.mask[n], 0.0)
        keep = self.n_keep(k)
        if k == self.window - 1:  # the schedule's end: exactly round(sparsity * N) pruned
            keep = self.numel - math.floor(self.sparsity * self.numel + 0.5)
        new = select_global(dict(zip(self.names, scores)), keep, previous=self.mask)
        self._set_mask(new)

    # ------------------------------------------------------------------ driving
    @property
    def in_window(self) -> bool:
        """True while `step()` still updates scores and the mask (during fine-tuning)."""
        return self.mode == "dyn" and self.start <= self.t <= self.start + self.last_k

    @property
    def done(self) -> bool:
        """True once the mask is final."""
        if self.mode == "pre":
            return self.pruned_before_training
        return self.t > self.start + self.last_k

    @property
    def needs_pre_pruning(self) -> bool:
        return self.mode == "pre" and not self.pruned_before_training

    def step(self) -> None:
        """Call once per training step, after `optimizer.step()` (gradients still in `.grad`).

        In the window, updates the scores from the post-step weights and this step's gradients and
        cuts the mask; always re-zeroes the pruned weights.
        """
        tic = time.perf_counter()
        if self.mode == "pre":
            if not self.pruned_before_training:
                raise RuntimeError(
                    "mode='pre': call prune_before_training(batches) before fine-tuning "
                    "(maskloop.fit and SevenCallback do it for you)"
                )
        elif self.start <= self.t <= self.start + self.last_k:
            self._update(self.t - self.start)
        elif self.t == 0:
            self._grads()  # step() before any backward is a usage error even outside the window
        self.masked.reapply()
        self.t += 1
        self.seconds += time.perf_counter() - tic

    def prune_before_training(
        self,
        batches: Iterable[Any],
        loss_fn: Callable[..., torch.Tensor] | None = None,
        progress: bool = False,
    ) -> WeightMask:
        """mode='pre' (reconstruction): score on `window` batches at the current weights, then prune.

        Each batch: forward, backward, fold the gradients into the scores with k = batch index, cut
        to r_k (cubic over the batches, exact target after the last one); the weights are not
        updated and the gradients are cleared afterwards. Batches are reused cyclically if fewer than
        `window` are given.
        """
        if self.mode != "pre":
            raise RuntimeError(
                f"prune_before_training needs mode='pre', this pruner has {self.mode!r}"
            )
        from tqdm.auto import tqdm

        tic = time.perf_counter()
        was_training = self.model.training
        self.model.train()
        saved = {n: p.grad for n, p in self.model.named_parameters()}
        it = _cycle(batches, "batches")
        for k in tqdm(range(self.window), desc="SEVEN_pre scoring", disable=not progress):
            self.model.zero_grad(set_to_none=True)
            loss = batch_loss(self.model, next(it), loss_fn)
            loss.backward()
            self._update(k)
        self.model.zero_grad(set_to_none=True)
        for n, p in self.model.named_parameters():
            p.grad = saved[n]
        self.model.train(was_training)
        self.pruned_before_training = True
        self.seconds += time.perf_counter() - tic
        return self.mask

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "mode": self.mode,
            "start": self.start,
            "window": self.window,
            "delta_t": self.delta_t,
            "final_exact": self.final_exact,
        }

    def _extra_state(self) -> dict[str, Any]:
        return {
            "updates": self.updates,
            "scores": {
                s: {n: t.detach().cpu().clone() for n, t in zip(self.names, ts)}
                for s, ts in self.state.items()
            },
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.updates = int(state["updates"])
        self.state = {
            s: [ts[n].to(self.params[n].device).float().clone() for n in self.names]
            for s, ts in state["scores"].items()
        }


class OneShotPruner(Pruner):
    """A pruner that scores once before fine-tuning and cuts to the target in one global step."""

    family = "oneshot"
    #: whether scoring needs gradient batches
    needs_batches: bool = True

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        n_batches: int = 1,
        targets: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.n_batches = _check_int("n_batches", n_batches, 1)
        super().__init__(model, sparsity, targets=targets, exclude=exclude, optimizer=optimizer)

    def compute_scores(
        self, batches: Iterable[Any] | None, loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        """Scores (higher = kept), one tensor per target."""
        raise NotImplementedError

    @property
    def needs_pre_pruning(self) -> bool:
        return not self.pruned_before_training

    def prune_before_training(
        self,
        batches: Iterable[Any] | None = None,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        progress: bool = False,
    ) -> WeightMask:
        """Score (using `n_batches` batches when the method needs gradients) and cut to the target."""
        if self.needs_batches and batches is None:
            raise ValueError(f"{type(self).__name__} needs gradient batches; got batches=None")
        tic = time.perf_counter()
        was_training = self.model.training
        saved = {n: p.grad for n, p in self.model.named_parameters()}
        scores = self.compute_scores(batches, loss_fn)
        for n, p in self.model.named_parameters():
            p.grad = saved[n]
        self.model.train(was_training)
        keep = self.numel - math.floor(self.sparsity * self.numel + 0.5)
        self._set_mask(select_global(dict(zip(self.names, scores)), keep))
        self.pruned_before_training = True
        self.seconds += time.perf_counter() - tic
        return self.mask

    def step(self) -> None:
        """Keep the pruned weights at zero (call after `optimizer.step()`)."""
        if not self.pruned_before_training:
            raise RuntimeError(
                f"{type(self).__name__}: call prune_before_training(batches) before fine-tuning "
                "(maskloop.fit and SevenCallback do it for you)"
            )
        tic = time.perf_counter()
        self.masked.reapply()
        self.t += 1
        self.seconds += time.perf_counter() - tic

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "n_batches": self.n_batches}

    # ------------------------------------------------------------------ gradient helper
    def _accumulated_grads(
        self, batches: Iterable[Any], loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        """Mean gradient of the targets over `n_batches` batches (weights unchanged)."""
        self.model.train()
        it = _cycle(batches, "batches")
        acc = [torch.zeros_like(p, dtype=torch.float32) for p in self.params.values()]
        for _ in range(self.n_batches):
            self.model.zero_grad(set_to_none=True)
            batch_loss(self.model, next(it), loss_fn).backward()
            torch._foreach_add_(acc, [p.grad.float() for p in self.params.values()])
        self.model.zero_grad(set_to_none=True)
        torch._foreach_div_(acc, float(self.n_batches))
        return acc


def _cycle(batches: Iterable[Any], name: str) -> Any:
    """Iterate `batches` forever (re-iterating when exhausted); error if it yields nothing."""
    if batches is None or not isinstance(batches, Iterable):
        raise TypeError(
            f"{name} must be an iterable of batches (e.g. a DataLoader), got {batches!r}"
        )

    def gen() -> Any:
        while True:
            empty = True
            for b in batches:
                empty = False
                yield b
            if empty:
                raise ValueError(f"{name} yielded no batches")

    return gen()
