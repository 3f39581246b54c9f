"""The run set-up of lnpt's own training runs: denormal floats flushed to zero for the run.

Why (review finding 4 of session 32): near zero training loss, supervised students compute on
denormal (subnormal) floats, which x86 CPUs handle in microcode: a 480-epoch supervised digits-CNN
unit took 406 s instead of 60 s. `torch.set_flush_denormal(True)` makes the CPU treat denormal
inputs and results as 0 (FTZ/DAZ). Today's code run with and without it gives identical metrics
(digits-CNN units of rule s31, `docs/benchmarks/lnpt_s31_test_sizes/flush_check.json`; four MLP
units on and off, `docs/benchmarks/lnpt_s33_flush/mlp_check.json`), and re-runs of committed
digits-CNN units reproduce them exactly (`docs/benchmarks/lnpt_s33_flush/repro.json`), so it is a
speed-only setting and no cache key names it. (Several committed MLP-ablation units do not
reproduce with today's code, with the flush on or off: drift of that older cache, not the flush;
`mlp_check.json`.)

`flush_denormal()` sets it for the duration of a run and restores the state found before (torch
has no getter: `flush_denormal_on` probes it); `with_flush_denormal` wraps a run function in it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch

__all__ = ["flush_denormal", "flush_denormal_on", "with_flush_denormal"]

F = TypeVar("F", bound=Callable[..., Any])

# 2 * 1e-39 is a float32 denormal (below 1.18e-38); flushed, the product (or its input) reads 0.
_DENORMAL = 1e-39


def flush_denormal_on() -> bool:
    """Whether denormal floats are flushed to zero now (probed: a float32 denormal doubled)."""
    return float(torch.tensor([_DENORMAL], dtype=torch.float32).mul(2.0)[0]) == 0.0


@contextlib.contextmanager
def flush_denormal(enabled: bool = True) -> Iterator[bool]:
    """Flush denormal floats to zero (`enabled=True`) or not (False) inside the block, and restore
    the state found on entry afterwards, also when the block raises. Yields the state set (False on
    a CPU without the support, where `torch.set_flush_denormal` reports it cannot). Raises
    TypeError naming `enabled` unless it is a bool."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    before = flush_denormal_on()
    ok = torch.set_flush_denormal(enabled)
    try:
        yield enabled and ok
    finally:
        torch.set_flush_denormal(before)


def with_flush_denormal(fn: F) -> F:
    """`fn` run inside `flush_denormal()` (lnpt's run functions: the benchmark and its checks)."""

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        with flush_denormal():
            return fn(*args, **kwargs)

    return run  # type: ignore[return-value]
