"""SEVEN: pruning transformers by reserving sentinels (Xiao, Li, Nie, Tang; arXiv 2403.12688).

Transformer gradients are noisy, so first-order scores such as |W * g| keep weights whose large
gradients are mostly noise. SEVEN reads training as sign descent: the bias-corrected ratio
m_hat / sqrt(v_hat) of the gradient's first and second moments is near 1 for a weight whose gradient is
consistent ("a sentinel") and small for a noise-dominated one, and multiplies the Taylor score by it.

SEVEN_dyn (during fine-tuning) follows the official code exactly; SEVEN_pre (before fine-tuning) is not
in the official code and is a reconstruction (see `SevenPruner`).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch
from maskloop.checks import check_fraction
from torch import nn

from seven_prune.pruning import DEFAULT_MIN_DENSITY, GradualPruner

__all__ = ["SevenPruner"]

_KERNEL: Any = None


def _seven_update(
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    ss: list[torch.Tensor],
    ws: list[torch.Tensor],
    gs: list[torch.Tensor],
    keeps: list[torch.Tensor],
    coef: torch.Tensor,
    cut: torch.Tensor,
    abs_moments: bool,
    rezero: bool = True,
) -> None:
    """The SEVEN update of every target in one compiled pass per tensor, in place.

    coef = (a1, a2, 1 / bc1, 1 / sqrt(bc2), eps) and `cut` (a 0-d bool) are tensors so that no step
    recompiles. Per target, one read of m, v, S, W, g and the keep-mask and one write of m, v, S
    and W: S gets this step's term (from W before re-masking, as the eager path), then on a cut step
    the pruned entries' S are zeroed (S[M == 0] <- 0), and the pruned weights are re-zeroed
    (W * keep, the multiply `maskloop.MaskedTraining.reapply` makes) unless `rezero` is False (a
    hooked optimizer keeps them at zero, as in the eager path; W is then neither read for the
    masking nor written). `rezero` is a Python bool: the compiled code is specialised on it (one
    compilation per value; it is fixed for a run).
    """
    a1, a2, inv_bc1, inv_sq_bc2, eps = coef[0], coef[1], coef[2], coef[3], coef[4]
    for m, v, s, w, g, keep in zip(ms, vs, ss, ws, gs, keeps):
        g = g.float()
        g_m = g.abs() if abs_moments else g
        m_new = a1 * m + (1 - a1) * g_m
        v_new = a2 * v + (1 - a2) * g * g
        s_new = s + (w.float() * g * m_new).abs() / (v_new.sqrt() * inv_sq_bc2 + eps) * inv_bc1
        s.copy_(torch.where(keep | ~cut, s_new, 0.0))
        m.copy_(m_new)
        v.copy_(v_new)
        if rezero:
            w.mul_(keep)


def _run_fused(*args: Any) -> bool:
    """Run `_seven_update` compiled by `torch.compile` (compiled once per process and target
    shapes); True if it ran. Where it cannot be compiled (e.g. no C++ compiler for the CPU backend)
    it warns once and returns False from then on, and the caller runs the eager default
    (`_seven_update_eager`) instead: the same formula, and the same numbers as `fused=False`."""
    global _KERNEL
    if _KERNEL is None:
        _KERNEL = torch.compile(_seven_update, dynamic=False, fullgraph=True)
    if _KERNEL is False:
        return False
    try:
        _KERNEL(*args)
    except Exception as err:  # compilation failures surface as many exception types
        warnings.warn(
            f"SevenPruner(fused=True): torch.compile failed ({type(err).__name__}: {err}); the "
            "update runs eagerly (the default path, fused=False: same formula, slower)",
            RuntimeWarning,
            stacklevel=3,
        )
        _KERNEL = False
        return False
    return True


#: per (device type, dtype): whether torch's fused AdamW kernel runs there and gives the
#: ratio with the old contents of `out` multiplied away (see `_moments_and_ratio_`)
_FUSED_ADAM: dict[tuple[str, torch.dtype], bool] = {}


def _fused_adam_runs(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether torch's fused AdamW kernel (a private op, `torch._fused_adamw_`) runs for tensors of
    this device type and dtype and computes what `_moments_and_ratio_` relies on, probed once on
    one-element tensors (no side effects on real data): from out = 3, |g| = 1, m = v = 0, step 1,
    betas 0.5, eps 1, lr = weight_decay = -1 it must write exactly out = 0.5 (3 * (1 - lr *
    weight_decay) = 0, plus the ratio 1 / (1 + 1))."""
    key = (device.type, dtype)
    if key not in _FUSED_ADAM:
        op = getattr(torch, "_fused_adamw_", None)
        ok = op is not None
        if ok:
            out, g, m, v = (torch.full((1,), x, dtype=dtype, device=device) for x in (3, 1, 0, 0))
            try:
                op(
                    [out],
                    [g],
                    [m],
                    [v],
                    [],
                    [torch.ones((), device=device)],
                    lr=-1.0,
                    beta1=0.5,
                    beta2=0.5,
                    weight_decay=-1.0,
                    eps=1.0,
                    amsgrad=False,
                    maximize=False,
                )
                ok = float(out[0]) == 0.5
            except (RuntimeError, NotImplementedError, TypeError):
                ok = False
        _FUSED_ADAM[key] = ok
    return _FUSED_ADAM[key]


