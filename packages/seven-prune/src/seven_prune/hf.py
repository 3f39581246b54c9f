"""Hugging Face `Trainer` integration: `SevenCallback` drives any pruner of this package.

`transformers.Trainer` is not imported until the callback class is first used, so `import seven_prune`
stays light. `Trainer` needs `accelerate` (`pip install 'seven-prune[hf]'`).
"""

from __future__ import annotations

from typing import Any

from seven_prune.pruning import Pruner

__all__ = ["SevenCallback"]

_CLASS: type | None = None


def _build() -> type:
    from transformers import TrainerCallback

    class SevenCallback(TrainerCallback):
        """Run a pruner inside `Trainer.train()`, unchanged.

        `on_train_begin`: pre-training pruners (SEVEN_pre, magnitude, SNIP, GraSP, ...) score on the
        trainer's own train dataloader. `on_optimizer_step` (after `optimizer.step()`, before the
        gradients are zeroed): `pruner.step()`. Note that `Trainer` clips gradients
        (`max_grad_norm`, default 1.0) before the step, so SEVEN sees clipped gradients.
        """

        def __init__(self, pruner: Pruner) -> None:
            if not isinstance(pruner, Pruner):
                raise TypeError(
                    f"pruner must be a seven_prune pruner (e.g. SevenPruner), got {type(pruner).__name__}"
                )
            self.pruner = pruner

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.pruner.needs_pre_pruning:
                loader = kwargs.get("train_dataloader")
                if loader is None:
                    raise RuntimeError("Trainer passed no train_dataloader to on_train_begin")
                self.pruner.prune_before_training(loader)

        def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.pruner.step()

    SevenCallback.__module__ = __name__
    return SevenCallback


def __getattr__(name: str) -> Any:
    global _CLASS
    if name == "SevenCallback":
        if _CLASS is None:
            _CLASS = _build()
        return _CLASS
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
