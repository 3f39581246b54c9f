"""The batch convention shared by `fit`, `evaluate` and the objectives.

A batch is `(inputs, targets)`, `(inputs, targets, indices)` or a mapping with a `labels` entry (and
optionally `index`), Hugging Face style. `split_batch` takes one apart; `forward` runs a model on the
inputs (keyword arguments for a mapping) and returns its logits (`.logits` when the model returns an
output object).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

__all__ = ["forward", "split_batch", "to_device"]


def to_device(obj: Any, device: torch.device) -> Any:
    """`obj` with every tensor inside (tuples, lists, mappings) moved to `device`."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device, non_blocking=True)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def split_batch(batch: Any) -> tuple[Any, torch.Tensor, torch.Tensor | None]:
    """(inputs, targets, indices) from an (x, y), (x, y, index) or mapping batch with 'labels'.

    The batch convention of `fit`, public so methods reading batches in their own passes agree.
    """
    if isinstance(batch, Mapping):
        if "labels" not in batch:
            raise ValueError(f"a mapping batch needs a 'labels' entry; got keys {sorted(batch)}")
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
        return inputs, batch["labels"], batch.get("index")
    if isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        return batch[0], batch[1], batch[2] if len(batch) == 3 else None
    raise ValueError(
        "a batch must be (inputs, targets), (inputs, targets, indices) or a mapping with 'labels'; "
        f"got {type(batch).__name__}"
        + (f" of length {len(batch)}" if isinstance(batch, (list, tuple)) else "")
    )


def forward(model: nn.Module, inputs: Any) -> torch.Tensor:
    """`model(**inputs)` for a mapping, else `model(inputs)`; `.logits` of an output object."""
    out = model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return out.logits if hasattr(out, "logits") else out
