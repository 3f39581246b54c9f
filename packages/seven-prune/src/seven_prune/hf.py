"""Hugging Face `Trainer` integration: `SevenCallback` drives any pruner of this package.

The callback is duck-typed: it implements the `transformers.TrainerCallback` events it needs and
answers every other `on_*` event with a no-op, so this module never imports transformers' Trainer
machinery (`import seven_prune` stays light). `Trainer` itself needs `accelerate`
(`pip install 'seven-prune[hf]'`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from seven_prune.pruning import Pruner

__all__ = ["SevenCallback"]


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


class SevenCallback:
    """Run a pruner inside `Trainer.train()`, unchanged: `Trainer(..., callbacks=[SevenCallback(p)])`.

    `on_train_begin`: pre-training pruners (SEVEN_pre, magnitude, SNIP, GraSP, ...) score on the
    trainer's own train dataloader. `on_optimizer_step` (after `optimizer.step()`, before the gradients
    are zeroed): `pruner.step()`. `Trainer` clips gradients (`max_grad_norm`, default 1.0) before the
    step, so SEVEN sees clipped gradients, as it would in the official code's loop with clipping.
    Save `callback.pruner.state_dict()` next to your checkpoints to resume mid-schedule.
    """

    def __init__(self, pruner: Pruner) -> None:
        if not isinstance(pruner, Pruner):
            raise TypeError(
                f"pruner must be a seven_prune pruner (e.g. SevenPruner), got {type(pruner).__name__}"
            )
        self.pruner = pruner

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Prune before fine-tuning when the pruner needs it (mode='pre', one-shot baselines)."""
        if self.pruner.needs_pre_pruning:
            loader = kwargs.get("train_dataloader")
            if loader is None:
                raise RuntimeError("Trainer passed no train_dataloader to on_train_begin")
            self.pruner.prune_before_training(loader)

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """`pruner.step()` while this step's gradients are still in `.grad`."""
        self.pruner.step()

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("on_"):  # every other TrainerCallback event: nothing to do
            return _noop
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
