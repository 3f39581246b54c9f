"""Hugging Face `Trainer` integration on public `Trainer` API only.

`PrunedTrainer` is a `transformers.Trainer` that overrides only methods the Trainer documents as
overridable: `get_train_dataloader` (one DataLoader over the full training set drawing from the
pruner's `maskloop.SelectionSampler`, `pruner.sampler`), `compute_loss` (per-sample cross-entropy fed
to the pruner, weighted where the method asks), `create_scheduler` (sized for the pruner's planned
optimizer steps) and `train` (restores the pruner's state on resume). `PrunerTrainerCallback`, a
`TrainerCallback`, closes each epoch (`on_epoch_end`: re-scoring, budget record, the next epoch's
selection handed to the sampler), stops training after the pruner's last epoch and writes the
pruner's state into every checkpoint (`on_save`).

The training dataset's items are mappings with 'labels' and 'index' (the sample's position; see
`WithIndex`); `compute_loss` removes 'index' before the model call. The Trainer's own column removal
does not run on this loader: give the model's inputs, 'labels' and 'index' only.

How the stock Trainer's arithmetic is kept right without touching its internals:
- It sizes the run (max_steps, steps per epoch) from the loader's first length. `get_train_dataloader`
  shows it the full dataset (every epoch's selection is at most that large); `on_train_begin` then
  hands the sampler the pruner's current selection, so epochs have their pruned length while the
  Trainer's step bound is never the limit. The LR schedule is sized from the pruner's plan.
- Resume: the Trainer counts finished epochs as global_step // full-epoch steps, which undercounts
  pruned epochs; `PrunedTrainer` sets `args.ignore_data_skip = True` (its batch skipping assumes equal
  epochs), the sampler follows the pruner's own epoch, and the callback ends training after the
  pruner's last epoch. A run resumes exactly from checkpoints saved at an epoch end
  (`save_strategy="epoch"`); a mid-epoch checkpoint raises a ValueError on resume.
- Gradient accumulation: the Trainer takes an optimizer step every `gradient_accumulation_steps`
  batches; a pruned epoch whose batch count is not a multiple of it would carry its last partial
  accumulation into the next epoch, so such a plan is refused with a ValueError.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from maskloop import FeatureHook, Selection
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
from transformers import Trainer, TrainerCallback

from ted_prune.pruner import DataPruner

__all__ = ["PRUNER_STATE", "PrunedTrainer", "PrunerTrainerCallback", "WithIndex"]

#: base name of the pruner state in a Trainer checkpoint folder (`.safetensors` + `.json`)
PRUNER_STATE = "ted_prune_pruner"


class WithIndex(Dataset):
    """Adds the 'index' entry to mapping items of `dataset` (e.g. a tokenised dataset)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict[str, Any]:
        item = self.dataset[i]
        if not isinstance(item, Mapping):
            raise TypeError(f"items must be mappings, item {i} is {type(item).__name__}")
        return {**item, "index": i}


class PrunerTrainerCallback(TrainerCallback):
    """Runs a `DataPruner`'s epochs inside `Trainer.train()` (added by `PrunedTrainer`)."""

    def __init__(self, pruner: DataPruner, dataset: Any, collate_fn: Any = None) -> None:
        if not isinstance(pruner, DataPruner):
            raise TypeError(f"pruner must be a DataPruner, got {type(pruner).__name__}")
        self.pruner = pruner
        self.dataset = dataset
        self.collate_fn = collate_fn

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
        """Check a resumed run's pruner state; give the sampler the current epoch's selection."""
        step = int(state.global_step or 0)
        done = int(self.pruner.log[-1].get("global_step", -1)) if self.pruner.log else 0
        if step != done:
            raise ValueError(
                f"the Trainer resumes at step {step} but the pruner's state ends at step {done}: "
                "TED resumes from a checkpoint saved at an epoch end (save_strategy='epoch') "
                f"that holds its state ({PRUNER_STATE}.safetensors/.json, written by PrunedTrainer)"
            )
        if self.pruner.epoch >= self.pruner.epochs:
            control.should_training_stop = True
        self.pruner.refresh_sampler()
        return control

    def on_epoch_end(
        self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
    ) -> Any:
        """Close the pruner's epoch; stop after its last one."""
        rec = self.pruner.end_epoch(
            model,
            self.dataset,
            batch_size=max(args.per_device_train_batch_size, 64),
            collate_fn=self.collate_fn,
            device=getattr(model, "device", None),
        )
        self.pruner.log[-1]["global_step"] = float(state.global_step)  # for resuming
        state.log_history.append(
            {"epoch": state.epoch, **{f"prune_{k}": v for k, v in rec.items()}}
        )
        if self.pruner.epoch >= self.pruner.epochs:
            control.should_training_stop = True
        return control

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Write the pruner's state into the checkpoint folder the Trainer just saved."""
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if folder.is_dir():
            self.pruner.save(folder / PRUNER_STATE)


