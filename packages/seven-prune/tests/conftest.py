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


def bits(x: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor (so that +0.0 and -0.0 differ)."""
    return x.view(torch.int64 if x.dtype == torch.float64 else torch.int32)


@pytest.fixture
def twin_pruner_run(monkeypatch: pytest.MonkeyPatch):
    """`run(switch, (a, b), hooked)`: two SevenPruners on the same tiny BERT and batches, the
    module flag `seven.<switch>` set to `a` for the first and `b` for the second at every step,
    asserting after each step that the masks, m, v, S, the weights and the AdamW moments agree bit
    for bit; returns `(pruners, number of cuts)` (12 steps, a window with four cuts)."""
    from seven_prune import SevenPruner, seven
    from seven_prune.models import tiny_bert

    def run(switch: str, values: tuple, hooked: bool) -> tuple[list, int]:
        prs, opts, models = [], [], []
        for _ in range(2):
            torch.manual_seed(0)
            models.append(tiny_bert(seed=3))
            opts.append(torch.optim.AdamW(models[-1].parameters(), lr=1e-2, weight_decay=0.1))
            prs.append(
                SevenPruner(
                    models[-1], 0.7, start=1, window=9, delta_t=2,
                    optimizer=opts[-1] if hooked else None,
                )
            )  # fmt: skip
        gen = torch.Generator().manual_seed(4)
        cuts = 0
        for _ in range(12):
            ids = torch.randint(0, 64, (8, 12), generator=gen)
            labels = torch.randint(0, 2, (8,), generator=gen)
            before = prs[0].mask
            for value, model, opt, pr in zip(values, models, opts, prs):
                monkeypatch.setattr(seven, switch, value)
                opt.zero_grad(set_to_none=True)
                model(input_ids=ids, labels=labels).loss.backward()
                opt.step()
                pr.step()
            cuts += prs[0].mask is not before
            assert prs[0].mask == prs[1].mask
            if prs[0].state:
                for key in ("m", "v", "S"):
                    assert torch.equal(bits(prs[0].flat[key]), bits(prs[1].flat[key])), key
            for pa, pb in zip(models[0].parameters(), models[1].parameters()):
                assert torch.equal(bits(pa.detach()), bits(pb.detach()))
                for key in ("exp_avg", "exp_avg_sq"):
                    sa, sb = opts[0].state[pa][key], opts[1].state[pb][key]
                    assert torch.equal(bits(sa), bits(sb)), key
        return prs, cuts

    return run
