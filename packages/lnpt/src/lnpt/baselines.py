"""Pruning-at-initialisation baselines, scored into the same `maskloop.WeightMask` machinery.

All scores follow one convention: higher = keep; `WeightMask.from_scores` prunes the lowest. `sparsity`
is always the fraction of weights *removed* (Synaptic-Flow's code calls the kept fraction "sparsity").

- random: i.i.d. uniform scores.
- magnitude: |theta|.
- SNIP (Lee et al. 2019): |theta * dL/dtheta| with the labelled cross-entropy L.
- GraSP (Wang et al. 2020): GraSP removes the weights with the largest -theta * Hg (H the Hessian of
  the loss, g its gradient, logits divided by a temperature T = 200 as in its code), so the keep score is
  theta * Hg.
- SynFlow (Tanaka et al. 2020): data-free; on |theta| and an all-ones input,
  R = 1^T (prod_l |W_l|) 1 and score = |theta * dR/dtheta|, pruned iteratively over 100 rounds with an
  exponential density schedule.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from maskloop import WeightMask
from torch import nn

from lnpt.learning_gap import (
    _check_min_density,
    _check_positive_int,
    _check_sparsity,
    _params,
    density_schedule,
    select_mask,
)

__all__ = [
    "BASELINES",
    "baseline_mask",
    "grasp_scores",
    "magnitude_scores",
    "random_scores",
    "snip_scores",
    "synflow_prune",
    "synflow_scores",
]


def _labelled(
    data: Iterable[Any], max_batches: int | None
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if data is None or isinstance(data, torch.Tensor) or not isinstance(data, Iterable):
        raise TypeError(f"data must be a DataLoader of (inputs, labels) batches, got {data!r}")
    if max_batches is not None:
        _check_positive_int("max_batches", max_batches)
    out = []
    for batch in data:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                "this baseline needs labelled batches (inputs, labels); got "
                f"{type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            )
        out.append((batch[0], batch[1]))
        if max_batches is not None and len(out) >= max_batches:
            break
    if not out:
        raise ValueError("data is empty: it yields no batches")
    return out


def _work_copy(model: nn.Module, bn: str) -> nn.Module:
    """A copy of `model` to score, in eval mode (`bn="eval"`) or train mode (`bn="train"`)."""
    if bn not in ("eval", "train"):
        raise ValueError(f"bn must be 'eval' or 'train', got {bn!r}")
    return copy.deepcopy(model).train(bn == "train")


def random_scores(
    model: nn.Module,
    generator: torch.Generator | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """I.i.d. uniform scores (a random mask with exact sparsity once selected)."""
    named = _params(model, params)
    return {n: torch.rand(p.shape, generator=generator).to(p.device) for n, p in named.items()}


def magnitude_scores(
    model: nn.Module, params: Mapping[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """|theta| (magnitude pruning at initialisation)."""
    return {n: p.detach().abs().clone() for n, p in _params(model, params).items()}


def snip_scores(
    model: nn.Module,
    data: Iterable[Any],
    *,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    max_batches: int | None = None,
    bn: str = "eval",
) -> dict[str, torch.Tensor]:
    """SNIP connection sensitivity |theta * dL/dtheta| on labelled batches (gradient averaged).

    Scored on a copy in eval mode (`bn="eval"`, as the reference implementation does; "train" uses
    batch statistics), so the model's BatchNorm statistics and mode are left as they were.
    """
    loss_fn = loss_fn or F.cross_entropy
    batches = _labelled(data, max_batches)
    work = _work_copy(model, bn)
    names = list(_params(model, params))
    named = dict(work.named_parameters())
    plist = [named[n] for n in names]
    grads = [torch.zeros_like(p) for p in plist]
    for x, y in batches:
        loss = loss_fn(work(x), y)
        for acc, g in zip(grads, torch.autograd.grad(loss, plist, allow_unused=True)):
            if g is not None:
                acc.add_(g)
    return {n: (p.detach() * g / len(batches)).abs() for n, p, g in zip(names, plist, grads)}


def grasp_scores(
    model: nn.Module,
    data: Iterable[Any],
    *,
    temperature: float = 200.0,
    params: Mapping[str, torch.Tensor] | None = None,
    max_batches: int | None = None,
    bn: str = "eval",
) -> dict[str, torch.Tensor]:
    """GraSP keep scores theta * (H g) (the weights with the largest -theta * Hg are removed).

    g = dL/dtheta (summed over the batches, treated as a constant), Hg = d(g^T dL/dtheta)/dtheta,
    with L the cross-entropy of logits / temperature. Scored on a copy in eval mode (`bn`, as SNIP).
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature!r}")
    batches = _labelled(data, max_batches)
    work = _work_copy(model, bn)
    names = list(_params(model, params))
    named = dict(work.named_parameters())
    plist = [named[n] for n in names]
    g = [torch.zeros_like(p) for p in plist]
    for x, y in batches:
        loss = F.cross_entropy(work(x) / temperature, y)
        for acc, gi in zip(g, torch.autograd.grad(loss, plist, allow_unused=True)):
            if gi is not None:
                acc.add_(gi)
    hg = [torch.zeros_like(p) for p in plist]
    for x, y in batches:
        loss = F.cross_entropy(work(x) / temperature, y)
        grads = torch.autograd.grad(loss, plist, create_graph=True, allow_unused=True)
        z = sum((gi * ci).sum() for gi, ci in zip(grads, g) if gi is not None)
        for acc, h in zip(hg, torch.autograd.grad(z, plist, allow_unused=True)):
            if h is not None:
                acc.add_(h)
    return {n: (p.detach() * h) for n, p, h in zip(names, plist, hg)}


