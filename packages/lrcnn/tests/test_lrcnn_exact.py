"""Exactness: RowCentric's outputs and every gradient match the unwrapped model."""

from __future__ import annotations

import copy

import lrcnn
import pytest
import torch
import torchvision
from lrcnn.models import small_cnn, small_vgg
from torch import nn
from torch.utils.checkpoint import checkpoint

POLICIES = ["overlap", "two_phase"]
# torch's own note when the reference model runs padding="same" with an even kernel
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")


def _rel(a: torch.Tensor, b: torch.Tensor, floor: float) -> float:
    return float((a - b).abs().max()) / max(float(a.abs().max()), floor)


def compare(
    model: nn.Module,
    shape,
    *,
    rows,
    policy,
    dtype=torch.float64,
    depth=None,
    train=True,
    x_grad=True,
    seed=0,
    **kw,
) -> float:
    """Max relative error over output, input gradient, parameter gradients and BN buffers."""
    torch.manual_seed(seed)
    model = model.to(dtype).train(train)
    for p in model.parameters():
        p.grad = None
    ref = copy.deepcopy(model)
    x = torch.randn(*shape, dtype=dtype)
    x1 = x.clone().requires_grad_(x_grad)
    x2 = x.clone().requires_grad_(x_grad)
    y1 = ref(x1)
    g = torch.randn_like(y1)
    y1.backward(g)
    rc = lrcnn.RowCentric(model, rows=rows, policy=policy, depth=depth, **kw)
    y2 = rc(x2)
    y2.backward(g)
    # A bias feeding a train-mode BatchNorm has a gradient of exactly zero in theory; its
    # float rounding noise is compared against the model's largest gradient instead.
    scale = max(float(p.grad.abs().max()) for p in ref.parameters())
    errs = [_rel(y1.detach(), y2.detach(), 1e-30)]
    if x_grad:
        errs.append(_rel(x1.grad, x2.grad, 1e-30))
    for (n, p1), p2 in zip(ref.named_parameters(), model.parameters()):
        assert p2.grad is not None, n
        big = float(p1.grad.abs().max()) >= 1e-4 * scale
        errs.append(_rel(p1.grad, p2.grad, 1e-30) if big else _rel(p1.grad, p2.grad, scale))
    for b1, b2 in zip(ref.buffers(), model.buffers()):
        errs.append(_rel(b1.double(), b2.double(), 1e-30))
    return max(errs)


def geometry_net() -> nn.Sequential:
    """Odd kernels, stride 2, dilation 2, all padding modes, ceil_mode max and avg pooling."""
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(4, 5, 5, stride=2, padding=2, padding_mode="reflect"),
        nn.GELU(),
        nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
        nn.Conv2d(5, 4, 3, padding=2, dilation=2, padding_mode="replicate"),
        nn.Tanh(),
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.Conv2d(4, 4, (3, 2), padding="same"),
        nn.SiLU(),
        nn.AvgPool2d(2, ceil_mode=True),
    )


@pytest.mark.parametrize("policy", POLICIES)
def test_geometry_every_strip_count_float64(policy: str) -> None:
    net = geometry_net()
    shape = (2, 3, 53, 29)  # odd sizes
    h_out = lrcnn.TrunkGraph(list(net.named_children())).shapes(shape[1:])[-1][1]
    assert h_out >= 4
    for rows in range(1, h_out + 1):  # strip counts from 1 to the number of output rows
        assert compare(copy.deepcopy(net), shape, rows=rows, policy=policy) < 1e-10, rows


def test_circular_padding_overlap() -> None:
    net = nn.Sequential(
        nn.Conv2d(2, 3, 3, padding=1, padding_mode="circular"),
        nn.ReLU(),
        nn.Conv2d(3, 3, 3, stride=2, padding=1, padding_mode="circular"),
    )
    for rows in (1, 3, 6):
        assert compare(copy.deepcopy(net), (1, 2, 11, 9), rows=rows, policy="overlap") < 1e-10