#: per (device type, dtype): whether `_moments_and_ratio_` may write the ratio over its input g_m
#: (`out` and `g_m` one tensor), probed against the separate-buffer call, see `_aliased_ratio_ok`
_ALIASED_RATIO: dict[tuple[str, torch.dtype], bool] = {}


def _aliased_ratio_ok(device: torch.device, dtype: torch.dtype) -> bool:
    """Whether `_moments_and_ratio_(t, t, m, v, ...)` (the ratio written over the g_m it reads)
    gives bit for bit what the call with a separate `out` gives, probed once on 203 entries (a
    vectorised body and a scalar tail, zeros among them) over three steps. True for the
    one-operation-at-a-time path (it reads g_m only before writing `out`); for torch's fused
    AdamW kernel (a private op) it holds when each entry's gradient is loaded before its parameter
    is stored, which the probe checks."""
    key = (device.type, dtype)
    if key not in _ALIASED_RATIO:
        gen = torch.Generator().manual_seed(0)
        ok = True
        m1, v1 = torch.zeros(203, dtype=dtype), torch.zeros(203, dtype=dtype)
        m2, v2 = m1.clone(), v1.clone()
        m1, v1, m2, v2 = (x.to(device) for x in (m1, v1, m2, v2))
        for k in range(3):
            g = torch.rand(203, generator=gen, dtype=dtype)
            g[::7] = 0.0
            g = g.to(device)
            sep, same = torch.zeros_like(g), g.clone()
            step = torch.tensor(float(k + 1), device=device)
            _moments_and_ratio_(sep, g, m1, v1, 0.8, 0.9, 1e-9, step)
            _moments_and_ratio_(same, same, m2, v2, 0.8, 0.9, 1e-9, step)
            ok = ok and all(torch.equal(a, b) for a, b in ((sep, same), (m1, m2), (v1, v2)))
        _ALIASED_RATIO[key] = ok
    return _ALIASED_RATIO[key]


