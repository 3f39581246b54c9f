"""Pruning scores shared by the methods: magnitude, random, SNIP, GraSP, SynFlow.

Every scorer has the signature `scorer(model, batches=None, params=None, **options) -> dict[name,
Tensor]`: one score per entry of each parameter in `params` (default `prunable_parameters(model)`),
higher = keep, ready for `WeightMask.from_scores`. They follow the reference implementation of
Synaptic-Flow (Tanaka et al. 2020, github.com/ganguli-lab/Synaptic-Flow, `Pruners/pruners.py` and
`prune.py`), which also re-implements SNIP and GraSP after their authors' code:

- scoring runs with the model in **eval mode** (`prune_loop` calls `model.eval()` unless its
  `train_mode` flag is set; `train_mode=True` here does the same). BatchNorm therefore uses its running
  statistics and dropout is off. The model's per-module train/eval modes, its buffers (BatchNorm
  running statistics), its parameters and their `.grad` are exactly as before when a scorer returns.
- **magnitude**: `|theta|`.
- **random**: i.i.d. scores (uniform by default; the reference draws `randn`, `distribution="normal"`).
- **SNIP** (Lee et al. 2019): `|theta * dL/dtheta|` with `dL/dtheta = sum_b grad L_b` summed over the
  batches (the reference back-propagates each batch's mean loss into the same `.grad`), optionally
  divided by the sum of all scores (`normalize=True`, the reference's normalisation; it does not change
  any ranking).
- **GraSP** (Wang et al. 2020): `theta * (H g)`, `g = sum_b grad L_b(theta)/T` held constant, `H g =
  sum_b grad (g^T grad L_b)`, with the logits divided by `T = 200`; the reference removes the lowest
  `theta * Hg` (the paper's "largest `-theta * Hg`"), so it is returned as the keep score as is.
  `normalize=True` divides by `|sum of scores| + 1e-10` as the reference does.
- **SynFlow** (Tanaka et al. 2020): data-free. Every floating entry of the state dict (parameters and
  BatchNorm buffers) is replaced by its absolute value (on a copy), the copy runs in eval mode on an
  all-ones input of one sample, `R = sum(f(1))`, and the score is `|theta * dR/dtheta|`. The reference
  computes in float32 (its `model.double()` is commented out); `double=True` (the default here)
  computes in float64, which avoids the overflow of `R` in deep nets. With `mask`, the copy's pruned
  weights are zeroed first (the reference's masked layers), so pruned weights score 0.

Under `torchrun` the gradient sums of SNIP and GraSP are all-reduced over ranks, so every rank gets
the same scores from its own shard of the batches.

Selection: `WeightMask.from_scores(scores, sparsity, rounding="floor")` prunes `int(sparsity * N)`
entries, the reference's `k = int((1 - density) * N)` kthvalue threshold (with `sparsity = 1 -
density`); the default `rounding="nearest"` prunes `floor(sparsity * N + 0.5)`. The reference prunes
every entry tied with its threshold (`score <= threshold`), `from_scores` prunes exactly that count and
breaks ties by position.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from maskloop import distributed
from maskloop.batches import forward, split_batch, to_device
from maskloop.checks import check_choice, check_input_shape, check_positive_int, check_real

__all__ = ["SCORERS", "grasp", "magnitude", "random", "snip", "synflow"]


# ---------------------------------------------------------------------------------------- helpers
def _params(model: nn.Module, params: Mapping[str, torch.Tensor] | None) -> dict[str, nn.Parameter]:
    from maskloop.masks import prunable_parameters

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if params is None:
        return prunable_parameters(model)
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params must be a non-empty mapping name -> parameter of the model")
    named = dict(model.named_parameters(remove_duplicate=False))
    missing = [n for n in params if n not in named]
    if missing:
        raise ValueError(f"params names {missing[:5]}, which {type(model).__name__} does not have")
    return {n: named[n] for n in params}


def _batches(batches: Iterable[Any] | None, max_batches: int | None, who: str) -> list[Any]:
    if batches is None or isinstance(batches, torch.Tensor) or not isinstance(batches, Iterable):
        raise TypeError(
            f"{who} needs batches: an iterable of batches (e.g. a DataLoader), got {batches!r}"
        )
    if max_batches is not None:
        check_positive_int("max_batches", max_batches)
    out = list(itertools.islice(iter(batches), max_batches))
    if not out:
        raise ValueError(f"batches is empty: {who} needs at least one batch")
    return out


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


@contextmanager
def _scoring(model: nn.Module, train_mode: bool) -> Iterator[None]:
    """Eval (or train) mode for scoring; every module's mode and every buffer restored afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = [(b, b.detach().clone()) for b in model.buffers()]
    model.train(train_mode)
    try:
        yield
    finally:
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        for m, mode in modes:
            m.training = mode


