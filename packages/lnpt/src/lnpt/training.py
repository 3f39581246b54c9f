"""Label-free training of a pruned student, guided online by the teacher (reconstruction).

The student minimises the objective J of `lnpt.learning_gap` (feature gap to the teacher plus, by
default, logit distillation) on inputs only; the teacher is queried on every batch. Pruned weights stay
exactly zero through `maskloop.MaskedTraining`. Optionally (`DynamicMask`) the mask is re-scored
periodically: the kept weights with the lowest LNPT saliency |theta * dJ/dtheta| are pruned and the same
number of pruned weights with the largest |dJ/dtheta| regrow (from zero), so the sparsity never changes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from maskloop import (
    Callback,
    FeatureHook,
    History,
    LoopState,
    MaskedTraining,
    WeightMask,
    fit,
)
from maskloop.checks import check_fraction, check_positive_int, check_real
from maskloop.distributed import all_reduce_
from torch import nn

from lnpt.features import all_reduce_mean, batch_inputs, distributed_active, iter_inputs
from lnpt.learning_gap import LearningGap

__all__ = [
    "TRAINING_BASE",
    "TRAINING_DEFAULTS",
    "AdaptorSync",
    "DynamicMask",
    "LabelFreeObjective",
    "LabelFreeTrainer",
    "LinearWarmup",
    "WarmupCosine",
]

# The label-free objective before the training ablation: L2-normalised penultimate features compared
# coordinate by coordinate (identity adaptor between same-width nets) plus soft-logit distillation at
# tau = 4, both with weight 1 (`LearningGap`'s own defaults), no mixup.
TRAINING_BASE: dict[str, Any] = {
    "feature_weight": 1.0,
    "kd_weight": 1.0,
    "temperature": 4.0,
    "targets": "soft",
    "confidence": 0.0,
    "normalize": True,
    "adaptor": "auto",
    "gap": "squared",
    "mixup": 0.0,
}
# What `LabelFreeTrainer` changes from `TRAINING_BASE` unless the call names the option: the
# variant chosen on validation (`lnpt bench --training-ablation`, 95% sparsity, 3 seeds per model,
# highest mean validation accuracy over the digits MLP, digits CNN and MNIST-1D CNN;
# docs/benchmarks/lnpt_training_ablation.md): `soft`, i.e. soft-logit distillation at tau = 4
# without the feature term (91.10 vs 89.17 for the previous objective; digits CNN 86.11 vs 81.11).
# The learning gap still chooses the mask and is logged while training (`feature_gap`).
# `LearningGap`'s own defaults, which `score` and `prune` use, are not changed by it.
TRAINING_DEFAULTS: dict[str, Any] = {"feature_weight": 0.0}


class DynamicMask:
    """Periodic prune/regrow driven by the label-free objective (off unless passed to the trainer).

    Every `every` epochs, a fraction of the kept weights (`fraction`, decayed with a cosine over the run
    when `decay="cosine"`) with the lowest |theta * dJ/dtheta| is pruned, and as many pruned weights
    with the largest |dJ/dtheta| (on `max_batches` unlabeled batches) regrow at zero. Reconstruction:
    the paper's abstract does not describe its dynamic variant.
    """

    def __init__(
        self, every: int = 5, fraction: float = 0.1, decay: str = "cosine", max_batches: int = 1
    ) -> None:
        self.every = check_positive_int("every", every)
        fraction = check_fraction("fraction", fraction, low_inclusive=False)
        if decay not in ("cosine", "constant"):
            raise ValueError(f"decay must be 'cosine' or 'constant', got {decay!r}")
        self.fraction = float(fraction)
        self.decay = decay
        self.max_batches = check_positive_int("max_batches", max_batches)
        self.updates: list[dict[str, float]] = []

    def fraction_at(self, epoch: int, epochs: int) -> float:
        """The prune/regrow fraction after `epoch` (0-based) of `epochs`."""
        if self.decay == "constant":
            return self.fraction
        return self.fraction * 0.5 * (1 + math.cos(math.pi * (epoch + 1) / max(epochs, 1)))

    def update(
        self,
        gap: LearningGap,
        model: nn.Module,
        mask: WeightMask,
        inputs: Sequence[torch.Tensor],
        fraction: float,
    ) -> WeightMask:
        """A new mask with the same number of kept weights (gradients taken without mask hooks)."""
        named = dict(model.named_parameters())
        names = list(mask.names)
        plist = [named[n] for n in names]
        grads = [torch.zeros_like(p) for p in plist]
        for x in inputs:
            gs = torch.autograd.grad(gap(x), plist, allow_unused=True)
            for acc, g in zip(grads, gs):
                if g is not None:
                    acc.add_(g)
        grads = all_reduce_mean(grads, len(inputs))  # ranks agree under torch.distributed
        keep = torch.cat([mask[n].flatten().cpu() for n in names])
        theta = torch.cat([p.detach().flatten().cpu() for p in plist]).double()
        grad = torch.cat([g.flatten().cpu() for g in grads]).double()
        n_kept = int(keep.sum())
        n_move = min(int(round(fraction * n_kept)), int((~keep).sum()), n_kept)
        if n_move == 0:
            self.updates.append({"moved": 0.0})
            return mask
        saliency = (theta * grad).abs().masked_fill(~keep, math.inf)
        drop = torch.argsort(saliency, stable=True)[:n_move]
        growth = grad.abs().masked_fill(keep, -math.inf)
        grow = torch.argsort(growth, descending=True, stable=True)[:n_move]
        new = keep.clone()
        new[drop] = False
        new[grow] = True
        out, offset = {}, 0
        for n in names:
            k = mask[n].numel()
            out[n] = new[offset : offset + k].reshape(mask[n].shape).to(mask[n].device)
            offset += k
        self.updates.append({"moved": float(n_move)})
        return WeightMask(out)


class LabelFreeObjective:
    """The label-free objective J as a `maskloop.fit` objective: `(model, batch) -> per-sample J`.

    For a batch of inputs (a tensor, or the first element of a tuple; labels are never read) it runs
    the student once, reads its features with a forward hook, queries the teacher (no gradients) and
    returns `J_i = feature_weight * ||phi_T(x_i) - A(phi_S(x_i))||^2 + kd_weight * tau^2 KL_i` with
    logs `outputs` (the student's logits), `feature_gap` and `kd` (batch means). Call
    `gap.setup(x)` first. A linear adaptor's parameters must be in the optimizer; its state is saved
    and resumed by `maskloop.Checkpoint` through `state_dict` / `load_state_dict`. Under DDP add
    `AdaptorSync(gap)` to the callbacks (the adaptor is not part of the DDP-wrapped student).

    `mixup` (default 0: off) trains on mixed inputs: each input is blended with another of its batch
    (a random permutation), the partner's share drawn uniformly from [0, mixup] per sample (mixup
    <= 0.5), and the teacher is queried on the blend. No labels are mixed (there are none): the
    student matches the teacher's function between the unlabeled inputs too ("function matching",
    Beyer et al., CVPR 2022). What it assumes: the teacher's outputs on blends of inputs are
    informative, which holds for smooth teachers and gives a small unlabeled set many more distinct
    targets. The draws come from a generator seeded by `seed`, whose state `state_dict` saves.
    """

    def __init__(self, gap: LearningGap, mixup: float = 0.0, seed: int = 0) -> None:
        if not isinstance(gap, LearningGap):
            raise TypeError(f"gap must be a LearningGap, got {type(gap).__name__}")
        self.gap = gap
        self.mixup = check_real("mixup", mixup, low=0.0, high=0.5)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.generator = torch.Generator().manual_seed(seed)

    def mix(self, x: torch.Tensor) -> torch.Tensor:
        """`x` blended with a permutation of its batch (unchanged when `mixup` is 0)."""
        if self.mixup == 0 or x.shape[0] < 2:
            return x
        g = self.generator
        perm = torch.randperm(x.shape[0], generator=g).to(x.device)
        share = (torch.rand(x.shape[0], generator=g) * self.mixup).to(x.device, x.dtype)
        share = share.reshape(-1, *([1] * (x.ndim - 1)))
        return (1 - share) * x + share * x[perm]

    def __call__(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, Any]]:
        x = self.mix(batch_inputs(batch))
        ext = self.gap.student_features
        inner = getattr(model, "module", model)  # the DDP wrapper's student
        with FeatureHook(inner, ext.layer, ext.which) as hook:
            out = model(x)
        logits = out.logits if hasattr(out, "logits") else out
        if hook.features is None:
            raise RuntimeError(f"the feature layer {ext.layer!r} did not run in the forward pass")
        f_t, l_t = self.gap.teacher_outputs(x)
        gap, kd = self.gap.gap_terms(ext.reduce(hook.features), logits, f_t, l_t)
        losses = self.gap.feature_weight * gap + self.gap.kd_weight * kd
        return losses, {
            "outputs": logits,
            "feature_gap": gap.detach().mean(),
            "kd": kd.detach().mean(),
        }

    def state_dict(self) -> dict[str, Any]:
        """The adaptor's parameters (empty for the identity) and, with mixup, the generator state."""
        a = self.gap.adaptor
        out = {} if a is None else {k: v.detach().clone() for k, v in a.state_dict().items()}
        if self.mixup > 0:
            out["mixup_rng"] = self.generator.get_state()
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the adaptor (and mixup generator) saved by `state_dict`."""
        state = dict(state)
        rng = state.pop("mixup_rng", None)
        if rng is not None:
            self.generator.set_state(rng)
        if state and self.gap.adaptor is not None:
            self.gap.adaptor.load_state_dict(state)


class AdaptorSync(Callback):
    """Average a linear adaptor's gradients over the ranks under DDP (`on_after_backward`).

    `maskloop.fit` wraps the student in DDP, which averages the student's gradients only; with this
    callback every rank keeps the same adaptor too. A no-op in a single process.
    """

    def __init__(self, gap: LearningGap) -> None:
        if not isinstance(gap, LearningGap):
            raise TypeError(f"gap must be a LearningGap, got {type(gap).__name__}")
        self.gap = gap

    def on_after_backward(self, state: LoopState) -> None:
        adaptor = self.gap.adaptor
        if adaptor is None or state.world_size < 2 or not distributed_active():
            return
        for p in adaptor.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            all_reduce_(p.grad, op="mean")


class _DynamicMaskCallback(Callback):
    """Runs `DynamicMask` at epoch ends inside `maskloop.fit`, swapping the trainer's mask."""

    order = -5

    def __init__(self, trainer: LabelFreeTrainer, unlabeled: Iterable[Any], epochs: int) -> None:
        self.trainer = trainer
        self.unlabeled = unlabeled
        self.epochs = epochs

    def on_epoch_end(self, state: LoopState) -> None:
        tr, dyn = self.trainer, self.trainer.dynamic_mask
        done = state.epoch  # epochs finished
        if dyn is None or tr.masked is None or done % dyn.every or done >= self.epochs:
            return
        # autograd.grad does not run the mask's gradient hooks: pruned entries get their gradient
        xs = [x.to(state.device) for x in iter_inputs(self.unlabeled, "unlabeled", dyn.max_batches)]
        tr.mask = dyn.update(
            tr.gap, tr.student, tr.mask, xs, dyn.fraction_at(done - 1, self.epochs)
        )
        tr.masked.set_mask(tr.mask)
        state.metrics["mask_moved"] = dyn.updates[-1]["moved"]


