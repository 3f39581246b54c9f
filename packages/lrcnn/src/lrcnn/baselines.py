"""What row-centric training is compared against: plain training and activation checkpointing.

Both wrap the same model and share its parameters, like ``RowCentric``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from lrcnn.graph import find_trunk

__all__ = ["CheckpointTrunk", "Plain", "checkpoint_units"]


def checkpoint_units(units: list[nn.Module], segments: int, x: torch.Tensor) -> torch.Tensor:
    """``checkpoint_sequential`` (same split: the last segment runs normally), except that an
    in-place activation opening a segment runs just before it, outside the checkpoint: it would
    otherwise overwrite the tensor the checkpoint recomputes from."""
    n = len(units)
    segments = max(1, min(segments, n))
    size = n // segments
    bounds = [(s, s + size) for s in range(0, size * (segments - 1), size)]
    bounds.append((size * (segments - 1), n))
    y = x
    for j, (a, b) in enumerate(bounds):
        seg = units[a:b]
        while seg and getattr(seg[0], "inplace", False):
            y = seg[0](y)
            seg = seg[1:]
        if not seg:
            continue
        if j == len(bounds) - 1 or not torch.is_grad_enabled():
            for m in seg:
                y = m(y)
        else:

            def run(t: torch.Tensor, seg: list[nn.Module] = seg) -> torch.Tensor:
                for m in seg:
                    t = m(t)
                return t

            y = checkpoint(run, y, use_reentrant=False)
    return y


class Plain(nn.Module):
    """The unmodified model (column-by-column training keeps every feature map)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``model(x)``."""
        return self.model(x)


class CheckpointTrunk(nn.Module):
    """``torch.utils.checkpoint.checkpoint_sequential`` over the trunk's units, then the head.

    Keeps only the inputs of ``segments - 1`` segments and recomputes each segment in backward
    (the last segment runs normally, as in ``checkpoint_sequential``).
    """

    def __init__(self, model: nn.Module, segments: int) -> None:
        super().__init__()
        if isinstance(segments, bool) or not isinstance(segments, int) or segments < 1:
            raise ValueError(f"segments must be an int >= 1, got {segments!r}")
        self.model = model
        units, self._head = find_trunk(model)
        self._units = [m for _, m in units]
        if segments > len(self._units):
            raise ValueError(
                f"segments must be at most the trunk's {len(self._units)} units, got {segments}"
            )
        self.segments = segments

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Checkpointed trunk, plain head."""
        y = checkpoint_units(self._units, self.segments, x)
        return self._head(y) if self._head is not None else y
