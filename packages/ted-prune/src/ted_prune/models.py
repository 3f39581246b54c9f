"""Reference classifiers for digits. Both end in an `nn.Linear` head whose input is the
penultimate feature vector TED reads (`maskloop.FeatureHook` default)."""

from __future__ import annotations

from torch import nn

__all__ = ["DigitsCNN", "DigitsMLP"]


class DigitsMLP(nn.Sequential):
    """64 -> hidden -> hidden -> 10 MLP with ReLU."""

    def __init__(self, hidden: int = 128, num_classes: int = 10) -> None:
        super().__init__(
            nn.Flatten(),
            nn.Linear(64, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )


class DigitsCNN(nn.Sequential):
    """A small CNN for (1, 8, 8) digits: two 3x3 conv blocks, a 64-unit layer, a linear head."""

    def __init__(self, width: int = 16, num_classes: int = 10) -> None:
        super().__init__(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 16, 64),
            nn.ReLU(),
            nn.Linear(64, num_classes),
        )
