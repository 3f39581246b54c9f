"""Fixtures shared by the lrcnn tests: one torch thread, fixed seed, for every test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    """Fix the thread count (reduction order of CPU kernels) and the global seed per test, so a
    test's numbers do not depend on the machine's load or on which tests ran before it."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(n)
