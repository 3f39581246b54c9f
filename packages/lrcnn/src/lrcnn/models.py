"""Reference models: a small CNN for the demo and tests, torchvision VGG-16 / ResNet-50 for the bench.

All are built from their definitions with random initialisation; nothing is downloaded.
"""

from __future__ import annotations

import torch
from torch import nn

from lrcnn.graph import Residual

__all__ = ["resnet50", "small_cnn", "small_vgg", "vgg16"]


def small_cnn(num_classes: int = 10, width: int = 16, batch_norm: bool = True) -> nn.Sequential:
    """A small VGG-style CNN with a residual block, for the demo and tests (any input >= 16x16)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")

    def bn(c: int) -> nn.Module:
        return nn.BatchNorm2d(c) if batch_norm else nn.Identity()

    w = width
    return nn.Sequential(
        nn.Conv2d(3, w, 3, padding=1),
        bn(w),
        nn.ReLU(inplace=True),
        nn.Conv2d(w, w, 3, padding=1),
        bn(w),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2, ceil_mode=True),
        Residual(
            nn.Sequential(
                nn.Conv2d(w, 2 * w, 3, stride=2, padding=1),
                bn(2 * w),
                nn.ReLU(),
                nn.Conv2d(2 * w, 2 * w, 3, padding=1),
                bn(2 * w),
            ),
            nn.Sequential(nn.Conv2d(w, 2 * w, 1, stride=2), bn(2 * w)),
            nn.ReLU(),
        ),
        nn.Conv2d(2 * w, 2 * w, 3, padding=2, dilation=2),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * w, num_classes),
    )


def _reset(model: nn.Module) -> nn.Module:
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model


def small_vgg(cfg: str = "A", num_classes: int = 10) -> nn.Module:
    """torchvision VGG (unmodified trunk, in-place ReLUs) with a small linear classifier.

    The trunk is torchvision's ``make_layers`` for the config; only the 25088x4096 classifier is
    replaced by one Linear so tests stay light.
    """
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.vgg.VGG(
            torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs[cfg]), num_classes
        )
        model.classifier = nn.Linear(512 * 7 * 7, num_classes)
    return _reset(model.to_empty(device="cpu"))


def vgg16(num_classes: int = 1000) -> nn.Module:
    """torchvision VGG-16, random initialisation."""
    import torchvision

    return torchvision.models.vgg16(num_classes=num_classes)


def resnet50(num_classes: int = 1000) -> nn.Module:
    """torchvision ResNet-50, random initialisation."""
    import torchvision

    return torchvision.models.resnet50(num_classes=num_classes)
