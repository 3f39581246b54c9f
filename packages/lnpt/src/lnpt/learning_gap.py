"""The learning gap and LNPT's label-free pruning at initialisation (reconstruction).

Only the abstract of LNPT (Xiao et al., arXiv 2403.12690) is public. It says the *learning gap*, measured
on the penultimate feature maps, tracks generalisation, and that a mature teacher guides pruning and
learning on a device with unlabeled data only. The objective and the scores below are a reconstruction:

    LG(theta, M) = E_{x in U} || phi_T(x) - A(phi_S(x; theta * M)) ||^2                      (1)
    J = feature_weight * LG + kd_weight * tau^2 * KL(p_T^tau || p_S^tau)                    (2)
    score_j = | theta_j * dJ/dtheta_j |  at M = 1 (or the current mask when iterating)        (3)

phi are penultimate features (globally pooled for CNN maps), A is the identity when the widths match and
a learned linear adaptor otherwise. (3) is SNIP's connection sensitivity with the label-free objective
(2) in place of the labelled loss; the global top (1 - sparsity) of the scores is kept. Iterative
pruning runs K rounds with the exponential density schedule d_k = (1 - sparsity)^(k / K).

The logit term (2) is on by default (kd_weight=1): parameters after the feature layer (the classifier
head) do not influence (1), so without it they would score zero and be pruned first, and label-free
training would never train the head.

Basis-invariant readings of (1). At initialisation the student's penultimate features live in an
arbitrary basis; with equal widths A is the identity, so (1) compares features coordinate by
coordinate in two unrelated bases. Two named options read "the learning gap on penultimate features"
without that assumption:

- `gap="relation"`: the similarity-structure gap of similarity-preserving distillation (Tung & Mori,
  ICCV 2019). Per batch, G = row-normalised(phi phi^T) for student and teacher; the per-sample gap is
  ||G_S[i] - G_T[i]||^2. Unchanged by any rotation or scaling of the student's features; no adaptor.
- `adaptor="linear"` with equal widths: the residual of the ridge-fitted linear map (a CKA-like gap).
  At the fitted optimum the adaptor's own gradient is zero (up to the ridge term), so the score sees
  only how the student's features should move relative to the best linear reading of the teacher.
"""

from __future__ import annotations

import copy
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from maskloop import WeightMask, filter_names, last_linear, prunable_parameters
from maskloop import scores as ml_scores
from maskloop.checks import (
    check_fraction,
    check_input_shape,
    check_positive_int,
    check_real,
    check_sparsity,
)
from torch import nn

from lnpt.features import Adaptor, FeatureExtractor, all_reduce_mean, iter_inputs

__all__ = [
    "DEFAULT_ROUNDS",
    "DegenerateTeacherWarning",
    "GAPS",
    "SCORE_DEFAULTS",
    "LearningGap",
    "check_min_density",
    "density_schedule",
    "head_pattern",
    "mass_allocation",
    "path_product",
    "normalize_scores",
    "synflow_allocation",
    "prune",
    "score",
    "score_options",
    "select_mask",
    "similarity_gap",
    "teacher_degeneracy",
]

GAPS = ("squared", "norm", "relation", "relation-centered")
TARGETS = ("soft", "hard")


class DegenerateTeacherWarning(UserWarning):
    """The teacher's logits or penultimate features are the same for every input of a batch whose
    inputs differ: it carries no information about them, so it cannot guide the mask or the
    label-free training (LNPT assumes a *mature* teacher)."""


def _constant_rows(t: torch.Tensor) -> bool:
    """Whether every row of `t` (samples along dim 0) equals the first, up to float rounding."""
    t = t.detach().flatten(1).to(torch.float64)
    spread = float((t.amax(dim=0) - t.amin(dim=0)).amax())
    return spread <= 1e-6 * (1.0 + float(t.abs().amax()))


def teacher_degeneracy(
    inputs: torch.Tensor, features: torch.Tensor, logits: torch.Tensor
) -> str | None:
    """What is degenerate about a teacher on a batch, or None: `"logits"` when its outputs are the
    same for every input, else `"features"` when its penultimate features are (e.g. every ReLU
    channel dead: all zeros). Needs at least two inputs that differ (else None: nothing to tell).
    Why: a teacher whose training collapsed (the digits CNN of the benchmark's seed 6 at Adam lr
    1e-2 lost every penultimate channel in two epochs and reads 10%) otherwise guides pruning and
    training silently towards a constant."""
    if inputs.shape[0] < 2 or _constant_rows(inputs):
        return None
    if _constant_rows(logits):
        return "logits"
    if _constant_rows(features):
        return "features"
    return None


def similarity_gap(
    f_s: torch.Tensor, f_t: torch.Tensor, normalize: bool = False, center: bool = False
) -> torch.Tensor:
    """Per-sample similarity-structure gap ||G_S[i] - G_T[i]||^2 of a batch (Tung & Mori, 2019).

    `G = row-normalised(phi phi^T)` (B x B) for student features `f_s` and teacher features `f_t`
    (any trailing shape: each sample's features are flattened; the widths may differ). With
    `normalize=True` the features are L2-normalised first (G then holds row-normalised cosine
    similarities). What it assumes: only how the samples of a batch relate to each other carries the
    teacher's knowledge, not the coordinates of the features, so the gap is unchanged by any
    orthogonal transform (and any positive scale) of either network's features.

    `center=True` subtracts each network's batch-mean feature first (after any normalisation), as
    CKA does: at initialisation a ReLU network's pooled features share a large common component, so
    every entry of the uncentred G_S is close to 1 and its rows carry little structure; centring
    compares how samples differ from the batch average. Also invariant to a common translation.

    Scale: every row of G is a unit vector, so each per-sample gap lies in [0, 4], the same range as
    the squared gap of L2-normalised features, and comparable with the logit term of (2). Tung &
    Mori's loss is ||G_S - G_T||_F^2 / B^2 = mean_i(gap_i) / B; the 1/B is left out so that the
    feature term does not vanish next to the logit term as batches grow. A sample's gap depends on
    the other samples of its batch; a batch of one sample has gap 0.
    """
    s, t = f_s.flatten(1), f_t.flatten(1)
    if normalize:
        s, t = F.normalize(s, dim=1), F.normalize(t, dim=1)
    if center:
        s, t = s - s.mean(0, keepdim=True), t - t.mean(0, keepdim=True)
    g_s = F.normalize(s @ s.T, dim=1)
    g_t = F.normalize(t @ t.T, dim=1)
    return (g_s - g_t).pow(2).sum(1)


