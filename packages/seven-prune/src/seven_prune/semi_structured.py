"""N:M (2:4) sparsity that saves time: checking a mask's pattern and timing it on GPUs.

`SevenPruner(..., pattern="2:4", sparsity=0.5)` keeps, in every group of 4 consecutive weights along
each target's input dimension, the 2 with the highest SEVEN score. NVIDIA GPUs from Ampere on
(compute capability >= 8.0) multiply such weights with semi-structured sparse kernels
(`torch.sparse.to_sparse_semi_structured`, half precision). `is_n_m` checks the pattern on any
device; `semi_structured_speed` times dense against 2:4 sparse matrix products for the pruned
shapes and runs only where such a GPU is present (it raises RuntimeError elsewhere).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from maskloop import WeightMask

__all__ = ["is_n_m", "semi_structured_speed"]


def is_n_m(
    mask: WeightMask | Mapping[str, torch.Tensor], n: int = 2, m: int = 4
) -> dict[str, bool]:
    """For each tensor of `mask`: True when every group of `m` consecutive entries along its last
    dimension keeps exactly `n` (the pattern the GPU kernels need)."""
    if isinstance(n, bool) or isinstance(m, bool) or not (0 < n < m):
        raise ValueError(f"need integers 0 < n < m, got n={n!r}, m={m!r}")
    items = mask.items()
    out = {}
    for name, keep in items:
        if keep.dim() == 0 or keep.shape[-1] % m != 0:
            out[name] = False
            continue
        out[name] = bool((keep.reshape(-1, m).sum(1) == n).all())
    return out


def semi_structured_speed(
    mask: WeightMask,
    params: Mapping[str, torch.Tensor],
    tokens: int = 2048,
    dtype: torch.dtype = torch.float16,
    repeats: int = 50,
) -> list[dict[str, Any]]:
    """Per target: time of `F.linear(x, W)` dense vs with W as a 2:4 semi-structured sparse tensor.

    `x` has `tokens` rows (batch x sequence). Needs CUDA with compute capability >= 8.0 and a mask
    that is exactly 2:4 (`is_n_m`). Returns one dict per target (name, shape, dense_ms, sparse_ms,
    speedup, max_abs_diff of the outputs).
    """
    if not torch.cuda.is_available():
        raise RuntimeError("semi_structured_speed needs a CUDA GPU (none is available)")
    major, _ = torch.cuda.get_device_capability()
    if major < 8:
        raise RuntimeError(
            f"semi-structured sparse kernels need compute capability >= 8.0, this GPU has {major}.x"
        )
    bad = [n for n, ok in is_n_m(mask).items() if not ok]
    if bad:
        raise ValueError(f"mask is not 2:4 for {bad}; prune with pattern='2:4' at sparsity 0.5")
    from torch.sparse import to_sparse_semi_structured

    rows = []
    for name, keep in mask.items():
        w = (params[name].detach() * keep.to(params[name].device)).to("cuda", dtype)
        x = torch.randn(tokens, w.shape[1], device="cuda", dtype=dtype)
        ws = to_sparse_semi_structured(w)
        times = {}
        for label, weight in (("dense", w), ("sparse", ws)):
            for _ in range(5):
                F.linear(x, weight)
            torch.cuda.synchronize()
            ts = []
            for _ in range(repeats):
                tic = time.perf_counter()
                F.linear(x, weight)
                torch.cuda.synchronize()
                ts.append(time.perf_counter() - tic)
            times[label] = statistics.median(ts)
        diff = float((F.linear(x, w) - F.linear(x, ws)).abs().max())
        rows.append(
            {
                "name": name,
                "shape": list(w.shape),
                "dense_ms": times["dense"] * 1000,
                "sparse_ms": times["sparse"] * 1000,
                "speedup": times["dense"] / times["sparse"],
                "max_abs_diff": diff,
            }
        )
    return rows
