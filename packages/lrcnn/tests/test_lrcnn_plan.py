"""Planner layouts and predictions, and bad inputs."""

from __future__ import annotations

import lrcnn
import pytest
import torch
import torchvision
from lrcnn.models import small_cnn
from torch import nn


def meta_vgg16() -> nn.Module:
    with torch.device("meta"):
        return torchvision.models.vgg16()


@pytest.mark.parametrize("policy", ["overlap", "two_phase"])
def test_layout_covers_every_output_row_once(policy: str) -> None:
    net = small_cnn(width=4)
    for rows in (1, 2, 5, 11):
        p = lrcnn.plan(net, (2, 3, 45, 43), rows=rows, policy=policy, depth=None)
        assert p.rows == rows and len(p.strips) == rows
        assert p.covers_output_once()
        out = [r for s in p.strips for r in range(*s.out_rows)]
        assert out == list(range(p.strips[-1].out_rows[1]))
        assert p.strips[0].in_rows[0] == 0 and p.strips[-1].in_rows[1] == 45
        if policy == "two_phase":
            assert all(s.halo == (0, 0) for s in p.strips)


def test_vgg16_prediction_matches_the_paper_accounting() -> None:
    """Shapes only (meta device): ~69-70 MiB per 224x224 image saved for backward, 2/3 saved."""
    from lrcnn.planner import _Model

    model = meta_vgg16()
    graph = lrcnn.TrunkGraph(lrcnn.find_trunk(model)[0])
    saved, peak = _Model(graph, (1, 3, 224, 224), 4).sim([n.id for n in graph.nodes[1:]])
    assert 65 * 2**20 < saved < 72 * 2**20  # the spec's accounting: 69.8 MiB per image
    p = lrcnn.plan(model, (1, 3, 224, 224), rows=4)
    assert saved < p.plain_bytes < 1.3 * saved
    assert p.policy_bytes["overlap"] < 0.5 * p.plain_bytes
    assert p.checkpoint_bytes < p.plain_bytes
    # blocks 1-2 (features.0..9) are row-centric: halo of 6 rows per side -> 12 on one side
    assert p.units[-1] == "features.9"
    assert max(sum(s.halo) for s in p.strips) == 12


def test_budget_picks_fewest_strips() -> None:
    model = meta_vgg16()
    shape = (4, 3, 224, 224)
    p = lrcnn.plan(model, shape, memory_budget="150MiB", depth=10)
    assert p.predicted_bytes <= 150 * 2**20
    if p.rows > 1:
        fewer = lrcnn.plan(model, shape, rows=p.rows - 1, depth=10)
        assert fewer.predicted_bytes > 150 * 2**20
    with pytest.raises(ValueError, match="below the predicted floor"):
        lrcnn.plan(model, shape, memory_budget="1MiB")


def test_memory_budget_in_rowcentric() -> None:
    net = small_cnn(width=4)
    rc = lrcnn.RowCentric(net, memory_budget=10**9)
    depth, rows = rc.configure((2, 3, 32, 32))
    assert rows == 1 and 1 <= depth <= len(rc.trunk_units)
    y = rc(torch.randn(2, 3, 32, 32))
    assert y.shape == (2, 10)


def test_bad_inputs() -> None:
    net = small_cnn(width=4)
    with pytest.raises(ValueError, match="rows must be >= 1"):
        lrcnn.RowCentric(net, rows=0)
    with pytest.raises(ValueError, match="rows must be between 1 and"):
        lrcnn.RowCentric(net, rows=999, depth=None)(torch.randn(1, 3, 32, 32))
    with pytest.raises(ValueError, match="policy must be one of"):
        lrcnn.RowCentric(net, rows=2, policy="diagonal")
    with pytest.raises(ValueError, match="give rows="):
        lrcnn.RowCentric(net)
    with pytest.raises(ValueError, match="not both"):
        lrcnn.RowCentric(net, rows=2, memory_budget="1GB")
    with pytest.raises(TypeError, match="rows must be an int"):
        lrcnn.RowCentric(net, rows=2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="depth must be between"):
        lrcnn.RowCentric(net, rows=2, depth=99)
    with pytest.raises(ValueError, match="memory_budget must look like"):
        lrcnn.RowCentric(net, memory_budget="lots")
    bad = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2), nn.Conv2d(4, 4, 3))
    with pytest.raises(TypeError, match=r"layer '1' of type Upsample"):
        lrcnn.RowCentric(bad, rows=2)
    valid = lrcnn.RowCentric(
        nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5)), rows=1, depth=None
    )
    with pytest.raises(ValueError, match="input too small"):
        valid(torch.randn(1, 3, 7, 7))
    with pytest.raises(ValueError, match=r"input must be \(N, C, H, W\)"):
        lrcnn.RowCentric(net, rows=1)(torch.randn(3, 32, 32))
    circ = lrcnn.RowCentric(
        nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular")),
        rows=2,
        policy="two_phase",
        depth=None,
    )
    with pytest.raises(ValueError, match="circular"):
        circ(torch.randn(1, 3, 8, 8))
    with pytest.raises(ValueError, match="input_shape"):
        lrcnn.plan(net, (3, 32, 32))
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        lrcnn.plan("vgg", (1, 3, 32, 32))  # type: ignore[arg-type]


