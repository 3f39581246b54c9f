"""What SEVEN is compared against, with the same interface as `SevenPruner`.

One-shot, before fine-tuning (`prune_before_training(batches)`, then `step()` keeps the mask):
magnitude |W|, random, SNIP |W * g| (Lee et al. 2019), GraSP -W * Hg (Wang et al. 2020).

Gradual, during fine-tuning, on the same window and cubic schedule as SEVEN_dyn (`step()` after each
`optimizer.step()`): gradual magnitude pruning (Zhu & Gupta 2017; global or per layer), Taylor
|W * g| recomputed every step (the official SEVEN code calls this "movement"; it is not), real
movement pruning (Sanh et al. 2020, first-order: S <- S - W * g accumulated at the weights the
gradient was computed at), PLATON (Zhang et al. 2022: smoothed importance times its uncertainty), and the ablation
SEVEN without its consistency factor (accumulated Taylor).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from maskloop import scores
from maskloop.checks import check_fraction, check_int
from torch import nn

from seven_prune.pruning import (
    GradualPruner,
    OneShotPruner,
    Pruner,
    _cycle,
)
from seven_prune.seven import SevenPruner

__all__ = [
    "PRUNERS",
    "GradualMagnitudePruner",
    "GraspPruner",
    "MagnitudePruner",
    "MovementPruner",
    "PlatonPruner",
    "RandomPruner",
    "SevenNoConsistencyPruner",
    "SnipPruner",
    "TaylorPruner",
    "make_pruner",
]


# ---------------------------------------------------------------------- one-shot, before fine-tuning
class MagnitudePruner(OneShotPruner):
    """Global magnitude pruning before fine-tuning: keep the largest |W| (`maskloop.scores.magnitude`).
    Needs no data."""

    needs_batches = False

    def compute_scores(
        self, batches: Iterable[Any] | None, loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        s = scores.magnitude(self.model, params=self.params)
        return [s[n].float() for n in self.names]


class RandomPruner(OneShotPruner):
    """Uniformly random global pruning before fine-tuning (`maskloop.scores.random`, seeded by
    `seed`). Needs no data."""

    needs_batches = False

    def __init__(self, model: nn.Module, sparsity: float, *, seed: int = 0, **kwargs: Any) -> None:
        self.seed = check_int("seed", seed, 0)
        super().__init__(model, sparsity, **kwargs)

    def compute_scores(
        self, batches: Iterable[Any] | None, loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(self.seed)
        s = scores.random(self.model, params=self.params, generator=gen)
        return [s[n].float() for n in self.names]


class _GradientScorePruner(OneShotPruner):
    """A one-shot pruner scored by a `maskloop.scores` gradient scorer on `n_batches` batches."""

    def __init__(
        self, model: nn.Module, sparsity: float, *, train_mode: bool = False, **kwargs: Any
    ) -> None:
        if not isinstance(train_mode, bool):
            raise TypeError(f"train_mode must be a bool, got {type(train_mode).__name__}")
        self.train_mode = train_mode
        super().__init__(model, sparsity, **kwargs)

    def _taken(self, batches: Iterable[Any] | None) -> list[Any]:
        it = _cycle(batches, "batches")
        return [next(it) for _ in range(self.n_batches)]

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "train_mode": self.train_mode}


class SnipPruner(_GradientScorePruner):
    """SNIP (Lee et al. 2019) before fine-tuning: keep the largest |W * g|, g summed over `n_batches`
    batches at the pretrained weights (`maskloop.scores.snip`). Scored in eval mode as the reference
    code does; `train_mode=True` scores with dropout on (the short-budget bench's setting, under
    which its committed numbers were produced)."""

    def compute_scores(
        self, batches: Iterable[Any] | None, loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        s = scores.snip(
            self.model,
            self._taken(batches),
            self.params,
            loss_fn=loss_fn,
            train_mode=self.train_mode,
        )
        return [s[n].float() for n in self.names]


class GraspPruner(_GradientScorePruner):
    """GraSP (Wang et al. 2020) before fine-tuning: prune the largest -W * (H g)
    (`maskloop.scores.grasp`).

    g is the gradient of the temperature-scaled cross-entropy (logits / T, T = 200 as in the GraSP
    code) summed over `n_batches` batches; H g is the Hessian-gradient product by double
    backpropagation. Weights whose removal would least reduce gradient flow are pruned first, so the
    kept score is W * (H g). Needs a model whose attention supports double backward (on CPU load
    Hugging Face models with `attn_implementation="eager"` if SDPA refuses). Eval mode unless
    `train_mode=True`, as for `SnipPruner`.
    """

    def __init__(
        self, model: nn.Module, sparsity: float, *, temperature: float = 200.0, **kwargs: Any
    ) -> None:
        if (
            isinstance(temperature, bool)
            or not isinstance(temperature, (int, float))
            or not (temperature > 0)
        ):
            raise ValueError(f"temperature must be a float > 0, got {temperature!r}")
        self.temperature = float(temperature)
        super().__init__(model, sparsity, **kwargs)

    def compute_scores(
        self, batches: Iterable[Any] | None, loss_fn: Callable[..., torch.Tensor] | None
    ) -> list[torch.Tensor]:
        s = scores.grasp(
            self.model,
            self._taken(batches),
            self.params,
            temperature=self.temperature,
            loss_fn=loss_fn,
            train_mode=self.train_mode,
        )
        return [s[n].float() for n in self.names]

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "temperature": self.temperature}


# ---------------------------------------------------------------------- gradual, during fine-tuning
class TaylorPruner(GradualPruner):
    """First-order Taylor pruning recomputed every step: S = |W * g| of this step only.

    The official SEVEN code names this criterion "movement"; it is not movement pruning.
    """

    def update_scores(self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int) -> None:
        s = self.state["S"]
        torch._foreach_mul_(s, 0.0)
        torch._foreach_addcmul_(s, [w.float() for w in weights], [g.float() for g in grads])
        torch._foreach_abs_(s)


class MovementPruner(GradualPruner):
    """Movement pruning (Sanh, Wolf, Rush 2020), first-order hard form: the paper's score equation.

        S <- S - W_t * g_t      (accumulated over the window; keep the highest S)

    where g_t = dL/dW at W_t, i.e. `W_t` are the weights **before** `optimizer.step()` (the weights the
    gradient was computed at; Sanh et al. accumulate -dL/dW * W in the forward pass of step t). The
    pruner records them at the end of the previous `step()` (or at construction when `start=0`), so
    it must be built before the step that precedes its window. Weights moving away from zero are kept.

    What differs from the authors' code (emmental's `MaskedLinear` with `TopKBinarizer`): there the
    scores are parameters trained by their own AdamW group through a straight-through top-k per
    weight matrix, and a pruned weight keeps its value in storage, so its score keeps moving and it
    can come back. Here the mask follows this package's one lifecycle: the cut uses the same
    selection as every gradual baseline (global, `min_density` guard, or `scope="layer"`), a pruned
    weight is zeroed, its gradient and so its score stop, and the raw sum above (SGD on S at
    learning rate 1) replaces Adam's per-coordinate normalisation.
    """

    weights_at = "pre"

    def update_scores(self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int) -> None:
        torch._foreach_addcmul_(
            self.state["S"], [w.float() for w in weights], [g.float() for g in grads], value=-1.0
        )


class GradualMagnitudePruner(GradualPruner):
    """Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune"): keep the largest
    |W| on the same window and cubic schedule as SEVEN_dyn,

        s_t = s_f + (s_i - s_f) (1 - (t - t_0) / (n dt))^3,   the mask cut every `delta_t` steps,

    with `scope="global"` (one threshold over all targets, guarded by `min_density`) or
    `scope="layer"` (every target tensor cut to the same sparsity: the paper's uniform per-layer
    rule). Embeddings are not targets (only the encoder Linears and the pooler are). The score is
    |W| at the cut (after `optimizer.step()`); no gradients are read.
    """

    needs_grads = False

    def update_scores(self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int) -> None:
        pass  # the score is read from the weights at each cut

    def current_flat_scores(self) -> torch.Tensor:
        s = self.flat["S"]
        torch._foreach_copy_(self.state["S"], self._weights())
        return s.abs_()


class PlatonPruner(GradualPruner):
    """PLATON (Zhang et al. 2022): importance smoothed by an EMA times its uncertainty.

    I = |W * g|;  I_bar <- b1 I_bar + (1 - b1) I;  U <- b2 U + (1 - b2) |I - I_bar|
    score = I_bar * U          (same window and cubic schedule as SEVEN_dyn)

    b1 = 0.85, b2 = 0.95 are the PLATON paper's defaults (the SEVEN repository runs PLATON at
    0.8 / 0.9). As in the PLATON code, I is taken after `optimizer.step()` with this step's gradient.
    """

    state_names = ("I_bar", "U", "S")

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        beta1: float = 0.85,
        beta2: float = 0.95,
        **kwargs: Any,
    ) -> None:
        self.beta1 = check_fraction("beta1", beta1, meaning="a smoothing rate")
        self.beta2 = check_fraction("beta2", beta2, meaning="a smoothing rate")
        super().__init__(model, sparsity, **kwargs)

    def update_scores(self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int) -> None:
        i_bar, u, s = self.state["I_bar"], self.state["U"], self.state["S"]
        imp = torch._foreach_mul([w.float() for w in weights], [g.float() for g in grads])
        torch._foreach_abs_(imp)
        torch._foreach_mul_(i_bar, self.beta1)
        torch._foreach_add_(i_bar, imp, alpha=1.0 - self.beta1)
        dev = torch._foreach_sub(imp, i_bar)
        torch._foreach_abs_(dev)
        torch._foreach_mul_(u, self.beta2)
        torch._foreach_add_(u, dev, alpha=1.0 - self.beta2)
        torch._foreach_mul_(s, 0.0)
        torch._foreach_addcmul_(s, i_bar, u)

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "beta1": self.beta1, "beta2": self.beta2}


class SevenNoConsistencyPruner(SevenPruner):
    """Ablation: SEVEN with the consistency factor m_hat / sqrt(v_hat) set to 1, i.e. accumulated
    Taylor scores S <- S + |W * g| on the same window and schedule."""

    def __init__(self, model: nn.Module, sparsity: float, mode: str = "dyn", **kwargs: Any) -> None:
        if "consistency" in kwargs:
            raise TypeError("SevenNoConsistencyPruner fixes consistency=False; do not pass it")
        super().__init__(model, sparsity, mode, consistency=False, **kwargs)


#: name -> pruner class, as used by the benchmark and `make_pruner`
PRUNERS: dict[str, type[Pruner]] = {
    "seven": SevenPruner,
    "seven_noconsistency": SevenNoConsistencyPruner,
    "magnitude": MagnitudePruner,
    "gradual_magnitude": GradualMagnitudePruner,
    "random": RandomPruner,
    "snip": SnipPruner,
    "grasp": GraspPruner,
    "taylor": TaylorPruner,
    "movement": MovementPruner,
    "platon": PlatonPruner,
}


def make_pruner(name: str, model: nn.Module, sparsity: float, **kwargs: Any) -> Pruner:
    """Build the pruner registered as `name` (see `PRUNERS`) with `kwargs` for its constructor."""
    if name not in PRUNERS:
        raise ValueError(f"name must be one of {sorted(PRUNERS)}, got {name!r}")
    return PRUNERS[name](model, sparsity, **kwargs)