def _moments_and_ratio_(
    out: torch.Tensor,
    g_m: torch.Tensor,
    m: torch.Tensor,
    v: torch.Tensor,
    alpha1: float,
    alpha2: float,
    eps: float,
    step: torch.Tensor,
) -> None:
    """m <- a1 m + (1 - a1) g_m,  v <- a2 v + (1 - a2) g_m^2,  out <- m_hat / (sqrt(v_hat) + eps),
    in place, with m_hat = m / (1 - a1^step) and v_hat = v / (1 - a2^step) (`step`: a 0-d tensor
    on the data's device holding the update count k + 1). `out` must hold finite numbers on entry
    (its old values are multiplied by 0; the pruner's work buffer starts at 0 and holds the last
    ratio).

    This is Adam's update direction with betas (a1, a2) on the "gradient" g_m (|g| or g; g_m^2 =
    g^2 either way), so torch's fused AdamW kernel computes all three in one pass over the data:
    with learning rate -1 and weight decay -1 it writes out * (1 - lr * wd) + (1 / bc1) m /
    (sqrt(v) / sqrt(bc2) + eps) = 0 + the ratio (decoupled weight decay by a factor of exactly 0
    clears `out` in the same pass, so no separate zeroing pass). Where that kernel does not run or
    does not compute this (a private op: another torch version or device; probed once by
    `_fused_adam_runs`), the same arithmetic runs one operation at a time. Both equal the
    one-operation-at-a-time formula to float rounding (`test_seven_prune_fast_step.py`).
    """
    if _fused_adam_runs(out.device, out.dtype):
        torch._fused_adamw_(
            [out],
            [g_m],
            [m],
            [v],
            [],
            [step],
            lr=-1.0,
            beta1=alpha1,
            beta2=alpha2,
            weight_decay=-1.0,
            eps=eps,
            amsgrad=False,
            maximize=False,
        )
        return
    n = int(step.item())
    bc1, bc2 = 1.0 - alpha1**n, 1.0 - alpha2**n
    m.mul_(alpha1).add_(g_m, alpha=1.0 - alpha1)
    v.mul_(alpha2).addcmul_(g_m, g_m, value=1.0 - alpha2)
    torch.sqrt(v, out=out).div_(math.sqrt(bc2)).add_(eps)
    torch.div(m, out, out=out).mul_(1.0 / bc1)


#: whether `_seven_update_eager` takes its lean loop (`_seven_update_lean`) where it applies; the
#: tests (and session 28's `scripts/overhead_repeat_s28.py`, at commit 2c66bcb) switch it off
LEAN_UPDATE = True


def _lean_applies(
    ss: Sequence[torch.Tensor],
    ws: Sequence[torch.Tensor],
    gs: Sequence[torch.Tensor],
    fkeeps: Sequence[torch.Tensor] | None,
    abs_moments: bool,
) -> bool:
    """Whether `_seven_update_lean` computes what the general loop computes for these arguments:
    moments of |g| in the aliased order (`_aliased_ratio_ok`) through torch's fused AdamW kernel
    (`_fused_adam_runs`), float masks given, and W, g, the masks and the state of one dtype (so
    that the general loop takes the same branch for every target)."""
    if not (LEAN_UPDATE and abs_moments and ss and fkeeps is not None):
        return False
    dt, dev = ss[0].dtype, ss[0].device
    if not (_fused_adam_runs(dev, dt) and _aliased_ratio_ok(dev, dt)):
        return False
    return all(w.dtype == dt and g.dtype == dt and f.dtype == dt for w, g, f in zip(ws, gs, fkeeps))


