"""The optimizer step fused into backward: update each parameter as soon as its gradient is final.

A training step normally holds every parameter gradient at once (VGG-16: 528 MiB in float32,
392 MiB of it the first classifier layer's weight gradient) until ``optimizer.step()``. With one
optimizer per parameter and ``Tensor.register_post_accumulate_grad_hook``, each parameter is
updated the moment autograd has accumulated its gradient, and the gradient is freed at once
(PyTorch's "fuse the optimizer step into backward" recipe). The update is the same as
``optimizer.step()`` for per-parameter optimizers (SGD, Adam, AdamW, ...); it cannot be combined
with gradient clipping by global norm, gradient accumulation over several batches or optimizers
that couple parameters (LBFGS).

``chunk_mib`` goes one step further for large ``nn.Linear`` layers: their weight gradient
``dW = dY^T X`` (rows = output features) is never materialised in full. Their backward computes
the input gradient ``dX = dY W`` in full, then ``dW`` and ``db`` in row chunks of at most
``chunk_mib`` MiB, and steps each chunk at once through an optimizer over *views* of the weight's
rows. For elementwise optimizers (every entry's update depends only on that entry's gradient,
weight and state) the chunked update equals the update of the whole tensor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

__all__ = ["ELEMENTWISE_OPTIMIZERS", "StepInBackward", "linear_chunks"]

MIB = 2**20

#: Optimizers whose update is elementwise (per-entry state, scalar step counters): a step over row
#: chunks of a tensor equals the step over the whole tensor. Adafactor (factored second moments),
#: LBFGS and SparseAdam are not; subclasses are refused too, as they may change the update.
ELEMENTWISE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.Adamax,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
    torch.optim.Rprop,
)


def _all_finite(t: torch.Tensor) -> bool:
    """Whether every entry of `t` is finite, without a tensor-sized temporary in the usual case.

    `torch.isfinite(t).all()` allocates ~1.75x `t`'s bytes on CPU (687 MiB for VGG-16's 392 MiB
    first classifier weight, measured): inside backward that lands on top of the live activations.
    The sum is finite whenever every entry is (barring overflow past 3.4e38 in float32); only a
    non-finite sum pays for the exact elementwise check.
    """
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _check_chunk_mib(chunk_mib: object) -> float:
    from maskloop.checks import check_real

    return check_real("chunk_mib", chunk_mib, low=0.0, low_inclusive=False)


def linear_chunks(
    model: nn.Module, chunk_mib: float, element_size: int | None = None
) -> dict[nn.Linear, int]:
    """The ``nn.Linear`` layers of ``model`` that ``StepInBackward(chunk_mib=...)`` chunks, with
    the rows (output features) per chunk.

    A layer is chunked when it runs ``nn.Linear``'s own ``forward`` (subclasses that override
    it are left alone), its weight requires grad and its gradient (``element_size`` bytes per
    entry; default: the weight's own) is larger than ``chunk_mib`` MiB; a chunk has
    ``floor(chunk_mib MiB / (in_features x element_size))`` rows, at least one. The planner uses
    the same rule for ``plan(..., chunk_mib=...)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    limit = _check_chunk_mib(chunk_mib) * MIB
    out: dict[nn.Linear, int] = {}
    for m in model.modules():
        if not isinstance(m, nn.Linear) or not m.weight.requires_grad:
            continue
        if type(m).forward is not nn.Linear.forward or "forward" in m.__dict__:
            continue
        elem = element_size or m.weight.element_size()
        if m.weight.numel() * elem > limit:
            out[m] = max(1, int(limit // (m.in_features * elem)))
    return out


class _ChunkedLinearStep:
    """One chunked ``nn.Linear``: per-chunk optimizers over row views of its weight (and bias)."""

    def __init__(
        self,
        name: str,
        layer: nn.Linear,
        rows: int,
        optimizer_cls: type,
        kwargs: dict,
        with_bias: bool,
    ) -> None:
        self.name = name
        self.layer = layer
        w, b = layer.weight.detach(), layer.bias.detach() if with_bias else None
        self.storage = w.untyped_storage().data_ptr()
        self.chunks = []
        for lo in range(0, layer.out_features, rows):
            hi = min(lo + rows, layer.out_features)
            views = [w[lo:hi]] + ([] if b is None else [b[lo:hi]])
            self.chunks.append((lo, hi, views, optimizer_cls(views, **kwargs)))

    def step(self, gout: torch.Tensor, x: torch.Tensor, check_finite: bool) -> None:
        """Compute ``dW[lo:hi] = dY[:, lo:hi]^T X`` (and ``db``) chunk by chunk; step each."""
        w = self.layer.weight
        if w.untyped_storage().data_ptr() != self.storage:
            raise RuntimeError(
                f"StepInBackward: the weight of {self.name!r} moved to new memory (model .to(), "
                ".double(), load_state_dict with assign=True?) after the chunked optimizers were "
                "built over views of it; build StepInBackward after moving the model"
            )
        if check_finite and not (_all_finite(gout) and _all_finite(x)):
            raise ValueError(
                f"non-finite gradient for {self.name!r} (its output gradient or input holds "
                "NaN/inf): the fused optimizer step refuses to write NaN/inf into the weights"
            )
        for lo, hi, views, opt in self.chunks:
            g = gout[:, lo:hi]
            views[0].grad = g.t().mm(x)
            if len(views) > 1:
                views[1].grad = g.sum(0)
            if check_finite and not _all_finite(views[0].grad):  # overflow in the product
                opt.zero_grad(set_to_none=True)
                raise ValueError(
                    f"non-finite weight gradient for {self.name!r} rows {lo}..{hi - 1}: the fused "
                    "optimizer step refuses to write NaN/inf into the weights (rows before "
                    f"{lo} were already updated)"
                )
            opt.step()
            opt.zero_grad(set_to_none=True)


class _ChunkedLinearFn(torch.autograd.Function):
    """``F.linear`` whose backward returns only the input gradient and steps the weight in
    chunks (no gradient reaches the weight's or bias's ``.grad``)."""

    @staticmethod
    def forward(ctx, x, weight, bias, stepper, check_finite):  # type: ignore[no-untyped-def, override]
        ctx.save_for_backward(x, weight)
        ctx.stepper, ctx.check_finite = stepper, check_finite
        return nn.functional.linear(x, weight, bias)

    @staticmethod
    def backward(ctx, gout):  # type: ignore[no-untyped-def, override]
        try:
            x, w = ctx.saved_tensors
        except RuntimeError as err:  # modified in place since the forward
            raise RuntimeError(
                f"StepInBackward(chunk_mib=...): the weight of {ctx.stepper.name!r} changed "
                "between this forward and its backward; a chunked Linear must run once per "
                "backward (not twice in one forward, not with its weight shared)"
            ) from err
        gx = gout.matmul(w) if ctx.needs_input_grad[0] else None  # before the weight moves
        ctx.stepper.step(
            gout.reshape(-1, gout.shape[-1]), x.reshape(-1, x.shape[-1]), ctx.check_finite
        )
        return gx, None, None, None, None


class StepInBackward:
    """Run ``optimizer_cls(**kwargs)``'s step for each parameter inside ``backward``.

    Args:
        params: the parameters to train (those without ``requires_grad`` are skipped), or the
            model (an ``nn.Module``: all its parameters); ``chunk_mib`` needs the model.
        optimizer_cls: a ``torch.optim.Optimizer`` subclass that updates parameters
            independently (SGD, Adam, AdamW, RMSprop, ...).
        chunk_mib: also step large ``nn.Linear`` layers in row chunks (default ``None``: off).
            Every ``nn.Linear`` of the model whose weight gradient is larger than ``chunk_mib``
            MiB (``linear_chunks``) runs through a function whose backward computes the input
            gradient in full and the weight/bias gradient in chunks of at most ``chunk_mib`` MiB
            (at least one row), each stepped at once by its own optimizer over views of those
            rows: the full weight gradient never exists (VGG-16's first classifier layer: 392
            MiB). Needs an optimizer in ``ELEMENTWISE_OPTIMIZERS`` (the chunked update equals the
            whole-tensor one); parameters and ``state_dict`` keys do not change, the optimizer
            state of a chunked weight lives in per-chunk optimizers (``chunk_optimizers``).
            A chunked Linear must run once per backward, its weight used by no other module,
            and the model must not move (``.to``, ``.double()``) after construction.
        check_finite: raise ``ValueError`` before a step that would write a NaN/inf gradient
            into the weights (one reduction over each gradient, no tensor-sized temporary).
        **kwargs: its arguments (``lr=...``).

    After ``loss.backward()`` the parameters are updated and their ``.grad`` is ``None``; call
    nothing else. ``remove()`` detaches the hooks and restores the chunked layers' ``forward``.

    Memory: a step runs while the activations still to be back-propagated are alive, so its
    temporaries add to the peak. SGD (with momentum) updates in place; Adam's default step allocates
    two weight-sized temporaries (784 MiB for a 392 MiB weight, measured on CPU) and
    ``fused=True`` none: pass ``fused=True`` for Adam/AdamW where the device supports it. With
    ``chunk_mib`` those temporaries are chunk-sized.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter] | nn.Module,
        optimizer_cls: type,
        *,
        chunk_mib: float | None = None,
        check_finite: bool = True,
        **kwargs: Any,
    ) -> None:
        if not (
            isinstance(optimizer_cls, type) and issubclass(optimizer_cls, torch.optim.Optimizer)
        ):
            raise TypeError(
                f"optimizer_cls must be a torch.optim.Optimizer subclass, got {optimizer_cls!r}"
            )
        model = params if isinstance(params, nn.Module) else None
        if model is not None:
            params = model.parameters()
        if isinstance(params, torch.Tensor):
            raise TypeError("params must be an iterable of parameters, not a single tensor")
        plist = [p for p in params]
        bad = [i for i, p in enumerate(plist) if not isinstance(p, torch.Tensor)]
        if bad:
            raise TypeError(f"params[{bad[0]}] is {type(plist[bad[0]]).__name__}, not a tensor")
        plist = [p for p in plist if p.requires_grad]
        if not plist:
            raise ValueError("params holds no tensor that requires grad")
        self.check_finite = bool(check_finite)
        self.optimizers = {p: optimizer_cls([p], **kwargs) for p in plist}
        #: per chunked ``nn.Linear`` (by module name): its chunks' optimizers, in row order
        self.chunk_optimizers: dict[str, list[torch.optim.Optimizer]] = {}
        self._chunked: list[_ChunkedLinearStep] = []
        if chunk_mib is not None:
            self._chunked = self._chunk(model, chunk_mib, optimizer_cls, set(plist), kwargs)
            self.chunk_optimizers = {c.name: [ch[3] for ch in c.chunks] for c in self._chunked}
        self._handles: list[Any] = []
        self._attach()

    @staticmethod
    def _chunk(
        model: nn.Module | None,
        chunk_mib: object,
        optimizer_cls: type,
        trained: set[torch.Tensor],
        kwargs: dict,
    ) -> list[_ChunkedLinearStep]:
        if model is None:
            raise TypeError(
                "chunk_mib needs the model: pass params=model (an nn.Module) so its nn.Linear "
                "layers can be found"
            )
        if optimizer_cls not in ELEMENTWISE_OPTIMIZERS:
            allowed = ", ".join(c.__name__ for c in ELEMENTWISE_OPTIMIZERS)
            raise TypeError(
                f"chunk_mib needs an elementwise optimizer (a chunked step must equal the "
                f"whole-tensor step): optimizer_cls must be one of {allowed}, got "
                f"{optimizer_cls.__name__}"
            )
        layers = linear_chunks(model, chunk_mib)  # type: ignore[arg-type]
        uses: dict[int, int] = {}
        for _, p in model.named_parameters(remove_duplicate=False):
            uses[id(p)] = uses.get(id(p), 0) + 1
        names = {m: n for n, m in model.named_modules()}
        out = []
        for layer, rows in layers.items():
            if layer.weight not in trained:
                continue  # not trained by this StepInBackward
            ps = [layer.weight] + ([] if layer.bias is None else [layer.bias])
            if any(uses[id(p)] > 1 for p in ps):
                raise ValueError(
                    f"chunk_mib: the weight or bias of {names[layer]!r} is shared with another "
                    "module (tied weights); the gradient of the other use would be stepped apart"
                )
            with_bias = layer.bias is not None and layer.bias in trained
            out.append(
                _ChunkedLinearStep(names[layer], layer, rows, optimizer_cls, kwargs, with_bias)
            )
        return out

    def _attach(self) -> None:
        """Register the per-parameter hooks and patch the chunked layers' ``forward``."""
        self._handles = [p.register_post_accumulate_grad_hook(self._step) for p in self.optimizers]
        for c in self._chunked:

            def forward(x: torch.Tensor, c: _ChunkedLinearStep = c) -> torch.Tensor:
                w, b = c.layer.weight, c.layer.bias
                if not (torch.is_grad_enabled() and w.requires_grad):
                    return nn.Linear.forward(c.layer, x)  # eval / no_grad: the layer as it is
                return _ChunkedLinearFn.apply(x, w, b, c, self.check_finite)

            c.layer.forward = forward  # type: ignore[method-assign]

    def _step(self, p: torch.Tensor) -> None:
        if self.check_finite and p.grad is not None and not _all_finite(p.grad):
            raise ValueError(
                f"non-finite gradient for a parameter of shape {tuple(p.shape)}: the fused "
                "optimizer step refuses to write NaN/inf into the weights"
            )
        opt = self.optimizers[p]
        opt.step()
        opt.zero_grad(set_to_none=True)

    def remove(self) -> None:
        """Detach the hooks and restore the chunked layers; parameters get ordinary gradients."""
        for h in self._handles:
            h.remove()
        self._handles = []
        for c in self._chunked:
            c.layer.__dict__.pop("forward", None)
