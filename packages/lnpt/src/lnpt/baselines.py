"""Pruning-at-initialisation baselines as masks, from the shared scorers in `maskloop.scores`.

The scores themselves (random, magnitude, SNIP, GraSP, SynFlow; BatchNorm in eval mode as in the
Synaptic-Flow reference implementation) live in the core; this module only selects them into a
`maskloop.WeightMask` with LNPT's selection rule (`exclude`, the per-tensor floor `min_density`) so
every mask of the benchmark is selected alike, and runs SynFlow iteratively (100 rounds on the
exponential density schedule by default). `sparsity` is always the fraction of weights *removed*
(Synaptic-Flow's code calls the kept fraction "sparsity").
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from maskloop import WeightMask
from maskloop import scores as ml_scores
from maskloop.checks import check_sparsity
from torch import nn

from lnpt.learning_gap import _params, check_min_density, density_schedule, select_mask

__all__ = ["BASELINES", "baseline_mask", "synflow_prune"]


def synflow_prune(
    model: nn.Module,
    input_shape: Sequence[int],
    sparsity: float,
    *,
    rounds: int = 100,
    params: Mapping[str, torch.Tensor] | None = None,
    scope: str = "global",
    min_density: float | None = None,
) -> WeightMask:
    """Iterative SynFlow: `rounds` re-scorings on the exponential density schedule (data-free).

    `min_density` keeps at least that fraction of every tensor in each round (`lnpt.select_mask`;
    default None: the core guard, 1%; 0 opts out).
    """
    check_min_density(min_density)
    mask: WeightMask | None = None
    for s_k in density_schedule(sparsity, rounds, "exponential"):
        scores = ml_scores.synflow(model, params=params, input_shape=input_shape, mask=mask)
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
    min_density: float | None = None,
) -> WeightMask:
    """The mask of a baseline `method` in `BASELINES` at `sparsity` (fraction removed).

    SNIP and GraSP need labelled `data`; SynFlow needs `input_shape`; random takes a `generator`.
    `exclude` (regexes of parameter names left dense, e.g. `lnpt.head_pattern(model)`) and
    `min_density` (a per-tensor floor of kept weights) work as in `lnpt.prune`.
    """
    if method not in BASELINES:
        raise ValueError(f"method must be one of {BASELINES}, got {method!r}")
    s = check_sparsity(sparsity)
    check_min_density(min_density)
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
        scores = ml_scores.random(model, params=params, generator=generator)
    elif method == "magnitude":
        scores = ml_scores.magnitude(model, params=params)
    elif method == "snip":
        scores = ml_scores.snip(model, data, params=params, max_batches=max_batches)
    else:
        scores = ml_scores.grasp(model, data, params=params, max_batches=max_batches)
    return select_mask(scores, s, scope=scope, min_density=min_density)
