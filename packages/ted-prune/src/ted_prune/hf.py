"""Hugging Face `Trainer` integration: a sampler that follows the pruner's per-epoch selection,
a per-sample loss hook (`PrunedTrainer.compute_loss`) and a `TrainerCallback` that closes each epoch.

The training dataset's items are mappings with 'labels' and 'index' (the sample's position; see
`WithIndex`). `PrunedTrainer` removes 'index' before the model call, computes per-sample
cross-entropy, feeds logits and penultimate features (a `maskloop.FeatureHook` on the classifier
head, the last `nn.Linear` by default) to the pruner, and returns the weighted mean.

Steps and LR schedule: the stock `Trainer` sizes everything from the first (full) epoch.
`PrunedTrainer` instead creates the LR scheduler for the number of optimizer steps the pruner's plan
takes (`planned_optimizer_steps()`: the sum over epochs of the optimizer steps of that epoch's
selection), runs each epoch with its own batch count (so the last, partial gradient-accumulation
step of a pruned epoch is taken), saves the pruner's state into every checkpoint
(`pruner_state.pt`) and, on `train(resume_from_checkpoint=...)`, restores it and resumes at the
right epoch and batch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from maskloop import FeatureHook
from torch.nn import functional as F
from torch.utils.data import Dataset, Sampler
from transformers import Trainer, TrainerCallback

from ted_prune.pruner import DataPruner

__all__ = ["PrunedTrainer", "PrunerSampler", "PrunerTrainerCallback", "WithIndex"]

PRUNER_STATE = "pruner_state.pt"


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


class PrunerSampler(Sampler[int]):
    """Iterates the pruner's current selection; `set_epoch(e)` (called by the Trainer) moves to epoch e.

    Not sharded: under DDP, accelerate shards the batches of this single sequence across ranks, and
    every rank computes the same selection (scores are synchronised in `end_epoch`).
    """

    def __init__(self, pruner: DataPruner) -> None:
        self.pruner = pruner

    def set_epoch(self, epoch: int) -> None:
        self.pruner.select(int(epoch))

    def __iter__(self) -> Iterator[int]:
        return iter(self.pruner.sampler)

    def __len__(self) -> int:
        return len(self.pruner.select())


class PrunerTrainerCallback(TrainerCallback):
    """Closes the pruner's epoch (re-scoring, budget record) at each Trainer epoch end."""

    def __init__(self, pruner: DataPruner, dataset: Any, collate_fn: Any = None) -> None:
        self.pruner = pruner
        self.dataset = dataset
        self.collate_fn = collate_fn

    def on_epoch_end(
        self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
    ) -> None:
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

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        """Write the pruner's state into the checkpoint folder the Trainer just saved."""
        if not state.is_world_process_zero:
            return
        folder = os.path.join(args.output_dir, f"checkpoint-{state.global_step}")
        if os.path.isdir(folder):
            torch.save(self.pruner.state_dict(), os.path.join(folder, PRUNER_STATE))


