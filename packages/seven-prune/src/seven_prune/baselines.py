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

import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from maskloop import WeightMask, scores
from maskloop.checks import check_fraction, check_int, check_real
from torch import nn
from torch.nn import functional as F

from seven_prune.pruning import (
    GradualPruner,
    OneShotPruner,
    Pruner,
    _cycle,
    _keep_top_flat,
    _segments,
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
    "SanhMovementPruner",
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
    learning rate 1) replaces Adam's per-coordinate normalisation. `SanhMovementPruner` is movement
    pruning as their code runs it.
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


class _MaskedWeight(torch.autograd.Function):
    """W_eff = W * M with the straight-through estimator of Sanh et al.'s `TopKBinarizer`.

    Forward: the hard 0/1 mask M times the stored weights W. Backward: dL/dW = M * dL/dW_eff (the
    chain rule) and dL/dS = dL/dM = W * dL/dW_eff (the binarizer's gradient is taken as the
    identity), for the scores S that chose M.
    """

    @staticmethod
    def forward(
        ctx: Any, weight: torch.Tensor, scores: torch.Tensor, hard: torch.Tensor
    ) -> torch.Tensor:
        ctx.save_for_backward(weight, hard)
        return weight * hard

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Any, ...]:
        weight, hard = ctx.saved_tensors
        grad_w = grad * hard if ctx.needs_input_grad[0] else None
        grad_s = (grad * weight).to(torch.float32) if ctx.needs_input_grad[1] else None
        return grad_w, grad_s, None


