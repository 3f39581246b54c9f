"""Repository-wide test determinism: one torch thread and fixed seeds before every test.

pytest loads this file for every test under the root configuration (the root pyproject.toml is the
configfile of each `tests(<package>)` session and of `integration`). A float32 reduction's result
depends on how many threads split it, so numerical tests must not depend on the machine's core count
or load. packages/lrcnn/ sets its own (its engineer owns that package's numerics).

Tests in the files listed in NUMERICAL are marked `numerical`; `nox -s stress` repeats them.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

# Test files that compare floating-point results with tolerances (repeated by `nox -s stress`).
NUMERICAL = {
    "test_maskloop_loop.py",
    "test_maskloop_masks.py",
    "test_maskloop_report.py",
    "test_maskloop_scores.py",
    "test_ted_prune_scores.py",
    "test_ted_prune_training.py",
    "test_ted_prune_hf.py",
    "test_ted_prune_readings.py",
    "test_lnpt_scores.py",
    "test_lnpt_baselines.py",
    "test_lnpt_training.py",
    "test_lnpt_batchnorm.py",
    "test_seven_prune_scores.py",
    "test_seven_prune_baselines.py",
    "test_seven_prune_integrations.py",
    "test_seven_prune_persistence.py",
    "test_lrcnn_exact.py",
    "test_lrcnn_stepping.py",
    "test_cdhm_model.py",
    "test_cdhm_baselines.py",
    "test_ssjdn_model.py",
    "test_ssjdn_metrics.py",
    "test_ssjdn_scales.py",
    "test_integration_compose.py",
    "test_integration_transformers.py",
}
OWN_NUMERICS = ("lrcnn",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in NUMERICAL:
            item.add_marker(pytest.mark.numerical)


def _own_numerics(path: str | Path) -> bool:
    return any(part in OWN_NUMERICS for part in Path(path).parts)


@pytest.fixture(scope="session", autouse=True)
def _one_thread_session(request: pytest.FixtureRequest):
    """One torch thread from the start, so module- and session-scoped fixtures run like tests."""
    if all(_own_numerics(arg) for arg in request.config.args):
        yield
        return
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _deterministic(request: pytest.FixtureRequest):
    """torch.set_num_threads(1) and seed 0 for random, numpy and torch; threads restored after."""
    if _own_numerics(request.node.path):
        yield
        return
    import numpy as np
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