class PrunedTrainer(Trainer):
    """`transformers.Trainer` that trains on a `DataPruner`'s per-epoch selection.

    Usage: `PrunedTrainer(pruner=TEDPruner(train_ds, epochs=E), model=..., args=..., train_dataset=
    WithIndex(train_ds), data_collator=...)`. The dataset must yield 'index' (use `WithIndex`);
    `args.num_train_epochs` must equal the pruner's `epochs`.
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
        if int(self.args.num_train_epochs) != pruner.epochs:
            raise ValueError(
                f"args.num_train_epochs={self.args.num_train_epochs} but pruner.epochs={pruner.epochs}"
            )
        if self.args.max_steps is not None and self.args.max_steps > 0:
            raise ValueError(
                f"args.max_steps={self.args.max_steps}: leave it unset (-1); the pruner's epochs "
                "and schedule fix the number of steps"
            )
        self.pruner = pruner
        pruner.make_sampler(num_replicas=1, rank=0)  # accelerate shards the batches
        layer = feature_layer if feature_layer is not None else getattr(pruner, "layer", None)
        self.feature_hook = FeatureHook(self.model, layer) if pruner.uses_features else None
        self.add_callback(PrunerTrainerCallback(pruner, self.train_dataset, self.data_collator))

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and "index" not in self._signature_columns:
            self._signature_columns.append("index")  # keep 'index' through column removal

    def _get_train_sampler(self, train_dataset: Any = None) -> Sampler:
        return PrunerSampler(self.pruner)

    # --- steps and LR schedule ---------------------------------------------------------------
    def _steps_for(self, size: int) -> tuple[int, int]:
        """(batches per process, optimizer steps) of an epoch training on `size` samples."""
        bs = self._train_batch_size
        batches = size // bs if self.args.dataloader_drop_last else math.ceil(size / bs)
        per_rank = math.ceil(batches / max(self.args.world_size, 1))  # accelerate's batch shards
        return per_rank, math.ceil(per_rank / self.args.gradient_accumulation_steps)

    def planned_optimizer_steps(self) -> int:
        """Optimizer steps of the whole run: sum over epochs of ceil(batches_e / grad_accum), with
        batches_e = ceil(|S_e| / (batch * world)) from the pruner's planned selection sizes
        (exact for TED and the schedule-driven/static baselines; expected sizes for InfoBatch)."""
        return max(1, sum(self._steps_for(size)[1] for size in self.pruner.planned_sizes()))

    def set_initial_training_values(self, args: Any, dataloader: Any) -> Any:
        # max_steps (the Trainer stops there) from the pruner's plan, not E x the first epoch's
        # steps (which the current, possibly pruned, epoch would give, e.g. on resume); for a
        # pruner with only expected sizes (InfoBatch), the full-data count bounds it from above.
        vals = list(super().set_initial_training_values(args, dataloader))
        plan = self.planned_optimizer_steps()
        if not self.pruner.exact_plan:
            plan = max(plan, self.pruner.epochs * self._steps_for(self.pruner.n)[1])
        vals[-1] = plan
        vals[3] = sum(self.pruner.planned_sizes())  # num_train_samples
        return tuple(vals)

    def create_scheduler(
        self, num_training_steps: int, optimizer: torch.optim.Optimizer | None = None
    ) -> Any:
        """The LR scheduler, sized for `planned_optimizer_steps()` (not the full-epoch count the
        stock Trainer uses), so the schedule reaches its end at the last step of the pruned run."""
        return super().create_scheduler(self.planned_optimizer_steps(), optimizer)

    def _run_epoch(self, *args: Any, **kw: Any) -> Any:
        # The Trainer passes the first epoch's batch count to every epoch; give each epoch its own
        # (the selection's), so the last partial accumulation step of a pruned epoch is taken.
        if {"epoch", "train_dataloader", "steps_in_epoch"} <= kw.keys():
            self.pruner.select(int(kw["epoch"]))
            batches = len(kw["train_dataloader"])
            kw["steps_in_epoch"] = batches
            kw["num_update_steps_per_epoch"] = math.ceil(
                batches / self.args.gradient_accumulation_steps
            )
        return super()._run_epoch(*args, **kw)

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
            if not os.path.isfile(path):
                raise ValueError(
                    f"checkpoint {resume_from_checkpoint} has no {PRUNER_STATE}: it was not "
                    "written by a PrunedTrainer"
                )
            self.pruner.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kw)

    def _init_training_state(self, *args: Any, **kw: Any) -> tuple[int, int]:
        epochs_trained, steps_in_epoch = super()._init_training_state(*args, **kw)
        resumed = self.state.global_step > 0
        if resumed:  # the Trainer divides by the full epoch's steps; use the pruner's record
            epochs_trained = self.pruner.epoch
            done = self.pruner.log[-1].get("global_step", 0.0) if self.pruner.log else 0.0
            steps_in_epoch = 0
            if not self.args.ignore_data_skip:
                steps_in_epoch = int(self.state.global_step - done)
                steps_in_epoch *= self.args.gradient_accumulation_steps
        return epochs_trained, steps_in_epoch

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
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
        return (loss, outputs) if return_outputs else loss
