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

__all__ = ["BACKENDS", "is_n_m", "semi_structured_speed", "to_semi_structured"]

#: the semi-structured kernels `torch.sparse` offers; None = torch's own choice
BACKENDS = (None, "cusparselt", "cutlass")


def to_semi_structured(weight: torch.Tensor, backend: str | None = None) -> torch.Tensor:
    """`weight` (2:4, CUDA, half precision) as a `torch.sparse` semi-structured tensor of `backend`
    (None: `to_sparse_semi_structured`, i.e. cuSPARSELt where installed, else CUTLASS)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    from torch import sparse

    if backend is None:
        return sparse.to_sparse_semi_structured(weight)
    cls = {
        "cusparselt": sparse.SparseSemiStructuredTensorCUSPARSELT,
        "cutlass": sparse.SparseSemiStructuredTensorCUTLASS,
    }[backend]
    return cls.from_dense(weight)


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
    mask: WeightMask | Mapping[str, torch.Tensor],
    params: Mapping[str, torch.Tensor],
    tokens: int = 2048,
    dtype: torch.dtype = torch.float16,
    repeats: int = 50,
    inner: int = 20,
    backend: str | None = None,
) -> list[dict[str, Any]]:
    """Per target: time of `F.linear(x, W)` dense vs with W as a 2:4 semi-structured sparse tensor.

    `x` has `tokens` rows (batch x sequence). Each of `repeats` samples times `inner` products
    back to back between two synchronisations (one product of a small layer is shorter than a
    kernel launch plus a synchronisation), dense and sparse in turn (interleaved), and reports
    the median per product. Needs CUDA with compute capability >= 8.0 and a mask that is exactly
    2:4 (`is_n_m`). `backend`: None for torch's choice (cuSPARSELt where it is installed),
    "cusparselt" or "cutlass" to force one. Returns one dict per target (name, shape, dense_ms,
    sparse_ms, speedup, max_abs_diff of the outputs).
    """
    from maskloop.checks import check_int

    for name, v in (("tokens", tokens), ("repeats", repeats), ("inner", inner)):
        check_int(name, v, 1)
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
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

    def block(x: torch.Tensor, weight: torch.Tensor) -> float:
        torch.cuda.synchronize()
        tic = time.perf_counter()
        for _ in range(inner):
            F.linear(x, weight)
        torch.cuda.synchronize()
        return (time.perf_counter() - tic) / inner

    rows = []
    for name, keep in mask.items():
        w = (params[name].detach() * keep.to(params[name].device)).to("cuda", dtype)
        x = torch.randn(tokens, w.shape[1], device="cuda", dtype=dtype)
        ws = to_semi_structured(w, backend)
        for weight in (w, ws):  # warm-up: kernels chosen, workspaces allocated
            block(x, weight)
        times: dict[str, list[float]] = {"dense": [], "sparse": []}
        for _ in range(repeats):
            times["dense"].append(block(x, w))
            times["sparse"].append(block(x, ws))
        dense, sparse = statistics.median(times["dense"]), statistics.median(times["sparse"])
        diff = float((F.linear(x, w) - F.linear(x, ws)).abs().max())
        rows.append(
            {
                "name": name,
                "shape": list(w.shape),
                "dense_ms": dense * 1000,
                "sparse_ms": sparse * 1000,
                "speedup": dense / sparse,
                "max_abs_diff": diff,
            }
        )
    return rows
