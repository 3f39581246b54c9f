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


class _TwoLinearEncoder(torch.nn.Module):
    """Two encoder-named Linears (SevenPruner's targets) and a head: few targets, so that the
    fused update compiles in seconds and exact comparisons stay small."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = torch.nn.ModuleDict(
            {"query": torch.nn.Linear(12, 24), "dense": torch.nn.Linear(24, 12)}
        )
        self.head = torch.nn.Linear(12, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder["dense"](torch.tanh(self.encoder["query"](x))))


@pytest.fixture
def two_linear_encoder() -> type[torch.nn.Module]:
    """The class of a tiny model with two SevenPruner targets (call it to build one)."""
    return _TwoLinearEncoder
