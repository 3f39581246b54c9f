"""torch.distributed helpers that are no-ops on one process, for methods that reduce statistics.

Under `torchrun` every rank sees a shard of the data; a data- or weight-pruning method sums its
statistics over ranks (`all_reduce_`) so that every rank selects the same mask or `Selection`.
Without an initialised process group (or with one rank) every function returns its input unchanged.
"""

from __future__ import annotations

import torch

__all__ = ["all_reduce_", "barrier", "broadcast_", "is_distributed", "rank", "world_size"]

_OPS = ("sum", "mean", "max", "min")


def is_distributed() -> bool:
    """Whether a process group with more than one rank is active."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of ranks (1 without an initialised process group)."""
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 without an initialised process group)."""
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def all_reduce_(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """Reduce `tensor` over ranks in place (`op` in sum, mean, max, min) and return it."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if op not in _OPS:
        raise ValueError(f"op must be one of {list(_OPS)}, got {op!r}")
    if not is_distributed():
        return tensor
    import torch.distributed as dist

    red = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}
    dist.all_reduce(tensor, op=red.get(op, dist.ReduceOp.MIN))
    if op == "mean":
        tensor.div_(world_size())
    return tensor


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite `tensor` on every rank with rank `src`'s values (in place) and return it."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"tensor must be a torch.Tensor, got {type(tensor).__name__}")
    if is_distributed():
        import torch.distributed as dist

        dist.broadcast(tensor, src=src)
    return tensor


def barrier() -> None:
    """Wait for every rank (no-op on one process)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()