class SanhMovementPruner(GradualPruner):
    """Movement pruning as its authors' code runs it (Sanh, Wolf, Rush 2020; emmental's
    `MaskedLinear` with `TopKBinarizer`, `masked_run_glue.py`): learned scores, a straight-through
    top-k, pruned weights kept in storage.

    Every target Linear computes with W_eff = W * M, M = TopK(S, r_t): the `floor(r_t * numel)`
    highest scores of that weight matrix (`scope="layer"`, the authors' per-matrix `TopKBinarizer`;
    `scope="global"`: one top-k over all targets, guarded by `min_density`). The scores S (one per
    weight, initialised to `score_init` = 0, the authors' `mask_init="constant"`,
    `mask_scale=0`) are parameters of their own Adam, learning rate `score_lr` (their default 1e-2)
    times `score_lr_schedule(t)` (give it the weights' warm-up/decay factor, as their scheduler
    drives both groups), no weight decay. Their gradient is the straight-through one:

        dL/dS = dL/dM = W * dL/dW_eff,      dL/dW = M * dL/dW_eff,

    so with plain SGD S would be -lr * sum_t W_t * g_t (the first-order movement score).

    `score_lr` does not change what is pruned while `score_init` is a constant (the authors'
    default): Adam's step m/(sqrt(v) + eps) does not depend on the learning rate, so every score is
    `score_init` plus the same multiple of `score_lr`, and the per-matrix top-k, hence every mask and
    weight, is the same for any `score_lr` > 0 (`test_score_lr_is_scale_free_under_a_constant_init`;
    on MiniLM lr 1e-2 and 1.0 gave the same validation accuracy on every seed). The default stays
    the authors' 1e-2. A pruned
    weight keeps its value in W (the training optimizer still moves it by momentum and weight decay)
    and its score keeps learning, so it comes back when its score re-enters the top-k. The keep
    ratio r follows the cubic schedule of every gradual pruner here over the same window
    (r = 1 before `start`, the authors' `initial_warmup`); the mask is recomputed from the scores
    after every score update in the window (`delta_t=1`, as the authors recompute it in every
    forward) or every `delta_t` updates. The scores learn from the first step (as in their code,
    where the threshold stays at 1 during the initial warm-up). Call `step()` after
    `optimizer.step()`: it takes the scores' Adam step (authors' `transformers.AdamW` form,
    `step = lr sqrt(1 - b2^t) / (1 - b1^t)`, `S -= step * m / (sqrt(v) + eps)`) and cuts when due.

    At the window's last update the cut is exact (each tensor prunes `round(sparsity * numel)`;
    globally `round(sparsity * N)`), the mask becomes this package's ordinary final mask (pruned
    weights zeroed by `maskloop.MaskedTraining`, their gradients masked) and the scores stop.

    What differs from the authors' code: (1) the mask freezes at the window's end and the rest of
    training fine-tunes it, as every gradual method here (their scores keep learning through the
    final warm-up and the mask is taken from the last scores); (2) no gradient clipping of the
    scores (their `max_grad_norm` 1.0 clips weights and scores together; the benchmark clips no
    method); (3) no distillation (the other methods get none); (4) ties at a cut are broken by
    position (earlier pruned first), theirs by an unstable sort; (5) `scope="global"` selects an
    exact global top-k at every cut (their `--global_topk` reuses a threshold for 25 steps). The
    scores, their Adam moments and the current mask are in `state_dict()` / `save()`.
    """

    state_names = ("S", "m", "v")

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        *,
        score_lr: float = 1e-2,
        score_lr_schedule: Callable[[int], float] | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        score_init: float = 0.0,
        scope: str = "layer",
        **kwargs: Any,
    ) -> None:
        self.score_lr = check_real("score_lr", score_lr, low=0.0, low_inclusive=False)
        if score_lr_schedule is not None and not callable(score_lr_schedule):
            raise TypeError(
                "score_lr_schedule must be a callable step -> factor or None, got "
                f"{type(score_lr_schedule).__name__}"
            )
        self.score_lr_schedule = score_lr_schedule
        if (
            not isinstance(betas, (tuple, list))
            or len(betas) != 2
            or not all(
                not isinstance(b, bool) and isinstance(b, (int, float)) and 0.0 <= b < 1.0
                for b in betas
            )
        ):
            raise ValueError(f"betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = (float(betas[0]), float(betas[1]))
        self.eps = check_real("eps", eps, low=0.0, low_inclusive=False)
        self.score_init = check_real("score_init", score_init)
        if kwargs.get("mode", "dyn") != "dyn":
            raise ValueError(
                f"mode must be 'dyn' for SanhMovementPruner (scores learned during fine-tuning), "
                f"got {kwargs['mode']!r}"
            )
        if kwargs.get("pattern") is not None:
            raise ValueError(
                f"pattern must be None for SanhMovementPruner (unstructured top-k), got "
                f"{kwargs['pattern']!r}"
            )
        kwargs.setdefault("delta_t", 1)
        super().__init__(model, sparsity, scope=scope, **kwargs)
        self.masked.detach()  # pruned weights stay in storage until the final cut
        modules = {
            id(m.weight): m for m in model.modules() if isinstance(m, nn.Linear)
        }  # target_parameters only returns nn.Linear weights
        self._modules = [modules[id(p)] for p in self.params.values()]
        self._ensure_state()
        if self.score_init != 0.0:
            self.flat["S"].fill_(self.score_init)
        self._grad_flat = torch.zeros(self.numel, dtype=torch.float32, device=self.device)
        self._hard = torch.ones(self.numel, dtype=torch.float32, device=self.device)
        self._bind_scores()
        self.final = False
        self._install()

    # ------------------------------------------------------------------ the masked forward
    def _bind_scores(self) -> None:
        """Leaf tensors sharing the score buffer's storage, their `.grad` views of one flat
        gradient buffer (autograd accumulates into it in place)."""
        self._leaves = []
        for s, g in zip(self.state["S"], self._flat_views(self._grad_flat)):
            leaf = s.detach().requires_grad_(True)
            leaf.grad = g
            self._leaves.append(leaf)
        self._hard_views = self._flat_views(self._hard)

    def _install(self) -> None:
        for i, module in enumerate(self._modules):
            module.forward = self._masked_forward(module, i)

    def _uninstall(self) -> None:
        for module in self._modules:
            if "forward" in module.__dict__:
                del module.forward

    def _masked_forward(self, module: nn.Linear, i: int) -> Callable[[torch.Tensor], torch.Tensor]:
        def forward(x: torch.Tensor) -> torch.Tensor:
            hard = self._hard_views[i]
            if hard.dtype != module.weight.dtype:
                hard = hard.to(module.weight.dtype)
            w = _MaskedWeight.apply(module.weight, self._leaves[i], hard)
            return F.linear(x, w, module.bias)

        return forward

    @property
    def scores(self) -> dict[str, torch.Tensor]:
        """The learned scores by target name (views of the pruner's buffer)."""
        return dict(zip(self.names, self.state["S"]))

    @property
    def score_grads(self) -> dict[str, torch.Tensor]:
        """The scores' accumulated gradient W * dL/dW_eff since the last `step()`."""
        return dict(zip(self.names, self._flat_views(self._grad_flat)))

    # ------------------------------------------------------------------ the rule
    def update_scores(self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int) -> None:
        raise RuntimeError("SanhMovementPruner learns its scores in step(); no update_scores")

    @torch.no_grad()
    def _adam_step(self) -> None:
        """One Adam step of the scores on their accumulated gradient (authors' AdamW form, no
        weight decay), then the gradient is cleared."""
        b1, b2 = self.betas
        step = self.t + 1
        lr = self.score_lr * (
            1.0 if self.score_lr_schedule is None else float(self.score_lr_schedule(self.t))
        )
        g, m, v, s = self._grad_flat, self.flat["m"], self.flat["v"], self.flat["S"]
        m.mul_(b1).add_(g, alpha=1.0 - b1)
        v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
        denom = v.sqrt().add_(self.eps)
        size = lr * math.sqrt(1.0 - b2**step) / (1.0 - b1**step)
        s.addcdiv_(m, denom, value=-size)
        g.zero_()

    def _keep_counts(self, k: int, final: bool) -> list[int]:
        """Per tensor (scope "layer"): floor(r_k * numel) kept during the schedule (the authors'
        `int(threshold * numel)`), numel - round(sparsity * numel) at the final cut."""
        if final:
            return [n - math.floor(self.sparsity * n + 0.5) for n in self.sizes]
        r = self.keep_ratio(k)
        return [min(n, math.floor(r * n + 1e-9)) for n in self.sizes]

    @torch.no_grad()
    def select(self, k: int, final: bool = False) -> torch.Tensor:
        """The flat keep-vector of the cut after update `k`: the top-k of the current scores (per
        tensor, or global with `scope="global"`), every weight eligible (pruned ones can return)."""
        flat = self.flat["S"]
        if self.scope == "layer":
            keep = torch.empty(self.numel, dtype=torch.bool, device=self.device)
            for (a, b), n_keep in zip(_segments(self.sizes), self._keep_counts(k, final)):
                keep[a:b] = _keep_top_flat(flat[a:b], None, n_keep)
            return keep
        n_keep = self.final_keep if final else self.n_keep(k)
        return self._select(flat, n_keep, None)[1]

    @torch.no_grad()
    def _adopt(self, keep: torch.Tensor) -> None:
        """Use `keep` in the forward (weights untouched) and expose it as `self.mask`."""
        self._hard.copy_(keep)
        self.mask = WeightMask(dict(zip(self.names, self._flat_views(keep))))
        self._mask_flat = (self.mask, keep)

    def _finish(self, keep: torch.Tensor) -> None:
        """The final hard mask through the package's ordinary lifecycle: pruned weights zeroed and
        kept at zero by `MaskedTraining`; the layers compute with their own forward again."""
        self._uninstall()
        self._set_mask(WeightMask(dict(zip(self.names, self._flat_views(keep)))), keep)
        self.masked.attach()
        self._hard.copy_(keep)
        self._grad_flat.zero_()
        for leaf in self._leaves:
            leaf.requires_grad_(False)
        self.final = True

    # ------------------------------------------------------------------ driving
    def step(self) -> None:
        """Call once per training step, after `optimizer.step()`: the scores' Adam step, then (in
        the window) the cut; after the final cut only keeps the pruned weights at zero."""
        tic = time.perf_counter()
        if self.final:
            self.masked.reapply()
        else:
            if self.t == 0:
                self._grads()  # step() before any backward is a usage error
            self._adam_step()
            if self.start <= self.t <= self.start + self.last_k:
                k = self.t - self.start
                if k == self.last_k:
                    self._finish(self.select(k, final=True))
                elif (k + 1) % self.delta_t == 0:
                    self._adopt(self.select(k))
                self.updates = k + 1
        self.t += 1
        self.seconds += time.perf_counter() - tic

    def remove(self) -> None:
        """Restore the layers' own forward and detach the masked-training hooks."""
        self._uninstall()
        super().remove()

    # ------------------------------------------------------------------ persistence
    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "score_lr": self.score_lr,
            "betas": list(self.betas),
            "eps": self.eps,
            "score_init": self.score_init,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore what `state_dict` returned: scores, their moments, the mask, the step (into a
        pruner built the same way that has not made its final cut)."""
        if self.final:
            raise ValueError(
                "state: this SanhMovementPruner has made its final cut (its pruned weights are "
                "zeroed); load into a freshly built pruner"
            )
        super().load_state_dict(state)
        self._bind_scores()
        keep = self._alive_flat().clone()
        if self.t > self.start + self.last_k:
            if not self.final:
                self._finish(keep)
        else:
            self.masked.detach()
            self._adopt(keep)


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
    "movement_sanh": SanhMovementPruner,
    "platon": PlatonPruner,
}


def make_pruner(name: str, model: nn.Module, sparsity: float, **kwargs: Any) -> Pruner:
    """Build the pruner registered as `name` (see `PRUNERS`) with `kwargs` for its constructor."""
    if name not in PRUNERS:
        raise ValueError(f"name must be one of {sorted(PRUNERS)}, got {name!r}")
    return PRUNERS[name](model, sparsity, **kwargs)
