"""Fixtures shared by the seven-prune tests."""

import warnings

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models are overhead-bound; one thread avoids oversubscribing a shared CPU."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _expected_collapse_warning():
    """A randomly initialised tiny BERT gets near-zero query/key gradients, so the guard against
    layer collapse warns in most tests; test_seven_prune_guard.py asserts that warning with
    `pytest.warns` (which records it regardless of this filter)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*would empty \d+ target tensor")
        yield
