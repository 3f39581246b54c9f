"""The optimizer step fused into backward: update each parameter as soon as its gradient is final.

A training step normally holds every parameter gradient at once (VGG-16: 528 MiB in float32,
392 MiB of it the first classifier layer's weight gradient) until ``optimizer.step()``. With one
optimizer per parameter and ``Tensor.register_post_accumulate_grad_hook``, each parameter is
updated the moment autograd has accumulated its gradient, and the gradient is freed at once
(PyTorch's "fuse the optimizer step into backward" recipe). The update is the same as
``optimizer.step()`` for per-parameter optimizers (SGD, Adam, AdamW, ...); it cannot be combined
with gradient clipping by global norm, gradient accumulation over several batches or optimizers
that couple parameters (LBFGS).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

__all__ = ["StepInBackward"]


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of `t` is finite, without a tensor-sized temporary in the usual case.

    `torch.isfinite(t).all()` allocates ~1.75x `t`'s bytes on CPU (687 MiB for VGG-16's 392 MiB
    first classifier weight, measured): inside backward that lands on top of the live activations.
    The sum is finite whenever every entry is (barring overflow past 3.4e38 in float32); only a
    non-finite sum pays for the exact elementwise check.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


class StepInBackward:
    """Run ``optimizer_cls(**kwargs)``'s step for each parameter inside ``backward``.

    Args:
        params: the parameters to train (those without ``requires_grad`` are skipped).
        optimizer_cls: a ``torch.optim.Optimizer`` subclass that updates parameters
            independently (SGD, Adam, AdamW, RMSprop, ...).
        check_finite: raise ``ValueError`` before a step that would write a NaN/inf gradient
            into the weights (one reduction over each gradient, no tensor-sized temporary).
        **kwargs: its arguments (``lr=...``).

    After ``loss.backward()`` the parameters are updated and their ``.grad`` is ``None``; call
    nothing else. ``remove()`` detaches the hooks.

    Memory: a step runs while the activations still to be back-propagated are alive, so its
    temporaries add to the peak. SGD (with momentum) updates in place; Adam's default step allocates
    two weight-sized temporaries (784 MiB for a 392 MiB weight, measured on CPU) and
    ``fused=True`` none: pass ``fused=True`` for Adam/AdamW where the device supports it.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        optimizer_cls: type,
        *,
        check_finite: bool = True,
        **kwargs: Any,
    ) -> None:
        if not (
            isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)
        ):
            raise TypeError(
                f"optimizer_cls must be a torch.optim.Optimizer subclass, got {optimizer_cls!r}"
            )
        if isinstance(params, torch.Tensor):
            raise TypeError("params must be an iterable of parameters, not a single tensor")
        plist = [p for p in params]
        bad = [i for i, p in enumerate(plist) if not isinstance(p, torch.Tensor)]
        if bad:
            raise TypeError(f"params[{bad[0]}] is {type(plist[bad[0]]).__name__}, not a tensor")
        plist = [p for p in plist if p.requires_grad]
        if not plist:
            raise ValueError("params holds no tensor that requires grad")
        self.check_finite = bool(check_finite)
        self.optimizers = {p: optimizer_cls([p], **kwargs) for p in plist}
        self._handles = [p.register_post_accumulate_grad_hook(self._step) for p in plist]

    def _step(self, p: torch.Tensor) -> None:
        if self.check_finite and p.grad is not None and not _all_finite(p.grad):
            raise ValueError(
                f"non-finite gradient for a parameter of shape {tuple(p.shape)}: the fused "
                "optimizer step refuses to write NaN/inf into the weights"
            )
        opt = self.optimizers[p]
        opt.step()
        opt.zero_grad(set_to_none=True)

    def remove(self) -> None:
        """Detach the hooks; parameters get ordinary gradients again."""
        for h in self._handles:
            h.remove()
        self._handles = []