@pytest.mark.parametrize("policy", POLICIES)
def test_float32_batchnorm_residual(policy: str) -> None:
    for rows in (1, 2, 3):
        err = compare(
            small_cnn(width=4), (2, 3, 21, 19), rows=rows, policy=policy, dtype=torch.float32
        )
        assert err <= 1e-5, (rows, err)


@pytest.mark.parametrize("policy", POLICIES)
def test_batchnorm_train_mode_exact_and_running_stats(policy: str) -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, stride=2, padding=1),
        nn.BatchNorm2d(4, momentum=None),
        nn.ReLU(inplace=True),
    )
    for rows in (1, 2, 4, 10):
        assert compare(copy.deepcopy(net), (3, 3, 19, 13), rows=rows, policy=policy) < 1e-10


def test_batchnorm_eval_mode() -> None:
    net = small_cnn(width=4)
    assert compare(net, (2, 3, 24, 24), rows=3, policy="overlap", train=False) < 1e-10


@pytest.mark.parametrize("policy", POLICIES)
def test_torchvision_resnet_residual_downsampling(policy: str) -> None:
    # the whole torchvision ResNet, its stem row-centric
    net = torchvision.models.resnet18(num_classes=3)
    assert compare(net, (2, 3, 45, 37), rows=3, policy=policy, depth=4) < 1e-10
    # unmodified BasicBlocks, the second with a strided 1x1 downsample shortcut
    r = torchvision.models.resnet18(num_classes=3)
    seg = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1[0], r.layer2[0])
    assert compare(seg, (2, 3, 41, 33), rows=3, policy=policy) < 1e-10


def test_torchvision_bottleneck_float32() -> None:
    # float32 rounding differences are amplified chaotically by ResNet-50's deep 2x2 BatchNorms,
    # so compare the (unmodified) stem + first Bottleneck on their own
    r = torchvision.models.resnet50(num_classes=3)
    net = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool, r.layer1[0], r.layer1[1])
    err = compare(net, (2, 3, 35, 33), rows=2, policy="overlap", dtype=torch.float32)
    assert err <= 1e-5


@pytest.mark.parametrize("policy", POLICIES)
def test_torchvision_vgg_inplace_relu(policy: str) -> None:
    net = small_vgg("A", num_classes=3)
    assert any(getattr(m, "inplace", False) for m in net.features)
    err = compare(net, (1, 3, 67, 45), rows=3, policy=policy, depth=8, dtype=torch.float32)
    assert err <= 1e-5


def test_whole_trunk_and_user_residual() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        lrcnn.Residual(nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.ReLU())),
        lrcnn.Residual(
            nn.Sequential(nn.Conv2d(4, 6, 3, stride=2, padding=1)),
            nn.Conv2d(4, 6, 1, stride=2),
            nn.LeakyReLU(),
        ),
        nn.Flatten(),
        nn.Linear(6 * 8 * 7, 2),
    )
    for policy in POLICIES:
        assert compare(copy.deepcopy(net), (2, 3, 15, 13), rows=4, policy=policy) < 1e-10


def test_checkpoint_composition() -> None:
    net = small_cnn(width=4, batch_norm=False)
    # row-centric first units, checkpoint_sequential on the rest
    assert (
        compare(
            copy.deepcopy(net),
            (2, 3, 24, 24),
            rows=3,
            policy="overlap",
            depth=3,
            checkpoint_segments=2,
        )
        < 1e-10
    )
    # RowCentric inside torch.utils.checkpoint
    torch.manual_seed(0)
    net = net.double()
    ref = copy.deepcopy(net)
    rc = lrcnn.RowCentric(net, rows=2, depth=4)
    x = torch.randn(2, 3, 24, 24, dtype=torch.float64, requires_grad=True)
    ref(x).sum().backward()
    g_ref = x.grad.clone()
    x.grad = None
    checkpoint(rc, x, use_reentrant=False).sum().backward()
    assert _rel(g_ref, x.grad, 1e-30) < 1e-10
    for p1, p2 in zip(ref.parameters(), net.parameters()):
        assert _rel(p1.grad, p2.grad, 1e-12) < 1e-10