def _seven_update_lean(
    ms: Sequence[torch.Tensor],
    vs: Sequence[torch.Tensor],
    ss: Sequence[torch.Tensor],
    ws: Sequence[torch.Tensor],
    gs: Sequence[torch.Tensor],
    t1s: Sequence[torch.Tensor],
    t2s: Sequence[torch.Tensor],
    fkeeps: Sequence[torch.Tensor],
    *,
    alpha1: float,
    alpha2: float,
    eps: float,
    k: int,
    mask_s: bool,
    mask_w: bool,
) -> None:
    """`_seven_update_eager`'s loop for the default case (`_lean_applies`: moments of |g|, the
    aliased order, torch's fused AdamW kernel, float masks, one dtype), with less Python per
    target: the same kernels on the same operands in the same order, so the same numbers bit
    for bit (tested against the general loop, float32 and float64). Per target: t1 <- |g|,
    t2 <- |t1 W|, the fused AdamW call (m, v and the ratio over t1; its arguments as in
    `_moments_and_ratio_`), S <- S + t2 t1, then S <- S * M if `mask_s` and W <- W * M if
    `mask_w`. What it leaves out per target, against the general loop: the two wrapper calls
    (`_moments_and_ratio_` and its kernel probe, a dict look-up), the uint8 view of the bool
    mask (made whether used or not), the dtype branches and a zip over nine lists. Measured
    (`scripts/profile_dispatch_s28.py` at commit 2c66bcb, session 28, under the lock): 0.93 against 1.40 ms per
    update on 37 tiny targets (1 thread: Python and dispatch only), and -2.22 ms [-4.03, -1.13]
    per update on MiniLM's real 16 x 32 state (medians 29.3 against 30.8 ms)."""
    steps = [torch.tensor(float(k + 1), device=ss[0].device)]
    adam, absolute, mul = torch._fused_adamw_, torch.abs, torch.mul
    no_max: list[torch.Tensor] = []
    for m, v, s, w, g, t1, t2, fk in zip(ms, vs, ss, ws, gs, t1s, t2s, fkeeps):
        absolute(g, out=t1)
        mul(t1, w, out=t2).abs_()
        ratio = [t1]
        adam(
            ratio,
            ratio,
            [m],
            [v],
            no_max,
            steps,
            lr=-1.0,
            beta1=alpha1,
            beta2=alpha2,
            weight_decay=-1.0,
            eps=eps,
            amsgrad=False,
            maximize=False,
        )
        s.addcmul_(t2, t1)
        if mask_s:
            s.mul_(fk)
        if mask_w:
            w.mul_(fk)


