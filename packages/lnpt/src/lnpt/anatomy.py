"""Where a mask keeps its weights: per-layer density, effective density and score mass.

The tools behind the package docs' diagnosis of why a pruning score fails on a network:

- `layer_density(mask)`: the kept fraction of every masked tensor.
- `effective_density(model, mask, input_shape)`: the kept fraction that still lies on a path from the
  input to the output. A kept weight whose input unit receives nothing, or whose output unit feeds
  nothing, is pruned in effect (Vysogorets & Kempe 2023, "Connectivity matters"). Computed as in
  SynFlow on the mask itself: every masked weight is set to its mask value (1 kept, 0 pruned), every
  other weight to 1, biases to 0, BatchNorm to the identity, and R = 1^T f(1) is differentiated; a
  kept weight is effective iff dR/dm_j != 0 (all terms are non-negative, so nothing cancels).
- `dead_units(model, mask, input_shape)`: per masked tensor, output units (rows / channels) with no
  effective weight left.
- `score_mass(scores)`: each tensor's share of the total score, and its mean score per weight.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch
from maskloop import WeightMask
from maskloop.checks import check_input_shape
from torch import nn

__all__ = ["dead_units", "effective_density", "layer_density", "score_mass"]


def layer_density(mask: WeightMask) -> dict[str, float]:
    """Kept fraction of each masked tensor."""
    if not isinstance(mask, WeightMask):
        raise TypeError(f"mask must be a WeightMask, got {type(mask).__name__}")
    return {n: float(m.float().mean()) for n, m in mask.items()}


def _path_gradients(
    model: nn.Module, mask: WeightMask, input_shape: Sequence[int]
) -> dict[str, torch.Tensor]:
    """dR/dm for every masked tensor, R = 1^T f_{mask}(1) (see the module docstring)."""
    shape = check_input_shape(input_shape)
    if not isinstance(mask, WeightMask):
        raise TypeError(f"mask must be a WeightMask, got {type(mask).__name__}")
    work = copy.deepcopy(model).to(torch.float64).eval()
    named = dict(work.named_parameters())
    missing = [n for n in mask.names if n not in named]
    if missing:
        raise ValueError(f"mask names {missing[:5]} that the model does not have")
    with torch.no_grad():
        for name, p in named.items():
            if name in mask:
                p.copy_(mask[name].to(p.device, torch.float64))
            elif name.endswith("bias"):
                p.zero_()
            else:
                p.fill_(1.0)
        for m in work.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
                m.running_mean.zero_()
                m.running_var.fill_(1.0)
                m.eps = 0.0
    plist = [named[n] for n in mask.names]
    x = torch.ones((1, *shape), dtype=torch.float64, device=plist[0].device)
    out = work(x)
    out = out.logits if hasattr(out, "logits") else out
    grads = torch.autograd.grad(out.sum(), plist, allow_unused=True)
    return {
        n: (g if g is not None else torch.zeros_like(p))
        for n, p, g in zip(mask.names, plist, grads)
    }


def effective_density(
    model: nn.Module, mask: WeightMask, input_shape: Sequence[int]
) -> dict[str, float]:
    """Fraction of each masked tensor that is kept *and* on an input-to-output path."""
    grads = _path_gradients(model, mask, input_shape)
    return {n: float(((grads[n] > 0) & mask[n].to(grads[n].device)).float().mean()) for n in grads}


def dead_units(
    model: nn.Module, mask: WeightMask, input_shape: Sequence[int]
) -> dict[str, tuple[int, int]]:
    """Per masked tensor: (output units with no effective weight, output units)."""
    grads = _path_gradients(model, mask, input_shape)
    out = {}
    for n, g in grads.items():
        eff = (g > 0) & mask[n].to(g.device)
        alive = eff.reshape(eff.shape[0], -1).any(dim=1)
        out[n] = (int((~alive).sum()), int(alive.numel()))
    return out


def score_mass(scores: Mapping[str, torch.Tensor]) -> dict[str, tuple[float, float]]:
    """Per tensor: (share of the summed scores, mean score per weight)."""
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping name -> tensor")
    total = sum(float(t.double().sum()) for t in scores.values())
    return {
        n: (float(t.double().sum()) / total if total > 0 else 0.0, float(t.double().mean()))
        for n, t in scores.items()
    }
