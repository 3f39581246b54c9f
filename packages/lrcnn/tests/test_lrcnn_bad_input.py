"""Bad input to every public entry point gets a ValueError/TypeError naming what is wrong."""

from __future__ import annotations

import math

import lrcnn
import pytest
import torch
from lrcnn.baselines import CheckpointTrunk
from lrcnn.bench import run_bench
from lrcnn.cli import main
from lrcnn.models import small_cnn
from torch import nn

NET = small_cnn(width=4)

ROWCENTRIC_ARGS = {
    "model-not-module": (dict(model="vgg", rows=2), TypeError, "model must be an nn.Module"),
    "rows-float": (dict(rows=2.5), TypeError, "rows must be an int"),
    "rows-bool": (dict(rows=True), TypeError, "rows must be an int"),
    "rows-zero": (dict(rows=0), ValueError, "rows must be >= 1"),
    "rows-and-budget": (dict(rows=2, memory_budget="1GB"), ValueError, "not both"),
    "neither-rows-nor-budget": (dict(), ValueError, "give rows="),
    "policy-unknown": (dict(rows=2, policy="diagonal"), ValueError, "policy must be one of"),
    "depth-out-of-range": (dict(rows=2, depth=99), ValueError, "depth must be between"),
    "depth-wrong-type": (dict(rows=2, depth="deep"), TypeError, "depth must be an int"),
    "budget-garbage": (dict(memory_budget="lots"), ValueError, "memory_budget must look like"),
    "budget-negative": (dict(memory_budget=-5), ValueError, "memory_budget must be positive"),
    "budget-nan": (dict(memory_budget=math.nan), ValueError, "memory_budget must be positive"),
    "budget-bool": (dict(memory_budget=True), TypeError, "memory_budget must be bytes"),
    "ckpt-negative": (dict(rows=2, checkpoint_segments=-1), ValueError, "checkpoint_segments"),
    "ckpt-float": (dict(rows=2, checkpoint_segments=1.5), TypeError, "checkpoint_segments"),
    "batch-norm-unknown": (dict(rows=2, batch_norm="strip"), ValueError, "batch_norm must be"),
}


@pytest.mark.parametrize("case", sorted(ROWCENTRIC_ARGS))
def test_rowcentric_constructor(case: str) -> None:
    """RowCentric(...): wrong types and out-of-range arguments."""
    kw, exc, match = ROWCENTRIC_ARGS[case]
    model = kw.pop("model", NET)
    with pytest.raises(exc, match=match):
        lrcnn.RowCentric(model, **kw)


def test_rowcentric_unsupported_layer() -> None:
    """RowCentric(...): a trunk layer that cannot run row by row is named."""
    bad = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Upsample(scale_factor=2), nn.Conv2d(4, 4, 3))
    with pytest.raises(TypeError, match=r"layer '1' of type Upsample"):
        lrcnn.RowCentric(bad, rows=2)


def test_rowcentric_frozen_without_running_stats() -> None:
    """RowCentric(batch_norm="frozen"): a BatchNorm without running statistics is named."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, track_running_stats=False))
    with pytest.raises(ValueError, match="track_running_stats=False"):
        lrcnn.RowCentric(net, rows=2, batch_norm="frozen")


INPUTS = {
    "not-a-tensor": ([[1.0]], TypeError, "input must be a torch.Tensor"),
    "three-dims": (torch.randn(3, 32, 32), ValueError, r"input must be \(N, C, H, W\)"),
    "empty-batch": (torch.randn(0, 3, 32, 32), ValueError, "empty"),
    "nan": (torch.full((1, 3, 32, 32), math.nan), ValueError, "NaN or inf"),
    "inf": (torch.full((1, 3, 32, 32), math.inf), ValueError, "NaN or inf"),
    "wrong-channels": (torch.randn(1, 5, 32, 32), ValueError, "expects 3 channels, gets 5"),
}


@pytest.mark.parametrize("case", sorted(INPUTS))
def test_rowcentric_forward_input(case: str) -> None:
    """RowCentric.forward: wrong type, rank, empty batch, NaN/inf, channels, size."""
    x, exc, match = INPUTS[case]
    with pytest.raises(exc, match=match):
        lrcnn.RowCentric(NET, rows=1, depth=None)(x)


def test_rowcentric_input_too_small() -> None:
    """RowCentric.forward: an input smaller than the trunk's receptive field."""
    net = nn.Sequential(nn.Conv2d(3, 4, 5), nn.ReLU(), nn.Conv2d(4, 4, 5))
    with pytest.raises(ValueError, match="input too small"):
        lrcnn.RowCentric(net, rows=1, depth=None)(torch.randn(1, 3, 7, 7))


