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
    "test_ted_prune_scores.py",
    "test_ted_prune_training.py",
    "test_ted_prune_hf.py",
    "test_lnpt_scores.py",
    "test_lnpt_baselines.py",
    "test_lnpt_training.py",
    "test_seven_prune_scores.py",
    "test_seven_prune_baselines.py",
    "test_seven_prune_integrations.py",
    "test_lrcnn_exact.py",
    "test_cdhm_model.py",
    "test_cdhm_baselines.py",
    "test_ssjdn_model.py",
    "test_ssjdn_metrics.py",
    "test_integration_compose.py",
    "test_integration_transformers.py",
}
OWN_NUMERICS = ("lrcnn",)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in NUMERICAL:
            item.add_marker(pytest.mark.numerical)


@pytest.fixture(autouse=True)
def _deterministic(request: pytest.FixtureRequest):
    """torch.set_num_threads(1) and seed 0 for random, numpy and torch; threads restored after."""
    if any(part in OWN_NUMERICS for part in Path(request.node.path).parts):
        yield
        return
    try:
        import torch
    except ImportError:  # pragma: no cover - every member depends on torch
        yield
        return
    import numpy as np

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)
