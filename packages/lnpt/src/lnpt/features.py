"""Penultimate features of a network and the adaptor that maps student features onto the teacher's.

LNPT measures the *learning gap* on the feature maps of the penultimate layer. Features are read with a
forward hook (`maskloop.FeatureHook`), picked by module name or module; by default the input of the last
`nn.Linear` (the classifier head), which for torchvision ResNet/VGG and plain MLPs is the penultimate
representation. Convolutional maps (N, C, H, W) are globally average-pooled to (N, C) unless pooling is
switched off.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from maskloop import FeatureHook
from maskloop.distributed import all_reduce_, is_distributed
from torch import nn

__all__ = [
    "Adaptor",
    "FeatureExtractor",
    "all_reduce_mean",
    "batch_inputs",
    "distributed_active",
    "iter_inputs",
]


def distributed_active(sync: bool | None = None) -> bool:
    """Whether to all-reduce across ranks: `sync=None` means "if a process group of > 1 rank runs"."""
    if sync is not None and not isinstance(sync, bool):
        raise TypeError(f"sync must be True, False or None, got {sync!r}")
    if sync is False:
        return False
    active = is_distributed()
    if sync and not active:
        raise ValueError("sync=True needs an initialised torch.distributed process group")
    return active


def all_reduce_mean(
    tensors: list[torch.Tensor], count: int, sync: bool | None = None
) -> list[torch.Tensor]:
    """sum(tensors) / count, with sums and counts all-reduced over ranks when distributed."""
    if not distributed_active(sync):
        return [t / count for t in tensors]
    flat = torch.cat([t.detach().flatten().to(torch.float64) for t in tensors])
    flat = torch.cat([flat, torch.tensor([float(count)], dtype=torch.float64, device=flat.device)])
    all_reduce_(flat)  # one reduction: every rank's sums and counts
    total, out, offset = flat[-1], [], 0
    for t in tensors:
        k = t.numel()
        out.append((flat[offset : offset + k] / total).reshape(t.shape).to(t.dtype))
        offset += k
    return out


def batch_inputs(batch: Any) -> torch.Tensor:
    """The input tensor of a batch: the batch itself, or the first element of a tuple/list.

    Only element 0 is ever touched, so a `(inputs, labels)` batch gives its inputs and its labels are
    never read; an inputs-only dataset (`TensorDataset(x)` yields `(x,)`) works the same.
    """
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and len(batch) >= 1 and isinstance(batch[0], torch.Tensor):
        return batch[0]
    if isinstance(batch, Mapping):
        raise TypeError(
            "batches must be an input tensor or a tuple/list whose first element is the input "
            f"tensor; got a mapping with keys {sorted(batch)}"
        )
    raise TypeError(
        "batches must be an input tensor or a tuple/list whose first element is the input tensor; "
        f"got {type(batch).__name__}"
    )


def iter_inputs(
    data: Iterable[Any], name: str = "unlabeled", max_batches: int | None = None
) -> Iterator[torch.Tensor]:
    """Yield the input tensors of `data` (at most `max_batches`); raise if it yields none."""
    if isinstance(data, torch.Tensor):
        raise TypeError(
            f"{name} must be a DataLoader or an iterable of batches, not a bare tensor; "
            "wrap it as [tensor] for a single batch"
        )
    if data is None or not isinstance(data, Iterable):
        raise TypeError(f"{name} must be a DataLoader or an iterable of batches, got {data!r}")
    if max_batches is not None and (
        isinstance(max_batches, bool) or not isinstance(max_batches, int) or max_batches < 1
    ):
        raise ValueError(f"max_batches must be a positive int or None, got {max_batches!r}")
    count = 0
    for batch in data:
        x = batch_inputs(batch)
        if x.shape[0] == 0:
            raise ValueError(f"{name} yielded an empty batch (shape {tuple(x.shape)})")
        yield x
        count += 1
        if max_batches is not None and count >= max_batches:
            break
    if count == 0:
        raise ValueError(f"{name} is empty: it yields no batches")


class FeatureExtractor:
    """Run a model and return (penultimate features, logits).

    `layer` is a module name (as in `model.named_modules()`), a module, or None for the input of the last
    `nn.Linear`. `which` picks the module's "input" or "output". `pool="avg"` globally averages 4-D maps
    to (N, C) (the paper's feature maps, pooled so that widths compare; 1-D maps (N, C, L) alike);
    `pool=None` keeps 3-D/4-D maps (for a 1x1-conv adaptor) and flattens any other shape to (N, -1).
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str | nn.Module | None = None,
        which: str = "input",
        pool: str | None = "avg",
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if pool not in ("avg", None):
            raise ValueError(f"pool must be 'avg' or None, got {pool!r}")
        self.model = model
        self.layer = layer
        self.which = which
        self.pool = pool
        # Validate the layer name now (FeatureHook raises a clear ValueError), then detach.
        FeatureHook(model, layer, which).remove()

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with FeatureHook(self.model, self.layer, self.which) as hook:
            out = self.model(x)
        logits = out.logits if hasattr(out, "logits") else out
        feats = hook.features
        if feats is None:
            raise RuntimeError(
                f"the feature layer {self.layer!r} of {type(self.model).__name__} did not run in "
                "the forward pass"
            )
        return self.reduce(feats), logits

    def reduce(self, feats: torch.Tensor) -> torch.Tensor:
        """Pool (N, C, L) or (N, C, H, W) maps (if `pool="avg"`); flatten anything else to (N, D)."""
        if feats.ndim in (3, 4) and self.pool == "avg":
            return feats.mean(dim=tuple(range(2, feats.ndim)))
        if feats.ndim in (3, 4):
            return feats
        return feats.reshape(feats.shape[0], -1)


class Adaptor(nn.Module):
    """A: student features -> teacher feature space (identity, or a learned linear / 1x1-conv map).

    `kind="identity"` needs equal widths. `kind="linear"` is `nn.Linear(d_s, d_t)` on (N, D) features
    or a 1x1 `nn.Conv2d` / `nn.Conv1d` on unpooled (N, C, H, W) / (N, C, L) maps (with global average pooling the two are the same
    map, as pooling is linear). `fit_` initialises it by ridge least squares (reconstruction: the paper
    does not say how A starts; a random A would make the gap at initialisation meaningless).
    """

    def __init__(
        self, kind: str, student_dim: int, teacher_dim: int, maps: bool | int = False
    ) -> None:
        # maps: spatial dims of the features (0: vectors, 1: (N, C, L), 2 or True: (N, C, H, W))
        super().__init__()
        if kind not in ("identity", "linear"):
            raise ValueError(f"adaptor must be 'identity', 'linear' or 'auto', got {kind!r}")
        if kind == "identity" and student_dim != teacher_dim:
            raise ValueError(
                f"adaptor='identity' needs equal feature widths, got student {student_dim} and "
                f"teacher {teacher_dim}; use adaptor='linear' (or 'auto')"
            )
        self.kind = kind
        self.maps = maps
        self.map: nn.Module | None = None
        dims = 2 if maps is True else int(maps)
        if dims not in (0, 1, 2):
            raise ValueError(f"maps must be 0, 1, 2 or a bool, got {maps!r}")
        if kind == "linear":
            layer = {0: nn.Linear, 1: nn.Conv1d, 2: nn.Conv2d}[dims]
            kw = {} if dims == 0 else {"kernel_size": 1}
            self.map = layer(student_dim, teacher_dim, **kw)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        """Map student features into the teacher's space."""
        return feats if self.map is None else self.map(feats)

    @torch.no_grad()
    def fit_(
        self,
        student: torch.Tensor,
        teacher: torch.Tensor,
        ridge: float = 1e-3,
        sync: bool | None = None,
    ) -> Adaptor:
        """Set a linear adaptor to the ridge least-squares map student -> teacher features.

        Under torch.distributed (`sync`, see `distributed_active`) the normal equations are summed
        over ranks, so all ranks fit the map of the union of their samples.
        """
        if self.map is None:
            return self
        s, t = student.detach(), teacher.detach()
        if s.ndim in (3, 4):  # (N, C, *spatial) -> (N * positions, C)
            s = s.movedim(1, -1).reshape(-1, s.shape[1])
            t = t.movedim(1, -1).reshape(-1, t.shape[1])
        s64, t64 = s.to(torch.float64), t.to(torch.float64)
        ones = torch.ones(s64.shape[0], 1, dtype=torch.float64, device=s64.device)
        a = torch.cat([s64, ones], dim=1)
        ata, att = a.T @ a, a.T @ t64
        if distributed_active(sync):
            all_reduce_(ata)
            all_reduce_(att)
        reg = ridge * torch.eye(a.shape[1], dtype=torch.float64, device=a.device)
        reg[-1, -1] = 0.0
        sol = torch.linalg.solve(ata + reg, att)  # (d_s + 1, d_t)
        w, b = sol[:-1].T, sol[-1]
        weight = self.map.weight
        weight.copy_(w.reshape(weight.shape).to(weight.dtype))
        self.map.bias.copy_(b.to(weight.dtype))
        return self