def _mean_loss(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[..., torch.Tensor] | None,
    objective: Callable[[nn.Module, Any], Any] | None,
    temperature: float = 1.0,
) -> torch.Tensor:
    """The batch's mean loss: `objective`'s per-sample losses, else `loss_fn(logits / T, y)`."""
    batch = to_device(batch, _device(model))
    if objective is not None:
        out = objective(model, batch)
        losses = out[0] if isinstance(out, tuple) else out
        if not isinstance(losses, torch.Tensor):
            raise TypeError(f"the objective must return a loss tensor, got {type(losses).__name__}")
        return losses.mean()
    inputs, targets, _ = split_batch(batch)
    logits = forward(model, inputs) / temperature
    if loss_fn is None:
        return nn.functional.cross_entropy(logits, targets)
    return loss_fn(logits, targets).mean()


def _grad(loss: torch.Tensor, plist: list[nn.Parameter], **kw: Any) -> list[torch.Tensor]:
    gs = torch.autograd.grad(loss, plist, allow_unused=True, **kw)
    return [torch.zeros_like(p) if g is None else g for g, p in zip(gs, plist)]


def _check_fn(name: str, fn: Any) -> None:
    if fn is not None and not callable(fn):
        raise TypeError(f"{name} must be callable, got {fn!r}")


# ---------------------------------------------------------------------------------------- scorers
def magnitude(
    model: nn.Module, batches: Iterable[Any] | None = None, params: Mapping[str, Any] | None = None
) -> dict[str, torch.Tensor]:
    """`|theta|` (data-free; `batches` is ignored)."""
    return {n: p.detach().abs().clone() for n, p in _params(model, params).items()}


def random(
    model: nn.Module,
    batches: Iterable[Any] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    generator: torch.Generator | None = None,
    distribution: str = "uniform",
) -> dict[str, torch.Tensor]:
    """I.i.d. scores drawn in parameter order from `generator` (uniform [0, 1), or `"normal"` as the
    reference's `randn_like`); with exact-sparsity selection this is a uniformly random mask."""
    check_choice("distribution", distribution, ("uniform", "normal"))
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, got {type(generator).__name__}")
    draw = torch.rand if distribution == "uniform" else torch.randn
    return {
        n: draw(p.shape, generator=generator).to(p.device)
        for n, p in _params(model, params).items()
    }


def _summed_grad(
    model: nn.Module,
    taken: list[Any],
    plist: list[torch.Tensor],
    loss_fn: Callable[..., torch.Tensor] | None,
    objective: Callable[..., Any] | None,
    temperature: float = 1.0,
) -> list[torch.Tensor]:
    """`sum_b grad L_b` over the batches, summed over ranks too (SNIP's and GraSP's `g`)."""
    g = [torch.zeros_like(p) for p in plist]
    for b in taken:
        torch._foreach_add_(g, _grad(_mean_loss(model, b, loss_fn, objective, temperature), plist))
    for t in g:
        distributed.all_reduce_(t)
    return g


def snip(
    model: nn.Module,
    batches: Iterable[Any],
    params: Mapping[str, Any] | None = None,
    *,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    objective: Callable[[nn.Module, Any], Any] | None = None,
    max_batches: int | None = None,
    normalize: bool = False,
    train_mode: bool = False,
) -> dict[str, torch.Tensor]:
    """SNIP connection sensitivity `|theta * sum_b dL_b/dtheta|` (Lee et al. 2019, eq. 6).

    `L_b` is the mean of `loss_fn(logits, targets)` (cross-entropy by default) on labelled batches,
    or of `objective(model, batch)`'s per-sample losses (any objective, e.g. a label-free one).
    `normalize` divides by the sum of all scores, as the reference does.
    """
    _check_fn("loss_fn", loss_fn)
    _check_fn("objective", objective)
    named = _params(model, params)
    taken = _batches(batches, max_batches, "snip")
    plist = list(named.values())
    with _scoring(model, train_mode):
        g = _summed_grad(model, taken, plist, loss_fn, objective)
    scores = {n: (p.detach() * gi).abs() for (n, p), gi in zip(named.items(), g)}
    if normalize:
        total = sum(s.sum() for s in scores.values())
        scores = {n: s / total for n, s in scores.items()}
    return scores


