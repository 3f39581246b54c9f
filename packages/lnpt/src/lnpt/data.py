"""Built-in data, split teacher / student / test: scikit-learn's digits (1,797 real 8x8 images) and
MNIST-1D (Greydanus 2020; 4,000 + 1,000 signals of length 40, generated offline by the `mnist1d`
package, never downloaded).

The benchmark's protocol: the teacher is trained with labels on one half of the training data, the
student is pruned and trained on the other half, without labels in the label-free arm.
`DigitsSplit.validation()` carves a validation part out of the student's half (for choosing options;
the test part is never used for that). `InputsOnly` wraps a tensor of inputs as a dataset with no
labels at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

__all__ = [
    "VALIDATION_READINGS",
    "DigitsSplit",
    "InputsOnly",
    "load_digits_split",
    "load_mnist1d_split",
]

# How `DigitsSplit.validation` carves a validation split out of the non-test data.
VALIDATION_READINGS = ("student-quarter", "teacher-held-out")


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
    """Tensors of the three parts (teacher / student / test) of a labelled data set.

    For digits, `image=True` gives (N, 1, 8, 8) inputs, else (N, 64); MNIST-1D gives (N, 1, 40).
    """

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

    def validation(
        self, fraction: float = 0.25, seed: int = 0, reading: str = "student-quarter"
    ) -> DigitsSplit:
        """A validation split of the non-test data; the real test part is dropped, so options
        chosen on it never see the test set. `reading` (one of `VALIDATION_READINGS`):

        - "student-quarter" (the default; every validation check before session 31): a stratified
          `fraction` of the student's half moved into "test" (digits: the student trains on 539,
          is read on 180; the teacher keeps its whole half, 718).
        - "teacher-held-out" (session 31): the test protocol's student sizes. The student keeps
          its whole half (digits: 719, the very samples the test protocol trains and scores on);
          the read set ("test") is a stratified sample of the *teacher's* half as large as the
          test part (digits: 360), and the teacher trains on the rest of its half (digits: 358
          instead of 718). Reconstruction: with N_t + N_s + N_test samples there is no room for
          the student's N_s and a read set of N_test besides a full teacher half, so the teacher
          gives up N_test samples: teacher N_t - N_test, student N_s, read N_test, all disjoint
          from the test part and from each other. `fraction` is not used.

        `seed` seeds the stratified draw. Raises ValueError naming `fraction` or `reading`.
        """
        from sklearn.model_selection import train_test_split

        if reading not in VALIDATION_READINGS:
            raise ValueError(f"reading must be one of {VALIDATION_READINGS}, got {reading!r}")
        if reading == "teacher-held-out":
            size = int(self.test_y.shape[0])
            if not 0 < size < self.teacher_y.shape[0]:
                raise ValueError(
                    f"reading 'teacher-held-out' needs a test part smaller than the teacher's "
                    f"half, got {size} test and {self.teacher_y.shape[0]} teacher samples"
                )
            idx = np.arange(self.teacher_y.shape[0])
            keep, read = train_test_split(
                idx, test_size=size, random_state=seed, stratify=self.teacher_y.numpy()
            )
            keep, read = torch.from_numpy(np.sort(keep)), torch.from_numpy(np.sort(read))
            return DigitsSplit(
                self.teacher_x[keep],
                self.teacher_y[keep],
                self.student_x,
                self.student_y,
                self.teacher_x[read],
                self.teacher_y[read],
            )
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
        idx = np.arange(self.student_y.shape[0])
        tr, va = train_test_split(
            idx, test_size=fraction, random_state=seed, stratify=self.student_y.numpy()
        )
        tr, va = torch.from_numpy(np.sort(tr)), torch.from_numpy(np.sort(va))
        return DigitsSplit(
            self.teacher_x,
            self.teacher_y,
            self.student_x[tr],
            self.student_y[tr],
            self.student_x[va],
            self.student_y[va],
        )


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


_MNIST1D: dict[int | None, dict[str, np.ndarray]] = {}


def _mnist1d_arrays(num_samples: int | None = None) -> dict[str, np.ndarray]:
    """MNIST-1D's default data set (or `num_samples` signals), generated once per process by
    `mnist1d.data.make_dataset(get_dataset_args())`; its download helpers are never called."""
    if num_samples not in _MNIST1D:
        import random

        try:
            from mnist1d.data import get_dataset_args, make_dataset
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "MNIST-1D needs the `mnist1d` package: pip install 'lnpt[bench]'"
            ) from err
        args = get_dataset_args()
        if num_samples is not None:
            args.num_samples = num_samples
        np_state, py_state = np.random.get_state(), random.getstate()
        try:  # make_dataset reseeds numpy and random globally; leave the caller's streams alone
            d = make_dataset(args)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        _MNIST1D[num_samples] = {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}
    return _MNIST1D[num_samples]


def load_mnist1d_split(seed: int = 0, num_samples: int | None = None) -> DigitsSplit:
    """MNIST-1D's 4,000 training signals halved teacher / student (stratified, by `seed`), and its
    fixed 1,000-signal test set; inputs are (N, 1, 40) float32 (standardised by the generator).

    `num_samples` (default: the package's 5,000) generates a smaller set, split 80 / 20 the same way.
    """
    from sklearn.model_selection import train_test_split

    if num_samples is not None and (
        isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 100
    ):
        raise ValueError(f"num_samples must be an int >= 100 or None, got {num_samples!r}")
    d = _mnist1d_arrays(num_samples)
    x = d["x"].astype(np.float32)
    y = d["y"].astype(np.int64)
    x_t, x_s, y_t, y_s = train_test_split(x, y, test_size=0.5, random_state=seed, stratify=y)

    def t(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(1)

    return DigitsSplit(
        t(x_t),
        torch.from_numpy(y_t),
        t(x_s),
        torch.from_numpy(y_s),
        t(d["x_test"].astype(np.float32)),
        torch.from_numpy(d["y_test"].astype(np.int64)),
    )
