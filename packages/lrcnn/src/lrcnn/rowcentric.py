"""``RowCentric``: train a CNN's convolutional trunk strip by strip (LR-CNN).

Standard training runs layer by layer and keeps every layer's feature maps for backward. LR-CNN
reorganises the early, high-resolution part of the trunk into horizontal row strips that flow through
all its layers, forward and backward: the segment's forward keeps only its input and output, and its
backward recomputes one strip at a time (with the halo rows its receptive field needs) and
back-propagates it at once, so only strip-sized intermediates ever exist.
"""

from __future__ import annotations

import torch
from torch import nn

from lrcnn.baselines import checkpoint_units
from lrcnn.graph import TrunkGraph, find_trunk
from lrcnn.planner import BATCH_NORM_MODES, POLICIES, parse_budget, plan
from lrcnn.strips import Layout, StripRunner

__all__ = ["RowCentric"]


class _RowFunction(torch.autograd.Function):
    """Custom autograd function: strip-wise forward, strip-wise recompute-and-backward."""

    @staticmethod
    def forward(ctx, runner: StripRunner, flags: dict[int, bool], x: torch.Tensor, *params):  # type: ignore[override]
        st = runner.new_state(flags)
        out, tails = runner.forward(x.detach(), st)
        keys: list[tuple[int, tuple[int, int], int]] = []
        tensors: list[torch.Tensor] = []
        if runner.layout.policy == "two_phase":
            for i, d in enumerate(tails):
                for e, (t, lo) in d.items():
                    keys.append((i, e, lo))
                    tensors.append(t)
        ctx.save_for_backward(x, *tensors)
        ctx.runner, ctx.st, ctx.keys = runner, st, keys
        return out

    @staticmethod
    def backward(ctx, gout: torch.Tensor):  # type: ignore[override]
        x, *tensors = ctx.saved_tensors
        runner: StripRunner = ctx.runner
        tails: list[dict] = []
        if runner.layout.policy == "two_phase":
            tails = [{} for _ in range(runner.layout.n)]
            for (i, e, lo), t in zip(ctx.keys, tensors):
                tails[i][e] = (t, lo)
        gx, gparams = runner.backward(
            x.detach(), gout.contiguous(), ctx.st, tails, need_x=ctx.needs_input_grad[2]
        )
        return (None, None, gx, *gparams)


