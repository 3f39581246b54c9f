"""Shared fixtures for lnpt's tests."""

import pytest
import torch
from lnpt.bench import MODELS
from lnpt.data import DigitsSplit


@pytest.fixture(scope="module")
def tiny_mlp_split():
    """One thread, seed 0, the MLP spec and a small random split (3 x 128 samples of 64 features):
    yields (spec, data); each test module builds its teachers and init from the global RNG after it.
    The thread count is restored afterwards, so later tests keep theirs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 128, 64, generator=g)
    y = torch.randint(0, 10, (3, 128), generator=g)
    yield (
        MODELS["mlp"],
        DigitsSplit(x[0], y[0], x[1], y[1], x[2], y[2]),
    )  # small: the tests stay fast
    torch.set_num_threads(threads)
