"""Shared neural pieces: the 1-D CNN segment encoder, gradient reversal and alignment losses.

Every method of the package (CDHM and the baselines) uses the same :class:`SegmentEncoder`, so a
comparison measures the objective, not the architecture.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = [
    "GradientReversal",
    "SegmentEncoder",
    "UntiedTarget",
    "check_signals",
    "confident_self_training",
    "coral_loss",
    "ganin_lambda",
    "grad_reverse",
    "joint_mmd",
    "lmmd",
    "mk_mmd",
    "standardize_windows",
]


def check_signals(x: object, n_segments: int, name: str = "x") -> np.ndarray:
    """Validate windows `x` (N, L): a finite float array with L divisible by `n_segments`."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as err:  # pragma: no cover - numpy raises many types here
            raise TypeError(f"{name} must be array-like, got {type(x).__name__}") from err
    if x.dtype == object or not np.issubdtype(x.dtype, np.number):
        raise TypeError(f"{name} must be a numeric array, got dtype {x.dtype}")
    if x.ndim != 2:
        raise ValueError(f"{name} must have shape (n_windows, window_length), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} has no windows (shape {x.shape})")
    if x.shape[1] % n_segments:
        raise ValueError(
            f"n_segments={n_segments} must divide the window length of {name} "
            f"({x.shape[1]}); allowed: divisors of {x.shape[1]}"
        )
    if not np.all(np.isfinite(x)):
        bad = int(np.sum(~np.isfinite(x)))
        raise ValueError(f"{name} contains {bad} NaN/inf values; clean the signals first")
    return x.astype(np.float32, copy=False)


def standardize_windows(x: np.ndarray) -> np.ndarray:
    """Per-window z-score (removes sensor gain; keeps waveform shape)."""
    x = x - x.mean(axis=1, keepdims=True)
    return x / (x.std(axis=1, keepdims=True) + 1e-8)


