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
    """`run(switch, (a, b), hooked)`: two SevenPruners on the same tiny BERT and
    batches, the module flag `seven.<switch>` set to `a` for the first and `b` for the second at
    every step,
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


@pytest.fixture
def update_sequence():
    """`run(dtype, seeds, rezero_on_cut=True)`: eight `seven._seven_update_eager` calls on four
    synthetic targets (317 x 331, 7 x 13, 3 and 64 x 64: vectorised bodies, scalar tails, more
    than one thread's chunk) with cuts (S * M) every third update, re-zeroing off at updates 1, 4
    and 7, masks that shrink, gradients with exact zeros and 0 where pruned, and weights moved
    after every update, pruned ones too (an unhooked optimizer). `seeds`: (weights, the rest).
    Returns `(state {"m", "v", "S"}, weights, t1s, t2s)` for `assert_same_update`. The exactness
    tests of the lean loop and the chunked update run it under two settings of their switch."""
    from seven_prune import seven

    def run(
        dtype: torch.dtype, seeds: tuple[int, int], rezero_on_cut: bool = True
    ) -> tuple[dict[str, list[torch.Tensor]], list, list, list]:
        shapes = [(317, 331), (7, 13), (3,), (64, 64)]
        gen = torch.Generator().manual_seed(seeds[0])
        ws = [torch.randn(sh, generator=gen, dtype=dtype) for sh in shapes]
        g2 = torch.Generator().manual_seed(seeds[1])
        st = {k: [torch.zeros(sh, dtype=dtype) for sh in shapes] for k in "mvS"}
        t1s = [torch.zeros(sh, dtype=dtype) for sh in shapes]
        t2s = [torch.zeros(sh, dtype=dtype) for sh in shapes]
        keeps = [torch.ones(sh, dtype=torch.bool) for sh in shapes]
        for k in range(8):
            gs = [torch.randn(sh, generator=g2, dtype=dtype) * 1e-3 for sh in shapes]
            gs[0][::5] = 0.0
            for g, kp in zip(gs, keeps):  # masked training's gradient: 0 where pruned
                g.mul_(kp)
            cutting = k % 3 == 2
            seven._seven_update_eager(
                st["m"], st["v"], st["S"], ws, gs, keeps, t1s, t2s, alpha1=0.8, alpha2=0.9,
                eps=1e-9, k=k, abs_moments=True, cutting=cutting, rezero=k not in (1, 4, 7),
                rezero_on_cut=rezero_on_cut, fkeeps=[kp.to(dtype) for kp in keeps],
            )  # fmt: skip
            if cutting:
                keeps = [kp & (torch.rand(kp.shape, generator=g2) > 0.3) for kp in keeps]
            for w in ws:  # an optimizer step that moves pruned weights too (not hooked)
                w.add_(torch.randn(w.shape, generator=g2, dtype=dtype), alpha=1e-2)
        return st, ws, t1s, t2s

    return run


@pytest.fixture
def assert_same_update():
    """`check(a, b)`: two `update_sequence` results agree bit for bit (m, v, S, W, t1, t2), and
    the run did something (S > 0 somewhere, and the cuts zeroed some S)."""

    def check(a: tuple, b: tuple) -> None:
        for key in "mvS":
            for x, y in zip(a[0][key], b[0][key]):
                assert torch.equal(bits(x), bits(y)), key
        for i, what in ((1, "W"), (2, "t1"), (3, "t2")):
            for x, y in zip(a[i], b[i]):
                assert torch.equal(bits(x), bits(y)), what
        assert float(a[0]["S"][0].sum()) > 0
        # the masking ran: pruned S are 0 after the last cut step's update (k = 5, then 2 more)
        assert any(bool((s == 0).any()) for s in a[0]["S"])

    return check
