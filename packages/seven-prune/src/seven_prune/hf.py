"""Hugging Face `Trainer` integration: `SevenCallback` drives any pruner of this package.

The callback is duck-typed: it implements the `transformers.TrainerCallback` events it needs and
answers every other `on_*` event with a no-op, so this module never imports transformers' Trainer
machinery (`import seven_prune` stays light). `Trainer` itself needs `accelerate`
(`pip install 'seven-prune[hf]'`).

Checkpoints: at every Trainer save the callback writes the pruner's state (step, mask, moments and
scores) as `seven_prune_pruner.pt` into the checkpoint folder `<output_dir>/checkpoint-<step>/`, next to
the model and optimizer, and `trainer.train(resume_from_checkpoint=...)` restores it, so a resumed run
continues the pruning schedule where it stopped.

Optimizer: `on_train_begin` hooks the Trainer's optimizer when it is SGD, Adam, AdamW, ...
(`Pruner.hook_optimizer`, as `maskloop.fit` does in `on_fit_start`), so the pruned weights stay
exactly zero by themselves and `pruner.step()` skips its per-step re-zeroing pass.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from maskloop.masks import SAFE_OPTIMIZERS

from seven_prune.pruning import Pruner

__all__ = ["PRUNER_STATE_NAME", "SevenCallback"]

#: file name of the pruner state inside a Trainer checkpoint folder (torch.save of plain tensors and
#: builtins; load it with `torch.load(..., weights_only=True)`)
PRUNER_STATE_NAME = "seven_prune_pruner.pt"


def _noop(*args: Any, **kwargs: Any) -> None:
    return None


def _torch_optimizer(optimizer: Any) -> torch.optim.Optimizer | None:
    """The torch optimizer inside the Trainer's: accelerate's `AcceleratedOptimizer` only delegates
    `step()` to its `.optimizer` (it never calls `Optimizer.__init__`, so it holds no step hooks of
    its own). Any other wrapper is returned as it is (it may move weights itself: not hooked)."""
    if type(optimizer).__name__ == "AcceleratedOptimizer" and type(optimizer).__module__.startswith(
        "accelerate."
    ):
        optimizer = getattr(optimizer, "optimizer", None)
    return optimizer if isinstance(optimizer, torch.optim.Optimizer) else None


def _check_trainer_events() -> None:
    """Raise if the loaded transformers' `TrainerCallback` has no `on_optimizer_step` event (the
    event every pruner step hangs on; transformers >= 4.42). Reads `sys.modules` only: the Trainer
    calling the callback has imported transformers, and `import seven_prune` stays light."""
    module = sys.modules.get("transformers")
    base = getattr(module, "TrainerCallback", None) if module is not None else None
    if base is not None and not hasattr(base, "on_optimizer_step"):
        version = getattr(module, "__version__", "?")
        raise RuntimeError(
            f"transformers {version} has no TrainerCallback.on_optimizer_step event, so "
            "SevenCallback could never step the pruner (the model would train unpruned); "
            "seven-prune needs transformers >= 4.42"
        )


class SevenCallback:
    """Run a pruner inside `Trainer.train()`, unchanged: `Trainer(..., callbacks=[SevenCallback(p)])`.

    `on_train_begin`: on a resumed run, restore the pruner's state from the checkpoint (see below);
    then pre-training pruners (SEVEN_pre, magnitude, SNIP, GraSP, ...) that have not pruned yet score
    on the trainer's own train dataloader; then, with `hook_optimizer=True` (default), hook the
    Trainer's optimizer (the `optimizer` every event receives; accelerate's wrapper unwrapped) with
    `Pruner.hook_optimizer` when it is one of `maskloop.masks.SAFE_OPTIMIZERS` (SGD, Adam,
    AdamW, ...): the pruned weights then stay exactly zero by themselves and `pruner.step()` skips
    its per-step re-zeroing pass, with the same weights and masks (tested bit for bit in float64).
    Any other optimizer, or none passed, is not hooked and the pruner re-zeroes at every step as
    before; `hooked_optimizer` tells which optimizer was hooked (None: not hooked).
    `on_optimizer_step` (after `optimizer.step()`, before the gradients are zeroed):
    `pruner.step()`. `Trainer` clips gradients (`max_grad_norm`, default 1.0) before the step, so
    SEVEN sees clipped gradients, as it would in the official code's loop with clipping.
    `on_save`: write `pruner.state_dict()` into the checkpoint folder just saved,
    `<args.output_dir>/checkpoint-<global_step>/seven_prune_pruner.pt` (main process only).

    Resuming: `Trainer.train(resume_from_checkpoint=...)` restores its `TrainerState` before
    `on_train_begin`, so a `global_step > 0` there means a resumed run. The pruner state is read from,
    in order: `resume_from_checkpoint` given here (a checkpoint folder, or True for the last
    checkpoint in `args.output_dir`), `args.resume_from_checkpoint`, then
    `<args.output_dir>/checkpoint-<global_step>` (what `train(resume_from_checkpoint=True)` resumes
    from). A resumed run whose checkpoint holds no pruner state raises RuntimeError; pass
    `resume_from_checkpoint=False` to start the pruner afresh on purpose (its schedule then counts
    from the resumed step as its step 0).
    """

    def __init__(
        self,
        pruner: Pruner,
        resume_from_checkpoint: str | os.PathLike | bool | None = None,
        *,
        hook_optimizer: bool = True,
    ):
        if not isinstance(pruner, Pruner):
            raise TypeError(
                f"pruner must be a seven_prune pruner (e.g. SevenPruner), got {type(pruner).__name__}"
            )
        if resume_from_checkpoint is not None and not isinstance(
            resume_from_checkpoint, (str, os.PathLike, bool)
        ):
            raise TypeError(
                "resume_from_checkpoint must be a checkpoint folder, True (the last checkpoint in "
                f"output_dir), False (never restore) or None (find it), got {resume_from_checkpoint!r}"
            )
        if not isinstance(hook_optimizer, bool):
            raise TypeError(f"hook_optimizer must be True or False, got {hook_optimizer!r}")
        self.pruner = pruner
        self.resume_from_checkpoint = resume_from_checkpoint
        self.hook_optimizer = hook_optimizer
        #: the torch optimizer hooked by the last `on_train_begin` (None: not hooked)
        self.hooked_optimizer: torch.optim.Optimizer | None = None
        #: the file the pruner state was restored from on the last resume (None if not resumed)
        self.restored_from: Path | None = None

    # ------------------------------------------------------------------ checkpoints
    @staticmethod
    def save_pruner(pruner: Pruner, folder: str | os.PathLike, global_step: int) -> Path:
        """Write `pruner.state_dict()` (and the Trainer step it belongs to) into `folder`."""
        path = Path(folder) / PRUNER_STATE_NAME
        tmp = path.with_name(path.name + ".tmp")
        torch.save({"global_step": int(global_step), "pruner": pruner.state_dict()}, tmp)
        os.replace(tmp, path)  # never leave a half-written state file
        return path

    @staticmethod
    def load_pruner(
        pruner: Pruner, folder: str | os.PathLike, global_step: int | None = None
    ) -> Path:
        """Restore `pruner` from `folder/seven_prune_pruner.pt` (checking the step when given)."""
        path = Path(folder) / PRUNER_STATE_NAME
        if not path.is_file():
            raise FileNotFoundError(f"no pruner state {PRUNER_STATE_NAME!r} in {str(folder)!r}")
        payload = torch.load(path, map_location="cpu", weights_only=True)
        saved = int(payload["global_step"])
        if global_step is not None and saved != global_step:
            raise RuntimeError(
                f"{path} holds the pruner state of step {saved}, but the Trainer resumes at step "
                f"{global_step}"
            )
        pruner.load_state_dict(payload["pruner"])
        return path

    def _checkpoint_dir(self, args: Any, state: Any) -> Path | None:
        """Where the resumed checkpoint lives (None: not found)."""
        output_dir = getattr(args, "output_dir", None)
        chosen = self.resume_from_checkpoint
        if chosen is True:
            from transformers.trainer_utils import get_last_checkpoint

            last = (
                get_last_checkpoint(output_dir)
                if output_dir and os.path.isdir(output_dir)
                else None
            )
            return Path(last) if last and (Path(last) / PRUNER_STATE_NAME).is_file() else None
        if isinstance(chosen, (str, os.PathLike)):  # given here: that folder or nothing
            return Path(chosen) if (Path(chosen) / PRUNER_STATE_NAME).is_file() else None
        candidates = []
        from_args = getattr(args, "resume_from_checkpoint", None)
        if isinstance(from_args, (str, os.PathLike)):
            candidates.append(Path(from_args))
        if output_dir is not None:
            candidates.append(Path(output_dir) / f"checkpoint-{state.global_step}")
        return next((c for c in candidates if (c / PRUNER_STATE_NAME).is_file()), None)

    # ------------------------------------------------------------------ TrainerCallback events
    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Restore the pruner on a resumed run; prune before fine-tuning when the pruner needs it;
        hook the Trainer's optimizer. A transformers without the `on_optimizer_step` event (added in
        4.42) would never step the pruner and train unpruned without a word: a RuntimeError."""
        _check_trainer_events()
        step = int(getattr(state, "global_step", 0) or 0)
        self.restored_from = None
        if step > 0 and self.resume_from_checkpoint is not False:
            folder = self._checkpoint_dir(args, state)
            if folder is None:
                raise RuntimeError(
                    f"Trainer resumes at step {step}, but no checkpoint holds the pruner state "
                    f"{PRUNER_STATE_NAME!r} (looked in resume_from_checkpoint="
                    f"{self.resume_from_checkpoint!r}, args.resume_from_checkpoint and "
                    f"{getattr(args, 'output_dir', None)}/checkpoint-{step}). Pass "
                    "SevenCallback(pruner, resume_from_checkpoint=<checkpoint folder>), or "
                    "resume_from_checkpoint=False to start the pruner afresh."
                )
            self.restored_from = self.load_pruner(self.pruner, folder, step)
        if self.pruner.needs_pre_pruning:
            loader = kwargs.get("train_dataloader")
            if loader is None:
                raise RuntimeError("Trainer passed no train_dataloader to on_train_begin")
            self.pruner.prune_before_training(loader)
        self.hooked_optimizer = None
        optimizer = _torch_optimizer(kwargs.get("optimizer"))
        if (
            self.hook_optimizer
            and self.pruner.masked.attached
            and type(optimizer) in SAFE_OPTIMIZERS
            and self.pruner.hook_optimizer(optimizer)
        ):
            self.hooked_optimizer = optimizer

    def on_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """`pruner.step()` while this step's gradients are still in `.grad`."""
        self.pruner.step()

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        """Write the pruner state into the checkpoint folder the Trainer has just saved."""
        if not getattr(args, "should_save", True):  # not the main process
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if not folder.is_dir():
            raise RuntimeError(
                f"SevenCallback.on_save: the Trainer saved no checkpoint folder {folder} "
                "(hyperparameter-search runs save elsewhere); save pruner.state_dict() yourself"
            )
        self.save_pruner(self.pruner, folder, state.global_step)

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("on_"):  # every other TrainerCallback event: nothing to do
            return _noop
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")
