"""Save and resume a `fit` run without losing state.

At each saved epoch end: the model (safetensors), the optimizer and scheduler, every RNG that shuffles
or samples (Python, NumPy, torch CPU and CUDA, the loader's sampler generator), every callback's
`state_dict` (masks and data-pruning scores included), the objective's `state_dict` when it has one,
and the history. Loading uses
`torch.load(weights_only=True)`, so a checkpoint file cannot run code.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskloop.checks import check_positive_int
from maskloop.loop import Callback, History, LoopState

__all__ = ["Checkpoint"]

_MODEL = "model.safetensors"
_STATE = "state.pt"


def _rng_state() -> dict[str, Any]:
    py = random.getstate()
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    v, keys, gauss = state["python"]
    random.setstate((v, tuple(keys), gauss))
    name, keys, pos, has_gauss, g = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, g))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _generators(data: Any) -> list[torch.Generator]:
    gens = []
    for owner in (data, getattr(data, "sampler", None), getattr(data, "batch_sampler", None)):
        g = getattr(owner, "generator", None)
        if isinstance(g, torch.Generator):
            gens.append(g)
    return gens


class Checkpoint(Callback):
    """Save the run every `every` epochs into `directory`; with `resume`, continue from the last save.

    Put it in `fit`'s callbacks; it runs after the others (order 100) so it saves their final state.
    A resumed run ends with exactly the weights of an uninterrupted one on the CPU.
    """

    order = 100

    def __init__(
        self, directory: str | os.PathLike[str], every: int = 1, resume: bool = True
    ) -> None:
        if not isinstance(directory, (str, os.PathLike)):
            raise TypeError(f"directory must be a path, got {type(directory).__name__}")
        self.directory = Path(directory)
        self.every = check_positive_int("every", every)
        self.resume = bool(resume)
        self.resumed_from: int | None = None

    @property
    def exists(self) -> bool:
        """Whether a complete checkpoint is in `directory`."""
        return (self.directory / _MODEL).is_file() and (self.directory / _STATE).is_file()

    @staticmethod
    def _key(i: int, cb: Callback) -> str:
        return f"{i}:{type(cb).__name__}"

    def on_fit_start(self, state: LoopState) -> None:
        if self.resume and self.exists:
            self.load(state)

    def on_epoch_end(self, state: LoopState) -> None:
        if state.epoch % self.every == 0 or state.epoch == state.epochs or state.stop_training:
            self.save(state)

    def save(self, state: LoopState) -> None:
        """Write the run's state atomically (only on rank 0 under DDP)."""
        from safetensors.torch import save_file

        if state.rank != 0:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        model_state = {
            k: v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()
        }
        payload = {
            "epoch": state.epoch,
            "step": state.step,
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict() if state.scheduler is not None else None,
            "rng": _rng_state(),
            "generators": [g.get_state() for g in _generators(state.train_data)],
            "callbacks": {
                self._key(i, cb): cb.state_dict()
                for i, cb in enumerate(state.callbacks)
                if cb is not self
            },
            "history": state.history.epochs,
        }
        if callable(getattr(state.objective, "state_dict", None)):
            payload["objective"] = state.objective.state_dict()
        tmp_model = self.directory / (_MODEL + ".tmp")
        tmp_state = self.directory / (_STATE + ".tmp")
        save_file(_untie(model_state), str(tmp_model))
        torch.save(payload, tmp_state)
        os.replace(tmp_model, self.directory / _MODEL)
        os.replace(tmp_state, self.directory / _STATE)

    def load(self, state: LoopState) -> None:
        """Restore model, optimizer, scheduler, RNGs, callbacks and history from `directory`."""
        from safetensors.torch import load_file

        if not self.exists:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        weights = load_file(str(self.directory / _MODEL), device=str(state.device))
        missing, unexpected = state.model.load_state_dict(weights, strict=False)
        if unexpected or [k for k in missing if k not in _tied_names(state.model)]:
            raise ValueError(
                f"checkpoint in {self.directory} does not match the model: missing {missing[:5]}, "
                f"unexpected {unexpected[:5]}"
            )
        payload = torch.load(self.directory / _STATE, map_location="cpu", weights_only=True)
        state.optimizer.load_state_dict(payload["optimizer"])
        if state.scheduler is not None and payload["scheduler"] is not None:
            state.scheduler.load_state_dict(payload["scheduler"])
        _set_rng_state(payload["rng"])
        for g, s in zip(_generators(state.train_data), payload["generators"]):
            g.set_state(s)
        saved = payload["callbacks"]
        for i, cb in enumerate(state.callbacks):
            if cb is self:
                continue
            key = self._key(i, cb)
            if key not in saved:
                raise ValueError(
                    f"checkpoint has no state for callback {key}; saved: {sorted(saved)}. "
                    "Resume with the same callbacks in the same order."
                )
            cb.load_state_dict(saved[key])
        if "objective" in payload and callable(getattr(state.objective, "load_state_dict", None)):
            state.objective.load_state_dict(payload["objective"])
        state.history = History(list(payload["history"]))
        state.epoch = int(payload["epoch"])
        state.step = int(payload["step"])
        self.resumed_from = state.epoch


def _untie(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage: keep the first name of each tied tensor only."""
    seen: dict[tuple[int, int], str] = {}
    out = {}
    for k, v in tensors.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else (id(v), 0)
        if key in seen:
            continue
        seen[key] = k
        out[k] = v
    return out


def _tied_names(model: torch.nn.Module) -> set[str]:
    state = model.state_dict()
    return set(state) - set(_untie({k: v for k, v in state.items()}))
