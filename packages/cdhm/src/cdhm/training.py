"""How the domain-adaptive estimators train through ``maskloop.fit``: batches, objective, clipping.

Every estimator of this package (CDHM's ELBO, the aligned CNN baselines) trains in the one loop of
the core, ``maskloop.fit(net, SourceTargetBatches(...), objective=DomainAdaptationObjective(...))``,
so each gets ``maskloop.Checkpoint`` resume, the progress bar and every callback hook:

* :class:`SourceTargetBatches` yields one batch per ``batch_size`` source windows (a fresh
  permutation each epoch) with as many target windows drawn at random; its NumPy generator is
  saved and resumed by ``Checkpoint`` (it is also a callback);
* :class:`DomainAdaptationObjective` turns an estimator's batch loss (the negative ELBO plus the
  label, condition and alignment terms for CDHM; cross-entropy plus alignment for the baselines)
  into the loop's per-sample losses, and feeds it the training progress p = step / (total - 1)
  that the KL warm-up and the Ganin schedule read;
* :class:`ClipGradNorm` clips the gradient norm before each optimiser step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import torch
from maskloop import Callback, LoopState
from maskloop.checks import check_int, check_real
from torch import nn

__all__ = ["ClipGradNorm", "DomainAdaptationObjective", "SourceTargetBatches"]

StepFn = Callable[[dict[str, torch.Tensor], float], "tuple[torch.Tensor, dict[str, float]]"]


class SourceTargetBatches(Callback):
    """Batches ``{"xs", "ys", "cs"[, "xt", "ct"]}`` of source windows plus random target windows.

    Each epoch draws a permutation of the source windows and cuts it into batches of `batch_size`
    (a last batch of a single window is skipped: batch statistics need two); each batch gets as
    many target windows drawn uniformly (with replacement only when the target set is smaller).
    The NumPy generator (seeded with `seed`) is the only randomness; as a callback its state is
    saved and resumed by ``maskloop.Checkpoint``, so a resumed run sees the same batches.
    """

    def __init__(
        self,
        xs: torch.Tensor,
        ys: torch.Tensor,
        cs: torch.Tensor,
        xt: torch.Tensor | None = None,
        ct: torch.Tensor | None = None,
        *,
        batch_size: int,
        seed: int,
    ) -> None:
        if len(ys) != len(xs) or len(cs) != len(xs):
            raise ValueError(
                f"xs, ys and cs must have one entry per source window, got {len(xs)}, "
                f"{len(ys)} and {len(cs)}"
            )
        if (xt is None) != (ct is None) or (xt is not None and len(xt) != len(ct)):
            raise ValueError("xt and ct must be given together, with one condition per window")
        self.xs, self.ys, self.cs, self.xt, self.ct = xs, ys, cs, xt, ct
        self.batch_size = min(check_int("batch_size", batch_size, 2), len(xs))
        self.rng = np.random.default_rng(check_int("seed", seed, 0))

    @property
    def steps_per_epoch(self) -> int:
        """Source batches per epoch, counting a skipped single-window last batch."""
        return -(-len(self.xs) // self.batch_size)

    def __len__(self) -> int:
        n, bs = len(self.xs), self.batch_size
        return n // bs + int(n % bs >= 2)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        perm = self.rng.permutation(len(self.xs))
        bs = self.batch_size
        for b in range(self.steps_per_epoch):
            idx = perm[b * bs : (b + 1) * bs]
            if len(idx) < 2:
                continue
            batch = {"xs": self.xs[idx], "ys": self.ys[idx], "cs": self.cs[idx]}
            if self.xt is not None and self.ct is not None:
                n_t = len(self.xt)
                tidx = self.rng.choice(n_t, size=len(idx), replace=n_t < len(idx))
                batch.update(xt=self.xt[tidx], ct=self.ct[tidx])
            yield batch

    def state_dict(self) -> dict[str, Any]:
        """The generator's state (PCG64 words as decimal strings: Checkpoint loads weights-only)."""
        st = self.rng.bit_generator.state
        return {
            "state": str(st["state"]["state"]),
            "inc": str(st["state"]["inc"]),
            "has_uint32": int(st["has_uint32"]),
            "uinteger": int(st["uinteger"]),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the generator saved by :meth:`state_dict`."""
        self.rng.bit_generator.state = {
            "bit_generator": "PCG64",
            "state": {"state": int(state["state"]), "inc": int(state["inc"])},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }


class DomainAdaptationObjective(Callback):
    """A ``maskloop.fit`` objective around ``step_fn(batch, progress) -> (loss, logs)``.

    ``step_fn`` returns one loss for the whole batch: CDHM's is
    ``[-ELBO_beta + ...] / (T D) + lambda_a A(s)`` with the ELBO from Pyro's
    ``differentiable_loss`` and batch-level alignment (DANN, MK-MMD) and HSIC terms, which do not
    split into independent per-window parts. The loop receives it once per window of the batch
    (source and target), so their mean is the loss (equal up to float rounding) and a callback that
    reweights ``state.losses`` scales the batch. As a callback (put it in ``fit``'s callbacks
    too) it reads the optimiser step before each batch and passes
    ``progress = step / max(1, total_steps - 1)`` to ``step_fn``.
    """

    def __init__(self, step_fn: StepFn, total_steps: int) -> None:
        if not callable(step_fn):
            raise TypeError(f"step_fn must be callable, got {step_fn!r}")
        self.step_fn = step_fn
        self.total_steps = check_int("total_steps", total_steps, 1)
        self.progress = 0.0

    def on_batch_start(self, state: LoopState) -> None:
        self.progress = state.step / max(1, self.total_steps - 1)

    def __call__(
        self, model: nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        loss, logs = self.step_fn(batch, self.progress)
        n = len(batch["xs"]) + (len(batch["xt"]) if "xt" in batch else 0)
        return loss.expand(n), logs


class ClipGradNorm(Callback):
    """Clip the total gradient norm of `model`'s parameters to `max_norm` before each step."""

    def __init__(self, max_norm: float = 10.0) -> None:
        self.max_norm = check_real("max_norm", max_norm, low=0.0, low_inclusive=False)

    def on_after_backward(self, state: LoopState) -> None:
        nn.utils.clip_grad_norm_(state.model.parameters(), self.max_norm)
