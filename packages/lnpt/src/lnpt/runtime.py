"""The run set-up of lnpt's own training runs: denormal floats flushed to zero for the run.

Why (review finding 4 of session 32): near zero training loss, supervised students compute on
denormal (subnormal) floats, which x86 CPUs handle in microcode: a 480-epoch supervised digits-CNN
unit took 406 s instead of 60 s. `torch.set_flush_denormal(True)` makes the CPU treat denormal
inputs and results as 0 (FTZ/DAZ). Today's code run with and without it gives identical metrics
(digits-CNN units of rule s31, `docs/benchmarks/lnpt_s31_test_sizes/flush_check.json`; four MLP
units on and off, `docs/benchmarks/lnpt_s33_flush/mlp_check.json`), and re-runs of committed
digits-CNN units reproduce them exactly (`docs/benchmarks/lnpt_s33_flush/repro.json`), so it is a
speed-only setting and no cache key names it. (Several committed MLP-ablation units do not
reproduce with today's code, with the flush on or off: not the flush and not the code, but the host
they were trained on; session 34, `docs/benchmarks/lnpt_s34_cache_drift.md`, and `host_id`.)

`flush_denormal()` sets it for the duration of a run and restores the state found before (torch
has no getter: `flush_denormal_on` probes it); `with_flush_denormal` wraps a run function in it.

`host_id()` names the machine a unit was trained on. Label-free students are host-dependent: the
same code, seed and torch give bit-different students on another host (session 26's reproduction
check, `docs/benchmarks/lnpt_recipe_cosine_rule.md`; session 34's, where the MLP-ablation units
made on 2026-12-02 reproduce neither at HEAD nor at the commit that made them), while the
supervised ones have so far reproduced bit for bit. The cached units record it
(`lnpt.bench.Progress`), so a resumed run can say when it mixes units of two hosts; it is not in
any cache key (committed rows keep their keys and `--resume` still re-runs nothing).
"""

from __future__ import annotations

import contextlib
import functools
import platform
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = ["flush_denormal", "flush_denormal_on", "host_id", "with_flush_denormal"]

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


def _cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The first CPU of `cpuinfo` (Linux) as "<vendor> family <f> model <m> stepping <s>", else
    `platform.processor()` or "unknown"."""
    fields = {}
    try:
        for line in cpuinfo.read_text().splitlines():
            if not line.strip():
                break
            name, _, value = line.partition(":")
            fields[name.strip()] = value.strip()
    except OSError:
        pass
    if "vendor_id" in fields:
        return (
            f"{fields['vendor_id']} family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')} stepping {fields.get('stepping', '?')}"
        )
    return platform.processor() or "unknown"


def host_id() -> str:
    """The host a unit is trained on, as one string: the platform (kernel and machine image), the
    CPU (vendor, family, model, stepping), torch's version and the CPU kernels torch dispatches to
    (`torch.backends.cpu.get_cpu_capability()`, e.g. AVX2). Two equal ids are no proof of equal
    floating point, two different ones no proof of a difference: it records where a unit came
    from, so a mixed cache can be seen (`lnpt.bench.Progress`)."""
    return (
        f"{platform.platform()} | {_cpu_model()} | torch {torch.__version__} | "
        f"{torch.backends.cpu.get_cpu_capability()}"
    )