def test_rowcentric_rows_beyond_output() -> None:
    """RowCentric.forward: more strips than the segment has output rows."""
    with pytest.raises(ValueError, match="rows must be between 1 and"):
        lrcnn.RowCentric(NET, rows=999, depth=None)(torch.randn(1, 3, 32, 32))


def test_rowcentric_budget_below_floor() -> None:
    """RowCentric(memory_budget=...).forward: a budget below the predicted floor."""
    with pytest.raises(ValueError, match="below the predicted floor"):
        lrcnn.RowCentric(NET, memory_budget="1KiB")(torch.randn(2, 3, 32, 32))


def test_rowcentric_circular_two_phase() -> None:
    """RowCentric(policy="two_phase").forward: circular padding is refused."""
    net = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1, padding_mode="circular"))
    with pytest.raises(ValueError, match="circular"):
        lrcnn.RowCentric(net, rows=2, policy="two_phase", depth=None)(torch.randn(1, 3, 8, 8))


PLAN_ARGS = {
    "shape-three-dims": (dict(input_shape=(3, 32, 32)), ValueError, "input_shape"),
    "shape-zero": (dict(input_shape=(0, 3, 32, 32)), ValueError, "input_shape"),
    "shape-float": (dict(input_shape=(1, 3, 32.0, 32)), ValueError, "input_shape"),
    "rows-zero": (dict(rows=0), ValueError, "rows must be >= 1"),
    "rows-str": (dict(rows="2"), TypeError, "rows must be an int"),
    "policy": (dict(policy="diagonal"), ValueError, "policy must be one of"),
    "batch-norm": (dict(batch_norm="strip"), ValueError, "batch_norm must be one of"),
    "depth": (dict(depth=0), ValueError, "depth must be"),
    "budget": (dict(memory_budget="a lot"), ValueError, "memory_budget must look like"),
}


@pytest.mark.parametrize("case", sorted(PLAN_ARGS))
def test_plan_arguments(case: str) -> None:
    """plan(...): malformed shape, strip count, policy, BatchNorm mode, depth, budget."""
    kw, exc, match = PLAN_ARGS[case]
    kw = {"input_shape": (1, 3, 32, 32), **kw}
    with pytest.raises(exc, match=match):
        lrcnn.plan(NET, **kw)


def test_plan_model_not_module() -> None:
    """plan(...): a model that is not an nn.Module."""
    with pytest.raises(TypeError, match="model must be an nn.Module"):
        lrcnn.plan("vgg", (1, 3, 32, 32))  # type: ignore[arg-type]


@pytest.mark.parametrize("segments", [0, 99, 1.5])
def test_checkpoint_trunk_segments(segments: object) -> None:
    """CheckpointTrunk(...): segment count out of range or not an int."""
    with pytest.raises(ValueError, match="segments must be"):
        CheckpointTrunk(NET, segments)  # type: ignore[arg-type]