class LabelFreeTrainer:
    """Train a (pruned) student on unlabeled inputs against the teacher's learning gap.

    `fit(unlabeled, epochs)` runs `maskloop.fit` with `LabelFreeObjective`: for each batch of inputs
    (a tensor, or the first element of a tuple; labels are never read) the teacher is queried, J is
    minimised with the optimizer, and the mask reaches training one way, as a
    `maskloop.MaskedTraining` callback, which attaches when training starts, keeps the pruned
    weights at zero, swaps masks (`DynamicMask`, through `set_mask`) and detaches at the end. A
    linear adaptor is trained with the student. `mixup` (None: `TRAINING_DEFAULTS`' value, else 0)
    and `seed` go to `LabelFreeObjective` (inputs blended within a batch), the other keyword
    options (`gap_options`: feature_weight, kd_weight, temperature, targets, confidence, normalize,
    adaptor, gap, ...) to `LearningGap`; options not named are `TRAINING_DEFAULTS` (the training
    objective chosen on validation), then `LearningGap`'s defaults (= `TRAINING_BASE`, the
    objective before the choice). `callbacks` are any `maskloop.Callback`s (all eight hooks run), e.g.
    `lnpt.LearningGapDiagnostic` or `maskloop.Checkpoint` (a run resumes to the same weights).
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        mask: WeightMask | None = None,
        *,
        feature_layer: str | nn.Module | None = None,
        teacher_layer: str | nn.Module | None = "same",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        optimizer: Callable[[list[nn.Parameter]], torch.optim.Optimizer] | None = None,
        dynamic_mask: DynamicMask | None = None,
        mixup: float | None = None,
        seed: int = 0,
        **gap_options: Any,
    ) -> None:
        if mask is not None and not isinstance(mask, WeightMask):
            raise TypeError(f"mask must be a WeightMask or None, got {type(mask).__name__}")
        if dynamic_mask is not None and not isinstance(dynamic_mask, DynamicMask):
            raise TypeError(
                f"dynamic_mask must be a DynamicMask, got {type(dynamic_mask).__name__}"
            )
        if dynamic_mask is not None and mask is None:
            raise ValueError("dynamic_mask needs a mask to update; pass mask=...")
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0:
            raise ValueError(f"lr must be a number > 0, got {lr!r}")
        if optimizer is not None and not callable(optimizer):
            raise TypeError("optimizer must be a callable params -> torch.optim.Optimizer")
        defaults = dict(TRAINING_DEFAULTS)
        default_mixup = defaults.pop("mixup", 0.0)
        mixup = default_mixup if mixup is None else mixup
        gap_options = {**defaults, **gap_options}
        self.student = student
        self.teacher = teacher
        self.mask = mask
        self.gap = LearningGap(
            student,
            teacher,
            feature_layer=feature_layer,
            teacher_layer=teacher_layer,
            **gap_options,
        )
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.optimizer_factory = optimizer
        self.dynamic_mask = dynamic_mask
        self.objective = LabelFreeObjective(self.gap, mixup=mixup, seed=seed)
        self.optimizer: torch.optim.Optimizer | None = None
        self.masked: MaskedTraining | None = None

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = list(self.student.parameters())
        assert self.gap.adaptor is not None
        params += list(self.gap.adaptor.parameters())
        if self.optimizer_factory is not None:
            opt = self.optimizer_factory(params)
            if not isinstance(opt, torch.optim.Optimizer):
                raise TypeError(
                    f"optimizer factory returned {type(opt).__name__}, not an Optimizer"
                )
            return opt
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)

    def fit(
        self,
        unlabeled: Iterable[Any],
        epochs: int,
        *,
        callbacks: Sequence[Callback] = (),
        progress: bool = True,
    ) -> History:
        """Train for `epochs` passes over `unlabeled` through `maskloop.fit`; return its `History`."""
        epochs = check_positive_int("epochs", epochs)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must be maskloop.Callback instances, got {type(cb).__name__}"
                )
        first = next(iter_inputs(unlabeled, "unlabeled", 1))
        self.gap.setup(first, refit=self.gap.adaptor is None)
        opt = self.optimizer = self._make_optimizer()
        cbs: list[Callback] = [AdaptorSync(self.gap)]
        if self.mask is not None:
            self.masked = MaskedTraining(self.student, self.mask, opt)
            cbs.append(self.masked)
            if self.dynamic_mask is not None:
                cbs.append(_DynamicMaskCallback(self, unlabeled, epochs))
        return fit(  # fit attaches the MaskedTraining callback at its start, detaches it at its end
            self.student,
            unlabeled,
            epochs=epochs,
            optimizer=opt,
            objective=self.objective,
            callbacks=[*cbs, *callbacks],
            progress=progress,
        )


class _LrMultiplier(Callback):
    """Shared lifecycle of the students' lr schedules: each parameter group's lr at the start of
    the fit is its base, every batch trains at base times `factor(step, epoch)` (a subclass's
    schedule), and the base lrs are restored at the end of the fit."""

    order = -10  # before any callback that reads the lr in on_batch_start

    def __init__(self) -> None:
        self.base: list[float] = []
        self.steps_per_epoch: int | None = None

    def on_fit_start(self, state: LoopState) -> None:
        self.base = [float(g["lr"]) for g in state.optimizer.param_groups]
        try:
            self.steps_per_epoch = max(1, len(state.train_data))
        except TypeError:
            self.steps_per_epoch = None

    def factor(self, step: int, epoch: int) -> float:
        """The multiplier of the base lrs at optimizer step `step` (0-based) in epoch `epoch`."""
        raise NotImplementedError

    def on_batch_start(self, state: LoopState) -> None:
        f = self.factor(state.step, state.epoch)
        for g, lr in zip(state.optimizer.param_groups, self.base):
            g["lr"] = lr * f

    def on_fit_end(self, state: LoopState) -> None:
        for g, lr in zip(state.optimizer.param_groups, self.base):
            g["lr"] = lr


class LinearWarmup(_LrMultiplier):
    """Linear learning-rate warm-up over the first `epochs` epochs, then the optimizer's own lr.

    Why: Adam at a large step kills most of a sparse CNN's last ReLU channels in its first epochs
    (the benchmark's digits CNN at lr 1e-2); a ramp lets the first steps be small without lowering
    the lr for the rest of training. At optimizer step t (0-based, counted from the start of the fit)
    every parameter group trains at `lr_g * min(1, (t + 1) / (epochs * steps_per_epoch))`, with
    `lr_g` the group's lr when training starts and `steps_per_epoch = len(train_data)` (the ramp
    goes by epochs, `min(1, (epoch + 1) / epochs)`, when the data has no length). The groups' lrs
    are restored at the end. Works in any `maskloop.fit` (supervised or `LabelFreeTrainer.fit`).
    """

    def __init__(self, epochs: int) -> None:
        super().__init__()
        self.epochs = check_positive_int("epochs", epochs)

    def factor(self, step: int, epoch: int) -> float:
        """The multiplier of the base lrs at optimizer step `step` (0-based) in epoch `epoch`."""
        if self.steps_per_epoch is None:
            return min(1.0, (epoch + 1) / self.epochs)
        return min(1.0, (step + 1) / (self.epochs * self.steps_per_epoch))


class WarmupCosine(_LrMultiplier):
    """The students' `schedule="cosine"` (session 26's recipe reading, off by default): a linear lr
    warm-up over the first `warmup_epochs` epochs, exactly as `LinearWarmup`, then a cosine decay of
    the lr to 0 over the rest of a run of `epochs` epochs.

    At optimizer step t (0-based, from the start of the fit), with `W = warmup_epochs *
    steps_per_epoch` and `K = epochs * steps_per_epoch - W`, every parameter group trains at
    `lr_g * (t + 1) / W` while t < W, then at `lr_g * 0.5 * (1 + cos(pi * min(t - W, K) / K))`: the
    full lr on the first step after the warm-up, close to 0 on the run's last step (0 from step
    W + K on, if a fit runs longer than `epochs`). `steps_per_epoch = len(train_data)`; without a
    length the factor goes by epochs (`W` and `K` in epochs, t the epoch). The groups' lrs are
    restored at the end. `epochs` is the schedule's length, not necessarily the fit's: a fit
    stopped early (`lnpt.bench.partially_trained`) follows the same curve up to where it stops.

    What it assumes: that the sparse students, which kept gaining from 120 to 240 epochs at a
    constant lr (session 17), are held back by the noise of Adam's full step late in training, so
    annealing the step to 0 fits more in the same budget; it costs nothing extra. Raises TypeError
    / ValueError naming `epochs` or `warmup_epochs` (an int >= 0 and shorter than `epochs`).
    """

    def __init__(self, epochs: int, warmup_epochs: int = 0) -> None:
        super().__init__()
        self.epochs = check_positive_int("epochs", epochs)
        self.warmup_epochs = check_positive_int("warmup_epochs", warmup_epochs, minimum=0)
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs must be shorter than epochs ({epochs}), got {warmup_epochs!r}"
            )

    def factor(self, step: int, epoch: int) -> float:
        """The multiplier of the base lrs at optimizer step `step` (0-based) in epoch `epoch`."""
        per = 1 if self.steps_per_epoch is None else self.steps_per_epoch
        t = epoch if self.steps_per_epoch is None else step
        warm = self.warmup_epochs * per
        if t < warm:
            return min(1.0, (t + 1) / warm)
        decay = self.epochs * per - warm
        return 0.5 * (1.0 + math.cos(math.pi * min(t - warm, decay) / decay))
