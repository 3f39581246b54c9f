"""Reading a model's intermediate features with a forward hook, by module name or module.

Two methods need the penultimate features of a classifier (TED's closed-form last-layer gradients,
LNPT's learning gap), so the hook lives in the core. By default it captures the *input* of the last
`nn.Linear`, which is the penultimate representation of most classifiers.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

__all__ = ["FeatureHook", "last_linear"]


def last_linear(model: nn.Module) -> str:
    """Name of the last `nn.Linear` registered in `model` (its classifier head, usually)."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not names:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear; name the feature layer explicitly (layer=...)"
        )
    return names[-1]


class FeatureHook:
    """Capture a module's input (`which="input"`) or output (`"output"`) on every forward pass.

    `layer` is a module name as in `model.named_modules()`, a module, or None for the last Linear.
    Use as a context manager or call `remove()`. `features` is the last captured tensor (not detached,
    so gradients can flow through it when the forward pass tracks them).
    """

    def __init__(
        self, model: nn.Module, layer: str | nn.Module | None = None, which: str = "input"
    ) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if which not in ("input", "output"):
            raise ValueError(f"which must be 'input' or 'output', got {which!r}")
        modules = dict(model.named_modules())
        if layer is None:
            layer = last_linear(model)
        if isinstance(layer, str):
            if layer not in modules:
                names = [n for n in modules if n][:20]
                raise ValueError(
                    f"layer {layer!r} is not a module of {type(model).__name__}; "
                    f"available (first 20): {names}"
                )
            self.name = layer
            module = modules[layer]
        elif isinstance(layer, nn.Module):
            found = [n for n, m in modules.items() if m is layer]
            if not found:
                raise ValueError("layer is a module that is not part of model")
            self.name = found[0]
            module = layer
        else:
            raise TypeError(
                f"layer must be a module name, a module or None, got {type(layer).__name__}"
            )
        self.module = module
        self.which = which
        self.features: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        value = args[0] if self.which == "input" else output
        if type(value) is not torch.Tensor:  # a plain tensor (every batch, usually) is kept as is
            if isinstance(value, (tuple, list)):
                value = value[0]
            if hasattr(value, "last_hidden_state"):
                value = value.last_hidden_state
        self.features = value

    def remove(self) -> None:
        """Detach the hook."""
        self._handle.remove()

    def __enter__(self) -> FeatureHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()
