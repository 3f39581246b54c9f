"""Reference classifiers: digits (MLP, CNN) and a mean-pooling text classifier over a pretrained
encoder. Each ends in an `nn.Linear` head whose input is the penultimate feature vector TED reads
(`maskloop.FeatureHook` default)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["DigitsCNN", "DigitsMLP", "MeanPoolClassifier"]


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


class MeanPoolClassifier(nn.Module):
    """A transformer encoder (e.g. MiniLM from `transformers.AutoModel`), the mean of its last
    hidden states over the attention mask (the sentence-transformers pooling), and a linear head."""

    def __init__(self, encoder: nn.Module, hidden_size: int, num_classes: int = 2) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        return self.head((h * m).sum(1) / m.sum(1))
