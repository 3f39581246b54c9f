"""Fixtures shared by maskloop's tests."""

import pytest
import torch


@pytest.fixture
def float64():
    """Run the test with float64 as torch's default dtype (exactness checks), then restore it."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)
