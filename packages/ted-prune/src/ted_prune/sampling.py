"""TED's `selection="sample"` for all classes at once: per-class rank quantiles, inclusion
probabilities and Gumbel top-k draws, vectorised over the samples (no loop over classes on tensors).

`sample_groups` gives the selection of the per-class loop it replaces (for each class c in ascending
label order: `sample_keep(quantiles(scores[c]).clamp_min(1e-6), quota_c, floor, generator)`, see
`ted_prune.ted`): the same quantiles (one stable sort by score, one stable sort by class), the same
random numbers (one draw over the classes' samples in the loop's order: the CPU generator yields the
same stream for one draw as for consecutive ones) and the same keep probabilities. The loop found
each class's scale c in p_i = clip(c q_i, floor, 1) by 60 bisection steps on a tensor sum; since
the quantiles of a class of n samples are exactly 1/n, ..., n/n, that sum has a closed form, and the
same 60 steps run on Python floats. The two sums differ only by rounding (~1e-13), which can flip a
bisection step only when the midpoint lies within that distance of the root, i.e. in the last few
steps, moving c by < 1e-12 relative: the probabilities agree to ~1e-15 and the selections agree.
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["group_quantiles", "sample_groups"]


def _group_order(values: torch.Tensor, gid: torch.Tensor, descending: bool) -> torch.Tensor:
    """Sample indices sorted by group, then by value (stable: ties keep index order)."""
    by_value = torch.argsort(values, descending=descending, stable=True)
    return by_value[torch.argsort(gid[by_value], stable=True)]


def group_quantiles(scores: torch.Tensor, gid: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Each score's rank quantile r / n_c within its group (ascending, ties by index; the largest
    of a group -> 1), float64: `ted.quantiles` applied to every group. `gid` (N,) are group ids
    0..K-1 and `counts` (K,) the group sizes."""
    n = scores.numel()
    order = _group_order(scores, gid, descending=False)
    go = gid[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[go]
    out = torch.empty(n, dtype=torch.float64)
    out[order] = (rank + 1).double() / counts[go].double()
    return out


def _rank_clip_sum(scale: float, n: int, floor: float) -> float:
    """sum_{r=1..n} clip(scale * r / n, floor, 1), in closed form."""
    a = scale / n
    r_lo = min(n, math.floor(floor / a)) if floor > 0 else 0  # terms at the floor
    r_hi = max(r_lo + 1, math.ceil(1.0 / a))  # first term at 1
    ones = max(0, n - r_hi + 1)
    top = min(r_hi - 1, n)
    middle = a * (top * (top + 1) // 2 - r_lo * (r_lo + 1) // 2) if top > r_lo else 0.0
    return floor * r_lo + middle + ones


@functools.lru_cache(maxsize=4096)  # class sizes and quotas repeat from epoch to epoch
def _scale(n: int, count: int, floor: float) -> float:
    """The scale c with sum_r clip(c q_r, floor, 1) = count for the quantiles q_r = r / n, found by
    the 60 bisection steps of `ted.sample_keep` (same bracket)."""
    q_min = max(1.0 / n, 1e-6)
    if q_min > 1.0 / n:  # the 1e-6 floor on quantiles binds (n > 1e6): sum the tensor
        q = (torch.arange(1, n + 1, dtype=torch.float64) / n).clamp_min(1e-6)

        def total(c: float) -> float:
            return float((c * q).clamp(floor, 1.0).sum())
    else:

        def total(c: float) -> float:
            return _rank_clip_sum(c, n, floor)

    lo, hi = 0.0, float(n) / max(q_min, 1e-300)
    for _ in range(60):
        mid = (lo + hi) / 2
        if total(mid) < count:
            lo = mid
        else:
            hi = mid
    return hi


def sample_groups(
    scores: torch.Tensor,
    gid: torch.Tensor,
    counts: torch.Tensor,
    quota: torch.Tensor,
    floor: float,
    generator: torch.Generator,
    members: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep exactly `quota[c]` samples of every group c, with inclusion probability
    p_i = clip(c_g q_i, floor, 1) for q_i the score's quantile in its group (clamped >= 1e-6),
    sum_i p_i = quota per group; groups with quota >= size keep all (p = 1, no random draw).
    Gumbel top-k on log p_i per group (sampling without replacement).

    `members`: `torch.argsort(gid, stable=True)` if already known (it depends on the groups only).
    Returns (kept indices, p of every sample (float64)).
    """
    n = scores.numel()
    k = counts.numel()
    sizes = counts.tolist()
    q = group_quantiles(scores, gid, counts)
    if max(sizes) > 1_000_000:  # else every quantile r / n_c >= 1e-6 already
        q = q.clamp_min(1e-6)
    full = quota >= counts
    wholes = full.tolist()
    scale = torch.ones(k, dtype=torch.float64)
    for c, (size, want, whole) in enumerate(zip(sizes, quota.tolist(), wholes)):
        if not whole:
            scale[c] = _scale(int(size), int(want), floor)
    p = (scale[gid] * q).clamp(floor, 1.0)
    if members is None:  # the loop's draw order: by group, then index
        members = torch.argsort(gid, stable=True)
    draw = members
    if any(wholes):  # whole groups: p = 1, no draw, always kept
        full_i = full[gid]
        p[full_i] = 1.0
        draw = members[~full_i[members]]
    u = torch.rand(draw.numel(), generator=generator, dtype=torch.float64)
    keys = torch.full((n,), math.inf, dtype=torch.float64)
    keys[draw] = torch.log(p[draw]) - torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16)))
    order = _group_order(keys, gid, descending=True)
    go = gid[order]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(n) - starts[go]
    return order[rank < quota[go]], p
