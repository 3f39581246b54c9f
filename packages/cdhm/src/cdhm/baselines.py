"""What CDHM is compared against: source-only CNN, DANN, MK-MMD, Deep CORAL, the CDHM ablations
and a physics reference.

The neural baselines share the estimator interface of :class:`cdhm.CDHMClassifier` and the same
:class:`cdhm.models.SegmentEncoder`; a GRU summarises the T segment features into one feature
vector h (the analogue of s_T), on which the classifier and the alignment act:

* source-only: CE(y, f(h)) on source only;
* DANN (Ganin et al., 2016): + lambda * BCE(d, D(GRL(h))), Ganin schedule on the GRL;
* MK-MMD (DAN, Long et al., 2015): + lambda * MMD^2_k(h_s, h_t), multi-bandwidth Gaussian kernels;
* Deep CORAL (Sun & Saenko, 2016): + lambda * ||C_s - C_t||_F^2 / (4 d^2);
* DSAN (Zhu et al., 2020): + lambda * LMMD(h_s, h_t; y_s, softmax(f(h_t))), the class-conditional
  MMD with the network's own soft target pseudo-labels (constants), as its authors run it
  (Ganin ramp on lambda; see :func:`cdhm.models.lmmd`). It was the plain-encoder control for
  CDHM's retired ``alignment="lmmd"`` (session 29; code at commit e375864).

The physics reference needs no training on vibration waveforms: an order-normalised envelope
spectrum (see :func:`cdhm.data.envelope_order_spectrum`) and a logistic regression fit on source.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from maskloop.checks import check_fraction, check_int, check_real
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import Tags, TransformerTags
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from cdhm.causal_hmm import TARGET_ENCODERS, CDHMClassifier, _delayed_ramp
from cdhm.data import envelope_order_spectrum
from cdhm.estimator import DomainAdaptiveClassifier
from cdhm.models import (
    SegmentEncoder,
    UntiedTarget,
    coral_loss,
    grad_reverse,
    lmmd,
    mk_mmd,
)

__all__ = [
    "ABLATIONS",
    "ALIGN_RAMPS",
    "FAULT_STEPS",
    "AlignedCNNClassifier",
    "PhysicsReference",
    "make_ablation",
]

#: What the baselines' classifier reads (``AlignedCNNClassifier(fault_steps=...)``): the GRU
#: output of the last step, or the mean of every step's logits.
FAULT_STEPS: tuple[str, ...] = ("last", "all")

#: The shape of the baselines' alignment ramp (``AlignedCNNClassifier(align_ramp=...)``): the
#: Ganin sigmoid 2 / (1 + exp(-10 p)) - 1 or the linear ramp p.
ALIGN_RAMPS: tuple[str, ...] = ("ganin", "linear")


def _ramp(progress: float, start: float, ramp: str) -> float:
    """0 before `start`, then the ``ramp`` ("ganin" or "linear") of p' = (progress - start) /
    (1 - start): 2 / (1 + exp(-10 p')) - 1 or min(1, p')."""
    if ramp != "linear":
        return _delayed_ramp(progress, start)
    if progress < start:
        return 0.0
    return min(1.0, (progress - start) / max(1e-12, 1.0 - start))


class _CNNGRU(UntiedTarget):
    """The baselines' CNN encoder + GRU + heads; ``target_copy=True`` adds the untied target
    encoder + GRU of ``target_encoder="adapted"`` (:class:`cdhm.models.UntiedTarget`, attribute
    ``target``), unused until :meth:`split_target` fills it."""

    target_attr = "target"
    target_flag = "target_copy"

    def __init__(
        self, segment_length: int, n_classes: int, hidden: int = 64, target_copy: bool = False
    ) -> None:
        super().__init__()
        self.encoder = SegmentEncoder(segment_length, 64)
        self.gru = nn.GRU(64, hidden, batch_first=True)
        self.classifier = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, n_classes)
        )
        self.domain_head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self._add_target_copy(target_copy, ("encoder", "gru"))

    def step_features(self, x: torch.Tensor, target: bool = False) -> torch.Tensor:
        """The GRU output at every step (B, T, hidden); its last step is :meth:`features`.
        ``target=True`` reads through the split-off target encoder and GRU."""
        if target and self.target_split:
            return self.target["gru"](self.target["encoder"](x))[0]  # type: ignore[index]
        return self.gru(self.encoder(x))[0]

    def features(self, x: torch.Tensor, target: bool = False) -> torch.Tensor:
        if target and self.target_split:
            return self.target["gru"](self.target["encoder"](x))[1][-1]  # type: ignore[index]
        return self.gru(self.encoder(x))[1][-1]


class AlignedCNNClassifier(DomainAdaptiveClassifier):
    """CNN + GRU classifier with an optional feature alignment: None, 'dann', 'mmd', 'coral' or
    'lmmd' (DSAN).

    ``alignment=None`` is the source-only baseline (``target_x`` only feeds batch-norm nothing:
    the target is ignored entirely).

    ``fault_steps="all"`` (default ``"last"``) was the plain-encoder control for CDHM's retired
    ``fault_steps="all", align_steps="all"`` (code at commit e375864): the classifier reads the GRU output
    h_t of every step and averages the T logits (a product of per-step class posteriors,
    tempered by 1 / T), and the alignment acts on the h_t of every step pooled (each step a
    sample), since that is what the classifier reads. It assumes every step's h_t carries class
    evidence; ``transform`` still returns the last step's h_T.

    ``align_ramp`` (default ``"ganin"``) is the shape of the alignment weight's ramp over
    training progress p, as ``CDHMClassifier(align_ramp=...)``: the Ganin sigmoid
    2 / (1 + exp(-10 p)) - 1 or the linear ramp p (for DANN it is the gradient-reversal factor).
    It is there so that a schedule tried for CDHM can be tried on the baseline with the same
    budget.

    ``target_encoder`` (default ``"shared"``) is the plain-encoder control for
    ``CDHMClassifier(target_encoder="adapted")`` (issue 18, session 17b), ADDA's untied weights
    (Tzeng et al., CVPR 2017) with this estimator's ``alignment`` in place of ADDA's adversarial
    loss: with ``"adapted"`` the network trains on the labelled source alone (cross-entropy, no
    target windows: ADDA's pre-training stage) for the first ``adapt_start`` of training; then the
    CNN encoder and GRU are copied into a target encoder + GRU, and from then on source windows go
    through the source ones (still trained by the cross-entropy) and target windows through the
    copy. The alignment term acts on the source features detached, so only the target copy moves
    (it gets no other gradient, as ADDA's target encoder), with the ``align_ramp`` over
    p' = (p - adapt_start) / (1 - adapt_start) and the same ``lambda_align``; the classifier stays
    shared. Prediction and ``transform`` go through the target copy once it exists (the fitted
    model is the target model). It assumes that the source-trained features are the reference the
    target should move to, so it cannot correct a source whose own classes do not separate.
    """

    def __init__(
        self,
        alignment: str | None = None,
        lambda_align: float = 0.3,
        hidden: int = 64,
        fault_steps: str = "last",
        align_ramp: str = "ganin",
        target_encoder: str = "shared",
        adapt_start: float = 0.5,
        n_segments: int = 8,
        epochs: int = 30,
        batch_size: int = 32,
        lr: float = 2e-3,
        weight_decay: float = 1e-4,
        standardize: str = "window",
        classes: list | tuple | None = None,
        seed: int = 0,
        progress: bool = True,
    ) -> None:
        super().__init__(
            n_segments, epochs, batch_size, lr, weight_decay, standardize, classes, seed, progress
        )
        self.alignment = alignment
        self.lambda_align = lambda_align
        self.hidden = hidden
        self.fault_steps = fault_steps
        self.align_ramp = align_ramp
        self.target_encoder = target_encoder
        self.adapt_start = adapt_start

    def _check_params(self) -> None:
        super()._check_params()
        if self.alignment not in (None, "dann", "mmd", "coral", "lmmd"):
            raise ValueError(
                f"alignment must be None, 'dann', 'mmd', 'coral' or 'lmmd', got {self.alignment!r}"
            )
        check_real("lambda_align", self.lambda_align, low=0.0)
        check_int("hidden", self.hidden, 4)
        if self.fault_steps not in FAULT_STEPS:
            raise ValueError(f"fault_steps must be one of {FAULT_STEPS}, got {self.fault_steps!r}")
        if self.align_ramp not in ALIGN_RAMPS:
            raise ValueError(f"align_ramp must be one of {ALIGN_RAMPS}, got {self.align_ramp!r}")
        if self.target_encoder not in TARGET_ENCODERS:
            raise ValueError(
                f"target_encoder must be one of {TARGET_ENCODERS}, got {self.target_encoder!r}"
            )
        check_fraction("adapt_start", self.adapt_start, meaning="of training before the split")
        if self.target_encoder == "adapted" and self.alignment is None:
            raise ValueError(
                "target_encoder='adapted' needs an alignment to adapt the target encoder with, "
                "got alignment=None; allowed: 'dann', 'mmd', 'coral', 'lmmd'"
            )

    def _build(self, segment_length: int, n_classes: int, n_conditions: int) -> nn.Module:
        return _CNNGRU(
            segment_length, n_classes, self.hidden, target_copy=self.target_encoder == "adapted"
        )

    def _step(self, batch: dict[str, torch.Tensor], progress: float) -> tuple[torch.Tensor, dict]:
        net: _CNNGRU = self.net_  # type: ignore[assignment]
        xs, ys = batch["xs"], batch["ys"]
        use_target = self.alignment is not None and "xt" in batch
        adda = self.target_encoder == "adapted" and use_target
        if adda and not net.target_split and progress >= self.adapt_start:
            net.split_target()
        # ADDA's pre-training stage: the source alone until the target encoder is split off
        use_target = use_target and (not adda or net.target_split)
        x = torch.cat([xs, batch["xt"]]) if use_target and not adda else xs
        ns = len(xs)
        if self.fault_steps == "last":
            h = net.features(x)
            logits = net.classifier(h[:ns])
            if use_target and adda:  # the source detached: the alignment moves only the copy
                h = torch.cat([h.detach(), net.features(batch["xt"], target=True)])
            ys_al = ys
        else:  # every step's h_t: mean logits; the steps pooled as samples for the alignment
            h_steps = net.step_features(x)
            logits = net.classifier(h_steps[:ns]).mean(1)
            if use_target and adda:
                h_t = net.step_features(batch["xt"], target=True)
                h_steps = torch.cat([h_steps.detach(), h_t])
            t_len = h_steps.shape[1]
            h, ns, ys_al = (
                h_steps.reshape(-1, h_steps.shape[-1]),
                ns * t_len,
                ys.repeat_interleave(t_len),
            )
        ce = F.cross_entropy(logits, ys)
        loss, logs = ce, {"ce": float(ce.detach())}
        logs["source_acc"] = float((logits.detach().argmax(-1) == ys).float().mean())
        if use_target:
            start = self.adapt_start if adda else 0.0
            lam = _ramp(progress, start, self.align_ramp)  # "ganin", 0: ganin_lambda(p)
            logs["align_weight"] = lam
            if self.alignment == "dann":
                d = net.domain_head(grad_reverse(h, lam)).squeeze(-1)
                target = (torch.arange(len(h)) >= ns).float()
                align = F.binary_cross_entropy_with_logits(d, target)
                loss = loss + self.lambda_align * align
                logs["domain_acc"] = float(((d.detach() > 0).float() == target).float().mean())
                logs["grl_lambda"] = lam
            elif self.alignment == "mmd":
                align = mk_mmd(h[:ns], h[ns:])
                loss = loss + self.lambda_align * lam * align
            elif self.alignment == "lmmd":
                probs = F.softmax(net.classifier(h[ns:]).detach(), -1)
                align = lmmd(h[:ns], h[ns:], ys_al, probs)
                loss = loss + self.lambda_align * lam * align
            else:
                align = coral_loss(h[:ns], h[ns:])
                loss = loss + self.lambda_align * lam * align
            logs["align"] = float(align.detach())
        logs["loss"] = float(loss.detach())
        return loss, logs

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        net: _CNNGRU = self.net_  # type: ignore[assignment]
        # an adapted target encoder is the deployed model (as ADDA's): every window goes through it
        if self.fault_steps == "last":
            return net.classifier(net.features(x, target=True))
        return net.classifier(net.step_features(x, target=True)).mean(1)

    def _features(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.net_.features(x, target=True)  # type: ignore[union-attr]


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


class PhysicsReference(ClassifierMixin, BaseEstimator):
    """Order-normalised envelope spectrum + logistic regression (a physics-based reference).

    Features: log of the envelope spectrum sampled at orders 0.5-12 (step 0.05) of the shaft
    speed, each window's spectrum divided by its mean (gain invariance). Because the features are
    in orders, a change of speed moves nothing; resonance and noise changes remain.

    A scikit-learn classifier: ``fit(X, y, rpm=None)``, ``predict(X, rpm=None)``, ... with `X`
    the windows (N, L) sampled at `fs` Hz and `rpm` each window's shaft speed (a scalar or (N,));
    without it the constructor's `rpm` (one speed for every window) is used. The constructor
    stores its arguments unchanged; ``fit`` validates them, so ``clone``, ``GridSearchCV`` and
    ``cross_val_score`` work. `C` is the inverse L2 strength of the logistic regression and
    `highpass_hz` the cut-off of the high-pass before the envelope (in (0, fs / 2)).
    """

    def __init__(
        self,
        fs: float = 12000.0,
        C: float = 1.0,
        highpass_hz: float = 1000.0,
        rpm: float | None = None,
    ) -> None:
        self.fs = fs
        self.C = C
        self.highpass_hz = highpass_hz
        self.rpm = rpm

    def __sklearn_tags__(self) -> Tags:
        """A classifier whose ``transform`` gives its spectral features. It reads each row of X
        as a vibration window, so scikit-learn's accuracy bar on generic tabular blobs (0.83)
        does not apply (``poor_score``)."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True
        tags.transformer_tags = TransformerTags(preserves_dtype=[])  # features in float64
        return tags

    def _check_params(self) -> None:
        fs = check_real("fs", self.fs, low=0.0, low_inclusive=False)
        check_real("C", self.C, low=0.0, low_inclusive=False)
        check_real(
            "highpass_hz",
            self.highpass_hz,
            low=0.0,
            high=fs / 2,
            low_inclusive=False,
            high_inclusive=False,
        )
        if self.rpm is not None:
            check_real("rpm", self.rpm, low=0.0, low_inclusive=False)

    def _speeds(self, rpm: Any, n: int, name: str) -> np.ndarray:
        if rpm is None:
            rpm = self.rpm
        if rpm is None:
            raise ValueError(
                f"rpm is required for {name}: pass rpm= (shaft speed of each window) or set "
                "PhysicsReference(rpm=...)"
            )
        r = np.asarray(rpm)
        if r.dtype == object or not np.issubdtype(r.dtype, np.number):
            raise TypeError(f"rpm must be a number or an array of numbers, got {rpm!r}")
        if r.ndim > 1 or (r.ndim == 1 and r.shape != (n,)):
            raise ValueError(f"rpm must be a scalar or have shape ({n},) for {name}, got {r.shape}")
        r = np.broadcast_to(r.astype(np.float64), (n,))
        if not np.all(np.isfinite(r) & (r > 0)):
            raise ValueError(f"rpm must be finite and > 0 for every window of {name}")
        return r

    def _feat(self, X: Any, rpm: Any, reset: bool) -> np.ndarray:
        name = "X"
        x = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32])
        _, spec = envelope_order_spectrum(
            x, float(self.fs), self._speeds(rpm, len(x), name), highpass_hz=float(self.highpass_hz)
        )
        spec = spec / (spec.mean(axis=1, keepdims=True) + 1e-12)
        return np.log(spec + 1e-3)

    def fit(self, X: Any, y: Any, rpm: Any = None) -> PhysicsReference:
        """Fit on labelled source windows `X`, `y` with their shaft speeds `rpm`."""
        self._check_params()
        if y is None:
            raise ValueError("PhysicsReference requires y to be passed, but the target y is None")
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        feats = self._feat(X, rpm, reset=False)
        self.model_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=float(self.C), max_iter=2000)
        )
        self.model_.fit(feats, y)
        self.classes_ = self.model_.classes_
        return self

    def fit_transform(self, X: Any, y: Any, rpm: Any = None) -> np.ndarray:
        """``fit(X, y, rpm)`` then the features of `X`."""
        return self.fit(X, y, rpm).transform(X, rpm)

    def transform(self, X: Any, rpm: Any = None) -> np.ndarray:
        """The log order-envelope features (N, 230) the logistic regression reads."""
        check_is_fitted(self, "model_")
        return self._feat(X, rpm, reset=False)

    def decision_function(self, X: Any, rpm: Any = None) -> np.ndarray:
        """The logistic regression's decision values for windows `X` at speeds `rpm`."""
        feats = self.transform(X, rpm)
        return self.model_.decision_function(feats)

    def predict_proba(self, X: Any, rpm: Any = None) -> np.ndarray:
        """Class probabilities for windows `X` at shaft speeds `rpm`."""
        feats = self.transform(X, rpm)
        return self.model_.predict_proba(feats)

    def predict(self, X: Any, rpm: Any = None) -> np.ndarray:
        """Predicted labels."""
        check_is_fitted(self, "model_")
        return self.classes_[self.predict_proba(X, rpm).argmax(1)]

    def score(self, X: Any, y: Any, sample_weight: Any = None, rpm: Any = None) -> float:
        """Accuracy on windows `X` with labels `y` at shaft speeds `rpm`."""
        from sklearn.metrics import accuracy_score

        return float(accuracy_score(y, self.predict(X, rpm), sample_weight=sample_weight))