STEP_ARGS = {
    "not-an-optimizer": (lambda: lrcnn.StepInBackward(NET.parameters(), dict), TypeError),
    "single-tensor": (
        lambda: lrcnn.StepInBackward(torch.zeros(2, requires_grad=True), torch.optim.SGD, lr=1),
        TypeError,
    ),
    "no-trainable-params": (lambda: lrcnn.StepInBackward([], torch.optim.SGD, lr=1), ValueError),
    "not-tensors": (lambda: lrcnn.StepInBackward([1.0], torch.optim.SGD, lr=1), TypeError),
}


@pytest.mark.parametrize("case", sorted(STEP_ARGS))
def test_step_in_backward_arguments(case: str) -> None:
    """StepInBackward(...): wrong optimizer class, params not an iterable of trainable tensors."""
    fn, exc = STEP_ARGS[case]
    with pytest.raises(exc):
        fn()


def _tied() -> nn.Module:
    net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
    net[1].weight = net[0].weight
    return net


SGD = torch.optim.SGD
CHUNK_ARGS = {
    "zero": (lambda: lrcnn.StepInBackward(NET, SGD, chunk_mib=0, lr=1), ValueError, "chunk_mib"),
    "nan": (lambda: lrcnn.StepInBackward(NET, SGD, chunk_mib=math.nan, lr=1), ValueError, "chunk_mib"),
    "str": (lambda: lrcnn.StepInBackward(NET, SGD, chunk_mib="64", lr=1), TypeError, "chunk_mib"),
    "params-not-model": (
        lambda: lrcnn.StepInBackward(NET.parameters(), SGD, chunk_mib=1, lr=1),
        TypeError,
        "chunk_mib needs the model",
    ),
    "not-elementwise": (
        lambda: lrcnn.StepInBackward(NET, torch.optim.LBFGS, chunk_mib=1),
        TypeError,
        "optimizer_cls must be one of SGD, Adam, AdamW",
    ),
    "tied-weights": (
        lambda: lrcnn.StepInBackward(_tied(), SGD, chunk_mib=1e-5, lr=1),
        ValueError,
        "shared with another module",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CHUNK_ARGS))
def test_step_in_backward_chunk_arguments(case: str) -> None:
    """StepInBackward(chunk_mib=...): not a positive number, no model to find Linear layers in,
    an optimizer that is not elementwise, a chunked weight shared with another module."""
    fn, exc, msg = CHUNK_ARGS[case]
    with pytest.raises(exc, match=msg):
        fn()
    assert all("forward" not in m.__dict__ for m in NET.modules())  # nothing patched


def test_step_in_backward_nan_gradient() -> None:
    """StepInBackward: a NaN loss stops before the weights are written."""
    net = nn.Linear(3, 1)
    before = net.weight.detach().clone()
    lrcnn.StepInBackward(net.parameters(), torch.optim.SGD, lr=0.1)
    with pytest.raises(ValueError, match="non-finite gradient"):
        (net(torch.randn(2, 3)).sum() * math.nan).backward()
    assert torch.equal(net.weight.detach(), before)


@pytest.mark.parametrize(
    ("kw", "name"),
    [({"threads": 0}, "threads"), ({"seeds": 0}, "seeds"), ({"repeats": 1}, "repeats")],
)
def test_run_bench_arguments(kw: dict, name: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """run_bench(...): thread, seed and repeat counts out of range, before any work."""
    with pytest.raises(ValueError, match=name):
        run_bench(tmp_path, quick=True, **kw)


def test_cli_bench_bad_threads(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """lrcnn bench --threads 0: refused before any work."""
    with pytest.raises(SystemExit) as e:
        main(["bench", "--quick", "--threads", "0", "--out", str(tmp_path)])
    assert e.value.code == 2 and not any(tmp_path.iterdir())


def test_cli_unknown_option() -> None:
    """lrcnn bench --bogus: argparse exits with usage (status 2)."""
    with pytest.raises(SystemExit) as e:
        main(["bench", "--bogus"])
    assert e.value.code == 2