def _seven_update_eager(
    ms: list[torch.Tensor],
    vs: list[torch.Tensor],
    ss: list[torch.Tensor],
    ws: list[torch.Tensor],
    gs: list[torch.Tensor],
    keeps: list[torch.Tensor],
    t1s: list[torch.Tensor],
    t2s: list[torch.Tensor],
    *,
    alpha1: float,
    alpha2: float,
    eps: float,
    k: int,
    abs_moments: bool,
    cutting: bool,
    rezero: bool = True,
    rezero_on_cut: bool = True,
    fkeeps: Sequence[torch.Tensor] | None = None,
) -> None:
    """The SEVEN update of every target, eager and in place; m, v, S, the scratch t1, t2 share one
    float dtype (any; t2 must hold finite numbers, see `_moments_and_ratio_`), W and g may be of
    another.

    Per target, five or six operations (each target's data stays in cache between them, which
    measured faster than one operation over all targets at a time): t1 <- g_m (|g| for
    `abs_moments`, else g); m, v and t2 = m_hat / (sqrt(v_hat) + eps) in one pass
    (`_moments_and_ratio_`, which also clears t2's old contents); t1 <- |W g|; S <- S + t1 |t2|.
    With `abs_moments` (where `_aliased_ratio_ok`) the same operations run in another order that
    reads one buffer less: t1 <- |g|, t2 <- |W g| (= ||g| W|, exactly), then the moments and the
    ratio written over t1 (the pass reads |g| and writes the ratio in one buffer instead of also
    reading t2's old contents), S <- S + t2 t1: the same operands of every operation, so the same
    numbers bit for bit (tested against the previous order in float32 and float64).
    Then the masking that follows the update: on a cut step S <- S * M (S[M == 0] <- 0; exact for
    finite scores), and W <- W * M (the re-zeroing `maskloop.MaskedTraining.reapply` does) unless
    `rezero` is False (the pruned weights stay zero anyway: a hooked optimizer) or on a cut step
    `rezero_on_cut` is False (the cut re-zeroes with its new mask, a subset of this one).
    The official code's formula, reassociated: the same quantity to float rounding (tested in
    float64 against the one-operation-at-a-time formula).

    `fkeeps`: the same masks as 0/1 floats (`SevenPruner`'s on a CPU). Both maskings multiply by
    the mask; by the bool mask's uint8 view a CPU first copies it into a temporary float tensor
    (torch casts a CPU operand of another dtype before the kernel): 4.2 of the 34 ms of operator
    time of an update on MiniLM (`scripts/profile_eager_step.py` at commit e375864, 16 x 32).
    The float mask is multiplied directly where its dtype is the tensor's: the same products
    (x * 1.0 = x, x * 0.0 = +-0, as with the cast uint8), bit for bit.

    The default case (moments of |g|, torch's fused AdamW kernel, float masks, one dtype) runs
    `_seven_update_lean`: the same kernels with less Python per target (`LEAN_UPDATE`). (Sessions
    29-30 also ran it over cache-sized flat slices of the large targets, `UPDATE_CHUNK`: the same
    numbers, no faster inside training, off since session 30 and removed in session 31; the code
    is at commit 2c66bcb.)
    """
    if _lean_applies(ss, ws, gs, fkeeps, abs_moments):
        assert fkeeps is not None
        _seven_update_lean(
            ms, vs, ss, ws, gs, t1s, t2s, fkeeps, alpha1=alpha1, alpha2=alpha2, eps=eps, k=k,
            mask_s=cutting, mask_w=rezero and (rezero_on_cut or not cutting),
        )  # fmt: skip
        return
    step = torch.tensor(float(k + 1), device=ss[0].device if ss else None)
    fks: Sequence[torch.Tensor | None] = [None] * len(ss) if fkeeps is None else fkeeps
    aliased = abs_moments and bool(ss) and _aliased_ratio_ok(ss[0].device, ss[0].dtype)
    for m, v, s, w, g, keep, t1, t2, fk in zip(ms, vs, ss, ws, gs, keeps, t1s, t2s, fks):
        if abs_moments:  # t1 <- |g|
            if g.dtype == t1.dtype:
                torch.abs(g, out=t1)
            else:  # a unary op's out= must have its input's dtype (float64 W and g)
                t1.copy_(g).abs_()
        if aliased:
            torch.mul(t1, w, out=t2).abs_()  # |g| W, as t1.mul_(w) computes it: |W g|
            _moments_and_ratio_(t1, t1, m, v, alpha1, alpha2, eps, step)  # t1 <- the ratio
            s.addcmul_(t2, t1)
        else:
            g_m = t1 if abs_moments else (g if g.dtype == t1.dtype else t1.copy_(g))
            _moments_and_ratio_(t2, g_m, m, v, alpha1, alpha2, eps, step)
            if abs_moments:  # t1 = |g|, t2 >= 0
                t1.mul_(w).abs_()
            else:  # the signed ratio: |W g m_hat / d| = |W g| |m_hat / d|
                torch.mul(w, g, out=t1).abs_()
                t2.abs_()
            s.addcmul_(t1, t2)
        u8 = keep.view(torch.uint8)
        if cutting:
            s.mul_(fk if fk is not None and fk.dtype == s.dtype else u8)
        if rezero and (rezero_on_cut or not cutting):
            w.mul_(fk if fk is not None and fk.dtype == w.dtype else u8)


