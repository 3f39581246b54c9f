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
    "certainty_weighted_entropy",
    "check_signals",
    "class_balance_gap",
    "coral_loss",
    "ganin_lambda",
    "grad_reverse",
    "hsic",
    "lmmd",
    "mk_mmd",
    "pseudo_labels",
    "shot_centroids",
    "shot_labels",
    "soft_centroid_gap",
    "standardize_windows",
    "standardized_mmd",
]

#: How :func:`pseudo_labels` labels target windows: the classifier's own confident argmax, the
#: nearest centroid of the confident windows (SHOT-style, Liang et al., ICML 2020), or SHOT's own
#: rule (soft centroids, cosine distance, one hard refinement round; :func:`shot_centroids`).
PSEUDO_LABELS: tuple[str, ...] = ("head", "centroid", "shot")


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
    x = torch.cat([a, b], dim=0)
    d2 = torch.cdist(x, x).pow(2)
    sigma2 = d2.detach()[d2.detach() > 0].median() if (d2 > 0).any() else d2.new_tensor(1.0)
    k = sum(torch.exp(-d2 / (s * sigma2)) for s in scales) / len(scales)
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


def standardized_mmd(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """MK-MMD^2 (:func:`mk_mmd`) of per-domain standardised features (issue 18, session 30).

    Each domain's rows are standardised per dimension by their own batch mean and standard
    deviation, u = (a - mean(a)) / sqrt(var(a) + eps) and v likewise for b, and the result is
    mk_mmd(u, v). It is invariant to a per-dimension shift and scale of either domain, so it sees
    only the shape of the two distributions (how their clusters sit relative to one another),
    not their centre or size. Reconstruction: a "whitened" alignment that assumes the domains'
    difference in centre and scale is handled elsewhere (by CDHM's stationary prior, which pulls
    both domains' s onto N(0, I) by shrinking the noisy target) and that the shape is what a
    class-free alignment should still match. Needs >= 2 rows per domain.
    """
    if a.shape[0] < 2 or b.shape[0] < 2:
        raise ValueError(
            f"standardized_mmd needs >= 2 rows per domain, got {a.shape[0]} and {b.shape[0]}"
        )

    def z(x: torch.Tensor) -> torch.Tensor:
        return (x - x.mean(0, keepdim=True)) / torch.sqrt(x.var(0, unbiased=False) + eps)

    return mk_mmd(z(a), z(b))


def soft_centroid_gap(
    a: torch.Tensor, a_labels: torch.Tensor, b: torch.Tensor, b_probs: torch.Tensor
) -> torch.Tensor:
    """Scale-free gap between the source class centroids and the soft target class centroids.

    Source features `a` (n, d) with class indices `a_labels` (n,); target features `b` (m, d)
    with class probabilities `b_probs` (m, K) (constants). With mu^s_k the mean of the source rows
    of class k and mu^t_k = sum_j p_jk b_j / sum_j p_jk the target centroid weighted by the
    probabilities,

        gap = (1/|C|) sum_{k in C} ||mu^t_k - mu^s_k||^2 / mean_{k != l in C} ||mu^s_k - mu^s_l||^2,

    C = the classes present among the source rows (every class keeps its term whether or not the
    target's argmax predicts it, unlike DSAN's LMMD, which drops the classes absent from the
    target argmax; the denominator is detached). 0 when |C| < 2.
    """
    k_dim = b_probs.shape[1]
    if a_labels.numel() and int(a_labels.max()) >= k_dim:
        raise ValueError(f"a_labels holds a class >= the {k_dim} columns of b_probs")
    ws = torch.nn.functional.one_hot(a_labels, k_dim).to(a.dtype)
    present = ws.sum(0) > 0
    if int(present.sum()) < 2:
        return (a.sum() + b.sum()) * 0.0
    ws = ws[:, present] / ws[:, present].sum(0, keepdim=True)
    wt = b_probs.detach().to(b.dtype)[:, present]
    wt = wt / wt.sum(0, keepdim=True).clamp_min(1e-12)
    mu_s, mu_t = ws.T @ a, wt.T @ b
    spacing = torch.pdist(mu_s.detach()).pow(2).mean().clamp_min(1e-12)
    return (mu_t - mu_s).pow(2).sum(1).mean() / spacing


def class_balance_gap(probs: torch.Tensor) -> torch.Tensor:
    """log K - H(mean_j p_j) of class probabilities `probs` (m, K): 0 when the mean prediction
    is uniform, log K when every row predicts one class (the diversity term of SHOT / IM)."""
    p_bar = probs.mean(0)
    return math.log(probs.shape[1]) + (p_bar * torch.log(p_bar.clamp_min(1e-12))).sum()


def certainty_weighted_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Certainty-weighted mean conditional entropy of class logits `logits` (m, K).

    With p_j = softmax(logits_j), H_j = -sum_k p_jk log p_jk and the weights
    c_j = 1 + exp(-H_j) (constants, no gradient: CDAN+E's entropy conditioning, Long et al.,
    "Conditional Adversarial Domain Adaptation", NeurIPS 2018),

        ent_c = sum_j c_j H_j / sum_j c_j.

    Minimised, it pushes each row away from the classifier's decision boundaries (entropy
    minimisation, Grandvalet & Bengio 2005), the rows the classifier already reads with
    confidence (c_j near 2) weighted up to twice the rows it cannot read (c_j near 1 + 1/K), so
    the windows with the least reliable direction pull least. 0 when every row is one-hot,
    log K when every row is uniform. Needs m >= 1 rows and K >= 2 classes, finite values;
    else a ValueError naming ``logits``.
    """
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"logits must be a torch.Tensor, got {type(logits).__name__}")
    if logits.ndim != 2 or logits.shape[0] < 1 or logits.shape[1] < 2:
        raise ValueError(
            f"logits must have shape (m, K) with m >= 1 rows and K >= 2 classes, "
            f"got {tuple(logits.shape)}"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError("logits must be finite")
    logp = torch.log_softmax(logits, -1)
    h = -(logp.exp() * logp).sum(-1)
    c = 1.0 + torch.exp(-h.detach())
    return (c * h).sum() / c.sum()


def pseudo_labels(
    feats: torch.Tensor, probs: torch.Tensor, mode: str = "head", threshold: float = 0.9
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard pseudo-labels (m,) and a keep-mask (m,) for target windows (constants, no gradient).

    `feats` (m, d) are the windows' features, `probs` (m, K) the classifier's class probabilities;
    a window is *confident* when max_k probs >= `threshold`. ``mode="head"`` labels each window
    by argmax_k probs and keeps the confident ones (self-training with a confidence threshold, as
    FixMatch's pseudo-label branch, Sohn et al. 2020, without augmentation). ``mode="centroid"``
    builds one centroid per class from the confident windows of that argmax class, c_k =
    mean(feats of confident windows labelled k), labels *every* window by its nearest centroid
    (Euclidean) and keeps them all (none when no window is confident): SHOT's centroid
    pseudo-labels (Liang et al., ICML 2020), here with centroids from confident windows only. It
    assumes the target classes are compact clusters in `feats` and that the confident windows
    of a class sit in that class's cluster: a window across the classifier's boundary but inside
    a cluster takes the cluster's label. Classes with no confident window get no centroid.
    """
    if mode not in PSEUDO_LABELS:
        raise ValueError(f"mode must be one of {PSEUDO_LABELS}, got {mode!r}")
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    if feats.ndim != 2 or probs.ndim != 2 or len(feats) != len(probs):
        raise ValueError(
            f"feats (m, d) and probs (m, K) must have one row per window, got "
            f"{tuple(feats.shape)} and {tuple(probs.shape)}"
        )
    feats, probs = feats.detach(), probs.detach()
    conf, label = probs.max(1)
    confident = conf >= threshold
    if mode == "head":
        return label, confident
    if mode == "shot":
        centroids, classes = shot_centroids(feats, probs)
        return shot_labels(feats, centroids, classes), torch.ones_like(confident)
    if not bool(confident.any()):
        return label, confident
    classes = torch.unique(label[confident])
    centroids = torch.stack([feats[confident & (label == k)].mean(0) for k in classes])
    nearest = torch.cdist(feats, centroids).argmin(1)
    return classes[nearest], torch.ones_like(confident)


