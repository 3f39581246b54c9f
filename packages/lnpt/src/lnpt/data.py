"""Built-in data: scikit-learn's digits (1,797 real 8x8 images), split teacher / student / test.

The benchmark's protocol: the teacher is trained with labels on one half of the training images, the
student is pruned and trained on the other half, without labels in the label-free arm. `InputsOnly`
wraps a tensor of inputs as a dataset with no labels at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

__all__ = ["DigitsSplit", "InputsOnly", "load_digits_split"]


class InputsOnly(Dataset):
    """A dataset of inputs only: `ds[i]` is a tensor, so a DataLoader yields input batches."""

    def __init__(self, inputs: torch.Tensor) -> None:
        if not isinstance(inputs, torch.Tensor) or inputs.ndim < 1 or inputs.shape[0] == 0:
            raise ValueError(f"inputs must be a non-empty tensor, got {inputs!r:.80}")
        self.inputs = inputs

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.inputs[i]


@dataclass
class DigitsSplit:
    """Tensors of the three parts; `image=True` gives (N, 1, 8, 8) inputs, else (N, 64)."""

    teacher_x: torch.Tensor
    teacher_y: torch.Tensor
    student_x: torch.Tensor
    student_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor

    def loader(
        self,
        part: str,
        batch_size: int = 64,
        shuffle: bool = False,
        labels: bool = True,
        generator: torch.Generator | None = None,
    ) -> DataLoader:
        """A DataLoader over `part` in {"teacher", "student", "test"}; labels=False gives inputs only."""
        if part not in ("teacher", "student", "test"):
            raise ValueError(f"part must be 'teacher', 'student' or 'test', got {part!r}")
        x, y = getattr(self, f"{part}_x"), getattr(self, f"{part}_y")
        ds = TensorDataset(x, y) if labels else InputsOnly(x)
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=generator)


def load_digits_split(
    seed: int = 0, test_fraction: float = 0.2, image: bool = False
) -> DigitsSplit:
    """Digits scaled to [0, 1], a stratified test split, and the rest halved teacher / student."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
    d = load_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=test_fraction, random_state=seed, stratify=y
    )
    x_t, x_s, y_t, y_s = train_test_split(
        x_tr, y_tr, test_size=0.5, random_state=seed, stratify=y_tr
    )

    def t(a: np.ndarray) -> torch.Tensor:
        out = torch.from_numpy(a)
        return out.reshape(-1, 1, 8, 8) if image and out.ndim == 2 else out

    return DigitsSplit(
        t(x_t),
        torch.from_numpy(y_t),
        t(x_s),
        torch.from_numpy(y_s),
        t(x_te),
        torch.from_numpy(y_te),
    )
