"""The learning-gap diagnostic the paper rests on.

While a pruned student trains, record per epoch the weight distance ||theta_e - theta_0||, the learning
gap LG_e (1) on held-out inputs and the test accuracy, then report Spearman(metric, accuracy). The paper
predicts that the gap tracks accuracy (a strongly *negative* rank correlation: a smaller gap, a better
student) while the weight distance does not.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from maskloop import Callback, LoopState, evaluate
from scipy.stats import spearmanr
from torch import nn

from lnpt.learning_gap import LearningGap

__all__ = ["LearningGapDiagnostic", "spearman"]


def spearman(metric: Iterable[float], accuracy: Iterable[float]) -> float:
    """Spearman rank correlation; NaN when either series is constant or shorter than 3."""
    a = np.asarray(list(metric), dtype=float)
    b = np.asarray(list(accuracy), dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"metric and accuracy must have equal lengths, got {a.size} and {b.size}")
    if a.size < 3 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return math.nan
    return float(spearmanr(a, b).statistic)


class LearningGapDiagnostic(Callback):
    """Per-epoch ||theta_e - theta_0||, held-out LG and test accuracy (a `maskloop.Callback`).

    `theta_0` is captured at construction (all student parameters). `held_out` is a loader of inputs
    (labels, if any, ignored); `test_data` yields (inputs, labels) and is used for accuracy only. With
    a linear adaptor, the adaptor is refitted by least squares on the held-out inputs at each record
    (so the gap is also defined for students trained with labels). Works with `maskloop.fit` and
    `lnpt.LabelFreeTrainer`, or call `record()` yourself.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        held_out: Iterable[Any],
        test_data: Iterable[Any],
        **gap_options: Any,
    ) -> None:
        gap_options.setdefault("kd_weight", 0.0)
        self.gap = LearningGap(student, teacher, **gap_options)
        self.student = student
        self.held_out = held_out
        self.test_data = test_data
        self.theta0 = [p.detach().clone() for p in student.parameters()]
        self.rows: list[dict[str, float]] = []

    @torch.no_grad()
    def weight_distance(self) -> float:
        """||theta - theta_0||_2 over all student parameters."""
        sq = sum(
            float((p.detach() - p0).pow(2).sum())
            for p, p0 in zip(self.student.parameters(), self.theta0)
        )
        return math.sqrt(sq)

    def record(self, epoch: float | None = None) -> dict[str, float]:
        """Measure and append one row (epoch, weight_distance, learning_gap, test_accuracy)."""
        from lnpt.features import iter_inputs

        was = self.student.training
        self.student.eval()
        try:
            xs = list(iter_inputs(self.held_out, "held_out"))
            self.gap.setup(xs)
        finally:
            self.student.train(was)
        row = {
            "epoch": float(len(self.rows) if epoch is None else epoch),
            "weight_distance": self.weight_distance(),
            "learning_gap": self.gap.feature_gap(xs),
            "test_accuracy": evaluate(self.student, self.test_data)["accuracy"],
        }
        self.rows.append(row)
        return row

    def on_fit_start(self, state: LoopState) -> None:
        if not self.rows:
            self.record(epoch=0.0)

    def on_epoch_end(self, state: LoopState) -> None:
        self.record(epoch=float(state.epoch))

    def series(self, key: str) -> list[float]:
        """The recorded values of `key`."""
        return [r[key] for r in self.rows]

    def correlations(self) -> dict[str, float]:
        """Spearman(weight distance, accuracy) and Spearman(learning gap, accuracy)."""
        acc = self.series("test_accuracy")
        return {
            "weight_distance": spearman(self.series("weight_distance"), acc),
            "learning_gap": spearman(self.series("learning_gap"), acc),
        }