class SevenPruner(GradualPruner):
    """SEVEN weight pruning, global over the encoder Linears, with the cubic schedule.

    Each update k = t - t_i (t = training step, t_i = `start`, K = `window`), with W the weights after
    `optimizer.step()` and g this step's gradient:

        m <- a1 * m + (1 - a1) * |g|            v <- a2 * v + (1 - a2) * g^2
        m_hat = m / (1 - a1^(k+1))              v_hat = v / (1 - a2^(k+1))
        S <- S + | W * g * m_hat / (sqrt(v_hat) + eps) |          (accumulated; m, v, S start at 0)
        S[M == 0] <- 0
        M <- top floor(r_k N) of S globally,   r_k = r_f + (1 - r_f)(1 - (k+1)/K)^3,   W <- W * M

    for t_i <= t < t_i + K - 1 (the official code's window), then the mask is frozen. Defaults are the
    official ones: a1 = 0.8, a2 = 0.9, eps = 1e-9, `moments="abs"`. `moments="signed"` takes the
    moments of the signed gradient, so a weight whose gradient flips sign also scores low (the paper's
    wording allows both). `delta_t > 1` cuts the mask only every `delta_t` updates (and on the last
    one) while the moments and S are still updated every step: a global selection over millions of
    scores is costly on a CPU; `delta_t=1` is the official behaviour. `consistency=False` drops the
    m_hat / sqrt(v_hat) factor (the ablation: accumulated Taylor scores).

    The eager default (nothing compiled) takes the moments and m_hat / (sqrt(v_hat) + eps), which is
    Adam's update direction with betas (a1, a2) on |g|, from torch's fused AdamW kernel in one pass
    per target, then |W g|, S and the re-zeroing of the pruned weights in four more operations
    (`_seven_update_eager`); it equals the official formula to float rounding (tested in float64
    against the formula one operation at a time), not bit for bit. `fused=True` compiles the whole
    update, masking included, into one pass per target with `torch.compile` (the first call
    compiles for a minute or more and needs a C++ compiler on a CPU; where it cannot compile it warns
    once and runs the eager default); its rounding differs from the eager path in the last bits too.

    `mode="dyn"` (SEVEN_dyn, confirmed by the official code): call `step()` after every
    `optimizer.step()` of fine-tuning. `mode="pre"` (SEVEN_pre, **reconstruction**: the official code
    does not contain it): `prune_before_training(batches)` feeds `window` batches of gradients at the
    pretrained weights, with no weight update, through the same moment and accumulation rule and prunes
    along the cubic schedule over those batches (exactly the target after the last), after which the
    mask stays fixed while fine-tuning.

    Ties at the threshold are broken deterministically so each cut keeps exactly floor(r_k N) weights
    (the official code keeps every weight with S >= the threshold, which can keep more on ties).
    """

    def __init__(
        self,
        model: nn.Module,
        sparsity: float,
        mode: str = "dyn",
        *,
        start: int = 0,
        window: int = 100,
        alpha1: float = 0.8,
        alpha2: float = 0.9,
        moments: str = "abs",
        consistency: bool = True,
        eps: float = 1e-9,
        delta_t: int = 1,
        final_exact: bool = False,
        fused: bool = False,
        scope: str = "global",
        min_density: float = DEFAULT_MIN_DENSITY,
        pattern: str | None = None,
        targets: str | Sequence[str] | None = None,
        exclude: str | Sequence[str] | None = None,
        optimizer: torch.optim.Optimizer | None = None,
    ) -> None:
        self.alpha1 = check_fraction("alpha1", alpha1, meaning="a moment's decay rate")
        self.alpha2 = check_fraction("alpha2", alpha2, meaning="a moment's decay rate")
        if moments not in ("abs", "signed"):
            raise ValueError(f"moments must be 'abs' (official code) or 'signed', got {moments!r}")
        self.moments = moments
        self.consistency = bool(consistency)
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"eps must be a float > 0, got {eps!r}")
        self.eps = float(eps)
        self.fused = bool(fused)
        self.state_names = ("m", "v", "S") if self.consistency else ("S",)
        self._fkeep_owner: Any = None  # the mask `_float_keep_views` last copied
        super().__init__(
            model,
            sparsity,
            mode=mode,
            start=start,
            window=window,
            delta_t=delta_t,
            final_exact=final_exact,
            scope=scope,
            min_density=min_density,
            pattern=pattern,
            targets=targets,
            exclude=exclude,
            optimizer=optimizer,
        )

    @torch.no_grad()
    def update_scores(
        self, weights: list[torch.Tensor], grads: list[torch.Tensor], k: int
    ) -> bool | None:
        """One SEVEN update of m, v and S from post-step weights and this step's gradients.

        Target by target (no flat copies of the weights or gradients; each target's state stays in
        cache while its ops run), with preallocated scratch (`_seven_update_eager`). The update also
        does the masking that follows it, on the data it has just read: on a cut step S[M == 0] <- 0
        (the cut then re-zeroes the weights with its new mask), on other steps the pruned weights
        are re-zeroed unless a hooked optimizer holds them at zero (so it returns True, see
        `GradualPruner.update_scores`). `fused=True` runs the same formula as one compiled pass per
        target, with the same skip of the re-zeroing under a hooked optimizer.
        """
        if not self.consistency:  # ablation: S <- S + |W g|
            term = torch._foreach_mul([x.float() for x in weights], [x.float() for x in grads])
            torch._foreach_abs_(term)
            torch._foreach_add_(self.state["S"], term)
            return None
        keeps = [self.mask[n] for n in self.names]
        st = self.state
        abs_m = self.moments == "abs"
        # a hooked safe optimizer (optimizer=, fit, SevenCallback) holds the pruned weights at
        # zero: nothing to re-zero, in either path
        rezero = not self.masked.holds_zeros
        if self.fused:
            bc1 = 1.0 - self.alpha1 ** (k + 1)
            bc2 = 1.0 - self.alpha2 ** (k + 1)
            coef = torch.tensor(
                [self.alpha1, self.alpha2, 1.0 / bc1, 1.0 / math.sqrt(bc2), self.eps],
                dtype=torch.float32,
                device=self.device,
            )
            cut = torch.tensor(self.cutting, device=self.device)
            if _run_fused(
                st["m"], st["v"], st["S"], weights, grads, keeps, coef, cut, abs_m, rezero
            ):
                return True
            # not compiled here: the eager default below (`_run_fused` has warned)
        _seven_update_eager(
            st["m"],
            st["v"],
            st["S"],
            weights,
            grads,
            keeps,
            self._scratch_views("t1"),
            self._scratch_views("t2"),
            alpha1=self.alpha1,
            alpha2=self.alpha2,
            eps=self.eps,
            k=k,
            abs_moments=abs_m,
            cutting=self.cutting,
            rezero=rezero,
            rezero_on_cut=not self.masked.attached,  # attached: the cut's set_mask re-zeroes
            fkeeps=self._float_keep_views() if self._uses_float_keep() else None,
        )
        return True

    def _float_keep_views(self) -> list[torch.Tensor]:
        """The current mask as 0/1 float32 views of one work buffer (`_scratch("keep")`, freed
        with the other work buffers after the window), copied in on the first update after the
        mask changed (a cut, `load_state_dict`). On a CPU the eager update multiplies by it
        instead of the bool mask's uint8 view, which torch would first cast to a temporary float
        copy at every step (`_seven_update_eager`); same products, bit for bit. Costs one float32
        buffer of the targets' size during the window."""
        fresh = "keep" not in self._scratch_bufs
        buf = self._scratch("keep")
        if fresh or self._fkeep_owner is not self.mask:
            # from the uint8 view: the same 0.0 / 1.0, and ~4x faster than from bool on a CPU
            # (1.5 vs 6.5 ms for MiniLM's 10.7M targets)
            buf.copy_(self._alive_flat().view(torch.uint8))
            self._fkeep_owner = self.mask
        return self._scratch_views("keep")

    def _uses_float_keep(self) -> bool:
        """Whether the eager update multiplies by the float mask (`_float_keep_views`)."""
        return self.device.type == "cpu" and self.consistency

    def consistency_factor(self) -> list[torch.Tensor]:
        """The current m_hat / (sqrt(v_hat) + eps) per target (near 1 for sentinels)."""
        if not self.consistency or not self.state or self.updates == 0:
            raise RuntimeError(
                "no moments yet: the consistency factor exists after the first update"
            )
        k = self.updates - 1
        bc1 = 1.0 - self.alpha1 ** (k + 1)
        bc2 = 1.0 - self.alpha2 ** (k + 1)
        return [
            (m / bc1) / ((v / bc2).sqrt() + self.eps)
            for m, v in zip(self.state["m"], self.state["v"])
        ]

    def _config(self) -> dict[str, Any]:
        return {
            **super()._config(),
            "fused": self.fused,
            "alpha1": self.alpha1,
            "alpha2": self.alpha2,
            "moments": self.moments,
            "consistency": self.consistency,
            "eps": self.eps,
        }