class SegmentEncoder(nn.Module):
    """1-D CNN mapping one segment (D samples) to a feature vector.

    A wide first kernel with stride (the "WDCNN" recipe for raw vibration) followed by two small
    convolutions; max pooling to 8 positions keeps the coarse timing of impacts (their spacing
    is what separates fault types). Segments shorter than 16 samples (tabular inputs, as in
    scikit-learn's estimator checks) go through one dense layer instead.
    """

    def __init__(self, segment_length: int, out_dim: int = 64, channels: int = 16) -> None:
        super().__init__()
        if isinstance(segment_length, bool) or not isinstance(segment_length, int):
            raise TypeError(f"segment_length must be an int, got {segment_length!r}")
        if segment_length < 1:
            raise ValueError(f"segment_length must be >= 1, got {segment_length!r}")
        self.out_dim = out_dim
        if segment_length < 16:  # too short to convolve: a dense layer (tabular inputs)
            self.net = None
            self.proj = nn.Sequential(nn.Linear(segment_length, out_dim), nn.ReLU())
            return
        k1 = max(8, min(64, segment_length // 8))
        self.net = nn.Sequential(
            nn.Conv1d(1, channels, k1, stride=max(1, k1 // 4), padding=k1 // 2),
            nn.BatchNorm1d(channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(channels, 2 * channels, 5, padding=2),
            nn.BatchNorm1d(2 * channels),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(2 * channels, 2 * channels, 3, padding=1),
            nn.BatchNorm1d(2 * channels),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveMaxPool1d(8)
        self.proj = nn.Sequential(nn.Linear(16 * channels, out_dim), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> features (B, T, out_dim)."""
        if self.net is None:
            return self.proj(x)
        b, t, d = x.shape
        h = self.net(x.reshape(b * t, 1, d))
        h = self.pool(h).flatten(1)
        return self.proj(h).reshape(b, t, -1)


class UntiedTarget(nn.Module):
    """A module with ADDA's untied target encoder (Tzeng et al., CVPR 2017): a copy of some of its
    parts through which target windows are read once it has been split off.

    A subclass calls :meth:`_add_target_copy` last in ``__init__`` (made by copying, so the shared
    weights' initialisation is unchanged). The copy is the ``nn.ModuleDict`` attribute named by
    the class's ``target_attr`` (state-dict keys ``<target_attr>.<part>.*``), unused until
    :meth:`split_target` loads the current source parts into it and sets the ``target_active``
    buffer (saved with the weights: a reloaded or resumed model stays split). ``target_flag``
    names the constructor argument that asks for the copy. Which windows read the copy is the
    subclass's routing (CDHM: rows flagged as target; the baselines: a ``target`` argument).
    """

    target_attr: str = "target"
    target_flag: str = "target_copy"

    def _add_target_copy(self, enabled: bool, parts: Sequence[str]) -> None:
        """The inactive target copy of the submodules `parts` if `enabled`; else the attribute
        is None and no buffer is added (the state-dict keys of a model without it unchanged)."""
        setattr(self, self.target_attr, None)
        if enabled:
            copies = nn.ModuleDict({n: copy.deepcopy(getattr(self, n)) for n in parts})
            setattr(self, self.target_attr, copies)
            self.register_buffer("target_active", torch.zeros((), dtype=torch.bool))

    @property
    def target_parts(self) -> nn.ModuleDict | None:
        """The target copy (None when the module was built without one)."""
        return getattr(self, self.target_attr)

    @property
    def target_split(self) -> bool:
        """True once the target copy is split off (:meth:`split_target`)."""
        return self.target_parts is not None and bool(self.target_active)

    @torch.no_grad()
    def split_target(self) -> None:
        """Initialise the target copy from the source parts and read target windows through it
        from now on (ADDA: the target encoder starts as the trained source encoder)."""
        parts = self.target_parts
        if parts is None:
            raise ValueError(
                f"split_target needs a {type(self).__name__} built with {self.target_flag}=True"
            )
        for name, module in parts.items():
            module.load_state_dict(getattr(self, name).state_dict())
        self.target_active.fill_(True)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, lam: float) -> torch.Tensor:  # type: ignore[override]
        ctx.lam = lam
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        return -ctx.lam * grad, None


def grad_reverse(x: torch.Tensor, lam: float = 1.0) -> torch.Tensor:
    """Identity forward, gradient multiplied by -lam backward (Ganin & Lempitsky, 2015)."""
    return _GradReverse.apply(x, lam)


class GradientReversal(nn.Module):
    """Module form of :func:`grad_reverse`; set ``.lam`` during training (Ganin schedule)."""

    def __init__(self, lam: float = 1.0) -> None:
        super().__init__()
        self.lam = lam

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lam)


def ganin_lambda(progress: float, gamma: float = 10.0) -> float:
    """Ganin schedule lambda_p = 2 / (1 + exp(-gamma p)) - 1 for training progress p in [0, 1]."""
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0


def mk_mmd(
    a: torch.Tensor, b: torch.Tensor, scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0)
) -> torch.Tensor:
    """Multi-kernel MMD^2 (biased estimate) with Gaussian kernels.

    MMD^2 = E k(a,a') + E k(b,b') - 2 E k(a,b), k = (1/m) sum_m exp(-||u-v||^2 / (s_m * sigma^2)),
    sigma^2 the median pairwise squared distance (detached). Reconstruction: DAN learns the kernel
    weights; uniform weights are used here.
    """
    k = _multi_kernel(torch.cat([a, b], dim=0), scales)
    n = a.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def _multi_kernel(x: torch.Tensor, scales: Sequence[float]) -> torch.Tensor:
    """The Gram matrix of :func:`mk_mmd`'s kernel on the rows of `x`: (1/m) sum_m
    exp(-||u - v||^2 / (s_m sigma^2)), sigma^2 the median positive pairwise squared distance
    (detached; 1 if every distance is 0)."""
    d2 = torch.cdist(x, x).pow(2)
    pos = d2.detach()[d2.detach() > 0]
    sigma2 = pos.median() if pos.numel() else d2.new_tensor(1.0)
    return sum(torch.exp(-d2 / (s * sigma2)) for s in scales) / len(scales)


def joint_mmd(
    a: torch.Tensor,
    b: torch.Tensor,
    a_probs: torch.Tensor,
    b_probs: torch.Tensor,
    scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
) -> torch.Tensor:
    """Joint MMD^2 (JMMD of JAN, Long et al., ICML 2017; biased estimate) of the pairs (feature,
    class probabilities) of two domains: (`a`, `a_probs`) rows of one, (`b`, `b_probs`) of the other.

    JMMD^2 = E K(u, u') + E K(v, v') - 2 E K(u, v),  K = k_f * k_p (elementwise product of Gram
    matrices), k_f the multi-kernel Gaussian of :func:`mk_mmd` on the features and k_p the same
    kernel on the probability vectors, each with its own median bandwidth. Reconstruction: JAN
    takes the product over the network's last layers (features and softmax); here the two factors
    are CDHM's s_T and the fault head's softmax f(s_T). A pair scores as near only when both its
    features and its class readings are near, so matching the joint distribution asks a target
    window to sit where source windows that the head reads the same way sit, without any
    per-class weighting by pseudo-labels. Bad shapes raise ValueError naming the argument.
    """
    for name, f, pr in (("a_probs", a, a_probs), ("b_probs", b, b_probs)):
        if pr.ndim != 2 or pr.shape[0] != f.shape[0]:
            raise ValueError(
                f"{name} must have shape (rows of its features, n_classes) = ({f.shape[0]}, K), "
                f"got {tuple(pr.shape)}"
            )
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"a and b must be 2-D with equal widths, got {tuple(a.shape)}, {tuple(b.shape)}"
        )
    if a_probs.shape[1] != b_probs.shape[1]:
        raise ValueError(
            f"a_probs and b_probs must have equal widths, got {a_probs.shape[1]}, {b_probs.shape[1]}"
        )
    if a.shape[0] == 0 or b.shape[0] == 0:
        raise ValueError("a and b must each hold at least one row")
    k = _multi_kernel(torch.cat([a, b]), scales) * _multi_kernel(
        torch.cat([a_probs, b_probs]), scales
    )
    n = a.shape[0]
    return k[:n, :n].mean() + k[n:, n:].mean() - 2 * k[:n, n:].mean()


def lmmd(
    a: torch.Tensor,
    b: torch.Tensor,
    a_labels: torch.Tensor,
    b_probs: torch.Tensor,
    scales: Sequence[float] = (0.25, 0.5, 1.0, 2.0, 4.0),
) -> torch.Tensor:
    """Local (class-conditional) MMD of DSAN (Zhu et al., 2020), with the kernel of :func:`mk_mmd`.

    Source features `a` (n, d) with class indices `a_labels` (n,), target features `b` (m, d)
    with soft pseudo-labels `b_probs` (m, K) (class probabilities, e.g. the classifier's softmax;
    treated as constants). Per class k the weights are w^s_ik = 1[y_i = k] / n_k and
    w^t_jk = p_jk / sum_j p_jk, and

        LMMD = (1/|C|) sum_{k in C} [ sum_ij w^s_ik w^s_jk k(a_i, a_j) + sum_ij w^t_ik w^t_jk k(b_i, b_j)
                                     - 2 sum_ij w^s_ik w^t_jk k(a_i, b_j) ],

    i.e. the MMD^2 between the source and the (soft) target distribution of each class, averaged
    over C = the classes present both among the source labels and among the target argmax
    predictions of the batch (DSAN's rule; 0 when C is empty). Assumes the pseudo-labels are
    mostly right: it aligns target windows to the source class the classifier already assigns.
    """
    k_dim = b_probs.shape[1]
    if a_labels.numel() and int(a_labels.max()) >= k_dim:
        raise ValueError(f"a_labels holds a class >= the {k_dim} columns of b_probs")
    ws = torch.nn.functional.one_hot(a_labels, k_dim).to(a.dtype)
    wt = b_probs.detach().to(a.dtype)
    present = (ws.sum(0) > 0) & (torch.nn.functional.one_hot(wt.argmax(1), k_dim).sum(0) > 0)
    n_c = int(present.sum())
    if n_c == 0:
        return (a.sum() + b.sum()) * 0.0
    ws = ws[:, present] / ws[:, present].sum(0, keepdim=True)
    wt = wt[:, present] / wt[:, present].sum(0, keepdim=True).clamp_min(1e-12)
    x = torch.cat([a, b], dim=0)
    d2 = torch.cdist(x, x).pow(2)
    sigma2 = d2.detach()[d2.detach() > 0].median() if (d2 > 0).any() else d2.new_tensor(1.0)
    k = sum(torch.exp(-d2 / (s * sigma2)) for s in scales) / len(scales)
    w = torch.cat([ws, -wt], dim=0)  # (n + m, |C|): +source weights, -target weights
    return (w.T @ k @ w).diagonal().sum() / n_c


def confident_self_training(logits: torch.Tensor, tau: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Confidence-thresholded self-training on unlabelled windows: (loss, keep).

    With p_j = softmax(logits_j) and the hard pseudo-label yhat_j = argmax_k p_jk (constants: no
    gradient through the choice of label or the mask),

        loss = (1/m) sum_j 1[max_k p_jk >= tau] * (-log p_j,yhat_j)

    over the m rows (windows below the threshold count in m but add 0, so the term shrinks as
    fewer windows are confident); `keep` is the (m,) bool mask. The gradient reaches the logits
    (the classifier and whatever produced its input). Lee (2013) / FixMatch's (Sohn et al., 2020)
    confidence mask without augmentation. `tau` in (0, 1).
    """
    if logits.ndim != 2 or logits.shape[0] == 0:
        raise ValueError(f"logits must be (m, K) with m >= 1, got shape {tuple(logits.shape)}")
    p = torch.softmax(logits.detach(), -1)
    conf, label = p.max(-1)
    keep = conf >= tau
    ce = torch.nn.functional.cross_entropy(logits, label, reduction="none")
    return (ce * keep.to(ce.dtype)).sum() / logits.shape[0], keep


def coral_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Deep CORAL: ||C_a - C_b||_F^2 / (4 d^2) with C the feature covariance (Sun & Saenko, 2016)."""
    d = a.shape[1]

    def cov(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(0, keepdim=True)
        return x.T @ x / max(1, x.shape[0] - 1)

    return (cov(a) - cov(b)).pow(2).sum() / (4 * d * d)