def _unit_with_bias(feats: torch.Tensor) -> torch.Tensor:
    """SHOT's feature for the cosine distance: `feats` (m, d) with a 1 appended, rows L2-normed."""
    f = torch.cat([feats, feats.new_ones(len(feats), 1)], 1)
    return f / f.norm(dim=1, keepdim=True)


def shot_centroids(feats: torch.Tensor, probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SHOT's class centroids over a whole target set (Liang et al., ICML 2020, ``obtain_label``).

    `feats` (m, d) the windows' features, `probs` (m, K) the (frozen) classifier's probabilities.
    Features get a 1 appended and are L2-normalised; the initial centroids are probability-
    weighted means c_k = sum_j p_jk f_j / sum_j p_jk (soft, so every class present in `probs`
    has one), kept for the classes that are the argmax of at least one window; each window takes
    its nearest centroid (cosine distance); then one refinement round: the hard-label means.
    Returns (centroids (K', d + 1), classes (K',)): the refined centroids of the classes that kept
    at least one window (constants, no gradient); :func:`shot_labels` with them gives SHOT's
    pseudo-labels of the set. It assumes the target classes are compact clusters in
    `feats` (by direction) and that the classifier's soft reading puts each cluster's weight
    mostly on its own class.
    """
    if feats.ndim != 2 or probs.ndim != 2 or len(feats) != len(probs) or len(feats) == 0:
        raise ValueError(
            f"feats (m, d) and probs (m, K) must have one row per window (m >= 1), got "
            f"{tuple(feats.shape)} and {tuple(probs.shape)}"
        )
    f = _unit_with_bias(feats.detach())
    p = probs.detach()
    k = p.shape[1]
    init = (p.T @ f) / (1e-8 + p.sum(0)[:, None])
    classes = torch.unique(p.argmax(1))
    label = shot_labels(feats, init[classes], classes)
    onehot = torch.nn.functional.one_hot(label, k).to(f.dtype)
    refined = (onehot.T @ f) / (1e-8 + onehot.sum(0)[:, None])
    # a class that lost every window in the first round has no refined centroid (SHOT: a zero
    # vector, never nearest in practice); drop it
    has = onehot.sum(0)[classes] > 0
    return refined[classes[has]], classes[has]


def shot_labels(
    feats: torch.Tensor, centroids: torch.Tensor, classes: torch.Tensor
) -> torch.Tensor:
    """Each window of `feats` (m, d) labelled by its nearest of `centroids` (K', d + 1) in cosine
    distance (SHOT's feature: a 1 appended, L2-normed); `classes` (K',) the centroids' classes."""
    f = _unit_with_bias(feats.detach())
    c = centroids / centroids.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return classes[(f @ c.T).argmax(1)]


def _gauss_kernel(a: torch.Tensor) -> torch.Tensor:
    """Gaussian kernel matrix of `a` (n, d), bandwidth the median pairwise squared distance
    (detached; 1 when every row is equal)."""
    d2 = torch.cdist(a, a).pow(2)
    pos = d2.detach()[d2.detach() > 0]
    sigma2 = pos.median() if pos.numel() else d2.new_tensor(1.0)
    return torch.exp(-d2 / sigma2)


def hsic(a: torch.Tensor, b: torch.Tensor, b_kernel: str = "linear") -> torch.Tensor:
    """HSIC (biased, Gretton et al. 2005) between features `a` (n, d) and `b` (n, k).

    HSIC = tr(K H L H) / (n - 1)^2 with K a Gaussian kernel on `a` (bandwidth: median pairwise
    squared distance, detached), H the centring matrix and L the kernel on `b`: ``b_kernel=
    "linear"`` L = b b^T (b: one-hot labels, e.g. domains or classes) or ``"gaussian"`` the
    Gaussian kernel of `a`'s kind (b: continuous features, e.g. another latent block). Zero iff
    (for characteristic kernels) `a` is independent of `b`.
    """
    if b_kernel not in ("linear", "gaussian"):
        raise ValueError(f"b_kernel must be 'linear' or 'gaussian', got {b_kernel!r}")
    n = a.shape[0]
    k = _gauss_kernel(a)
    lmat = b @ b.T if b_kernel == "linear" else _gauss_kernel(b)
    h = torch.eye(n, dtype=a.dtype) - 1.0 / n
    return torch.trace(k @ h @ lmat @ h) / max(1, n - 1) ** 2


def coral_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Deep CORAL: ||C_a - C_b||_F^2 / (4 d^2) with C the feature covariance (Sun & Saenko, 2016)."""
    d = a.shape[1]

    def cov(x: torch.Tensor) -> torch.Tensor:
        x = x - x.mean(0, keepdim=True)
        return x.T @ x / max(1, x.shape[0] - 1)

    return (cov(a) - cov(b)).pow(2).sum() / (4 * d * d)