def test_budget_string_and_predictions_per_policy() -> None:
    from lrcnn.planner import parse_budget as _parse_budget

    assert _parse_budget("1.5GB") == 1_500_000_000
    assert _parse_budget("512MiB") == 512 * 2**20
    assert _parse_budget(2e9) == 2_000_000_000
    model = meta_vgg16()
    shape = (32, 3, 224, 224)  # plain training needs ~2.5 GB of activations
    p = lrcnn.plan(model, shape, memory_budget="1.5GB")
    # every method is predicted, both policies, with a step-time estimate each
    assert set(p.policy_bytes) == {"overlap", "two_phase"} == set(p.time_ratio)
    assert 0 < p.floor_bytes <= p.predicted_bytes <= 1_500_000_000 < p.plain_bytes
    assert p.checkpoint_segments >= 1 and p.checkpoint_time_ratio > 1.0
    assert all(t >= 1.0 for t in p.time_ratio.values())
    # the fewest strips that fit: one strip fewer (at the depth the planner would pick) does not
    if p.rows > 1:
        assert lrcnn.plan(model, shape, rows=p.rows - 1).predicted_bytes > 1_500_000_000
    # RowCentric(memory_budget="1.5GB") uses that plan
    rc = lrcnn.RowCentric(small_cnn(width=4), memory_budget="1.5GB")
    assert rc.memory_budget == 1_500_000_000
    assert rc.configure((2, 3, 32, 32))[1] >= 1
    # a budget below the floor fails at the first call, naming the floor
    tight = lrcnn.RowCentric(small_cnn(width=4), memory_budget="1KiB")
    with pytest.raises(ValueError, match="below the predicted floor"):
        tight(torch.randn(2, 3, 32, 32))


def test_whole_step_prediction_counts_gradients() -> None:
    """Plan.step_bytes: without a fused step every gradient is held (at least all weight bytes);
    with it, the head's backward holds VGG-16's largest gradient (the 25088x4096 classifier
    weight) on top of the saved activations; row-centric and checkpointing stay below plain."""
    from lrcnn.planner import OVERHEAD

    model = meta_vgg16()
    shape = (8, 3, 224, 224)
    p = lrcnn.plan(model, shape, rows=8, policy="overlap")
    weights = sum(q.numel() for q in model.parameters()) * 4
    fc1 = 25088 * 4096 * 4
    assert p.step_bytes[("plain", False)] >= weights * OVERHEAD
    assert p.step_bytes[("plain", True)] >= fc1 * OVERHEAD
    for method in ("plain", "checkpoint", "overlap", "two_phase"):
        fused, held = p.step_bytes[(method, True)], p.step_bytes[(method, False)]
        assert fc1 * OVERHEAD <= fused < held, method
    for fused in (False, True):
        plain = p.step_bytes[("plain", fused)]
        assert p.step_bytes[("checkpoint", fused)] < plain
        assert p.step_bytes[("overlap", fused)] < p.step_bytes[("checkpoint", fused)]
    # the trunk prediction is the step's activation part: a fused step adds at most FC1's grad
    # to the activations saved at the end of the forward
    assert p.step_bytes[("overlap", True)] <= p.policy_bytes["overlap"] + fc1 * OVERHEAD


def test_whole_step_prediction_with_chunked_linear_steps() -> None:
    """``plan(chunk_mib=16)``: the fused step holds one 16 MiB chunk of the classifier's weight
    gradient instead of the 392 MiB whole, so every fused prediction drops by more than 300 MiB
    and overlap-8's whole step is its trunk prediction plus at most one chunk; predictions
    without a fused step do not change. A chunk size that is not a positive number is refused."""
    from lrcnn.planner import OVERHEAD

    model = meta_vgg16()
    shape = (8, 3, 224, 224)
    whole = lrcnn.plan(model, shape, rows=8, policy="overlap")
    chunked = lrcnn.plan(model, shape, rows=8, policy="overlap", chunk_mib=16)
    for key, v in whole.step_bytes.items():
        if key[1]:
            assert chunked.step_bytes[key] < v - 300 * 2**20, key
        else:
            assert chunked.step_bytes[key] == v, key
    assert (
        chunked.step_bytes[("overlap", True)]
        <= chunked.policy_bytes["overlap"] + 16 * 2**20 * OVERHEAD
    )
    for bad, exc in ((0, ValueError), (-1.0, ValueError), ("16", TypeError)):
        with pytest.raises(exc, match="chunk_mib"):
            lrcnn.plan(model, shape, rows=8, chunk_mib=bad)  # type: ignore[arg-type]


def test_carried_gradient_term_is_what_the_backward_hands_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """two_phase: the planner's per-boundary carried bytes (saved rows, and the gradient strip
    i + 1 hands back to strip i, held through strip i's backward) equal, byte for byte, the
    gradients the runner actually hands between strips (none under overlap)."""
    from lrcnn.planner import _Model, carried_bytes
    from lrcnn.strips import Layout, StripRunner

    handed: dict[int, int] = {}
    run_strip = StripRunner.run_strip

    def spy(self, i, x, st, **kw):  # type: ignore[no-untyped-def]
        if kw.get("grad"):
            handed[i] = sum(g.numel() * g.element_size() for g in (kw.get("inject") or {}).values())
        return run_strip(self, i, x, st, **kw)

    monkeypatch.setattr(StripRunner, "run_strip", spy)
    shape = (2, 3, 41, 23)
    net = small_cnn(width=4).double()
    rc = lrcnn.RowCentric(net, rows=4, policy="two_phase", depth=None, batch_norm="frozen")
    rc(torch.randn(*shape, dtype=torch.float64)).sum().backward()
    _, runner = rc._runner(shape, torch.float64)
    expected = carried_bytes(_Model(runner.graph, shape, 8), runner.layout)
    assert len(expected) == 3 and all(b > 0 for b in expected)
    assert [handed[i] for i in range(3)] == expected and handed[3] == 0
    overlap = Layout(runner.graph, shape[1:], 4, "overlap")
    assert carried_bytes(_Model(runner.graph, shape, 8), overlap) == []
