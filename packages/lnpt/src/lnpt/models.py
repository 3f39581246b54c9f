"""Reference models for digits: an MLP (LeNet-300-100 shape) and a small CNN for 8x8 images.

Any `nn.Module` classifier works with `lnpt` (torchvision ResNet/VGG included); these are the
benchmark's students and teachers.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

__all__ = ["MLP", "SmallCNN"]


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