def test_dropout_tied_to_absolute_rows() -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.Dropout(0.3),
        nn.ReLU(),
        nn.Conv2d(8, 4, 3, padding=1),
        nn.Dropout2d(0.5),
    )
    x = torch.randn(2, 3, 17, 11, dtype=torch.float64)
    net = net.double()
    results = []
    for policy in POLICIES:
        for rows in (1, 4, 17):
            for p in net.parameters():
                p.grad = None
            torch.manual_seed(5)
            xi = x.clone().requires_grad_()
            y = lrcnn.RowCentric(net, rows=rows, policy=policy, depth=None)(xi)
            y.square().sum().backward()
            results.append((y.detach(), xi.grad, net[0].weight.grad.clone()))
    for y, gx, gw in results[1:]:
        assert torch.allclose(y, results[0][0], rtol=1e-12, atol=1e-12)
        assert torch.allclose(gx, results[0][1], rtol=1e-10, atol=1e-12)
        assert torch.allclose(gw, results[0][2], rtol=1e-10, atol=1e-12)
    # the element-wise dropout drops about 30% (checked on the first layer's mask)
    torch.manual_seed(1)
    h = lrcnn.RowCentric(nn.Sequential(nn.Dropout(0.3)), rows=4, depth=None)(
        torch.ones(4, 8, 40, 40)
    )
    assert 0.27 < float((h == 0).double().mean()) < 0.33
    # eval mode: dropout off, exact against the unwrapped model
    assert compare(net, (2, 3, 17, 11), rows=4, policy="overlap", train=False) < 1e-10


def test_masked_model_trains_identically() -> None:
    """A model whose weights were zeroed by a maskloop mask: same step with and without RowCentric."""
    from maskloop import MaskedTraining, WeightMask, prunable_parameters

    torch.manual_seed(0)
    net = small_cnn(width=4).double()
    params = prunable_parameters(net)
    mask = WeightMask.from_scores({k: v.abs() for k, v in params.items()}, 0.6)
    mask.apply_(net)
    ref = copy.deepcopy(net)
    x = torch.randn(4, 3, 20, 20, dtype=torch.float64)
    y = torch.randint(0, 10, (4,))
    outs = []
    for model, wrap in ((ref, False), (net, True)):
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        with MaskedTraining(model, mask, opt):
            run = lrcnn.RowCentric(model, rows=3, depth=5) if wrap else model
            for _ in range(2):
                opt.zero_grad()
                nn.functional.cross_entropy(run(x), y).backward()
                opt.step()
        outs.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*outs):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)
    w = dict(net.named_parameters())
    for name, m in mask.items():
        assert bool((w[name][~m] == 0).all())


def test_saved_memory_is_strip_sized() -> None:
    """Bytes autograd keeps for backward shrink to the segment input plus the rest of the model."""
    net = small_cnn(width=8, batch_norm=False)
    x = torch.randn(2, 3, 64, 64)

    def saved_bytes(model: nn.Module) -> int:
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            model(x).sum()
        return sum(v for k, v in seen.items() if k != x.untyped_storage().data_ptr())

    plain = saved_bytes(net)
    rc = saved_bytes(lrcnn.RowCentric(net, rows=4, depth=None))
    assert rc < 0.3 * plain


@pytest.mark.parametrize("policy", POLICIES)
def test_dilated_max_pool_and_divisor_override(policy: str) -> None:
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, stride=2, padding=1, dilation=2),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.AvgPool2d(3, 2, 1, divisor_override=5),
    )
    for rows in (1, 2, 5):
        assert compare(copy.deepcopy(net), (2, 3, 31, 23), rows=rows, policy=policy) < 1e-10


def test_float32_geometry_net() -> None:
    """The odd-size / stride / dilation / padding-mode / ceil_mode net in float32 (<= 1e-5)."""
    for policy in POLICIES:
        for rows in (1, 3, 4):
            err = compare(
                geometry_net(), (2, 3, 53, 29), rows=rows, policy=policy, dtype=torch.float32
            )
            assert err <= 1e-5, (policy, rows, err)