def density_schedule(sparsity: float, rounds: int, kind: str = "exponential") -> list[float]:
    """Sparsities of the K pruning rounds, ending exactly at `sparsity`.

    `"exponential"`: density d_k = (1 - sparsity)^(k / K) (SynFlow's schedule); `"linear"`: sparsity
    grows linearly. The last entry is always `sparsity`.
    """
    s = check_sparsity(sparsity)
    k = check_positive_int("rounds", rounds)
    if kind == "exponential":
        out = [1.0 - (1.0 - s) ** (i / k) for i in range(1, k + 1)]
    elif kind == "linear":
        out = [s * i / k for i in range(1, k + 1)]
    else:
        raise ValueError(f"schedule must be 'exponential' or 'linear', got {kind!r}")
    out[-1] = s
    return out


class LearningGap(nn.Module):
    """The label-free objective (2): feature gap to the teacher plus optional logit distillation.

    Call `setup(x)` once (done by `score`, `prune` and the trainer) to check the pair on a batch,
    build the adaptor A and, for a linear A, fit it by ridge least squares. `per_sample(x)` returns
    per-sample objective values with gradients to the student (the teacher runs under `no_grad`).

    Args:
        student, teacher: the networks; the teacher may be another architecture.
        feature_layer: student module name / module / None (input of the last Linear).
        teacher_layer: teacher feature layer; `"same"` reuses a string `feature_layer`, else the
            teacher's last Linear input.
        which: read the layer's "input" or "output".
        pool: `"avg"` (global average pooling of maps) or None.
        adaptor: `"auto"` (identity when widths match, else linear), `"identity"` or `"linear"`.
        normalize: L2-normalise both feature vectors per sample before the gap (default; a
            reconstruction choice: the raw gap of (1) scales with the teacher's feature norm, which
            on a trained teacher is hundreds of times the logit term and swamps it).
        feature_weight, kd_weight, temperature: the weights and tau of (2).
        gap: `"squared"` (default, (1) as written), `"norm"`: the per-sample gap's magnitude
            ||phi_T - A(phi_S)|| instead of its square (a reconstruction variant: same direction per
            sample, but every sample weighs alike in the gradient instead of in proportion to its
            gap), or `"relation"`: the similarity-structure gap (`similarity_gap`), which compares
            how the samples of a batch relate to each other and not the features coordinate by
            coordinate; it needs no adaptor (the widths may differ), so `adaptor` must be "auto" or
            "identity" with it; `"relation-centered"`: the same on batch-centred features.
        targets: what the logit term learns from the teacher's outputs. `"soft"` (default):
            tau^2 KL(p_T^tau || p_S^tau), assumes the teacher's whole softened distribution (its
            "dark knowledge") is worth matching. `"hard"`: cross-entropy to the teacher's argmax
            class (pseudo-labels; `temperature` unused), assumes only the teacher's decision is
            reliable and gives the sharp per-sample gradient of labelled training, with the
            teacher's mistakes as label noise.
        confidence: samples whose teacher top-class probability (at temperature 1) is below it get
            no logit term (0, the default, keeps every sample); assumes the teacher's unconfident
            outputs are more often wrong than informative. The feature gap is kept for every sample.
        standardize: per-feature standardised gap (session 19's reading for the digits CNN; off by
            default). At `setup` each network's penultimate features are standardised per feature
            over the setup inputs (the unlabeled scoring batch: mean 0, std 1 per coordinate;
            a constant feature maps to 0), the adaptor is fitted on the standardised features,
            and the gap (then `normalize`, if set) is read on them, with the statistics held fixed
            afterwards like the fitted adaptor (refreshed at every refitting `setup`). What it
            assumes: every teacher feature carries the same weight once measured in units of its
            own spread over the data, so a few high-variance features do not dominate the gap and
            its gradient (the raw squared gap weighs each teacher coordinate by its variance);
            and that the setup inputs are enough to estimate each feature's mean and spread (512
            in the benchmark). With a linear adaptor the student's side changes only how far the
            ridge term reaches (the fit absorbs a per-feature affine map); the change is the
            teacher's side. Needs pooled (N, D) features and the squared or norm gap.

    With `adaptor="linear"` and equal widths, (1) is the residual after the ridge least-squares map
    from student to teacher features (a CKA-like gap): it assumes the teacher's features are only
    known up to a linear map of the student's, which is what an initialised student's basis is.
    """

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        feature_layer: str | nn.Module | None = None,
        teacher_layer: str | nn.Module | None = "same",
        which: str = "input",
        pool: str | None = "avg",
        adaptor: str = "auto",
        normalize: bool = True,
        feature_weight: float = 1.0,
        kd_weight: float = 1.0,
        temperature: float = 4.0,
        gap: str = "squared",
        targets: str = "soft",
        confidence: float = 0.0,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        if not isinstance(standardize, bool):
            raise TypeError(f"standardize must be a bool, got {standardize!r}")
        if standardize and gap.startswith("relation"):
            raise ValueError(
                f"standardize=True applies to the squared or norm gap, not gap={gap!r}"
            )
        if standardize and pool is None:
            raise ValueError("standardize=True needs pooled features (pool='avg'), got pool=None")
        self.standardize = standardize
        # (student mean, student std, teacher mean, teacher std), set by `setup` when standardising
        self.feature_stats: tuple[torch.Tensor, ...] | None = None
        if targets not in TARGETS:
            raise ValueError(f"targets must be 'soft' or 'hard', got {targets!r}")
        self.confidence = check_real("confidence", confidence, low=0.0, high=1.0)
        self.targets = targets
        if gap not in GAPS:
            raise ValueError(
                f"gap must be 'squared', 'norm', 'relation' or 'relation-centered', got {gap!r}"
            )
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be a torch.nn.Module, got {type(student).__name__}")
        if not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be a torch.nn.Module, got {type(teacher).__name__}")
        if adaptor not in ("auto", "identity", "linear"):
            raise ValueError(f"adaptor must be 'auto', 'identity' or 'linear', got {adaptor!r}")
        if gap.startswith("relation") and adaptor == "linear":
            raise ValueError(
                f"adaptor='linear' does not apply to gap={gap!r} (the similarity structure "
                "compares samples, not feature coordinates); use adaptor='auto' or 'identity'"
            )
        if not isinstance(normalize, bool):
            raise TypeError(f"normalize must be a bool, got {normalize!r}")
        self.feature_weight = check_real("feature_weight", feature_weight, low=0.0)
        self.kd_weight = check_real("kd_weight", kd_weight, low=0.0)
        self.temperature = check_real("temperature", temperature, low=0.0)
        if self.temperature == 0:
            raise ValueError("temperature must be > 0, got 0")
        if self.feature_weight == 0 and self.kd_weight == 0:
            raise ValueError(
                "feature_weight and kd_weight are both 0: the objective would be empty"
            )
        if teacher_layer == "same":
            teacher_layer = feature_layer if isinstance(feature_layer, str) else None
        # Stored outside nn.Module's registry so that the student/teacher are not sub-modules.
        self.__dict__["student"] = student
        self.__dict__["teacher"] = teacher
        self.student_features = FeatureExtractor(student, feature_layer, which, pool)
        self.teacher_features = FeatureExtractor(teacher, teacher_layer, which, pool)
        self.adaptor_kind = adaptor
        self.normalize = normalize
        self.gap_form = gap
        self.adaptor: Adaptor | None = None

    # ------------------------------------------------------------------ setup
    @torch.no_grad()
    def teacher_outputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher features and logits (eval mode, no gradients: queried online)."""
        teacher = self.__dict__["teacher"]
        was = teacher.training
        teacher.eval()
        try:
            return self.teacher_features(x)
        finally:
            teacher.train(was)

    def setup(
        self,
        x: torch.Tensor | Sequence[torch.Tensor],
        refit: bool = True,
        sync: bool | None = None,
    ) -> LearningGap:
        """Check shapes on inputs `x`, build the adaptor and (linear) fit it by ridge least squares.

        `sync` (None: when torch.distributed runs more than one rank) all-reduces the least-squares
        normal equations so that every rank fits the same adaptor from its own inputs.
        """
        xs = [x] if isinstance(x, torch.Tensor) else list(x)
        if not xs:
            raise ValueError("setup needs at least one input batch")
        student = self.__dict__["student"]
        was = student.training
        student.eval()  # BatchNorm statistics are read, never updated, by the setup pass
        try:
            with torch.no_grad():
                fs, ls, ft, lt = [], [], [], []
                for xb in xs:
                    f_s, l_s = self.student_features(xb)
                    f_t, l_t = self.teacher_outputs(xb)
                    fs.append(f_s)
                    ls.append(l_s)
                    ft.append(f_t)
                    lt.append(l_t)
        finally:
            student.train(was)
        f_s, f_t = torch.cat(fs), torch.cat(ft)
        l_s, l_t = ls[0], lt[0]
        what = teacher_degeneracy(torch.cat([xb.detach() for xb in xs]), f_t, torch.cat(lt))
        if what is not None:
            warnings.warn(
                f"the teacher gives the same {what} for all {f_t.shape[0]} setup inputs (which "
                "differ): it carries no information about them and cannot guide pruning or "
                "label-free training. A collapsed teacher, e.g. every ReLU before its last layer "
                "dead after training at too high a learning rate; check its accuracy and retrain "
                "it (the benchmark's digits CNN teacher trains at Adam lr 3e-3, not 1e-2)",
                DegenerateTeacherWarning,
                stacklevel=2,
            )
        if l_s.shape[1:] != l_t.shape[1:]:
            raise ValueError(
                f"teacher and student outputs do not match: student gives {tuple(l_s.shape[1:])}, "
                f"teacher {tuple(l_t.shape[1:])}; both must predict the same classes"
            )
        if self.gap_form.startswith(
            "relation"
        ):  # samples are compared, not coordinates: no adaptor
            if self.adaptor is None or refit:
                self.adaptor = Adaptor("identity", f_s.shape[1], f_s.shape[1])
            return self
        if f_s.ndim != f_t.ndim or (f_s.ndim >= 3 and f_s.shape[2:] != f_t.shape[2:]):
            raise ValueError(
                f"student features {tuple(f_s.shape[1:])} and teacher features "
                f"{tuple(f_t.shape[1:])} cannot be compared; use pool='avg'"
            )
        if self.standardize:
            if f_s.ndim != 2 or f_t.ndim != 2:
                raise ValueError(
                    "standardize=True needs pooled (N, D) features, got student "
                    f"{tuple(f_s.shape[1:])} and teacher {tuple(f_t.shape[1:])}"
                )
            if self.feature_stats is None or refit:
                self.feature_stats = (*_feature_stats(f_s, sync), *_feature_stats(f_t, sync))
            f_s, f_t = self._standardized(f_s, f_t)
        d_s, d_t = f_s.shape[1], f_t.shape[1]
        kind = self.adaptor_kind
        if kind == "auto":
            kind = "identity" if d_s == d_t else "linear"
        if self.adaptor is None or refit:
            device = f_s.device
            self.adaptor = Adaptor(kind, d_s, d_t, maps=max(f_s.ndim - 2, 0)).to(device=device)
            self.adaptor.to(dtype=f_s.dtype)
            self.adaptor.fit_(f_s, f_t, sync=sync)
        return self

    # ------------------------------------------------------------------ objective
    def _check_ready(self) -> Adaptor:
        if self.adaptor is None:
            raise RuntimeError("call LearningGap.setup(x) on an input batch first")
        return self.adaptor

    def _standardized(
        self, f_s: torch.Tensor, f_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Both networks' features standardised with the statistics fixed at `setup`."""
        if self.feature_stats is None:
            raise RuntimeError("call LearningGap.setup(x) on an input batch first")
        mu_s, sd_s, mu_t, sd_t = self.feature_stats
        return (f_s - mu_s.to(f_s)) / sd_s.to(f_s), (f_t - mu_t.to(f_t)) / sd_t.to(f_t)

    def gap_terms(
        self, f_s: torch.Tensor, l_s: torch.Tensor, f_t: torch.Tensor, l_t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-sample feature gap ||phi_T - A(phi_S)||^2 and tau^2 KL(p_T^tau || p_S^tau) (or, with
        `targets="hard"`, the cross-entropy to the teacher's argmax; zero where the teacher's
        confidence is below `confidence`).

        With `gap="norm"` the first term is ||phi_T - A(phi_S)|| (per position for unpooled maps);
        with `gap="relation"` it is `similarity_gap(phi_S, phi_T)` of the batch. With
        `standardize=True` both features are standardised first (statistics of `setup`).
        """
        adaptor = self._check_ready()
        if self.standardize:
            f_s, f_t = self._standardized(f_s, f_t)
        z = adaptor(f_s)
        if self.gap_form.startswith("relation"):
            gap = similarity_gap(z, f_t, self.normalize, self.gap_form == "relation-centered")
        elif z.ndim >= 3:  # unpooled maps: per-sample sum over channels, mean over positions
            z, f_t = z.flatten(2), f_t.flatten(2)
            if self.normalize:
                z, f_t = F.normalize(z, dim=1), F.normalize(f_t, dim=1)
            sq = (z - f_t).pow(2).sum(1)
            gap = (sq.clamp_min(1e-24).sqrt() if self.gap_form == "norm" else sq).mean(-1)
        else:
            if self.normalize:
                z, f_t = F.normalize(z, dim=1), F.normalize(f_t, dim=1)
            sq = (z - f_t).pow(2).sum(1)
            gap = sq.clamp_min(1e-24).sqrt() if self.gap_form == "norm" else sq
        if self.kd_weight > 0:
            if self.targets == "hard":
                kd = F.cross_entropy(l_s, l_t.argmax(-1), reduction="none")
            else:
                tau = self.temperature
                log_ps = F.log_softmax(l_s / tau, dim=-1)
                log_pt = F.log_softmax(l_t / tau, dim=-1)
                kd = (log_pt.exp() * (log_pt - log_ps)).sum(-1) * tau**2
            if self.confidence > 0:
                sure = F.softmax(l_t, dim=-1).amax(-1) >= self.confidence
                kd = kd * sure.to(kd.dtype)
        else:
            kd = torch.zeros_like(gap)
        return gap, kd

    def per_sample(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample objective (2) on inputs `x`; differentiable in the student (and adaptor)."""
        f_s, l_s = self.student_features(x)
        f_t, l_t = self.teacher_outputs(x)
        gap, kd = self.gap_terms(f_s, l_s, f_t, l_t)
        return self.feature_weight * gap + self.kd_weight * kd

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Mean objective (2) over the batch."""
        return self.per_sample(x).mean()

    @torch.no_grad()
    def feature_gap(self, data: Iterable[Any], max_batches: int | None = None) -> float:
        """LG (1) alone, averaged over the samples of `data` (inputs only; labels never read)."""
        student = self.__dict__["student"]
        was = student.training
        student.eval()
        total, n = 0.0, 0
        try:
            for x in iter_inputs(data, "data", max_batches):
                f_s, l_s = self.student_features(x)
                f_t, l_t = self.teacher_outputs(x)
                gap, _ = self.gap_terms(f_s, l_s, f_t, l_t)
                total += float(gap.sum())
                n += x.shape[0]
        finally:
            student.train(was)
        return total / n


def _feature_stats(f: torch.Tensor, sync: bool | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std (population) of (N, D) features, in float64, over every rank's
    samples when distributed; a constant feature (std <= 1e-9 (1 + |mean|)) gets std = inf, so it
    standardises to 0."""
    f = f.detach().to(torch.float64)
    s1, s2 = all_reduce_mean([f.sum(0), f.pow(2).sum(0)], 1, sync)
    n = all_reduce_mean([torch.tensor(float(f.shape[0]), dtype=torch.float64)], 1, sync)[0]
    mu = s1 / n
    sd = (s2 / n - mu.pow(2)).clamp_min(0.0).sqrt()
    sd = torch.where(sd <= 1e-9 * (1.0 + mu.abs()), torch.full_like(sd, math.inf), sd)
    return mu, sd


def _params(
    model: nn.Module,
    params: Mapping[str, torch.Tensor] | None,
    exclude: str | Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """The parameters to score: `params` (default: prunable weights) minus names matching `exclude`."""
    if params is None:
        return prunable_parameters(model, exclude=exclude)
    if not isinstance(params, Mapping) or not params:
        raise ValueError("params must be a non-empty mapping name -> parameter of the student")
    named = dict(model.named_parameters())
    missing = [n for n in params if n not in named]
    if missing:
        raise ValueError(f"params names {missing[:5]} that the student does not have")
    out = {n: named[n] for n in filter_names(params, exclude=exclude)}
    if not out:
        raise ValueError(f"exclude={exclude!r} leaves none of params to prune")
    return out


def head_pattern(model: nn.Module) -> str:
    """A regex (for `exclude=`) matching exactly the weight of `model`'s last `nn.Linear` (the head)."""
    return rf"^{re.escape(last_linear(model))}\.weight$"


def check_min_density(min_density: object) -> float | None:
    """`min_density` as None (the core default) or a float in [0, 1) (`maskloop.checks`)."""
    if min_density is None:
        return None
    return check_fraction(
        "min_density", min_density, meaning="the least fraction kept in every tensor"
    )


def select_mask(
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    *,
    scope: str = "global",
    previous: WeightMask | None = None,
    min_density: float | None = None,
) -> WeightMask:
    """`WeightMask.from_scores` with the core's layer-collapse guard, LNPT's one selection path.

    `min_density=None` (default) is the core guard: no tensor is emptied (each keeps at least 1% of
    its entries, relaxed to one entry when those floors do not fit), with a warning naming each
    tensor the plain selection would have emptied; `min_density = d > 0` keeps at least
    `ceil(d * numel)` of every tensor (among those `previous` kept) and raises ValueError when the
    floors alone exceed the budget; `min_density=0` is the plain global (or per-layer) selection,
    which may empty a tensor. The overall sparsity is exact in every case.
    """
    s = check_sparsity(sparsity)
    d = check_min_density(min_density)
    return WeightMask.from_scores(scores, s, scope=scope, previous=previous, min_density=d)


ALLOCATIONS = ("global", "mass", "synflow")
PATH_TERMS = (None, "synflow")


def mass_allocation(
    scores: Mapping[str, torch.Tensor],
    sparsity: float,
    *,
    previous: WeightMask | None = None,
    min_density: float | None = None,
) -> dict[str, int]:
    """How many entries each tensor keeps when a layer's share of the budget is its share of the
    score mass (`prune(allocation="mass")`).

    The kept total is `WeightMask.from_scores`'s (exactly `round(sparsity * numel)` pruned). Every
    tensor first gets its layer-collapse floor (`max(1, ceil(d * numel))` with `d = min_density`,
    None: the core's 0.01; never more than `previous` left it); the rest of the budget is split in
    proportion to each tensor's score mass (the sum of its scores over the entries `previous` kept),
    water-filled so that no tensor is asked for more than it has left, and rounded by largest
    remainder. A tensor of zero mass gets its floor only; when every tensor has zero mass the rest
    is split by how many entries each has left. Raises ValueError when the floors alone exceed the
    budget.
    """
    s = check_sparsity(sparsity)
    d = check_min_density(min_density)
    d = 0.01 if d is None else d
    names = list(scores)
    numel = {n: scores[n].numel() for n in names}
    total = sum(numel.values())
    keep_total = total - math.floor(s * total + 0.5)
    alive = {
        n: (previous[n].reshape(-1) if previous is not None and n in previous else None)
        for n in names
    }
    avail = {n: numel[n] if alive[n] is None else int(alive[n].sum()) for n in names}
    mass = {}
    for n in names:
        flat = scores[n].detach().to(torch.float64).reshape(-1)
        mass[n] = float(flat.sum() if alive[n] is None else flat[alive[n]].sum())
    alloc = {n: min(avail[n], max(1, math.ceil(d * numel[n])) if d > 0 else 0) for n in names}
    rest = keep_total - sum(alloc.values())
    if rest < 0 and min_density is None:  # the core's default floors relax to one entry
        alloc = {n: min(avail[n], 1) for n in names}
        rest = keep_total - sum(alloc.values())
    if rest < 0:
        raise ValueError(
            f"min_density={d}: the per-tensor floors keep {sum(alloc.values())} entries, more than "
            f"the {keep_total} that sparsity={s} leaves"
        )
    _fill_then_left(alloc, avail, mass, rest, names)
    return alloc


def synflow_allocation(
    model: nn.Module,
    input_shape: Sequence[int],
    sparsity: float,
    *,
    params: Mapping[str, torch.Tensor],
    previous: WeightMask | None = None,
    min_density: float | None = None,
    rounds: int = 100,
) -> dict[str, int]:
    """How many entries each tensor keeps when the per-layer budgets are those of iterative SynFlow
    (`prune(allocation="synflow")`, session 22's reading): the per-tensor kept counts of
    `lnpt.baselines.synflow_prune(model, input_shape, sparsity, rounds=rounds)` over `params`
    (data-free; the same collapse floors `min_density`, so the counts sum to exactly the budget
    `WeightMask.from_scores` keeps at `sparsity`). A tensor asked for more than `previous` left it
    keeps all it has left, and the excess goes to the other tensors in proportion to their SynFlow
    counts (water-filled up to what each has left; then by entries left), so the total stays exact.
    """
    from lnpt.baselines import synflow_prune  # lnpt.baselines imports this module

    syn = synflow_prune(
        model, input_shape, sparsity, rounds=rounds, params=params, min_density=min_density
    )
    names = list(params)
    want = {n: int(syn[n].sum()) for n in names}
    avail = {
        n: int(previous[n].sum()) if previous is not None and n in previous else params[n].numel()
        for n in names
    }
    alloc = {n: min(want[n], avail[n]) for n in names}
    rest = sum(want.values()) - sum(alloc.values())
    if rest > 0:
        _fill_then_left(alloc, avail, {n: float(want[n]) for n in names}, rest, names)
    return alloc


def path_product(
    scores: Mapping[str, torch.Tensor],
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    params: Mapping[str, torch.Tensor],
    mask: WeightMask | None = None,
) -> dict[str, torch.Tensor]:
    """The gap score times SynFlow's data-free path term, entry by entry, in float64
    (`prune(path_term="synflow")`, session 22's reading): `S = |theta dJ/dtheta| * |theta dR/dtheta|`
    with `R = 1^T f_{|theta|}(1)` of the student at `mask` (`maskloop.scores.synflow`)."""
    syn = ml_scores.synflow(model, params=params, input_shape=input_shape, mask=mask)
    return {n: scores[n].detach().to(torch.float64) * syn[n].to(torch.float64) for n in scores}


def _fill(
    alloc: dict[str, int],
    cap: Mapping[str, int],
    weight: Mapping[str, float],
    rest: int,
    names: list[str],
) -> int:
    """Add up to `rest` entries to `alloc` in proportion to `weight`, at most `cap[n]` to tensor n
    (water-filling, then largest remainder); returns what could not be placed."""
    active = [n for n in names if cap[n] > 0 and weight[n] > 0]
    while active and rest > 0:
        w = sum(weight[n] for n in active)
        full = [n for n in active if rest * weight[n] / w >= cap[n]]
        if not full:
            want = {n: rest * weight[n] / w for n in active}
            base = {n: math.floor(want[n]) for n in active}
            extra = rest - sum(base.values())
            order = sorted(active, key=lambda n: (base[n] - want[n], names.index(n)))
            for i, n in enumerate(order):
                alloc[n] += base[n] + (1 if i < extra else 0)
            return 0
        for n in full:
            alloc[n] += cap[n]
            rest -= cap[n]
            active.remove(n)
    return rest


def _fill_then_left(
    alloc: dict[str, int],
    avail: Mapping[str, int],
    weight: Mapping[str, float],
    rest: int,
    names: list[str],
) -> None:
    """`_fill` `rest` entries by `weight` up to what each tensor has left (`avail` - `alloc`); what
    cannot be placed that way (tensors of zero weight) goes by the entries each has left."""
    cap = {n: avail[n] - alloc[n] for n in names}
    rest = _fill(alloc, cap, weight, rest, names)
    if rest > 0:
        left = {n: avail[n] - alloc[n] for n in names}
        _fill(alloc, left, left, rest, names)


def _allocated_scores(
    scores: Mapping[str, torch.Tensor], counts: Mapping[str, int], previous: WeightMask | None
) -> dict[str, torch.Tensor]:
    """Scores whose global top-k keeps exactly each tensor's top `counts[n]` (among the entries
    `previous` kept), in the tensor's own order: those map to [2, 3], the rest to [0, 1]."""
    out = {}
    for n, t in scores.items():
        flat = t.detach().to(torch.float64).reshape(-1)
        top = float(flat.max()) if flat.numel() else 0.0
        key = flat / top if top > 0 else torch.zeros_like(flat)
        if previous is not None and n in previous:
            key = torch.where(previous[n].reshape(-1), key, torch.zeros_like(key))
            order = torch.argsort(-key.masked_fill(~previous[n].reshape(-1), -1.0), stable=True)
        else:
            order = torch.argsort(-key, stable=True)
        key = key.clone()
        key[order[: counts[n]]] += 2.0
        out[n] = key.reshape(t.shape)
    return out


SCORE_NORMS = (None, "mean", "sum")
# The scoring variant chosen on the validation ablation (first run, previous training objective:
# highest mean validation accuracy over the digits CNN and the MNIST-1D BatchNorm CNN at 95%
# sparsity; `docs/benchmarks/lnpt_ablation.md`) and kept when re-checked under the current training
# (`lnpt bench --ablation`, 5 seeds x digits MLP / CNN / MNIST-1D CNN, paired rule; no variant
# ahead; `docs/benchmarks/lnpt_ablation_kd.md`): `linear-adaptor-raw-iterative-10`, i.e. the gap to
# the teacher after the ridge-fitted linear adaptor on raw (not L2-normalised) features, pruned in
# 10 rounds on the exponential schedule. `SCORE_DEFAULTS` are the `LearningGap` options that `score` / `prune` use
# unless the call names them, `DEFAULT_ROUNDS` is `prune`'s default `rounds`. The training objective
# keeps `LearningGap`'s own defaults (the ablation compares scores, not trainings).
SCORE_DEFAULTS: dict[str, Any] = {"adaptor": "linear", "normalize": False}
DEFAULT_ROUNDS = 10


def score_options(gap_options: Mapping[str, Any]) -> dict[str, Any]:
    """`gap_options` over `SCORE_DEFAULTS`; a call asking for a relation gap drops the default
    linear adaptor (which does not apply to it) unless it names an adaptor itself."""
    out = {**SCORE_DEFAULTS, **gap_options}
    if str(gap_options.get("gap", "")).startswith("relation") and "adaptor" not in gap_options:
        out.pop("adaptor", None)
    return out


BN_MODES = ("eval", "train")
AVERAGES = ("gradient", "scores")


def _check_teachers(teacher: object) -> list[nn.Module]:
    """One teacher, or a non-empty sequence of teacher checkpoints (their scores are averaged)."""
    if isinstance(teacher, nn.Module):
        return [teacher]
    if isinstance(teacher, (list, tuple)) and teacher:
        bad = [i for i, t in enumerate(teacher) if not isinstance(t, nn.Module)]
        if not bad:
            return list(teacher)
        raise TypeError(f"teacher[{bad[0]}] must be a torch.nn.Module, got {teacher[bad[0]]!r:.60}")
    raise TypeError(
        "teacher must be a torch.nn.Module or a non-empty list of them (checkpoints), got "
        f"{type(teacher).__name__}"
    )


def normalize_scores(
    scores: Mapping[str, torch.Tensor], how: str | None
) -> dict[str, torch.Tensor]:
    """Per-layer score normalisation before global selection.

    `None`: unchanged. `"mean"`: every tensor's scores divided by their mean (each layer's average
    score is 1, so global selection compares weights by how far above their own layer's average they
    are). `"sum"`: divided by their sum (every layer carries the same score mass, so a weight of a
    small layer outranks one of a large layer with the same share of its layer's mass). A tensor whose
    scores are all zero stays zero.
    """
    if how not in SCORE_NORMS:
        raise ValueError(f"score_norm must be one of {SCORE_NORMS}, got {how!r}")
    if how is None:
        return dict(scores)
    out = {}
    for n, t in scores.items():
        denom = t.sum() if how == "sum" else t.mean()
        out[n] = t / denom if float(denom) > 0 else t.clone()
    return out


def score(
    student: nn.Module,
    teacher: nn.Module | Sequence[nn.Module],
    unlabeled: Iterable[Any],
    *,
    feature_layer: str | nn.Module | None = None,
    teacher_layer: str | nn.Module | None = "same",
    mask: WeightMask | None = None,
    params: Mapping[str, torch.Tensor] | None = None,
    exclude: str | Sequence[str] | None = None,
    max_batches: int | None = None,
    sync: bool | None = None,
    score_norm: str | None = None,
    bn: str = "eval",
    average: str = "gradient",
    **gap_options: Any,
) -> dict[str, torch.Tensor]:
    """LNPT connection sensitivity (3): |theta * dJ/dtheta| on unlabeled batches, at M = `mask` or 1.

    The gradient is averaged over up to `max_batches` batches of `unlabeled` (a DataLoader of inputs,
    or of (inputs, labels) whose labels are ignored). The student is not modified: scores are taken
    on a copy (with `mask` applied when given), so its parameters, BatchNorm statistics and
    train/eval mode stay as they were. `gap_options` go to `LearningGap` (adaptor, normalize, pool,
    which, gap, feature_weight, kd_weight, temperature); those not given are `SCORE_DEFAULTS` (the
    variant chosen on validation), then `LearningGap`'s defaults. A linear adaptor is fitted once
    (ridge least squares at the scored student) and held fixed: the scores are the partial
    derivatives in the student's weights, not through the adaptor's refit.

    Options (reconstruction variants, compared in the package docs):
        teacher: one network, or a list of teacher checkpoints; the scores are the mean of the
            scores against each.
        score_norm: per-layer normalisation of the scores (`normalize_scores`): None, "mean", "sum".
        bn: "eval" (default, as the reference SNIP/GraSP/SynFlow code scores: BatchNorm uses its
            running statistics, dropout is off) or "train" (batch statistics).
        average: how the batches combine (session 19's reading for the digits CNN).
            `"gradient"` (default): one score `|theta * g|` of the gradient `g` averaged over the
            batches (the same as scoring their union as one batch when the per-sample objectives
            do not depend on each other). `"scores"`: every batch's own score `|theta * g_b|`,
            averaged over the batches; with the benchmark's 4 disjoint batches of 128 this is the
            same inputs, the same batch size and the same total budget (512) as the default, only
            averaged after the absolute value. What it assumes: a weight matters when each batch
            finds it important, even where the batches' gradients point different ways and would
            cancel in their mean (the default keeps only the sensitivity that agrees across
            batches). The linear adaptor is fitted once on all the batches in either case.

    Under `torch.distributed` (`sync=None`: whenever a process group of more than one rank is
    initialised) each rank may score its own shard of the unlabeled data: the linear adaptor's normal
    equations and the gradient sums are all-reduced, so every rank gets the scores of the union of
    the shards (the mean over all ranks' batches) and hence the same mask. The model must start
    identical on every rank (same seed).

    Returns a dict name -> non-negative score tensor for `params` (default: prunable weights) minus
    the names matching the regex(es) `exclude` (e.g. `head_pattern(student)` keeps the head dense).
    """
    if not isinstance(student, nn.Module):
        raise TypeError(f"student must be a torch.nn.Module, got {type(student).__name__}")
    teachers = _check_teachers(teacher)
    if score_norm not in SCORE_NORMS:
        raise ValueError(f"score_norm must be one of {SCORE_NORMS}, got {score_norm!r}")
    if bn not in BN_MODES:
        raise ValueError(f"bn must be 'eval' or 'train', got {bn!r}")
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    names = list(_params(student, params, exclude))
    if mask is not None and not isinstance(mask, WeightMask):
        raise TypeError(f"mask must be a WeightMask, got {type(mask).__name__}")
    if isinstance(feature_layer, nn.Module):  # map a module of the student to its copy
        found = [n for n, m in student.named_modules() if m is feature_layer]
        if not found:
            raise ValueError("feature_layer is a module that is not part of the student")
        feature_layer = found[0]
    xs = list(iter_inputs(unlabeled, "unlabeled", max_batches))
    gap_options = score_options(gap_options)
    total: dict[str, torch.Tensor] | None = None
    for t in teachers:
        out = _score_one(
            student,
            t,
            xs,
            names,
            feature_layer,
            teacher_layer,
            mask,
            sync,
            bn,
            average,
            gap_options,
        )
        total = out if total is None else {n: total[n] + out[n] for n in total}
    assert total is not None
    out = {n: v / len(teachers) for n, v in total.items()} if len(teachers) > 1 else total
    return normalize_scores(out, score_norm)


def _score_one(
    student: nn.Module,
    teacher: nn.Module,
    xs: list[torch.Tensor],
    names: list[str],
    feature_layer: str | None,
    teacher_layer: str | nn.Module | None,
    mask: WeightMask | None,
    sync: bool | None,
    bn: str,
    average: str,
    gap_options: Mapping[str, Any],
) -> dict[str, torch.Tensor]:
    """Scores (3) of a copy of `student` against one teacher on the input batches `xs`."""
    work = copy.deepcopy(student)
    work.train(bn == "train")
    if mask is not None:
        mask.apply_(work)
    gap = LearningGap(
        work, teacher, feature_layer=feature_layer, teacher_layer=teacher_layer, **gap_options
    )
    gap.setup(xs, sync=sync)
    named = dict(work.named_parameters())
    plist = [named[n] for n in names]
    grads = [torch.zeros_like(p) for p in plist]
    for x in xs:
        loss = gap(x)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the learning-gap objective is {loss.item()} on a batch")
        gs = torch.autograd.grad(loss, plist, allow_unused=True)
        for acc, p, g in zip(grads, plist, gs):
            if g is not None:
                acc.add_(g if average == "gradient" else (p.detach() * g).abs())
    grads = all_reduce_mean(grads, len(xs), sync)
    if average == "gradient":
        out = {n: (p.detach() * g).abs() for n, p, g in zip(names, plist, grads)}
    else:  # the mean of the batches' own scores
        out = dict(zip(names, grads))
    dead = [
        n
        for n, s in out.items()
        if not bool((s > 0).any())
        and (mask is None or n not in mask or bool(mask[n].any()))
        and bool((named[n] != 0).any())
    ]
    if dead:
        warnings.warn(
            f"parameters {dead} do not influence the label-free objective (all scores 0) and will be "
            "pruned first; set kd_weight > 0 or leave them out of params",
            UserWarning,
            stacklevel=3,
        )
    return out


def prune(
    student: nn.Module,
    teacher: nn.Module,
    unlabeled: Iterable[Any],
    sparsity: float,
    *,
    rounds: int | None = None,
    schedule: str = "exponential",
    scope: str = "global",
    feature_layer: str | nn.Module | None = None,
    teacher_layer: str | nn.Module | None = "same",
    params: Mapping[str, torch.Tensor] | None = None,
    exclude: str | Sequence[str] | None = None,
    min_density: float | None = None,
    max_batches: int | None = None,
    sync: bool | None = None,
    score_norm: str | None = None,
    bn: str = "eval",
    allocation: str = "global",
    average: str = "gradient",
    path_term: str | None = None,
    input_shape: Sequence[int] | None = None,
    **gap_options: Any,
) -> WeightMask:
    """LNPT pruning before training: keep the top (1 - sparsity) of the scores (3).

    `rounds=None` is `DEFAULT_ROUNDS` (10, chosen on validation with `SCORE_DEFAULTS`);
    `rounds=1` is one-shot. `rounds=K > 1` re-scores the masked student K times, pruning to the
    `density_schedule(sparsity, K, schedule)` sparsities; pruned weights never return. The returned
    `WeightMask` has exactly `round(sparsity * numel)` pruned entries; apply it with `mask.apply_`.
    `teacher` may be a list of checkpoints; `score_norm`, `bn`, `average` and `gap_options` are as
    in `score` (e.g. `average="scores"`, `standardize=True`: session 19's two further readings).

    Against layer collapse (not in the paper's abstract): `exclude` leaves tensors out of the mask
    (e.g. `exclude=head_pattern(student)` keeps the classifier dense) and `min_density` keeps at
    least that fraction of every masked tensor (`select_mask`; default None: the core guard, 1%;
    `min_density=0` opts out).

    `allocation` (session 19's reading for the digits CNN): `"global"` (default) keeps the global
    top-k of the scores in every round. `"mass"` sets each round's per-tensor budget from the score
    itself: every tensor keeps its share of the score mass (`mass_allocation`, after the collapse
    floors), its own highest-scored entries. What it assumes: a layer's total score (its summed
    connection sensitivity) says how much of the objective the layer carries, so its share of the
    kept weights should follow that share; global top-k instead follows the per-weight scale,
    which favours small layers (on the digits CNN the default score's mean per weight falls
    20 : 1.9 : 1 from conv1 to conv3 while conv3 holds 61% of the mass, so global top-k keeps
    3.0% of conv3 where SNIP keeps 3.5%). Needs `scope="global"`.

    Session 22's two readings that bring in SynFlow's data-free path term (both off by default; both
    need `input_shape`, one input without the batch axis, for SynFlow's all-ones input):
    `allocation="synflow"`: each round's per-tensor budget is that of iterative SynFlow (100 rounds)
    at the round's sparsity (`synflow_allocation`), and each tensor keeps its own highest gap
    scores. What it assumes: the layer densities are what SynFlow gets right on the CNN (its masks
    train best label-free there) and the gap gets wrong, while the gap ranks weights within a layer
    (where its scale problems cancel). Needs `scope="global"`.
    `path_term="synflow"`: each round ranks `|theta dJ/dtheta| * |theta dR/dtheta|`, the gap score
    times SynFlow's score of the student at the current mask (`path_product`). What it assumes: a
    weight matters when the gap needs it and it lies on strong input-output paths (so it is not
    cut off by the rest of the mask); re-scoring over the rounds lets the path term conserve flow
    as SynFlow's iteration does.
    """
    s = check_sparsity(sparsity)
    check_min_density(min_density)
    if allocation not in ALLOCATIONS:
        raise ValueError(f"allocation must be one of {ALLOCATIONS}, got {allocation!r}")
    if average not in AVERAGES:
        raise ValueError(f"average must be one of {AVERAGES}, got {average!r}")
    if allocation in ("mass", "synflow") and scope != "global":
        raise ValueError(
            f"allocation={allocation!r} sets per-tensor budgets; it needs scope='global', got "
            f"{scope!r}"
        )
    if path_term not in PATH_TERMS:
        raise ValueError(f"path_term must be one of {PATH_TERMS}, got {path_term!r}")
    pset: dict[str, nn.Parameter] = {}
    if allocation == "synflow" or path_term is not None:
        what = "allocation='synflow'" if allocation == "synflow" else f"path_term={path_term!r}"
        if input_shape is None:
            raise ValueError(f"{what} needs input_shape (one input without the batch axis)")
        input_shape = check_input_shape(input_shape)
        pset = _params(student, params, exclude)
    targets = density_schedule(s, DEFAULT_ROUNDS if rounds is None else rounds, schedule)
    mask: WeightMask | None = None
    for s_k in targets:
        scores = score(
            student,
            teacher,
            unlabeled,
            feature_layer=feature_layer,
            teacher_layer=teacher_layer,
            mask=mask,
            params=params,
            exclude=exclude,
            max_batches=max_batches,
            sync=sync,
            score_norm=score_norm,
            bn=bn,
            average=average,
            **gap_options,
        )
        if path_term is not None:
            assert input_shape is not None
            scores = path_product(scores, student, input_shape, params=pset, mask=mask)
        if allocation == "mass":
            counts = mass_allocation(scores, s_k, previous=mask, min_density=min_density)
            scores = _allocated_scores(scores, counts, mask)
        elif allocation == "synflow":
            assert input_shape is not None
            counts = synflow_allocation(
                student, input_shape, s_k, params=pset, previous=mask, min_density=min_density
            )
            scores = _allocated_scores(scores, counts, mask)
        mask = select_mask(scores, s_k, scope=scope, previous=mask, min_density=min_density)
    assert mask is not None
    return mask
