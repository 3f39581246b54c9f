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
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from maskloop import Callback, FeatureHook, History, LoopState, MaskedTraining, WeightMask
from torch import nn

from lnpt.features import all_reduce_mean, distributed_active, iter_inputs
from lnpt.learning_gap import LearningGap, _check_positive_int

__all__ = ["DynamicMask", "LabelFreeLoss", "LabelFreeTrainer"]


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
        self.every = _check_positive_int("every", every)
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real):
            raise TypeError(f"fraction must be a real number in (0, 1), got {fraction!r}")
        if not 0.0 < float(fraction) < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
        if decay not in ("cosine", "constant"):
            raise ValueError(f"decay must be 'cosine' or 'constant', got {decay!r}")
        self.fraction = float(fraction)
        self.decay = decay
        self.max_batches = _check_positive_int("max_batches", max_batches)
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


class LabelFreeTrainer:
    """Train a (pruned) student on unlabeled inputs against the teacher's learning gap.

    `fit(unlabeled, epochs)` runs the loop: for each batch of inputs (a tensor, or the first element of
    a tuple; labels are never read) the teacher is queried, J is minimised with the optimizer, and
    `MaskedTraining` keeps the pruned weights at zero. A linear adaptor is trained with the student.
    `callbacks` are `maskloop.Callback`s (`on_fit_start`, `on_epoch_start`, `on_step_end`,
    `on_epoch_end`, `on_fit_end` are called), e.g. `lnpt.LearningGapDiagnostic`.
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
        self.optimizer: torch.optim.Optimizer | None = None

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
        """Train for `epochs` passes over `unlabeled`; return the per-epoch `History`."""
        from tqdm.auto import tqdm

        epochs = _check_positive_int("epochs", epochs)
        for cb in callbacks:
            if not isinstance(cb, Callback):
                raise TypeError(
                    f"callbacks must be maskloop.Callback instances, got {type(cb).__name__}"
                )
        first = next(iter_inputs(unlabeled, "unlabeled", 1))
        self.gap.setup(first, refit=self.gap.adaptor is None)
        opt = self.optimizer = self._make_optimizer()
        masked = (
            MaskedTraining(self.student, self.mask, opt).attach() if self.mask is not None else None
        )
        device = next(self.student.parameters()).device
        state = LoopState(
            model=self.student,
            optimizer=opt,
            loss_fn=self.gap,
            train_data=unlabeled,
            epochs=epochs,
            device=device,
            callbacks=sorted(callbacks, key=lambda c: c.order),
        )
        cbs = state.callbacks
        try:
            for cb in cbs:
                cb.on_fit_start(state)
            while state.epoch < epochs and not state.stop_training:
                state.metrics = {"epoch": float(state.epoch)}
                for cb in cbs:
                    cb.on_epoch_start(state)
                self.student.train()
                total, count, start = 0.0, 0, time.perf_counter()
                bar = tqdm(
                    iter_inputs(state.train_data, "unlabeled"),
                    desc=f"label-free epoch {state.epoch + 1}/{epochs}",
                    disable=not progress,
                    leave=False,
                )
                for state.batch_idx, x in enumerate(bar):
                    x = x.to(device)
                    state.inputs = x
                    opt.zero_grad(set_to_none=True)
                    loss = self.gap(x)
                    if not torch.isfinite(loss):
                        raise FloatingPointError(
                            f"non-finite label-free loss {loss.item()} at epoch {state.epoch}, "
                            f"batch {state.batch_idx}: lower the learning rate"
                        )
                    state.loss = loss
                    loss.backward()
                    opt.step()
                    state.step += 1
                    for cb in cbs:
                        cb.on_step_end(state)
                    total += float(loss.detach()) * x.shape[0]
                    count += x.shape[0]
                    bar.set_postfix(loss=f"{total / count:.4f}")
                bar.close()
                state.metrics["train_loss"] = total / max(count, 1)
                state.metrics["time"] = time.perf_counter() - start
                dyn = self.dynamic_mask
                if (
                    dyn is not None
                    and masked is not None
                    and (state.epoch + 1) % dyn.every == 0
                    and state.epoch + 1 < epochs
                ):
                    masked.remove()
                    xs = [
                        x.to(device) for x in iter_inputs(unlabeled, "unlabeled", dyn.max_batches)
                    ]
                    self.mask = dyn.update(
                        self.gap, self.student, self.mask, xs, dyn.fraction_at(state.epoch, epochs)
                    )
                    masked = MaskedTraining(self.student, self.mask, opt).attach()
                    state.metrics["mask_moved"] = dyn.updates[-1]["moved"]
                state.history.epochs.append(state.metrics)
                state.epoch += 1
                for cb in cbs:
                    cb.on_epoch_end(state)
            for cb in cbs:
                cb.on_fit_end(state)
        finally:
            if masked is not None:
                masked.remove()
        return state.history


class LabelFreeLoss(Callback):
    """Use the label-free objective inside `maskloop.fit` (replaces the per-sample losses).

    `fit` needs (inputs, targets) batches: pass any placeholder targets (they are not read by this
    callback; `loss_fn` may return zeros). Call `gap.setup(x)` first, and give the optimizer the
    adaptor's parameters too when it is linear.

    Under torchrun `fit` wraps the student in DDP, which averages the student's gradients; the
    adaptor is not part of the student, so this callback averages its gradients over the ranks
    (`on_after_backward`) and every rank keeps the same adaptor.
    """

    order = 10

    def __init__(self, gap: LearningGap) -> None:
        if not isinstance(gap, LearningGap):
            raise TypeError(f"gap must be a LearningGap, got {type(gap).__name__}")
        self.gap = gap
        self._hook: FeatureHook | None = None

    def on_fit_start(self, state: LoopState) -> None:
        ext = self.gap.student_features
        self._hook = FeatureHook(ext.model, ext.layer, ext.which)

    def on_loss(self, state: LoopState) -> None:
        assert self._hook is not None and self._hook.features is not None
        f_s = self.gap.student_features.reduce(self._hook.features)
        f_t, l_t = self.gap.teacher_outputs(state.inputs)
        gap, kd = self.gap.gap_terms(f_s, state.outputs, f_t, l_t)
        state.losses = self.gap.feature_weight * gap + self.gap.kd_weight * kd

    def on_after_backward(self, state: LoopState) -> None:
        adaptor = self.gap.adaptor
        if adaptor is None or state.world_size < 2 or not distributed_active():
            return
        import torch.distributed as dist

        for p in adaptor.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad.div_(state.world_size)

    def on_fit_end(self, state: LoopState) -> None:
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
