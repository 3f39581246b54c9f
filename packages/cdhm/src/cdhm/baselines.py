"""What CDHM is compared against: source-only CNN, DANN, MK-MMD, Deep CORAL, the CDHM ablations
and a physics reference.

The neural baselines share the estimator interface of :class:`cdhm.CDHMClassifier` and the same
:class:`cdhm.models.SegmentEncoder`; a GRU summarises the T segment features into one feature
vector h (the analogue of s_T), on which the classifier and the alignment act:

* source-only: CE(y, f(h)) on source only;
* DANN (Ganin et al., 2016): + lambda * BCE(d, D(GRL(h))), Ganin schedule on the GRL;
* MK-MMD (DAN, Long et al., 2015): + lambda * MMD^2_k(h_s, h_t), multi-bandwidth Gaussian kernels;
* Deep CORAL (Sun & Saenko, 2016): + lambda * ||C_s - C_t||_F^2 / (4 d^2).

The physics reference needs no training on vibration waveforms: an order-normalised envelope
spectrum (see :func:`cdhm.data.envelope_order_spectrum`) and a logistic regression fit on source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from cdhm.causal_hmm import CDHMClassifier
from cdhm.data import envelope_order_spectrum
from cdhm.estimator import DomainAdaptiveClassifier, _check_float, _check_int
from cdhm.models import (
    SegmentEncoder,
    check_signals,
    coral_loss,
    ganin_lambda,
    grad_reverse,
    mk_mmd,
)

__all__ = [
    "ABLATIONS",
    "AlignedCNNClassifier",
    "PhysicsReference",
    "make_ablation",
]


class _CNNGRU(nn.Module):
    def __init__(self, segment_length: int, n_classes: int, hidden: int = 64) -> None:
        super().__init__()
        self.encoder = SegmentEncoder(segment_length, 64)
        self.gru = nn.GRU(64, hidden, batch_first=True)
        self.classifier = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )
        self.domain_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.gru(self.encoder(x))[1][-1]


class AlignedCNNClassifier(DomainAdaptiveClassifier):
    """CNN + GRU classifier with an optional feature alignment: None, 'dann', 'mmd' or 'coral'.

    ``alignment=None`` is the source-only baseline (``target_x`` only feeds batch-norm nothing:
    the target is ignored entirely).
    """

    def __init__(
        self,
        alignment: str | None = None,
        lambda_align: float = 0.3,
        hidden: int = 64,
        n_segments: int = 8,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        standardize: str = "window",
        classes: list | tuple | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        super().__init__(
            n_segments, epochs, batch_size, lr, weight_decay, standardize, classes, seed, progress
        )
        self.alignment = alignment
        self.lambda_align = lambda_align
        self.hidden = hidden

    def _check_params(self) -> None:
        super()._check_params()
        if self.alignment not in (None, "dann", "mmd", "coral"):
            raise ValueError(
                f"alignment must be None, 'dann', 'mmd' or 'coral', got {self.alignment!r}"
            )
        _check_float("lambda_align", self.lambda_align)
        _check_int("hidden", self.hidden, 4)

    def _build(self, segment_length: int, n_classes: int, n_conditions: int) -> nn.Module:
        return _CNNGRU(segment_length, n_classes, self.hidden)

    def _step(self, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict]:
        net: _CNNGRU = self.net_  # type: ignore[assignment]
        xs, ys = batch["xs"], batch["ys"]
        use_target = self.alignment is not None and "xt" in batch
        x = torch.cat([xs, batch["xt"]]) if use_target else xs
        h = net.features(x)
        ns = len(xs)
        logits = net.classifier(h[:ns])
        ce = F.cross_entropy(logits, ys)
        loss, logs = ce, {"ce": float(ce.detach())}
        logs["source_acc"] = float((logits.detach().argmax(-1) == ys).float().mean())
        if use_target:
            lam = ganin_lambda(progress)
            if self.alignment == "dann":
                d = net.domain_head(grad_reverse(h, lam)).squeeze(-1)
                target = (torch.arange(len(x)) >= ns).float()
                align = F.binary_cross_entropy_with_logits(d, target)
                loss = loss + self.lambda_align * align
                logs["domain_acc"] = float(((d.detach() > 0).float() == target).float().mean())
                logs["grl_lambda"] = lam
            elif self.alignment == "mmd":
                align = mk_mmd(h[:ns], h[ns:])
                loss = loss + self.lambda_align * lam * align
            else:
                align = coral_loss(h[:ns], h[ns:])
                loss = loss + self.lambda_align * lam * align
            logs["align"] = float(align.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        net: _CNNGRU = self.net_  # type: ignore[assignment]
        return net.classifier(net.features(x))

    def _features(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net_.features(x)  # type: ignore[union-attr]


#: CDHM ablations of the spec: name -> keyword overrides of CDHMClassifier.
ABLATIONS: dict[str, dict[str, Any]] = {
    "CDHM-entangled": {"entangled": True, "lambda_c": 0.0},
    "CDHM-no-align": {"alignment": None},
    "CDHM-no-temporal": {"temporal_prior": False},
    "CDHM-no-cond-head": {"lambda_c": 0.0},
}


def make_ablation(name: str, **kwargs: Any) -> CDHMClassifier:
    """A CDHMClassifier with the ablation `name` (a key of ``ABLATIONS``) applied over `kwargs`."""
    if name not in ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; allowed: {sorted(ABLATIONS)}")
    return CDHMClassifier(**{**kwargs, **ABLATIONS[name]})


class PhysicsReference:
    """Order-normalised envelope spectrum + logistic regression (a physics-based reference).

    Features: log of the envelope spectrum sampled at orders 0.5-12 (step 0.05) of the shaft
    speed, each window's spectrum divided by its mean (gain invariance). Because the features are
    in orders, a change of speed moves nothing; resonance and noise changes remain.
    """

    def __init__(self, fs: float = 12000.0, C: float = 1.0, highpass_hz: float = 1000.0) -> None:
        self.fs = _check_float("fs", fs, 1.0)
        self.C = _check_float("C", C, 1e-9)
        self.highpass_hz = _check_float("highpass_hz", highpass_hz, 0.0)
        self.model_: Any = None

    def _feat(self, x: Any, rpm: Any, name: str) -> np.ndarray:
        x = check_signals(x, 1, name)
        rpm = np.broadcast_to(np.asarray(rpm, dtype=np.float64), (len(x),))
        if not np.all(rpm > 0):
            raise ValueError(f"rpm must be > 0 for every window of {name}")
        _, spec = envelope_order_spectrum(x, self.fs, rpm, highpass_hz=self.highpass_hz)
        spec = spec / (spec.mean(axis=1, keepdims=True) + 1e-12)
        return np.log(spec + 1e-3)

    def fit(self, source_x: Any, source_y: Any, source_rpm: Any) -> PhysicsReference:
        """Fit on labelled source windows with their shaft speeds (rpm)."""
        feats = self._feat(source_x, source_rpm, "source_x")
        y = np.asarray(source_y)
        if y.shape != (len(feats),):
            raise ValueError(f"source_y must have shape ({len(feats)},), got {y.shape}")
        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=2000))
        self.model_.fit(feats, y)
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, x: Any, rpm: Any) -> np.ndarray:
        """Class probabilities for windows `x` at shaft speeds `rpm`."""
        if self.model_ is None:
            raise RuntimeError("PhysicsReference is not fitted; call fit(...) first")
        return self.model_.predict_proba(self._feat(x, rpm, "x"))

    def predict(self, x: Any, rpm: Any) -> np.ndarray:
        """Predicted labels."""
        return self.classes_[self.predict_proba(x, rpm).argmax(1)]

    def score(self, x: Any, y: Any, rpm: Any) -> float:
        """Accuracy."""
        return float(np.mean(self.predict(x, rpm) == np.asarray(y)))
