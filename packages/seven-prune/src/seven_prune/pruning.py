"""The pruner machinery every method here shares: targets, global selection, schedules, masking.

A pruner owns a `maskloop.WeightMask` over its target weights and a `maskloop.MaskedTraining` that keeps
pruned weights at exactly zero. Two families share one interface:

- `GradualPruner`: scores are updated from each step's gradients inside a window of `window` steps that
  begins at step `start`; the global keep-ratio follows the cubic schedule and the mask is frozen after
  the window (SEVEN_dyn, Taylor, movement, PLATON, ...). With `mode="pre"` the same rule runs over
  `window` batches of gradients at the pretrained weights before fine-tuning (no weight update).
- `OneShotPruner`: one score at the start, one global cut (magnitude, random, SNIP, GraSP).

Every pruner is also a `maskloop.Callback` (`fit(..., callbacks=[pruner])`) and can be driven from a
plain loop (`pruner.step()` after `optimizer.step()`) or from Hugging Face `Trainer` (`SevenCallback`).
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import Callback, LoopState, MaskedTraining, WeightMask, prunable_parameters, schedules
from maskloop.checks import check_fraction, check_int, check_sparsity
from torch import nn

__all__ = [
    "DEFAULT_MIN_DENSITY",
    "DEFAULT_TARGETS",
    "SCOPES",
    "GradualPruner",
    "OneShotPruner",
    "Pruner",
    "batch_loss",
    "layer_type",
    "parse_pattern",
    "select_flat",
    "select_global",
    "sparsity_by_layer_type",
    "target_parameters",
]

#: Default target patterns (regular expressions searched in parameter names, `nn.Linear` weights
#: only): every Linear inside the encoder blocks of Hugging Face BERT / RoBERTa / ELECTRA
#: (`...encoder.layer.<i>....`), ViT in transformers >= 5 (`vit.layers.<i>....`) and DistilBERT
#: (`...transformer.layer.<i>....`), plus the BERT pooler dense layer, as in the official SEVEN code.
#: Embeddings, LayerNorms, biases and task heads stay dense.
DEFAULT_TARGETS: tuple[str, ...] = (
    r"(^|\.)encoder\.layers?\.\d+\.",
    r"(^|\.)layers\.\d+\.",
    r"(^|\.)transformer\.layer\.\d+\.",
    r"(^|\.)pooler\.dense\.weight$",
)

_LAYER_TYPES: tuple[tuple[str, str], ...] = (
    ("query", r"(q_lin|query|q_proj)\.weight$"),
    ("key", r"(k_lin|key|k_proj)\.weight$"),
    ("value", r"(v_lin|value|v_proj)\.weight$"),
    ("attn_out", r"(attention\.output\.dense|out_lin|o_proj|out_proj)\.weight$"),
    ("ffn_in", r"(intermediate\.dense|ffn\.lin1|fc1|up_proj)\.weight$"),
    ("ffn_out", r"(layer\.\d+\.output\.dense|ffn\.lin2|fc2|down_proj)\.weight$"),
    ("pooler", r"pooler\.dense\.weight$"),
)


def layer_type(name: str) -> str:
    """The role of an encoder weight from its name: query, key, value, attn_out, ffn_in, ffn_out,
    pooler, or other."""
    for kind, pattern in _LAYER_TYPES:
        if re.search(pattern, name):
            return kind
    return "other"


def sparsity_by_layer_type(mask: WeightMask) -> dict[str, float]:
    """Achieved sparsity per layer role (weighted by entries), plus `"all"` for the whole mask."""
    if not isinstance(mask, WeightMask):
        raise TypeError(f"mask must be a maskloop.WeightMask, got {type(mask).__name__}")
    pruned: dict[str, int] = {}
    total: dict[str, int] = {}
    for name, m in mask.items():
        kind = layer_type(name)
        pruned[kind] = pruned.get(kind, 0) + int((~m).sum())
        total[kind] = total.get(kind, 0) + m.numel()
    out = {k: pruned[k] / total[k] for k in total}
    out["all"] = mask.sparsity
    return out


def target_parameters(
    model: nn.Module,
    targets: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The Linear weights a pruner masks, keyed by name.

    `targets` are regular expressions searched in parameter names (default `DEFAULT_TARGETS`: the
    encoder Linears of BERT/RoBERTa/ViT-style models and the pooler); `exclude` removes matches.
    Raises ValueError naming the patterns when nothing matches.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    include = DEFAULT_TARGETS if targets is None else targets
    if not isinstance(include, str) and (
        not isinstance(include, Sequence)
        or not include
        or not all(isinstance(t, str) for t in include)
    ):
        raise TypeError(
            f"targets must be a regex string or a non-empty sequence of regex strings, got {targets!r}"
        )
    try:
        return prunable_parameters(model, types=(nn.Linear,), include=include, exclude=exclude)
    except ValueError as err:
        if "no prunable parameters" not in str(err):
            raise
        linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)][:6]
        raise ValueError(
            f"targets={include!r} (exclude={exclude!r}) match no nn.Linear weight of "
            f"{type(model).__name__}; Linear modules look like {linears}. Pass `targets=` patterns "
            "that match your model's parameter names."
        ) from None


#: default per-tensor floor of the selection: every target tensor keeps at least this fraction
DEFAULT_MIN_DENSITY = 0.01
#: what `min_density` means, for its range error
MIN_DENSITY_MEANING = "the least fraction of each target tensor kept"

#: the selection rules a pruner can cut its mask with
SCOPES: tuple[str, ...] = ("global", "layer")


def parse_pattern(pattern: object) -> tuple[int, int] | None:
    """`"N:M"` (e.g. `"2:4"`) -> (N, M) with 0 < N < M; None -> None (unstructured)."""
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        raise TypeError(
            f"pattern must be a string like '2:4' or None, got {type(pattern).__name__}"
        )
    m = re.fullmatch(r"\s*(\d+)\s*:\s*(\d+)\s*", pattern)
    if m is None or not 0 < int(m.group(1)) < int(m.group(2)):
        raise ValueError(f"pattern must be 'N:M' with 0 < N < M (e.g. '2:4'), got {pattern!r}")
    return int(m.group(1)), int(m.group(2))


#: flat score buffers of at least this many entries find their threshold from a sample first
SAMPLED_SELECTION_MIN = 1 << 16
#: the size of that sample (a fixed stride through the buffer: deterministic)
SAMPLE_SIZE = 1 << 16
#: the bracket's margin around the sample's quantile, in binomial standard deviations (plus 64
#: entries): narrower brackets gather fewer entries and miss more often (a miss falls back to the
#: general path); only the speed depends on it (6 until session 21)
BRACKET_SDS = 4.0


def _count(x: torch.Tensor) -> int:
    """The number of True entries of a bool tensor (numpy's count on a CPU: no int64 copy)."""
    if x.device.type == "cpu":
        return int(np.count_nonzero(x.numpy()))
    return int(torch.count_nonzero(x))


def _segment_counts(x: torch.Tensor, segs: Sequence[tuple[int, int]]) -> list[int]:
    """The number of True entries of bool `x` in each segment `(a, b)`: numpy's count per segment
    on a CPU, `_segment_counts_torch` elsewhere."""
    if x.device.type == "cpu":
        return [_count(x[a:b]) for a, b in segs]
    return _segment_counts_torch(x, segs)


def _segment_counts_torch(x: torch.Tensor, segs: Sequence[tuple[int, int]]) -> list[int]:
    """`_segment_counts` from one cumulative sum and one host copy, on `x`'s device: on a GPU a
    count per segment would wait for the device once per tensor (37 waits per cut for MiniLM)."""
    if not segs:
        return []
    cs = torch.cat([x.new_zeros(1, dtype=torch.int64), torch.cumsum(x, 0, dtype=torch.int64)])
    bounds = torch.tensor(segs, dtype=torch.int64, device=x.device)
    return (cs[bounds[:, 1]] - cs[bounds[:, 0]]).tolist()


def _finite_min(flat: torch.Tensor) -> float | None:
    """The smallest entry if every entry is finite, else None, from the smallest and largest (one
    reduction pass; they propagate NaN, and an inf is one of them)."""
    lo, hi = torch.aminmax(flat)
    if bool(torch.isfinite(lo)) and bool(torch.isfinite(hi)):
        return float(lo)
    return None


def _sample_bracket(
    fn: np.ndarray, an: np.ndarray | None, k: int, n_alive: int
) -> tuple[np.ndarray, int, int] | None:
    """The strided sample of the alive scores and the ranks in it, ``i_lo <= i_hi``, that are
    expected to enclose the k-th smallest of `n_alive` (a margin of `BRACKET_SDS` binomial standard
    deviations plus 64 around the sample's k / n_alive quantile; the ranks may fall outside the
    sample). None when the sample has fewer than 1024 entries. Shared by `_kth_bracketed` and
    `_keep_top_bracketed`; only the speed depends on it, never the result."""
    step = max(1, fn.size // SAMPLE_SIZE)
    sample = fn[::step] if an is None else fn[::step][an[::step]]
    ns = sample.size
    if ns < 1024:
        return None
    q = k / n_alive
    margin = BRACKET_SDS * math.sqrt(ns * q * (1.0 - q)) + 64.0
    return sample, math.floor(q * ns - margin), math.ceil(q * ns + margin)


def _kth_bracketed(
    fn: np.ndarray,
    an: np.ndarray | None,
    k: int,
    n_alive: int,
    record: list[np.ndarray] | None = None,
) -> float | None:
    """The k-th smallest (1-based) of `fn` among the `an` entries, found from a bracket: a strided
    sample of the alive scores gives two values `lo <= hi` expected to enclose it; one pass counts
    the alive entries below `lo` and gathers those in [lo, hi], and a partial selection on that
    small set gives the exact value. None when the sample is too small or the bracket misses (the
    caller then selects on all entries): the result never depends on the sample, only the speed.

    `record`: when the value is found, the bool vector of the gathered entries (every alive entry
    with lo <= x <= hi; all alive entries when the bracket has no upper end) is appended to it,
    for the guard's re-selection (`_reselect_from_bracket`)."""
    bracket = _sample_bracket(fn, an, k, n_alive)
    if bracket is None:
        return None
    sample, i_lo, i_hi = bracket
    ns = sample.size
    ranks = [i for i in (i_lo, i_hi) if 0 <= i < ns]
    if not ranks:
        return None  # the bracket would hold every entry: no gain
    part = np.partition(sample, ranks)
    if i_hi < ns:
        inb = np.less_equal(fn, part[i_hi])
        if an is not None:
            inb &= an
    else:
        inb = np.ones(fn.size, dtype=bool) if an is None else an.copy()
    c_lo = 0
    if i_lo >= 0:
        below = np.less(fn, part[i_lo])
        if an is not None:
            below &= an
        c_lo = int(np.count_nonzero(below))
        if c_lo >= k:
            return None
        inb ^= below  # below lies inside inb: what is left is lo <= x <= hi
    cand = np.compress(inb, fn)
    if c_lo + cand.size < k:
        return None
    j = k - c_lo - 1
    if record is not None:
        record.append(inb)
    return float(np.partition(cand, j)[j])


def _np_scores(flat: torch.Tensor) -> np.ndarray:
    """A CPU score buffer as a numpy array of its own float type (float32 or float64; any other
    float type upcast to float32, which is exact and keeps the order): the threshold is then a
    value of the scores themselves, so comparisons with it are exact."""
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    return flat.numpy()


def _kth_by_sort(flat: torch.Tensor, alive: torch.Tensor | None, k: int, n_alive: int) -> float:
    """The k-th smallest (1-based) alive entry of `flat` as the k-th entry of one sort, on the
    tensor's own device: the value `torch.kthvalue` returns (an order statistic is the same number
    whichever way it is found), in float32 or float64 as `flat` is. The path for GPU buffers:
    torch's CUDA `kthvalue` parallelises across slices, not within one, and over one slice of 10.7M
    floats took 66-68 ms on an NVIDIA H200 where this sort took 0.53 ms (the SEVEN pruner's cut
    fell from 60-73 ms to 15-23 ms; `docs/benchmarks/seven-prune-2-4-gpu-h200-s24/`)."""
    vals = flat if alive is None or n_alive == flat.numel() else flat[alive]
    vals = vals if vals.dtype == torch.float64 else vals.float()
    return float(torch.sort(vals).values[k - 1])


def _kth_smallest(
    flat: torch.Tensor,
    alive: torch.Tensor | None,
    k: int,
    n_alive: int,
    record: list[np.ndarray] | None = None,
) -> float:
    """The k-th smallest (1-based) entry of a flat float tensor among the `alive` entries (all when
    None; `n_alive` of them), exactly, without a full sort.

    On a CPU: for large buffers from a sample-bracketed candidate set (`_kth_bracketed`), else
    numpy's introselect (`numpy.partition`, an order of magnitude faster than `torch.kthvalue`
    over millions of floats) on the alive entries; on other devices `_kth_by_sort`. `record`: see
    `_kth_bracketed` (appended to only on the bracketed path).
    """
    if flat.device.type != "cpu":
        return _kth_by_sort(flat, alive, k, n_alive)
    fn = _np_scores(flat)
    an = None if alive is None or n_alive == flat.numel() else alive.numpy()
    if fn.size >= SAMPLED_SELECTION_MIN:
        thr = _kth_bracketed(fn, an, k, n_alive, record)
        if thr is not None:
            return thr
    vals = fn if an is None else np.compress(an, fn)
    return float(np.partition(vals, k - 1)[k - 1])


#: whether a gradual pruner's cut takes `_keep_top_bracketed` (tests switch it off to compare)
CUT_FAST_PATH = True


def _keep_top_bracketed(
    fn: np.ndarray,
    an: np.ndarray | None,
    n_keep: int,
    n_alive: int,
    record: list[np.ndarray] | None = None,
    work: tuple[np.ndarray, np.ndarray] | None = None,
) -> torch.Tensor | None:
    """`_keep_top_flat`'s keep-vector for a buffer whose pruned entries hold 0 and whose alive
    entries are >= 0 (a gradual pruner's cut, `dead_zero`), or that has no pruned entries (`an`
    None), from the passes `_kth_bracketed` makes anyway; None when the sample's bracket does
    not allow it (the caller then takes the general path). The same keep-vector, exactly.

    The sample's bracket [lo, hi] (both ends inside the sample, lo > 0 when entries are pruned, so
    that every pruned entry, a 0, lies below it) splits the buffer into the entries below lo
    (`below`, all pruned ones among them: no AND with the alive-vector), the bracket (`a ^
    below`, with a = x <= hi: alive entries only) and the entries above hi (alive, all kept: the
    threshold lies in the bracket). So the keep-vector is `~a` plus the bracket's entries above
    the threshold, its count follows from the counts already made, and the tied entries (equal to
    the threshold, all inside the bracket) are the bracket's, in index order, as the general
    path's. Against `_kth_bracketed` + `_compare_alive` this saves the two ANDs with the
    alive-vector, the comparison with the threshold (a NOT instead) and the count of the result,
    and gathers the bracket as indices (`np.flatnonzero`, then a gather: cheaper than
    `np.compress` over the whole buffer), which it records for the guard's re-selection.
    `work`: two bool arrays of the buffer's size to compute in (overwritten; a pruner's, kept
    between cuts: two fresh 10.7 MB arrays per cut cost their page faults again each time)."""
    k = n_alive - n_keep  # entries to prune, 0 < k < n_alive
    bracket = _sample_bracket(fn, an, k, n_alive)
    if bracket is None:
        return None
    sample, i_lo, i_hi = bracket
    ns = sample.size
    if i_lo < 0 or i_hi >= ns:
        return None  # a one-sided bracket: the general path
    part = np.partition(sample, (i_lo, i_hi))
    lo, hi = part[i_lo], part[i_hi]
    n_dead = fn.size - n_alive
    if n_dead and not lo > 0:
        return None  # the pruned zeros would not all lie below the bracket
    below = np.less(fn, lo, out=None if work is None else work[0])
    c_lo = int(np.count_nonzero(below)) - n_dead  # alive entries below lo
    if c_lo >= k:
        return None
    a = np.less_equal(fn, hi, out=None if work is None else work[1])
    keep = np.logical_not(a)  # above hi: alive and kept
    np.logical_xor(a, below, out=a)  # below lies inside a: what is left is lo <= x <= hi
    idx = np.flatnonzero(a)
    cand = fn[idx]
    if c_lo + cand.size < k:
        return None
    j = k - c_lo - 1
    thr = np.partition(cand, j)[j]
    over = cand > thr
    keep[idx[over]] = True
    extra = n_keep - (n_alive - c_lo - cand.size + int(np.count_nonzero(over)))
    if extra > 0:  # ties at the threshold: keep the last `extra` of them (earlier ones pruned)
        keep[idx[cand == thr][-extra:]] = True
    if record is not None:
        record.append(idx)
    return torch.from_numpy(keep)


def _keep_top_flat(
    flat: torch.Tensor,
    alive: torch.Tensor | None,
    n_keep: int,
    dead_zero: bool = False,
    record: list[np.ndarray] | None = None,
    work: tuple[torch.Tensor, torch.Tensor] | None = None,
    n_alive: int | None = None,
) -> torch.Tensor:
    """Bool keep-vector: the `n_keep` highest of `flat` among the `alive` entries (None: all).

    Exactly the selection of `WeightMask.from_scores` (pruned entries scored -inf; ties at the
    threshold: the entry earlier in flattened order is pruned first), computed from one threshold
    (the k-th smallest alive score, `_kth_smallest`) instead of a sort. When `n_keep` exceeds the
    number of alive entries, the pruned entries tie at -inf and the last of them are kept to make
    up `n_keep` (as `from_scores` does); a pruner never asks that.

    `dead_zero`: the caller vouches that no entry is negative and every entry `alive` marks pruned
    is 0 (a gradual pruner's non-negative scores at a cut). Then no pruned entry exceeds the
    threshold (an alive score, >= 0), and the comparison skips the AND with the alive-vector; the
    result is the same. (The threshold itself still selects among the alive entries: taking it as
    the (k + number pruned)-th smallest of the whole buffer would skip two more passes, but when many
    scores are exactly 0 the sample's bracket then starts at 0 and the candidate set holds every
    pruned entry; with that fixed (the entries equal to the buffer's minimum counted, not
    gathered) it measured no faster on MiniLM's cut buffers: 23 ms either way.)

    Float64 scores are selected in float64 (`_np_scores`): a threshold rounded to float32 would
    misplace scores that float32 cannot tell apart. `record`: see `_kth_bracketed`.

    A large CPU buffer with `dead_zero` (or no pruned entry) takes `_keep_top_bracketed`, which
    makes the same keep-vector in fewer passes (and records the bracket as indices), computing
    in `work` (two bool buffers of the buffer's size, overwritten) when given.

    `n_alive`: the number of True entries of `alive` when the caller knows it (`select_flat`);
    counted here when None.
    """
    if alive is None:
        n_alive = flat.numel()
    elif n_alive is None:
        n_alive = _count(alive)
    if n_keep >= n_alive:
        if alive is None:
            return torch.ones_like(flat, dtype=torch.bool)
        keep = alive.clone()
        if n_keep > n_alive:  # more than the alive entries asked for: the last pruned ones return
            idx = torch.nonzero(~alive).flatten()
            keep[idx[idx.numel() - (n_keep - n_alive) :]] = True
        return keep
    if n_keep == 0:
        return torch.zeros_like(flat, dtype=torch.bool)
    n_prune = n_alive - n_keep
    if (
        CUT_FAST_PATH
        and flat.device.type == "cpu"
        and flat.numel() >= SAMPLED_SELECTION_MIN
        and (dead_zero or alive is None or n_alive == flat.numel())
    ):
        fn = _np_scores(flat)
        an = None if alive is None or n_alive == flat.numel() else alive.numpy()
        buffers = None if work is None else (work[0].numpy(), work[1].numpy())
        fast = _keep_top_bracketed(fn, an, n_keep, n_alive, record, buffers)
        if fast is not None:
            return fast
    thr = _kth_smallest(flat, alive, n_prune, n_alive, record)
    # dead_zero: a pruned entry (0) never exceeds the threshold (an alive score, >= 0)
    keep = _compare_alive(flat, thr, None if dead_zero else alive, torch.gt, np.greater)
    extra = n_keep - _count(keep)
    if extra > 0:  # ties at the threshold: keep the last `extra` of them (earlier ones pruned)
        tied = _compare_alive(flat, thr, alive, torch.eq, np.equal)
        idx = torch.nonzero(tied).flatten()
        keep[idx[-extra:]] = True
    return keep


def _compare_alive(
    flat: torch.Tensor,
    thr: float,
    alive: torch.Tensor | None,
    op: Callable[..., torch.Tensor],
    np_op: np.ufunc,
) -> torch.Tensor:
    """`op(flat, thr) & alive` as a new bool tensor; on a CPU float32 buffer numpy's ufuncs (several
    times faster than torch's comparison with a scalar over millions of floats; the same result:
    `thr` is a value of `flat`, so the comparison is exact in float32 either way)."""
    if flat.device.type == "cpu" and flat.dtype == torch.float32:
        out = np_op(flat.numpy(), np.float32(thr))
        if alive is not None:
            np.logical_and(out, alive.numpy(), out=out)
        return torch.from_numpy(out)
    out = op(flat, thr)
    if alive is not None:
        out &= alive
    return out


def _segments(sizes: Sequence[int]) -> list[tuple[int, int]]:
    out, offset = [], 0
    for n in sizes:
        out.append((offset, offset + n))
        offset += n
    return out


def select_flat(
    flat: torch.Tensor,
    sizes: Sequence[int],
    names: Sequence[str],
    n_keep: int,
    alive: torch.Tensor | None = None,
    *,
    scope: str = "global",
    min_density: float = 0.0,
    pattern: tuple[int, int] | None = None,
    shapes: Sequence[torch.Size] | None = None,
    warn: bool = True,
    emptied_out: list[str] | None = None,
    dead_zero: bool = False,
    work: tuple[torch.Tensor, torch.Tensor] | None = None,
    n_alive: int | None = None,
) -> torch.Tensor:
    """The selection on one flat score buffer (tensors concatenated in `names` order).

    Returns a bool keep-vector with exactly `n_keep` True entries (scope="global"), never reviving
    an entry that `alive` marks pruned.

    - `scope="global"`, `min_density=0`: plain global top-`n_keep` (the official SEVEN code).
    - `scope="global"`, `min_density=d > 0` (the guard against layer collapse): every tensor that
      the plain selection would leave with fewer than `ceil(d * numel)` weights keeps instead its
      `ceil(d * numel)` highest-scored alive ones, and the rest of the budget goes to the global top
      of the other scores (repeated until no tensor is below its floor), so the total is still
      exactly `n_keep`. A `UserWarning` names every tensor the plain selection would have emptied.
      When no tensor falls below its floor the result equals the plain selection. With
      `emptied_out`, those names are appended to it instead of warned about. The lifted entries
      are set to +inf in `flat` itself during the call and put back, bit for bit, before it
      returns (no copy of the buffer; `flat` must be writable).
    - `scope="layer"`: every tensor is cut to the same keep ratio `n_keep / N` on its own
      (`numel - round((1 - n_keep / N) * numel)` kept per tensor), as uniform per-layer pruning.
    - `pattern=(n, m)`: N:M semi-structured selection: in every group of `m` consecutive weights
      along each tensor's last dimension at most `m - n` are pruned (the group's lowest scores are
      the candidates), and the `N - n_keep` lowest candidates over all tensors are pruned; at
      `n_keep = N * n / m` every group keeps exactly its `n` highest-scored weights.

    `dead_zero=True` says that every entry `alive` marks pruned holds 0 (a gradual pruner's cut);
    when no score is negative either (checked) the comparison with the threshold skips the
    alive-vector (`_keep_top_flat`); the selection is the same. `work`: two contiguous bool
    buffers of `flat`'s size on a CPU that the global selection may overwrite (a pruner's, so that
    a cut allocates less); the result never views them.

    `n_alive`: the number of True entries of `alive`, when the caller knows it (a gradual
    pruner whose mask is its last global cut's keep-vector: exactly that cut's `n_keep`), so that
    the global selection does not count them again (one pass over the bool vector: 1.18 ms median
    for MiniLM's 10.7M targets, session 33). It must be that count (a wrong one gives a wrong
    selection; unchecked, since checking is the count). Only the global selection without a
    `pattern` reads it.
    """
    total = flat.numel()
    if isinstance(n_keep, bool) or not isinstance(n_keep, int) or not 0 <= n_keep <= total:
        raise ValueError(f"n_keep must be an int in [0, {total}], got {n_keep!r}")
    if n_alive is not None:
        if isinstance(n_alive, bool) or not isinstance(n_alive, int) or not 0 <= n_alive <= total:
            raise ValueError(
                f"n_alive must be None or an int in [0, {total}] (the number of True entries "
                f"of alive), got {n_alive!r}"
            )
        if alive is None:
            raise ValueError("n_alive counts the True entries of alive: pass alive with it")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    segs = _segments(sizes)
    lo = _finite_min(flat) if total else 0.0
    if lo is None:
        finite = torch.isfinite(flat)
        bad = [n for n, (a, b) in zip(names, segs) if not bool(finite[a:b].all())]
        raise ValueError(
            f"scores of {bad} contain NaN or inf (non-finite weights or gradients: a NaN/inf "
            "loss?); scores must be finite numbers"
        )
    if pattern is not None:
        return _select_nm(flat, segs, names, n_keep, alive, pattern, shapes)
    dead_zero = dead_zero and alive is not None and lo >= 0.0
    if scope == "layer":
        keep = torch.zeros(total, dtype=torch.bool, device=flat.device)
        frac = 1.0 - n_keep / total
        for a, b in segs:
            k = (b - a) - math.floor(frac * (b - a) + 0.5)
            keep[a:b] = _keep_top_flat(
                flat[a:b], None if alive is None else alive[a:b], k, dead_zero
            )
        return keep
    record: list[np.ndarray] | None = [] if min_density > 0.0 else None
    keep = _keep_top_flat(flat, alive, n_keep, dead_zero, record, work, n_alive)
    if min_density <= 0.0 and not warn and emptied_out is None:
        return keep
    counts = _segment_counts(keep, segs)
    emptied = [n for n, c in zip(names, counts) if c == 0]
    if emptied_out is not None:
        emptied_out.extend(emptied)
        warn = False
    if min_density <= 0.0:
        if emptied and warn:
            warnings.warn(
                f"plain global selection (min_density=0) emptied {len(emptied)} tensor(s): "
                f"{emptied}; their layers now pass only their biases",
                UserWarning,
                stacklevel=3,
            )
        return keep
    # floor = min(ceil(d * numel), alive count); a tensor that keeps at least ceil(d * numel)
    # has at least that many alive, so only the others need their alive entries counted
    floors = [math.ceil(min_density * (b - a)) for a, b in segs]
    if alive is not None:
        for i, (a, b) in enumerate(segs):
            if counts[i] < floors[i]:
                floors[i] = min(floors[i], _count(alive[a:b]))
    if sum(floors) > n_keep:
        raise ValueError(
            f"min_density={min_density} keeps {sum(floors)} weights in per-tensor floors alone, "
            f"more than the {n_keep} the cut keeps; lower min_density"
        )
    bracket = record[0] if record else None
    keep = _lift_floors(
        flat, segs, alive, n_keep, counts, floors, dead_zero, keep, bracket, n_alive
    )
    if warn and emptied:
        warnings.warn(
            f"plain global selection would have emptied {len(emptied)} tensor(s): {emptied}; "
            f"min_density={min_density} keeps at least that fraction of each (pass min_density=0 "
            "for the official code's plain global selection)",
            UserWarning,
            stacklevel=3,
        )
    return keep


def _lift_floors(
    flat: torch.Tensor,
    segs: Sequence[tuple[int, int]],
    alive: torch.Tensor | None,
    n_keep: int,
    counts: list[int],
    floors: list[int],
    dead_zero: bool,
    keep: torch.Tensor,
    bracket: np.ndarray | None = None,
    n_alive: int | None = None,
) -> torch.Tensor:
    """The guard's selection: while a tensor not yet lifted keeps fewer than its floor, its
    `floors[i]` highest alive scores (ties: the later entry first, as `_keep_top_flat`) are set to
    +inf and the global selection is made again (+inf >= 0: `dead_zero` still holds).

    The selection again is not made from scratch when the first one's bracket (`bracket`, the
    entries `_kth_bracketed` gathered around its threshold as a bool vector, or
    `_keep_top_bracketed` as their indices) holds what it needs
    (`_reselect_from_bracket`): lifting entries that were pruned only moves the threshold up past
    as many of the lowest kept ones, which lie just above the old threshold, inside the bracket.
    The same keep-vector, exactly; where the bracket does not hold enough, the full selection.

    The lifted entries are set in `flat` itself and put back before returning (also on an error):
    no copy of the whole buffer (a fresh copy of MiniLM's 43 MB of scores cost ~10,500 page faults
    per cut). A tensor's highest scores come from the same threshold selection as the global one
    (`_keep_top_flat` on its segment), which keeps exactly those a stable ascending sort puts last.
    `n_alive`: `select_flat`'s (the count of `alive`, when known).
    """
    lifted: set[int] = set()
    saved: list[tuple[torch.Tensor, torch.Tensor]] = []  # (flat index, old values) per lift
    cands: np.ndarray | None = None  # the bracket's entries, as flat indices (made once)
    try:
        while True:
            below = [i for i, (c, f) in enumerate(zip(counts, floors)) if c < f and i not in lifted]
            if not below:
                return keep
            new: list[torch.Tensor] = []
            for i in below:
                a, b = segs[i]
                top = _keep_top_flat(flat[a:b], None if alive is None else alive[a:b], floors[i])
                idx = torch.nonzero(top).flatten().add_(a)
                saved.append((idx, flat[idx]))
                flat[idx] = math.inf
                lifted.add(i)
                new.append(idx)
            again = None
            if bracket is not None and flat.device.type == "cpu":
                if cands is None:  # recorded as indices (`_keep_top_bracketed`) or as bools
                    cands = bracket if bracket.dtype != np.bool_ else np.flatnonzero(bracket)
                again = _reselect_from_bracket(flat, keep, torch.cat(new), cands, segs, counts)
            if again is None:
                keep = _keep_top_flat(flat, alive, n_keep, dead_zero, n_alive=n_alive)
                counts = _segment_counts(keep, segs)
            else:
                keep, counts = again
    finally:
        for idx, vals in reversed(saved):
            flat[idx] = vals


def _reselect_from_bracket(
    flat: torch.Tensor,
    keep: torch.Tensor,
    lifted: torch.Tensor,
    cands: np.ndarray,
    segs: Sequence[tuple[int, int]],
    counts: list[int],
) -> tuple[torch.Tensor, list[int]] | None:
    """The global selection of `flat` after `lifted` entries were set to +inf, from `keep`, the
    exact selection before that (same alive entries, same count), without a pass over the buffer;
    None when `cands` does not hold what it needs (the caller then selects from scratch).

    A selection prunes the first `n_prune` alive entries in the order (score, then flat index):
    the lowest, and of equal scores the earlier (`_keep_top_flat`). Setting entries to +inf moves
    them to the end of that order; the pruned prefix then loses the `d` lifted entries it held and
    takes instead the first `d` entries of the rest, i.e. of the kept entries not lifted. Those lie
    just above the old threshold: every kept entry scores at least the old threshold, which lies in
    the first selection's bracket, and the bracket (`cands`, flat indices in increasing order)
    holds every alive entry up to its upper end. So if the kept, not-lifted entries in `cands`
    number at least `d`, their first `d` in that order are the ones to prune. A lifted entry is
    recognised by its +inf (the scores were checked finite before any lifting). Returns the new
    keep-vector (`keep`, changed in place) and the per-segment counts."""
    fn = _np_scores(flat)
    kn = keep.numpy()
    lift = lifted.numpy()
    added = lift[~kn[lift]]  # lifted entries that were pruned: they are kept now
    d = added.size
    if d == 0:
        return keep, counts
    vals = fn[cands]
    pool = kn[cands] & np.isfinite(vals)  # kept and not lifted (now or in an earlier round)
    pidx, pval = cands[pool], vals[pool]
    if pidx.size < d:
        return None
    t = np.partition(pval, d - 1)[d - 1]
    low = pidx[pval < t]
    ties = pidx[pval == t][: d - low.size]  # of equal scores the earlier is pruned first
    pruned = np.concatenate([low, ties])
    kn[added] = True
    kn[pruned] = False
    bounds = np.asarray([b for _, b in segs])
    gained = np.bincount(np.searchsorted(bounds, added, side="right"), minlength=len(segs))
    lost = np.bincount(np.searchsorted(bounds, pruned, side="right"), minlength=len(segs))
    counts = [c + int(g) - int(x) for c, g, x in zip(counts, gained, lost)]
    return keep, counts


def _select_nm(
    flat: torch.Tensor,
    segs: Sequence[tuple[int, int]],
    names: Sequence[str],
    n_keep: int,
    alive: torch.Tensor | None,
    pattern: tuple[int, int],
    shapes: Sequence[torch.Size] | None,
) -> torch.Tensor:
    n, m = pattern
    total = flat.numel()
    if shapes is None:
        raise ValueError("an N:M pattern needs the tensors' shapes")
    bad = [nm for nm, sh in zip(names, shapes) if len(sh) == 0 or sh[-1] % m != 0]
    if bad:
        raise ValueError(
            f"pattern {n}:{m} needs every target's last dimension divisible by {m}; not so for {bad}"
        )
    max_pruned = total // m * (m - n)
    if total - n_keep > max_pruned:
        raise ValueError(
            f"pattern {n}:{m} prunes at most {max_pruned} of {total} weights (sparsity "
            f"{(m - n) / m:g}); asked to prune {total - n_keep}"
        )
    work = flat if alive is None else flat.masked_fill(~alive, -math.inf)
    groups = work.reshape(-1, m)  # the segments are multiples of m: groups never straddle tensors
    # each group's m - n lowest scores are its candidates (ties: the earlier entry first)
    order = torch.argsort(groups, dim=1, stable=True)[:, : m - n]
    cand_scores = torch.gather(groups, 1, order).reshape(-1)
    cand_index = (order + torch.arange(groups.shape[0], device=flat.device)[:, None] * m).reshape(
        -1
    )
    # prune the (total - n_keep) lowest candidates: among candidates, the rank order by
    # (score, position) -- keep the rest of the candidates
    n_cand = cand_scores.numel()
    perm = torch.argsort(cand_index)  # candidates in flattened position order
    cand_scores, cand_index = cand_scores[perm], cand_index[perm]
    cand_keep = _keep_top_flat(cand_scores, None, n_cand - (total - n_keep))
    keep = torch.ones(total, dtype=torch.bool, device=flat.device)
    keep[cand_index[~cand_keep]] = False
    if alive is not None and bool((keep & ~alive).any()):
        raise RuntimeError("N:M selection revived a pruned weight (a bug)")
    return keep


def select_global(
    scores: Mapping[str, torch.Tensor],
    n_keep: int,
    previous: WeightMask | None = None,
    *,
    min_density: float = 0.0,
    scope: str = "global",
    pattern: str | None = None,
    warn: bool = True,
) -> WeightMask:
    """Keep exactly the `n_keep` highest scores over all tensors together; the rest are pruned.

    Entries pruned in `previous` stay pruned. Ties at the threshold are broken like
    `WeightMask.from_scores`: among equal scores, the entry earlier in the mapping order and in
    flattened order is pruned first. One threshold from a partial selection (`numpy.partition`)
    replaces a sort. `min_density`, `scope` and `pattern` are the guard against layer collapse, the
    per-layer rule and the N:M rule of `select_flat`; the defaults give the plain global selection.
    """
    if not isinstance(scores, Mapping) or not scores:
        raise ValueError("scores must be a non-empty mapping name -> tensor")
    names = list(scores)
    for n in names:
        if not isinstance(scores[n], torch.Tensor):
            raise TypeError(f"scores[{n!r}] must be a tensor, got {type(scores[n]).__name__}")
    flat_parts = [scores[n].detach().reshape(-1).float().cpu() for n in names]
    sizes = [f.numel() for f in flat_parts]
    flat = torch.cat(flat_parts)
    alive = None
    if previous is not None:
        for n, f in zip(names, flat_parts):
            if n not in previous or previous[n].numel() != f.numel():
                raise ValueError(f"previous mask has no entry of {f.numel()} elements for {n!r}")
        alive = torch.cat([previous[n].reshape(-1).cpu() for n in names])
    keep = select_flat(
        flat,
        sizes,
        names,
        n_keep,
        alive,
        scope=scope,
        min_density=check_fraction("min_density", min_density, meaning=MIN_DENSITY_MEANING),
        pattern=parse_pattern(pattern),
        shapes=[scores[n].shape for n in names],
        warn=warn,
    )
    out = {}
    for n, (a, b) in zip(names, _segments(sizes)):
        out[n] = keep[a:b].reshape(scores[n].shape).to(scores[n].device)
    return WeightMask(out)


def batch_loss(
    model: nn.Module, batch: Any, loss_fn: Callable[..., torch.Tensor] | None = None
) -> torch.Tensor:
    """The scalar training loss of one batch.

    A mapping batch is passed as keyword arguments (Hugging Face style): with `loss_fn` the loss is
    `loss_fn(logits, batch["labels"]).mean()`, otherwise the model's own `.loss`. A tuple batch
    `(inputs, targets[, indices])` needs `loss_fn`.
    """
    device = next(model.parameters()).device
    if isinstance(batch, Mapping):
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        if loss_fn is None:
            out = model(**{k: v for k, v in batch.items() if k != "index"})
            loss = getattr(out, "loss", None)
            if loss is None:
                raise ValueError(
                    "the model returned no .loss for a mapping batch: include 'labels' or pass loss_fn"
                )
            return loss
        if "labels" not in batch:
            raise ValueError(
                f"a mapping batch needs 'labels' when loss_fn is given; got {sorted(batch)}"
            )
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
        out = model(**inputs)
        logits = out.logits if hasattr(out, "logits") else out
        return loss_fn(logits, batch["labels"]).mean()
    if isinstance(batch, (list, tuple)) and len(batch) in (2, 3):
        if loss_fn is None:
            raise ValueError("a tuple batch (inputs, targets) needs loss_fn")
        x, y = batch[0].to(device), batch[1].to(device)
        out = model(x)
        logits = out.logits if hasattr(out, "logits") else out
        return loss_fn(logits, y).mean()
    raise TypeError(
        f"a batch must be a mapping (Hugging Face style) or a tuple (inputs, targets), got "
        f"{type(batch).__name__}"
    )


class Pruner(Callback):
    """Base class: targets, the mask, masked training, timing, the callback hooks and persistence."""

    #: "gradual" (scores from training gradients in a window) or "oneshot" (one cut before training)
    family: str = "gradual"

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        scope: str = "global",
        min_density: float = DEFAULT_MIN_DENSITY,
        pattern: str | None = None,
        targets: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.model = model
        self.sparsity = check_sparsity(sparsity)
        if scope not in SCOPES:
            raise ValueError(
                f"scope must be 'global' (one threshold over all targets) or 'layer' (every "
                f"target cut to the same sparsity), got {scope!r}"
            )
        self.scope = scope
        self.min_density = check_fraction("min_density", min_density, meaning=MIN_DENSITY_MEANING)
        self.pattern = pattern
        self._nm = parse_pattern(pattern)
        if self._nm is not None and self.sparsity > 1 - self._nm[0] / self._nm[1] + 1e-12:
            raise ValueError(
                f"pattern {pattern!r} keeps {self._nm[0]} of every {self._nm[1]} weights: sparsity "
                f"must be <= {1 - self._nm[0] / self._nm[1]:g}, got {sparsity!r}"
            )
        self.params = target_parameters(model, targets, exclude)
        self.names = list(self.params)
        self.sizes = [p.numel() for p in self.params.values()]
        self.shapes = [p.shape for p in self.params.values()]
        self.numel = sum(self.sizes)
        if self._nm is not None:
            bad = [n for n, sh in zip(self.names, self.shapes) if sh[-1] % self._nm[1] != 0]
            if bad:
                raise ValueError(
                    f"pattern {pattern!r} needs every target's last dimension divisible by "
                    f"{self._nm[1]}; not so for {bad} (exclude them with exclude=)"
                )
        devices = {p.device for p in self.params.values()}
        if len(devices) != 1:
            raise ValueError(
                f"the target weights must share one device, got {sorted(map(str, devices))}"
            )
        self.device = devices.pop()
        # the mask's tensors are always views of one flat bool buffer (see `_set_mask`)
        flat_mask = torch.ones(self.numel, dtype=torch.bool, device=self.device)
        self.mask = WeightMask(dict(zip(self.names, self._flat_views(flat_mask))))
        self.masked = MaskedTraining(model, self.mask, optimizer).attach()
        #: (mask, the flat bool buffer its tensors view), see `_alive_flat`
        self._mask_flat: tuple[WeightMask | None, torch.Tensor | None] = (self.mask, flat_mask)
        #: (mask, its number of kept entries) where a global cut made the mask (or it is the
        #: dense start), so that the next cut does not count its alive-vector (`GradualPruner._cut`)
        self._kept: tuple[WeightMask | None, int] = (self.mask, self.numel)
        self._warned: set[str] = set()  # tensors already named in a collapse warning
        self.t = 0  # number of step() calls so far
        self.pruned_before_training = False
        self.seconds = 0.0  # wall time spent inside step() and mask updates

    # ------------------------------------------------------------------ shared helpers
    def _set_mask(
        self, mask: WeightMask, flat: torch.Tensor | None = None, *, prunes_only: bool = False
    ) -> None:
        """Adopt `mask`, zero the pruned weights and re-hook masked training.

        The adopted mask's tensors are always views of one flat bool buffer (in `names` order),
        which the next cut takes as its alive-vector without concatenating. `flat`: a fresh
        selection's buffer whose views `mask` holds, adopted without a copy; without it `mask`
        (perhaps the caller's) is checked and copied. `prunes_only`: the mask keeps only entries
        kept now (a cut's selection with the alive-vector, which never revives), passed on to
        `maskloop.MaskedTraining.set_mask`, which then skips its revive check (same numbers).
        """
        if flat is None:
            self.masked.load_state_dict({"mask": mask.state_dict()})  # checks names and shapes
            flat = torch.cat([self.masked.mask[n].reshape(-1) for n in self.names])
            mask = WeightMask(dict(zip(self.names, self._flat_views(flat))))
        self.masked.set_mask(mask, prunes_only=prunes_only)
        self.mask = self.masked.mask
        self._mask_flat = (self.mask, flat)

    def _flat_views(self, flat: torch.Tensor) -> list[torch.Tensor]:
        """Views of a flat buffer shaped like the targets, in `names` order."""
        return [flat[a:b].view(sh) for (a, b), sh in zip(_segments(self.sizes), self.shapes)]

    def _alive_flat(self) -> torch.Tensor:
        """The current mask as one flat bool vector (True = kept): the buffer of the last
        selection while `self.mask` is still the mask made from it, else a concatenation."""
        owner, flat = self._mask_flat
        if flat is not None and owner is self.mask:
            return flat
        return torch.cat([self.mask[n].reshape(-1) for n in self.names])

    def _select(
        self,
        flat: torch.Tensor,
        n_keep: int,
        alive: torch.Tensor | None,
        dead_zero: bool = False,
        work: tuple[torch.Tensor, torch.Tensor] | None = None,
        n_alive: int | None = None,
    ) -> tuple[WeightMask, torch.Tensor]:
        """Cut `flat` (scores in `names` order) to `n_keep` with this pruner's selection rule; warn
        once per tensor that the plain global selection would empty. Returns the mask and the flat
        keep-vector it views. `dead_zero`: the entries `alive` marks pruned hold 0 (`select_flat`);
        `work`, `n_alive`: `select_flat`'s."""
        emptied: list[str] = []
        keep = select_flat(
            flat,
            self.sizes,
            self.names,
            n_keep,
            alive,
            scope=self.scope,
            min_density=self.min_density,
            pattern=self._nm,
            shapes=self.shapes,
            emptied_out=emptied,
            dead_zero=dead_zero,
            work=work,
            n_alive=n_alive,
        )
        new = [n for n in emptied if n not in self._warned]
        if new:
            self._warned.update(new)
            what = (
                f"min_density={self.min_density} keeps at least that fraction of each"
                if self.min_density > 0
                else "min_density=0 (plain global selection, the official code's) left them empty"
            )
            warnings.warn(
                f"{type(self).__name__}: plain global selection would empty {len(new)} target "
                f"tensor(s): {new}; {what}",
                UserWarning,
                stacklevel=4,
            )
        return WeightMask(dict(zip(self.names, self._flat_views(keep)))), keep

    def _grads(self) -> list[torch.Tensor]:
        """This step's gradients of the targets (zeros for a target the loss did not reach)."""
        grads = [p.grad for p in self.params.values()]
        if all(g is None for g in grads):
            raise RuntimeError(
                f"{type(self).__name__}.step() found no gradients on the target weights: call it "
                "after loss.backward() and optimizer.step(), before the next zero_grad()"
            )
        return [
            torch.zeros_like(p) if g is None else g.detach()
            for g, p in zip(grads, self.params.values())
        ]

    def _weights(self) -> list[torch.Tensor]:
        return [p.detach() for p in self.params.values()]

    @property
    def final_keep(self) -> int:
        """The target weights kept at the target sparsity: N - round(sparsity * N) (half up), the
        count every pruner's final cut keeps."""
        return self.numel - math.floor(self.sparsity * self.numel + 0.5)

    @property
    def achieved_sparsity(self) -> float:
        """Fraction of target weights that are pruned now."""
        return self.mask.sparsity

    def sparsity_by_layer_type(self) -> dict[str, float]:
        """Achieved sparsity per layer role (query, key, value, attn_out, ffn_in, ffn_out, pooler)."""
        return sparsity_by_layer_type(self.mask)

    def step(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def prune_before_training(
        self,
        batches: Iterable[Any],
        loss_fn: Callable[..., torch.Tensor] | None = None,
        progress: bool = False,
    ) -> WeightMask:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def needs_pre_pruning(self) -> bool:
        """True when `prune_before_training` must run before fine-tuning (and has not yet)."""
        return False

    def hook_optimizer(self, optimizer: torch.optim.Optimizer) -> bool:
        """Let masked training hook `optimizer`'s steps (as `optimizer=` does); True if it did.

        With an optimizer in `maskloop.SAFE_OPTIMIZERS` (SGD, Adam, AdamW, ...) the pruned weights
        then stay exactly zero by themselves: their gradients are masked and, at each cut, their
        first moments zeroed (second moments held at a positive constant), so such an optimizer
        moves them by exactly 0 (Adam: lr * 0 / (sqrt(v) + eps); decoupled decay: 0 * (1 - lr wd);
        L2 decay adds wd * 0 to a zero gradient), and `step()` skips its per-step re-zeroing pass
        (`maskloop.MaskedTraining.holds_zeros`). Weights and masks are those of the re-zeroing
        path (tested bit for bit in float64 with Adam and AdamW, weight decay included). Not
        hooked (False): an optimizer already given with `optimizer=`, or one that does not hold
        every target weight (another optimizer could move them).
        """
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if self.masked.optimizer is not None and self.masked.optimizer is not optimizer:
            return False
        held = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not all(id(p) in held for p in self.params.values()):
            return False
        self.masked.attach(optimizer=optimizer)
        return True

    # ------------------------------------------------------------------ maskloop.Callback
    def on_fit_start(self, state: LoopState) -> None:
        """Hook the loop's optimizer (`hook_optimizer`: saves the per-step re-zeroing pass), and
        prune before training when the method does."""
        if self.masked.attached and isinstance(state.optimizer, torch.optim.Optimizer):
            self.hook_optimizer(state.optimizer)
        if self.needs_pre_pruning:
            self.prune_before_training(state.train_data, loss_fn=state.loss_fn)

    def on_step_end(self, state: LoopState) -> None:
        self.step()

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {
            "class": type(self).__name__,
            "sparsity": self.sparsity,
            "names": list(self.names),
            "scope": self.scope,
            "min_density": self.min_density,
            "pattern": self.pattern,
        }

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume mid-schedule: step, mask, scores/moments, configuration."""
        return {
            "config": self._config(),
            "t": self.t,
            "pruned_before_training": self.pruned_before_training,
            "mask": self.mask.state_dict(),
            **self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned (the pruner must be built with the same settings)."""
        if not isinstance(state, Mapping) or "config" not in state:
            raise TypeError("state must be a mapping returned by Pruner.state_dict()")
        mine, theirs = self._config(), dict(state["config"])
        if mine != theirs:
            diff = {
                k: (theirs.get(k), mine.get(k))
                for k in set(mine) | set(theirs)
                if mine.get(k) != theirs.get(k)
            }
            raise ValueError(f"state was saved by a differently configured pruner: {diff}")
        self.t = int(state["t"])
        self.pruned_before_training = bool(state["pruned_before_training"])
        self._set_mask(WeightMask(state["mask"]))
        self._load_extra_state(state)

    def save(self, path: str | Path) -> Path:
        """Write the pruner state (mask, step, scores/moments) to one safetensors file.

        Tensors: `mask/<name>` (uint8), `state/<key>` (the flat float32 buffers), `w_before` (if
        recorded); the configuration and counters go into the file's metadata as JSON. Reload with
        `load(path)` on a pruner built with the same settings (after loading the model's weights).
        """
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = self.state_dict()
        tensors = {f"mask/{n}": m.to(torch.uint8).contiguous() for n, m in state["mask"].items()}
        for key, per_name in state.get("scores", {}).items():
            tensors[f"state/{key}"] = torch.cat(
                [per_name[n].reshape(-1).float() for n in self.names]
            ).contiguous()
        w_before = getattr(self, "_w_before", None)
        if w_before is not None:
            tensors["w_before"] = w_before.detach().cpu().contiguous()
        meta = {
            "format": "seven_prune.Pruner",
            "version": "1",
            "config": json.dumps(state["config"]),
            "t": str(state["t"]),
            "pruned_before_training": json.dumps(state["pruned_before_training"]),
            "updates": str(state.get("updates", 0)),
        }
        save_file(tensors, str(path), metadata=meta)
        return path

    def load(self, path: str | Path) -> None:
        """Restore a state written by `save` (safetensors only; every bad entry is reported at once)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no pruner state file at {path}")
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        except Exception as err:  # safetensors raises its own error types for corrupt files
            raise ValueError(f"{path} is not a readable safetensors file: {err}") from None
        if meta.get("format") != "seven_prune.Pruner":
            raise ValueError(f"{path} is not a seven_prune pruner state (metadata {meta})")
        problems = []
        for key in ("config", "t", "pruned_before_training", "updates"):
            if key not in meta:
                problems.append(f"metadata entry {key!r} is missing")
        try:
            config = json.loads(meta.get("config", "{}"))
            t = int(meta.get("t", "0"))
            pre = bool(json.loads(meta.get("pruned_before_training", "false")))
            updates = int(meta.get("updates", "0"))
        except (ValueError, TypeError) as err:
            problems.append(f"metadata is malformed: {err}")
            config, t, pre, updates = {}, 0, False, 0
        masks = {}
        for n, shape in zip(self.names, self.shapes):
            m = tensors.get(f"mask/{n}")
            if m is None:
                problems.append(f"entry 'mask/{n}' is missing")
            elif tuple(m.shape) != tuple(shape) or m.dtype != torch.uint8:
                problems.append(
                    f"entry 'mask/{n}' is {m.dtype} {tuple(m.shape)}, expected uint8 {tuple(shape)}"
                )
            else:
                masks[n] = m.to(torch.bool)
        scores = {}
        for key, t_ in tensors.items():
            if key.startswith("state/"):
                if t_.dim() != 1 or t_.numel() != self.numel:
                    problems.append(f"entry {key!r} has {t_.numel()} values, expected {self.numel}")
                else:
                    scores[key[6:]] = {
                        n: t_[a:b].view(sh)
                        for n, (a, b), sh in zip(self.names, _segments(self.sizes), self.shapes)
                    }
        if problems:
            raise ValueError(f"{path}: " + "; ".join(problems))
        state: dict[str, Any] = {
            "config": config,
            "t": t,
            "pruned_before_training": pre,
            "mask": masks,
        }
        if isinstance(self, GradualPruner):
            state["updates"] = updates
            state["scores"] = scores
        self.load_state_dict(state)
        if "w_before" in tensors and isinstance(self, GradualPruner):
            self._w_before = tensors["w_before"].to(self.device).float().clone()

    def remove(self) -> None:
        """Detach the masked-training hooks (weights keep their zeros)."""
        self.masked.remove()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(sparsity={self.sparsity}, tensors={len(self.names)}, "
            f"numel={self.numel}, achieved={self.achieved_sparsity:.4f}, t={self.t})"
        )


class GradualPruner(Pruner):
    """A pruner whose scores follow the training gradients, with a cubic keep-ratio schedule.

    At step `t` (the count of earlier `step()` calls), for `start <= t < start + window - 1`, with
    `k = t - start`: update the scores from this step's weights and gradients, then (every `delta_t`
    steps and on the window's last step) keep the `floor(r_k * N)` highest scores over all targets,
    never reviving a pruned weight, where

        r_k = r_f + (1 - r_f) * (1 - (k + 1) / K)^3,   r_f = 1 - sparsity,  K = window

    (`maskloop.schedules.cubic(1, r_f, 0, K)` at `k + 1`). After the window the mask is frozen. This
    is the schedule of the official SEVEN code; note that its last update is at `k = K - 2`, so the
    final sparsity falls short of the target by `sparsity / K^3` (negligible for K in the hundreds;
    use `final_exact=True` to make the last update cut to the exact target).

    `mode="pre"` (reconstruction): `prune_before_training(batches)` runs the same score rule over
    `window` batches at the pretrained weights (gradients only, no weight update), pruning along the
    cubic schedule over the batches to exactly the target, then `step()` only keeps the mask.
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        mode: str = "dyn",
        start: int = 0,
        window: int = 100,
        delta_t: int = 1,
        final_exact: bool = False,
        scope: str = "global",
        min_density: float = DEFAULT_MIN_DENSITY,
        pattern: str | None = None,
        targets: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        if mode not in ("dyn", "pre"):
            raise ValueError(
                f"mode must be 'dyn' (during fine-tuning) or 'pre' (before), got {mode!r}"
            )
        self.mode = mode
        self.start = check_int("start", start, 0)
        self.window = check_int("window", window, 1)
        self.delta_t = check_int("delta_t", delta_t, 1)
        self.final_exact = bool(final_exact)
        super().__init__(
            model,
            sparsity,
            scope=scope,
            min_density=min_density,
            pattern=pattern,
            targets=targets,
            exclude=exclude,
            optimizer=optimizer,
        )
        self.schedule = schedules.cubic(1.0, 1.0 - self.sparsity, 0, self.window)
        #: per-weight state, one flat float32 buffer per name (`state` holds views of it)
        self.flat: dict[str, torch.Tensor] = {}
        self.state: dict[str, list[torch.Tensor]] = {}
        self.updates = 0  # number of score updates so far (k of the next update)
        self._scratch_bufs: dict[str, torch.Tensor] = {}
        self._scratch_view_cache: dict[str, tuple[torch.Tensor, list[torch.Tensor]]] = {}
        self._w_before: torch.Tensor | None = None  # weights before this step (weights_at="pre")
        self.cutting = False  # whether the current update is followed by a cut
        if self.weights_at == "pre" and self.mode == "dyn" and self.start == 0:
            self._snapshot_weights()

    # ------------------------------------------------------------------ the rule (subclasses)
    #: names of the per-weight state tensors the rule keeps (allocated at zero when pruning starts)
    state_names: tuple[str, ...] = ("S",)
    #: "post": scores use the weights after `optimizer.step()` (the official SEVEN code, PLATON);
    #: "pre": the weights the gradient was computed at, before the step (movement, Sanh et al.)
    weights_at: str = "post"
    #: whether the rule reads gradients (gradual magnitude pruning does not)
    needs_grads: bool = True

    def update_scores(
        self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int
    ) -> bool | None:
        """Fold one step's weights and gradients into `self.state` (k = 0 on the first update).

        `self.cutting` says whether the mask is cut right after this update. A rule may return
        True to say that it has also done the masking that follows: on a cut step the pruned
        entries of `current_flat_scores()` (which must then be its state) set to 0, and the pruned
        weights re-zeroed by `W * keep` (on a cut step it may leave that to the cut, whose new
        mask re-zeroes them while masked training is attached), which saves passes over all
        targets.
        """
        raise NotImplementedError

    def current_scores(self) -> list[torch.Tensor]:
        """The scores the mask is cut on (higher = more important)."""
        return self.state["S"]

    # ------------------------------------------------------------------ schedule
    def keep_ratio(self, k: int) -> float:
        """r_k = r_f + (1 - r_f) (1 - (k+1)/K)^3: the fraction of targets kept after update k."""
        return self.schedule(k + 1)

    def n_keep(self, k: int) -> int:
        """floor(r_k * N): the number of target weights kept after update k."""
        return min(self.numel, math.floor(self.keep_ratio(k) * self.numel + 1e-9))

    @property
    def last_k(self) -> int:
        """The last update index: K - 2 during fine-tuning (official rule), K - 1 before it (and
        with `final_exact`, an N:M `pattern`, or K = 1, where the last update cuts exactly to the
        target)."""
        if self.mode == "pre" or self.final_exact or self.window == 1 or self._nm is not None:
            return self.window - 1
        return self.window - 2

    def _ensure_state(self) -> None:
        if not self.state:
            self.flat = {
                s: torch.zeros(self.numel, dtype=torch.float32, device=self.device)
                for s in self.state_names
            }
            self.state = {s: self._flat_views(f) for s, f in self.flat.items()}

    def _scratch(self, name: str, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """A flat work buffer of the targets' size (float32 unless `dtype`), allocated once at zero
        (freed after the window; it keeps what was last written into it between steps)."""
        buf = self._scratch_bufs.get(name)
        if buf is None:
            buf = torch.zeros(self.numel, dtype=dtype, device=self.device)
            self._scratch_bufs[name] = buf
        return buf

    def _scratch_views(self, name: str) -> list[torch.Tensor]:
        """`_scratch(name)` as views shaped like the targets (made once per buffer)."""
        buf = self._scratch(name)
        cached = self._scratch_view_cache.get(name)
        if cached is None or cached[0] is not buf:
            cached = (buf, self._flat_views(buf))
            self._scratch_view_cache[name] = cached
        return cached[1]

    def current_flat_scores(self) -> torch.Tensor:
        """`current_scores()` as one flat buffer (a view of the state when the rule allows)."""
        return self.flat["S"]

    @torch.no_grad()
    def _snapshot_weights(self) -> None:
        if self._w_before is None:
            self._w_before = torch.empty(self.numel, dtype=torch.float32, device=self.device)
        torch._foreach_copy_(self._flat_views(self._w_before), self._weights())

    @torch.no_grad()
    def _update(self, k: int) -> bool:
        """Update the scores (and cut the mask when due); True if the pruned weights are re-zeroed."""
        self._ensure_state()
        if self.weights_at == "pre" and self.mode == "dyn":
            if self._w_before is None:
                raise RuntimeError(
                    f"{type(self).__name__}: no weights from before this step were recorded (the "
                    "pruner must exist before the step that precedes its window)"
                )
            weights = self._flat_views(self._w_before)
        else:
            weights = self._weights()
        grads = self._grads() if self.needs_grads else []
        self.cutting = (k + 1) % self.delta_t == 0 or k == self.last_k
        # A rule that re-zeroes pruned weights does it on the weights it was given; the pre-step
        # snapshot is not the live parameters, so those still need the re-apply.
        live = not (self.weights_at == "pre" and self.mode == "dyn")
        masked = bool(self.update_scores(weights, grads, k)) and live
        if self.cutting:
            self._cut(k, zeroed=masked)
        self.updates = k + 1
        if k == self.last_k:
            self._scratch_bufs.clear()  # the window is over: free the work buffers
            self._scratch_view_cache.clear()
        return masked

    @torch.no_grad()
    def _cut(self, k: int, zeroed: bool = False) -> None:
        flat = self.current_flat_scores()
        alive = self._alive_flat()
        # S[M == 0] <- 0: pruned weights never come back (also excluded from the selection);
        # `zeroed`: the update has done it
        if not zeroed:
            flat.masked_fill_(~alive, 0.0)
        keep = self.final_keep if k == self.window - 1 else self.n_keep(k)  # exact at the end
        work = None
        if flat.device.type == "cpu":  # the selection's two bool work buffers, kept between cuts
            work = (self._scratch("select_a", torch.bool), self._scratch("select_b", torch.bool))
        # the alive count where this pruner's last global cut (or the dense start) made the mask
        owner, kept = self._kept
        n_alive = kept if owner is self.mask and self.scope == "global" and not self._nm else None
        # with no more kept than alive the global selection never revives (`select_flat`), so
        # the swap only prunes (the schedule's cuts; a final exact cut asking for more would
        # bring back pruned entries, and then the swap checks)
        self._set_mask(
            *self._select(flat, keep, alive, dead_zero=True, work=work, n_alive=n_alive),
            prunes_only=n_alive is not None and keep <= n_alive,
        )
        if self.scope == "global" and not self._nm:  # exactly `keep` kept (`select_flat`)
            self._kept = (self.mask, keep)

    # ------------------------------------------------------------------ driving
    @property
    def in_window(self) -> bool:
        """True while `step()` still updates scores and the mask (during fine-tuning)."""
        return self.mode == "dyn" and self.start <= self.t <= self.start + self.last_k

    @property
    def done(self) -> bool:
        """True once the mask is final."""
        if self.mode == "pre":
            return self.pruned_before_training
        return self.t > self.start + self.last_k

    @property
    def needs_pre_pruning(self) -> bool:
        return self.mode == "pre" and not self.pruned_before_training

    def step(self) -> None:
        """Call once per training step, after `optimizer.step()` (gradients still in `.grad`).

        In the window, updates the scores from the post-step weights and this step's gradients and
        cuts the mask; keeps the pruned weights at exactly zero: re-zeroes them, unless masked
        training holds them at zero through a hooked optimizer (`optimizer=`, see
        `maskloop.MaskedTraining.holds_zeros`), which saves that pass.
        """
        tic = time.perf_counter()
        rezeroed = False
        if self.mode == "pre":
            if not self.pruned_before_training:
                raise RuntimeError(
                    "mode='pre': call prune_before_training(batches) before fine-tuning "
                    "(maskloop.fit and SevenCallback do it for you)"
                )
        elif self.start <= self.t <= self.start + self.last_k:
            rezeroed = self._update(self.t - self.start)
        elif self.t == 0 and self.needs_grads:
            self._grads()  # step() before any backward is a usage error even outside the window
        if not rezeroed and not self.masked.holds_zeros:  # (optimizer= keeps them at zero)
            self.masked.reapply()
        self.t += 1
        if self.weights_at == "pre" and self.mode == "dyn" and self.in_window:
            self._snapshot_weights()  # the weights the next step's gradient is computed at
        self.seconds += time.perf_counter() - tic

    def prune_before_training(
        self,
        batches: Iterable[Any],
        loss_fn: Callable[..., torch.Tensor] | None = None,
        progress: bool = False,
    ) -> WeightMask:
        """mode='pre' (reconstruction): score on `window` batches at the current weights, then prune.

        Each batch: forward, backward, fold the gradients into the scores with k = batch index, cut
        to r_k (cubic over the batches, exact target after the last one); the weights are not
        updated and the gradients are cleared afterwards. Batches are reused cyclically if fewer than
        `window` are given.
        """
        if self.mode != "pre":
            raise RuntimeError(
                f"prune_before_training needs mode='pre', this pruner has {self.mode!r}"
            )
        from tqdm.auto import tqdm

        tic = time.perf_counter()
        was_training = self.model.training
        self.model.train()
        saved = {n: p.grad for n, p in self.model.named_parameters()}
        it = _cycle(batches, "batches")
        for k in tqdm(range(self.window), desc="SEVEN_pre scoring", disable=not progress):
            self.model.zero_grad(set_to_none=True)
            loss = batch_loss(self.model, next(it), loss_fn)
            loss.backward()
            self._update(k)
        self.model.zero_grad(set_to_none=True)
        for n, p in self.model.named_parameters():
            p.grad = saved[n]
        self.model.train(was_training)
        self.pruned_before_training = True
        self.seconds += time.perf_counter() - tic
        return self.mask

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "mode": self.mode,
            "start": self.start,
            "window": self.window,
            "delta_t": self.delta_t,
            "final_exact": self.final_exact,
        }

    def _extra_state(self) -> dict[str, Any]:
        return {
            "updates": self.updates,
            "scores": {
                s: {n: t.detach().cpu().clone() for n, t in zip(self.names, ts)}
                for s, ts in self.state.items()
            },
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.updates = int(state["updates"])
        scores = state["scores"]
        self.flat, self.state = {}, {}
        for s, ts in scores.items():
            self.flat[s] = torch.cat([ts[n].reshape(-1).float() for n in self.names]).to(
                self.device
            )
            self.state[s] = self._flat_views(self.flat[s])
        if self.weights_at == "pre" and self.mode == "dyn" and self.in_window:
            self._snapshot_weights()  # load the model's weights before the pruner's state


class OneShotPruner(Pruner):
    """A pruner that scores once before fine-tuning and cuts to the target in one global step."""

    family = "oneshot"
    #: whether scoring needs gradient batches
    needs_batches: bool = True

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        n_batches: int = 1,
        scope: str = "global",
        min_density: float = DEFAULT_MIN_DENSITY,
        pattern: str | None = None,
        targets: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.n_batches = check_int("n_batches", n_batches, 1)
        super().__init__(
            model,
            sparsity,
            scope=scope,
            min_density=min_density,
            pattern=pattern,
            targets=targets,
            exclude=exclude,
            optimizer=optimizer,
        )

    def compute_scores(
        self, batches: Iterable[Any] | None, loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        """Scores (higher = kept), one tensor per target."""
        raise NotImplementedError

    @property
    def needs_pre_pruning(self) -> bool:
        return not self.pruned_before_training

    def prune_before_training(
        self,
        batches: Iterable[Any] | None = None,
        loss_fn: Callable[..., torch.Tensor] | None = None,
        progress: bool = False,
    ) -> WeightMask:
        """Score (using `n_batches` batches when the method needs gradients) and cut to the target."""
        if self.needs_batches and batches is None:
            raise ValueError(f"{type(self).__name__} needs gradient batches; got batches=None")
        tic = time.perf_counter()
        was_training = self.model.training
        saved = {n: p.grad for n, p in self.model.named_parameters()}
        scores = self.compute_scores(batches, loss_fn)
        for n, p in self.model.named_parameters():
            p.grad = saved[n]
        self.model.train(was_training)
        flat = torch.cat([x.detach().reshape(-1).float() for x in scores])
        self._set_mask(*self._select(flat, self.final_keep, None))
        self.pruned_before_training = True
        self.seconds += time.perf_counter() - tic
        return self.mask

    def step(self) -> None:
        """Keep the pruned weights at zero (call after `optimizer.step()`)."""
        if not self.pruned_before_training:
            raise RuntimeError(
                f"{type(self).__name__}: call prune_before_training(batches) before fine-tuning "
                "(maskloop.fit and SevenCallback do it for you)"
            )
        tic = time.perf_counter()
        self.masked.reapply()
        self.t += 1
        self.seconds += time.perf_counter() - tic

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "n_batches": self.n_batches}

    # ------------------------------------------------------------------ gradient helper
    def _accumulated_grads(
        self, batches: Iterable[Any], loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        """Mean gradient of the targets over `n_batches` batches (weights unchanged)."""
        self.model.train()
        it = _cycle(batches, "batches")
        acc = [torch.zeros_like(p, dtype=torch.float32) for p in self.params.values()]
        for _ in range(self.n_batches):
            self.model.zero_grad(set_to_none=True)
            batch_loss(self.model, next(it), loss_fn).backward()
            torch._foreach_add_(acc, [p.grad.float() for p in self.params.values()])
        self.model.zero_grad(set_to_none=True)
        torch._foreach_div_(acc, float(self.n_batches))
        return acc


def _cycle(batches: Iterable[Any], name: str) -> Any:
    """Iterate `batches` forever (re-iterating when exhausted); error if it yields nothing."""
    if batches is None or not isinstance(batches, Iterable):
        raise TypeError(
            f"{name} must be an iterable of batches (e.g. a DataLoader), got {batches!r}"
        )

    def gen() -> Any:
        while True:
            empty = True
            for b in batches:
                empty = False
                yield b
            if empty:
                raise ValueError(f"{name} yielded no batches")

    return gen()