def grasp(
    model: nn.Module,
    batches: Iterable[Any],
    params: Mapping[str, Any] | None = None,
    *,
    temperature: float = 200.0,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    max_batches: int | None = None,
    normalize: bool = False,
    train_mode: bool = False,
) -> dict[str, torch.Tensor]:
    """GraSP keep scores `theta * (H g)` (Wang et al. 2020, eq. 8 negated: the lowest are pruned).

    `g = sum_b grad L_b` (a constant), `H g = sum_b grad_theta (g^T grad_theta L_b)`, where `L_b` is
    the mean of `loss_fn(logits / temperature, targets)` (cross-entropy by default) on labelled
    batches. Needs a model that supports double backward. `normalize` divides by `|sum| + 1e-10`.
    """
    temperature = check_real("temperature", temperature, low=0.0, low_inclusive=False)
    _check_fn("loss_fn", loss_fn)
    named = _params(model, params)
    taken = _batches(batches, max_batches, "grasp")
    plist = list(named.values())
    with _scoring(model, train_mode):
        g = _summed_grad(model, taken, plist, loss_fn, None, temperature)
        hg = [torch.zeros_like(p) for p in plist]
        for b in taken:
            gi = _grad(_mean_loss(model, b, loss_fn, None, temperature), plist, create_graph=True)
            z = sum((x * c).sum() for x, c in zip(gi, g))
            torch._foreach_add_(hg, _grad(z, plist))
    for t in hg:
        distributed.all_reduce_(t)
    scores = {n: p.detach() * h for (n, p), h in zip(named.items(), hg)}
    if normalize:
        total = sum(s.sum() for s in scores.values()).abs() + 1e-10
        scores = {n: s / total for n, s in scores.items()}
    return scores


def synflow(
    model: nn.Module,
    batches: Iterable[Any] | None = None,
    params: Mapping[str, Any] | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    mask: Any = None,
    double: bool = True,
) -> dict[str, torch.Tensor]:
    """SynFlow scores `|theta * dR/dtheta|`, `R = 1^T f_{|theta|}(1)` (Tanaka et al. 2020, eq. 2).

    Data-free: the input is all ones of `input_shape` (one sample, no batch axis), or of the shape of
    the first sample of `batches` (the reference's choice). Computed on a deep copy whose floating
    state (parameters and buffers) is replaced by its absolute value, in eval mode, in float64 when
    `double` (scores returned in float64 then), with `mask`'s pruned weights zeroed first.
    """
    named = _params(model, params)
    if input_shape is None:
        if batches is None:
            raise ValueError(
                "synflow needs input_shape (one input without the batch axis) or batches"
            )
        inputs, _, _ = split_batch(_batches(batches, 1, "synflow")[0])
        if not isinstance(inputs, torch.Tensor):
            raise ValueError("synflow infers input_shape from tensor inputs only; pass input_shape")
        input_shape = tuple(inputs.shape[1:])
    input_shape = check_input_shape(input_shape)
    work = copy.deepcopy(model)
    if double:
        work = work.to(torch.float64)
    work.eval()
    if mask is not None:
        mask.apply_(work)
    with torch.no_grad():
        for t in work.state_dict().values():
            if t.is_floating_point():
                t.abs_()
    wnamed = dict(work.named_parameters(remove_duplicate=False))
    plist = [wnamed[n] for n in named]
    dtype = plist[0].dtype
    x = torch.ones((1, *input_shape), dtype=dtype, device=plist[0].device)
    out = work(x)
    out = out.logits if hasattr(out, "logits") else out
    grads = _grad(out.sum(), plist)
    return {n: (p.detach() * gi).abs() for n, p, gi in zip(named, plist, grads)}


SCORERS: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "magnitude": magnitude,
    "random": random,
    "snip": snip,
    "grasp": grasp,
    "synflow": synflow,
}
