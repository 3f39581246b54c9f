"""Reference models: an MLP (LeNet-300-100 shape), a small CNN for 8x8 digits, a 1-D CNN with
BatchNorm for MNIST-1D and a small ResNet with BatchNorm for 8x8 digits.

Any `nn.Module` classifier works with `lnpt` (torchvision ResNet/VGG included); these are the
benchmark's students and teachers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["MLP", "CNN1d", "SmallCNN", "SmallResNet"]


class MLP(nn.Sequential):
    """Linear-ReLU stack; its penultimate features are the input of the last Linear."""

    def __init__(
        self, in_features: int = 64, hidden: Sequence[int] = (300, 100), num_classes: int = 10
    ) -> None:
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(
                f"hidden must be a non-empty sequence of positive widths, got {hidden!r}"
            )
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, int(h)), nn.ReLU()]
            width = int(h)
        layers.append(nn.Linear(width, num_classes))
        super().__init__(*layers)


class SmallCNN(nn.Module):
    """conv-ReLU x2, max-pool, conv-ReLU, global average pool, Linear (for 1x8x8 digits)."""

    def __init__(
        self, channels: Sequence[int] = (32, 64, 128), num_classes: int = 10, in_channels: int = 1
    ) -> None:
        super().__init__()
        if len(channels) != 3 or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be three positive widths, got {channels!r}")
        c1, c2, c3 = (int(c) for c in channels)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(c1, c2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x):  # noqa: ANN001, ANN201 - nn.Module signature
        return self.fc(self.pool(self.features(x)).flatten(1))


def _widths(channels: Sequence[int], n: int) -> tuple[int, ...]:
    if len(channels) != n or any(isinstance(c, bool) or int(c) < 1 for c in channels):
        raise ValueError(f"channels must be {n} positive widths, got {channels!r}")
    return tuple(int(c) for c in channels)


class CNN1d(nn.Module):
    """1-D CNN with BatchNorm for (N, 1, L) signals such as MNIST-1D (L = 40).

    [conv5-BN-ReLU, max-pool 2], [conv3-BN-ReLU, max-pool 2], conv3-BN-ReLU, then the flattened map
    (the penultimate features, the input of `fc`) and a Linear head. Flattening (not global pooling)
    keeps the position information MNIST-1D's classes depend on.
    """

    def __init__(
        self,
        channels: Sequence[int] = (32, 64, 64),
        num_classes: int = 10,
        length: int = 40,
        in_channels: int = 1,
    ) -> None:
        super().__init__()
        c1, c2, c3 = _widths(channels, 3)
        if isinstance(length, bool) or not isinstance(length, int) or length < 4:
            raise ValueError(f"length must be an int >= 4, got {length!r}")
        self.features = nn.Sequential(
            nn.Conv1d(in_channels, c1, 5, padding=2, bias=False),
            nn.BatchNorm1d(c1),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm1d(c2),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(c2, c3, 3, padding=1, bias=False),
            nn.BatchNorm1d(c3),
            nn.ReLU(),
        )
        self.fc = nn.Linear(c3 * (length // 4), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).flatten(1))


class _Block(nn.Module):
    """ResNet basic block: conv3-BN-ReLU-conv3-BN plus (1x1-conv-BN) shortcut, then ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)
            )
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet-8 with BatchNorm (ResNet-20's CIFAR layout, one block per stage) for small images.

    stem conv3-BN-ReLU, three stages of one basic block (strides 1, 2, 2), global average pool,
    Linear head. On 8x8 digits the stages see 8x8, 4x4 and 2x2 maps.
    """

    def __init__(
        self, channels: Sequence[int] = (16, 32, 64), num_classes: int = 10, in_channels: int = 1
    ) -> None:
        super().__init__()
        c1, c2, c3 = _widths(channels, 3)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, 1, 1, bias=False), nn.BatchNorm2d(c1), nn.ReLU()
        )
        self.layer1 = _Block(c1, c1, 1)
        self.layer2 = _Block(c1, c2, 2)
        self.layer3 = _Block(c2, c3, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c3, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(self.pool(x).flatten(1))