class PrunedTrainer(Trainer):
    """`transformers.Trainer` that trains on a `DataPruner`'s per-epoch selection.

    Usage: `PrunedTrainer(pruner=TEDPruner(train_ds, epochs=E), model=..., args=..., train_dataset=
    WithIndex(train_ds), data_collator=...)`. `args.num_train_epochs` must equal `pruner.epochs`
    and `max_steps` stays unset. The pruner's sampler is made unsharded (`num_replicas=1`): under
    DDP, accelerate shards its batches, and every rank computes the same selection.
    """

    def __init__(
        self, *args: Any, pruner: DataPruner, feature_layer: Any = None, **kw: Any
    ) -> None:
        if not isinstance(pruner, DataPruner):
            raise TypeError(f"pruner must be a DataPruner, got {type(pruner).__name__}")
        super().__init__(*args, **kw)
        if self.train_dataset is None or len(self.train_dataset) != pruner.n:
            size = None if self.train_dataset is None else len(self.train_dataset)
            raise ValueError(f"train_dataset has {size} samples, the pruner expects {pruner.n}")
        if self.args.num_train_epochs != pruner.epochs:
            raise ValueError(
                f"args.num_train_epochs={self.args.num_train_epochs} but pruner.epochs={pruner.epochs}"
            )
        if self.args.max_steps is not None and self.args.max_steps > 0:
            raise ValueError(
                f"args.max_steps={self.args.max_steps}: leave it unset (-1); the pruner's epochs "
                "and schedule fix the number of steps"
            )
        self.pruner = pruner
        self._check_accumulation()
        self.args.ignore_data_skip = True  # see the module docstring: the pruner tracks epochs
        pruner.make_sampler(num_replicas=1, rank=0)  # accelerate shards the batches
        layer = feature_layer if feature_layer is not None else getattr(pruner, "layer", None)
        self.feature_hook = FeatureHook(self.model, layer) if pruner.uses_features else None
        self.add_callback(PrunerTrainerCallback(pruner, self.train_dataset, self.data_collator))

    # --- steps and LR schedule ---------------------------------------------------------------
    def _batches(self, size: int) -> int:
        """Batches per process of an epoch training on `size` samples."""
        bs = self.args.train_batch_size
        batches = size // bs if self.args.dataloader_drop_last else math.ceil(size / bs)
        return math.ceil(batches / max(self.args.world_size, 1))  # accelerate's batch shards

    def _check_accumulation(self) -> None:
        acc = self.args.gradient_accumulation_steps
        if acc == 1:
            return
        if not self.pruner.exact_plan:
            raise ValueError(
                f"gradient_accumulation_steps={acc} needs epochs of planned size, but "
                f"{type(self.pruner).__name__}'s sizes are random: use 1"
            )
        bad = {
            e: self._batches(size)
            for e, size in enumerate(self.pruner.planned_sizes())
            if self._batches(size) % acc
        }
        if bad:
            raise ValueError(
                f"gradient_accumulation_steps={acc} does not divide the batches per epoch "
                f"{bad} (epoch: batches): the Trainer would carry the last partial accumulation "
                "into the next epoch. Use gradient_accumulation_steps=1 or a batch size for which "
                "every epoch's batch count is a multiple of it"
            )

    def planned_optimizer_steps(self) -> int:
        """Optimizer steps of the whole run: sum over epochs of ceil(batches_e / grad_accum), with
        batches_e = ceil(|S_e| / (batch * world)) from the pruner's planned selection sizes
        (exact for TED and the schedule-driven/static baselines; expected sizes for InfoBatch)."""
        acc = self.args.gradient_accumulation_steps
        sizes = self.pruner.planned_sizes()
        return max(1, sum(math.ceil(self._batches(size) / acc) for size in sizes))

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        """The LR scheduler, sized for `planned_optimizer_steps()` (not the full-epoch count the
        stock Trainer uses), so the schedule reaches its end at the last step of the pruned run."""
        return super().create_scheduler(self.planned_optimizer_steps(), optimizer)

    # --- data ----------------------------------------------------------------------------------
    def get_train_dataloader(self) -> DataLoader:
        """One DataLoader over the full training set drawing from `pruner.sampler`.

        The sampler shows the full dataset until `on_train_begin`, so the Trainer sizes its run
        from the largest possible epoch (see the module docstring)."""
        if self.train_dataset is None:
            raise ValueError("PrunedTrainer: training requires a train_dataset")
        sampler = self.pruner.sampler
        sampler.set_selection(Selection.full(self.pruner.n))
        loader = DataLoader(
            self.train_dataset,
            batch_size=self.args.train_batch_size,
            sampler=sampler,
            collate_fn=self.data_collator,
            drop_last=self.args.dataloader_drop_last,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
        )
        return self.accelerator.prepare(loader)

    # --- resume ----------------------------------------------------------------------------------
    def train(self, resume_from_checkpoint: str | bool | None = None, **kw: Any) -> Any:
        """`Trainer.train`; on resume, the pruner's state is loaded from the checkpoint first."""
        if resume_from_checkpoint is not None and resume_from_checkpoint is not False:
            if resume_from_checkpoint is True:
                from transformers.trainer_utils import get_last_checkpoint

                resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
                if resume_from_checkpoint is None:
                    raise ValueError(f"no checkpoint found in {self.args.output_dir}")
            path = os.path.join(str(resume_from_checkpoint), PRUNER_STATE)
            if not os.path.isfile(path + ".json"):
                raise ValueError(
                    f"checkpoint {resume_from_checkpoint} has no {PRUNER_STATE}.json: it was not "
                    "written by a PrunedTrainer"
                )
            self.pruner.load(path)
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kw)

    # --- loss ------------------------------------------------------------------------------------
    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """Per-sample cross-entropy fed to the pruner; the (weighted) mean, or the (weighted) sum
        over `num_items_in_batch` where the Trainer passes it (it then skips its own division by
        the accumulation steps)."""
        inputs = dict(inputs)
        index = inputs.pop("index", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        logits = outputs.logits if hasattr(outputs, "logits") else outputs[0]
        losses = F.cross_entropy(logits.float(), labels, reduction="none")
        if model.training:
            if index is None:
                raise ValueError("training batches need 'index' (wrap the dataset in WithIndex)")
            feats = self.feature_hook.features if self.feature_hook is not None else None
            loss = self.pruner.update(losses, index, logits, feats, labels)
        else:
            loss = losses.mean()
        if num_items_in_batch is not None and model.training:
            loss = loss * (losses.numel() / num_items_in_batch)
        return (loss, outputs) if return_outputs else loss
