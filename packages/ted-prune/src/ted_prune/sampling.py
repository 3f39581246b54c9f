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

Every sort here is stable, so its permutation is unique: the sorts by group id use NumPy's radix
sort on int16 keys (`stable_group_argsort`, ~15x faster than a general stable sort at these sizes),
the sorts by value a radix sort built on it (`stable_argsort`, ~4x faster), and gathers/scatters
use `index_select`/`index_copy_` rather than advanced indexing (several times faster on CPU); the
values are the same. The draw itself needs no sort: keeping each group's `quota` largest Gumbel keys
(ties by index) is a selection per group (`top_in_groups`), which gives the same set.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

__all__ = [
    "group_quantiles",
    "sample_groups",
    "stable_argsort",
    "stable_group_argsort",
    "top_in_groups",
]


def stable_argsort(values: torch.Tensor, descending: bool = False) -> torch.Tensor:
    """`torch.argsort(values, descending=descending, stable=True)` for a 1-D float CPU tensor, by
    an LSD radix sort: four stable passes of NumPy's int16 radix sort over the 16-bit digits of an
    order-preserving integer key of each float64 value (negative: all bits flipped; else the sign
    bit set; -0.0 counts as 0.0). The permutation of a stable sort is unique, so the result is the
    same, about 4x faster than a comparison sort at 10^4-10^5 values. Inputs with NaN, other
    dtypes and tiny inputs take `torch.argsort`."""
    if (
        values.dtype not in (torch.float32, torch.float64)
        or values.numel() < 256
        or values.requires_grad
        or not values.is_cpu
    ):
        return torch.argsort(values, descending=descending, stable=True)
    v = values.double().numpy() + 0.0  # float32 -> float64 is exact; -0.0 + 0.0 = 0.0
    if np.isnan(v).any():
        return torch.argsort(values, descending=descending, stable=True)
    bits = v.view(np.uint64)
    key = np.where(bits >> np.uint64(63) != 0, ~bits, bits | np.uint64(1 << 63))
    if descending:
        key = ~key
    perm = np.argsort((key & np.uint64(0xFFFF)).astype(np.uint16), kind="stable")
    for shift in (16, 32, 48):
        digit = ((key[perm] >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.uint16)
        perm = perm[np.argsort(digit, kind="stable")]
    return torch.from_numpy(perm)


def stable_group_argsort(gid: torch.Tensor) -> torch.Tensor:
    """`torch.argsort(gid, stable=True)` for group ids 0..K-1: NumPy's stable sort of int16 keys
    is a radix sort (the permutation of a stable sort is unique, so the result is the same)."""
    if gid.is_cpu and gid.numel() and int(gid.max()) < 2**15:
        return torch.from_numpy(np.argsort(gid.numpy().astype(np.int16), kind="stable"))
    return torch.argsort(gid, stable=True)


def _group_order(values: torch.Tensor, gid: torch.Tensor, descending: bool) -> torch.Tensor:
    """Sample indices sorted by group, then by value (stable: ties keep index order)."""
    by_value = stable_argsort(values, descending=descending)
    return by_value.index_select(0, stable_group_argsort(gid.index_select(0, by_value)))


def _rank_in_group(order: torch.Tensor, gid: torch.Tensor, counts: torch.Tensor) -> tuple:
    """(group of each position of `order`, its 0-based rank within the group), for an `order`
    sorted by group."""
    go = gid.index_select(0, order)
    starts = torch.cumsum(counts, 0) - counts
    return go, torch.arange(order.numel()) - starts.index_select(0, go)


def group_quantiles(scores: torch.Tensor, gid: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Each score's rank quantile r / n_c within its group (ascending, ties by index; the largest
    of a group -> 1), float64: `ted.quantiles` applied to every group. `gid` (N,) are group ids
    0..K-1 and `counts` (K,) the group sizes."""
    order = _group_order(scores, gid, descending=False)
    go, rank = _rank_in_group(order, gid, counts)
    q = (rank + 1).double() / counts.index_select(0, go).double()
    return torch.empty(scores.numel(), dtype=torch.float64).index_copy_(0, order, q)


def top_in_groups(
    keys: torch.Tensor, members: torch.Tensor, counts: torch.Tensor, quota: torch.Tensor
) -> torch.Tensor:
    """The `quota[c]` largest `keys` of every group c, ties broken by the lower index: the set
    that sorting by group, then by key descending (stable), and keeping each group's first
    `quota[c]` positions gives, returned as ascending indices (int64).

    `members` is `torch.argsort(gid, stable=True)` (each group's samples, in index order) and
    `counts` the group sizes. No sort: per group, the quota-th largest key t is found by a
    selection (`numpy.partition`); every key above t is kept, and of the keys equal to t the
    lowest-indexed ones fill the quota, which is exactly the stable sort's choice. NaN keys raise
    a ValueError (TED's Gumbel keys are never NaN)."""
    if keys.ndim != 1 or members.shape != keys.shape:
        raise ValueError(
            f"keys and members must be 1-D of the same length, got {tuple(keys.shape)} and "
            f"{tuple(members.shape)}"
        )
    if quota.shape != counts.shape or int(counts.sum()) != keys.numel():
        raise ValueError(
            f"counts must hold the group sizes (sum {int(counts.sum())}, keys {keys.numel()}) and "
            f"quota one entry per group ({tuple(quota.shape)} vs {tuple(counts.shape)})"
        )
    k = keys.index_select(0, members).numpy()
    if np.isnan(k).any():
        raise ValueError("keys contain NaN")
    take = np.zeros(k.size, dtype=bool)
    start = 0
    for size, want in zip(counts.tolist(), quota.tolist()):
        stop = start + size
        if want >= size:
            take[start:stop] = True
        elif want > 0:
            seg = k[start:stop]
            t = np.partition(seg, size - want)[size - want]  # the want-th largest key
            above = seg > t
            take[start:stop] = above
            ties = np.flatnonzero(seg == t)[: want - int(np.count_nonzero(above))]
            take[start + ties] = True  # the lowest-indexed of the tied keys
        start = stop
    kept = np.zeros(k.size, dtype=bool)
    kept[members.numpy()[take]] = True
    return torch.from_numpy(np.flatnonzero(kept))


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
    uniform_mix: float = 0.0,
    uniform_groups: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep exactly `quota[c]` samples of every group c, with inclusion probability
    p_i = clip(c_g q_i, floor, 1) for q_i the score's quantile in its group (clamped >= 1e-6),
    sum_i p_i = quota per group; groups with quota >= size keep all (p = 1, no random draw).
    `uniform_mix` = lambda in [0, 1] mixes these with the uniform draw of the group:
    p_i = (1 - lambda) clip(c_g q_i, floor, 1) + lambda quota_g / size_g (still summing to the
    quota; lambda = 0 leaves p untouched, bit for bit; lambda = 1 is a uniform draw per group).
    `uniform_groups` (bool, (K,)): groups drawn uniformly whatever `uniform_mix` is, p_i =
    quota_g / size_g (`TEDPruner`'s `tail`; None: none).
    Gumbel top-k on log p_i per group (sampling without replacement; `top_in_groups` takes each
    group's largest keys without sorting them).

    `members`: `torch.argsort(gid, stable=True)` if already known (it depends on the groups only).
    Returns (kept indices in ascending order, p of every sample (float64)).
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
    p = (scale.index_select(0, gid) * q).clamp(floor, 1.0)
    if uniform_mix > 0:
        share = (quota.double() / counts.double()).clamp(max=1.0).index_select(0, gid)
        p = (1.0 - uniform_mix) * p + uniform_mix * share
    if uniform_groups is not None and bool(uniform_groups.any()):
        share = (quota.double() / counts.double()).clamp(max=1.0).index_select(0, gid)
        p = torch.where(uniform_groups.index_select(0, gid), share, p)
    if members is None:  # the loop's draw order: by group, then index
        members = stable_group_argsort(gid)
    draw = members
    if any(wholes):  # whole groups: p = 1, no draw, always kept
        full_i = full.index_select(0, gid)
        p.masked_fill_(full_i, 1.0)
        draw = members.masked_select(~full_i.index_select(0, members))
    u = torch.rand(draw.numel(), generator=generator, dtype=torch.float64)
    keys = torch.full((n,), math.inf, dtype=torch.float64)
    logp = torch.log(p.index_select(0, draw))
    keys.index_copy_(0, draw, logp - torch.log(-torch.log(u.clamp(1e-300, 1 - 1e-16))))
    return top_in_groups(keys, members, counts, quota), p