class RowCentric(nn.Module):
    """Wrap a CNN so its convolutional trunk trains in row strips with exact gradients.

    Args:
        model: a torchvision VGG or ResNet (unmodified), an ``nn.Sequential`` (trunk = the layers
            before the first adaptive pool / Flatten / Linear) or a single supported block.
        rows: number of horizontal strips the row-centric segment's output is split into.
        memory_budget: instead of ``rows``: bytes or ``"1.5GB"``; the planner picks the fewest
            strips (and the segment depth when ``depth="auto"``) whose predicted peak activation
            memory fits, planned per input shape at the first call.
        policy: ``"overlap"`` (OverL: halos recomputed, strips independent) or ``"two_phase"``
            (2PS: no overlap, boundary rows carried to the next strip and saved for backward).
        depth: how many trunk units (top-level layers/blocks) run row-centric: an int, ``None``
            for the whole trunk, or ``"auto"`` (the planner picks the depth with the lowest
            predicted peak). The remaining trunk layers run normally.
        checkpoint_segments: if > 0, the remaining trunk layers run under
            ``torch.utils.checkpoint.checkpoint_sequential`` with this many segments.
        batch_norm: how BatchNorm layers inside the row-centric segment run in training mode.
            ``"exact"`` (default): full-batch statistics, exactly as plain training: one forward
            statistics sweep and one backward reduction sweep over the strips per BatchNorm
            (the two global reductions of its backward, see ``lrcnn.strips``); exact, but each
            BatchNorm adds a sweep, which is what makes deep ResNet segments slow. ``"frozen"``:
            the segment's BatchNorms use their running statistics and do not update them (as
            ``torchvision.ops.FrozenBatchNorm2d`` in detection fine-tuning; the affine weights
            still train). A named approximation, not plain training: gradients equal plain
            training with those BatchNorms in eval mode. The LR-CNN prototype normalises each
            strip with its own statistics, which is neither (and not offered).

    The parameters are the model's own (``rc.parameters()`` are ``model.parameters()``); the
    wrapped model still works on its own.
    """

    def __init__(
        self,
        model: nn.Module,
        rows: int | None = None,
        *,
        memory_budget: int | float | str | None = None,
        policy: str = "overlap",
        depth: int | str | None = "auto",
        checkpoint_segments: int = 0,
        batch_norm: str = "exact",
    ) -> None:
        super().__init__()
        if batch_norm not in BATCH_NORM_MODES:
            raise ValueError(f"batch_norm must be one of {BATCH_NORM_MODES}, got {batch_norm!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
        if rows is None and memory_budget is None:
            raise ValueError("give rows=<number of strips> or memory_budget=<bytes or '1.5GB'>")
        if rows is not None and memory_budget is not None:
            raise ValueError(
                f"give rows or memory_budget, not both (got rows={rows!r}, "
                f"memory_budget={memory_budget!r})"
            )
        if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int)):
            raise TypeError(f"rows must be an int, got {rows!r}")
        if rows is not None and rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        if isinstance(checkpoint_segments, bool) or not isinstance(checkpoint_segments, int):
            raise TypeError(f"checkpoint_segments must be an int, got {checkpoint_segments!r}")
        if checkpoint_segments < 0:
            raise ValueError(f"checkpoint_segments must be >= 0, got {checkpoint_segments}")
        self.model = model
        units, head = find_trunk(model)
        self._units = units
        self._head = head
        self._full_graph = TrunkGraph(units)  # validates every trunk layer up front
        if depth is not None and depth != "auto":
            if isinstance(depth, bool) or not isinstance(depth, int):
                raise TypeError(f"depth must be an int, None or 'auto', got {depth!r}")
            if not 1 <= depth <= len(units):
                raise ValueError(
                    f"depth must be between 1 and the trunk's {len(units)} units, got {depth}"
                )
        self.rows = rows
        self.memory_budget = None if memory_budget is None else parse_budget(memory_budget)
        self.policy = policy
        self.depth = depth
        self.checkpoint_segments = checkpoint_segments
        self.batch_norm = batch_norm
        if batch_norm == "frozen":
            bad = [
                n.name
                for n in self._full_graph.nodes
                if n.kind == "bn" and n.module.running_mean is None  # type: ignore[union-attr]
            ]
            if bad:
                raise ValueError(
                    f"batch_norm='frozen' needs running statistics; BatchNorm {bad[0]!r} has "
                    "track_running_stats=False"
                )
        self._graphs: dict[int, TrunkGraph] = {}
        self._runners: dict[tuple, tuple[int, StripRunner]] = {}

    @property
    def trunk_units(self) -> list[str]:
        """Names of the trunk's top-level units (what ``depth`` counts)."""
        return [n for n, _ in self._units]

    def configure(self, input_shape: tuple[int, int, int, int]) -> tuple[int, int]:
        """The ``(depth, rows)`` used for float32 inputs of ``input_shape`` (N, C, H, W)."""
        depth, runner = self._runner(tuple(input_shape), torch.float32)
        return depth, runner.layout.n

    def frozen_batch_norms(
        self, input_shape: tuple[int, int, int, int], dtype: torch.dtype = torch.float32
    ) -> list[nn.Module]:
        """The BatchNorm modules that ``batch_norm="frozen"`` freezes for this input shape
        (those in the row-centric segment); empty for ``"exact"``."""
        if self.batch_norm != "frozen":
            return []
        _, runner = self._runner(tuple(input_shape), dtype)
        return [n.module for n in runner.graph.nodes if n.kind == "bn"]  # type: ignore[misc]

    def _graph(self, depth: int) -> TrunkGraph:
        if depth not in self._graphs:
            self._graphs[depth] = TrunkGraph(self._units[:depth])
        return self._graphs[depth]

    def _runner(self, shape: tuple[int, ...], dtype: torch.dtype) -> tuple[int, StripRunner]:
        key = (shape, dtype)
        if key in self._runners:
            return self._runners[key]
        depth, rows = self.depth, self.rows
        if self.memory_budget is not None or depth == "auto":
            p = plan(
                self.model,
                shape,
                rows=rows,
                memory_budget=self.memory_budget,
                policy=self.policy,
                depth=depth,
                dtype=dtype,
                batch_norm=self.batch_norm,
                checkpoint_segments=self.checkpoint_segments,
            )
            depth, rows = p.depth, p.rows
        if depth is None:
            depth = len(self._units)
        graph = self._graph(depth)
        layout = Layout(graph, tuple(shape[1:]), rows, self.policy)  # type: ignore[arg-type]
        self._runners[key] = (depth, StripRunner(graph, layout))
        return self._runners[key]

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """The trunk's output: row-centric segment, then the remaining trunk layers."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(f"input must be (N, C, H, W), got shape {tuple(x.shape)}")
        if x.numel() == 0:
            raise ValueError(f"input is empty: shape {tuple(x.shape)}")
        if x.is_floating_point() and not bool(torch.isfinite(x).all()):
            raise ValueError("input contains NaN or inf values")
        depth, runner = self._runner(tuple(x.shape), x.dtype)
        flags = {
            n.id: n.module.training and not (n.kind == "bn" and self.batch_norm == "frozen")
            for n in runner.graph.nodes
            if n.kind in ("bn", "drop", "drop2d")
        }
        y = _RowFunction.apply(runner, flags, x, *runner.params)
        rest = [m for _, m in self._units[depth:]]
        if rest:
            if self.checkpoint_segments > 0 and torch.is_grad_enabled():
                y = checkpoint_units(rest, self.checkpoint_segments, y)
            else:
                for m in rest:
                    y = m(y)
        return y

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the model with its trunk row-centric."""
        y = self.trunk(x)
        return self._head(y) if self._head is not None else y