@torch.no_grad()
def _linearise(model: nn.Module) -> None:
    for t in model.state_dict().values():
        if t.is_floating_point():
            t.abs_()


def synflow_scores(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    mask: WeightMask | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """SynFlow scores |theta * dR/dtheta|, R = sum(f_{|theta| * M}(1)), in float64 and eval mode.

    Data-free: `input_shape` is the shape of one input without the batch axis, e.g. (64,) or (1, 8, 8).
    """
    if not isinstance(input_shape, Sequence) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise ValueError(f"input_shape must be a sequence of positive ints, got {input_shape!r}")
    names = list(_params(model, params))
    work = copy.deepcopy(model).to(torch.float64).eval()
    if mask is not None:
        mask.apply_(work)
    _linearise(work)
    named = dict(work.named_parameters())
    plist = [named[n] for n in names]
    device = plist[0].device
    x = torch.ones((1, *input_shape), dtype=torch.float64, device=device)
    out = work(x)
    out = out.logits if hasattr(out, "logits") else out
    grads = torch.autograd.grad(out.sum(), plist, allow_unused=True)
    return {
        n: (p.detach() * (g if g is not None else torch.zeros_like(p))).abs().to(model_p.dtype)
        for n, p, g, model_p in zip(names, plist, grads, _params(model, params).values())
    }


def synflow_prune(
    model: nn.Module,
    input_shape: Sequence[int],
    sparsity: float,
    *,
    rounds: int = 100,
    params: Mapping[str, torch.Tensor] | None = None,
    scope: str = "global",
    min_density: float = 0.0,
) -> WeightMask:
    """Iterative SynFlow: `rounds` re-scorings on the exponential density schedule (data-free).

    `min_density` keeps at least that fraction of every tensor in each round (`lnpt.select_mask`).
    """
    _check_min_density(min_density)
    mask: WeightMask | None = None
    for s_k in density_schedule(sparsity, rounds, "exponential"):
        scores = synflow_scores(model, input_shape, mask=mask, params=params)
        mask = select_mask(scores, s_k, scope=scope, previous=mask, min_density=min_density)
    assert mask is not None
    return mask


BASELINES = ("random", "magnitude", "snip", "grasp", "synflow")


def baseline_mask(
    method: str,
    model: nn.Module,
    sparsity: float,
    *,
    data: Iterable[Any] | None = None,
    input_shape: Sequence[int] | None = None,
    generator: torch.Generator | None = None,
    max_batches: int | None = None,
    synflow_rounds: int = 100,
    scope: str = "global",
    params: Mapping[str, torch.Tensor] | None = None,
    exclude: str | Sequence[str] | None = None,
    min_density: float = 0.0,
) -> WeightMask:
    """The mask of a baseline `method` in `BASELINES` at `sparsity` (fraction removed).

    SNIP and GraSP need labelled `data`; SynFlow needs `input_shape`; random takes a `generator`.
    `exclude` (regexes of parameter names left dense, e.g. `lnpt.head_pattern(model)`) and
    `min_density` (a per-tensor floor of kept weights) work as in `lnpt.prune`.
    """
    if method not in BASELINES:
        raise ValueError(f"method must be one of {BASELINES}, got {method!r}")
    s = _check_sparsity(sparsity)
    _check_min_density(min_density)
    if exclude is not None:
        params = _params(model, params, exclude)
    if method == "synflow":
        if input_shape is None:
            raise ValueError(
                "method='synflow' needs input_shape (one input without the batch axis)"
            )
        return synflow_prune(
            model,
            input_shape,
            s,
            rounds=synflow_rounds,
            params=params,
            scope=scope,
            min_density=min_density,
        )
    if method in ("snip", "grasp") and data is None:
        raise ValueError(
            f"method={method!r} needs labelled data (a DataLoader of (inputs, labels))"
        )
    if method == "random":
        scores = random_scores(model, generator, params)
    elif method == "magnitude":
        scores = magnitude_scores(model, params)
    elif method == "snip":
        scores = snip_scores(model, data, params=params, max_batches=max_batches)
    else:
        scores = grasp_scores(model, data, params=params, max_batches=max_batches)
    return select_mask(scores, s, scope=scope, min_density=min_density)
