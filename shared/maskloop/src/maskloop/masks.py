"""Weight masks: plain boolean tensors keyed by parameter name, and the machinery to apply them.

A mask is data (`dict[str, BoolTensor]`), never a rewrite of the model: parameters stay ordinary leaf
`nn.Parameter`s and `state_dict` keys never change (unlike `torch.nn.utils.prune`'s `weight_orig` /
`weight_mask`). Scoring, selection (`WeightMask.from_scores`) and application (`apply_`) are separate
steps so that one machinery serves every pruning method.

Unstructured zeros save no time on dense kernels: sparsity is reported as sparsity, never as speed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from maskloop.checks import check_fraction
from maskloop.loop import Callback, LoopState

__all__ = ["DEFAULT_TYPES", "MaskedTraining", "WeightMask", "filter_names", "prunable_parameters"]

DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _patterns(value: str | Sequence[str] | None, name: str) -> list[re.Pattern[str]]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    out = []
    for v in value:
        if not isinstance(v, str):
            raise TypeError(f"{name} must be a regex string or a sequence of them, got {v!r}")
        try:
            out.append(re.compile(v))
        except re.error as err:
            raise ValueError(f"{name}={v!r} is not a valid regular expression: {err}") from err
    return out


def _matches(name: str, inc: list[re.Pattern[str]], exc: list[re.Pattern[str]]) -> bool:
    return (not inc or any(p.search(name) for p in inc)) and not any(p.search(name) for p in exc)


def filter_names(
    names: Iterable[str],
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> list[str]:
    """The `names`, in order, that match one `include` regex (when given) and no `exclude` regex
    (searched in the name), as `prunable_parameters` selects parameters."""
    inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
    return [n for n in names if _matches(n, inc, exc)]


def prunable_parameters(
    model: nn.Module,
    types: Sequence[type[nn.Module]] = DEFAULT_TYPES,
    include_bias: bool = False,
    include: str | Sequence[str] | None = None,
    exclude: str | Sequence[str] | None = None,
) -> dict[str, nn.Parameter]:
    """Return the parameters a pruner may mask, keyed by fully qualified name.

    Weights of modules of `types` are picked (and their biases with `include_bias`). `include` / `exclude`
    are regular expressions searched in the parameter name; a name must match one `include` pattern (when
    given) and no `exclude` pattern. Shared parameters appear once, under their first name.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    types = tuple(types)
    if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise TypeError(
            f"types must be a non-empty sequence of nn.Module subclasses, got {types!r}"
        )
    inc, exc = _patterns(include, "include"), _patterns(exclude, "exclude")
    seen: set[int] = set()
    out: dict[str, nn.Parameter] = {}
    for mod_name, module in model.named_modules():
        if not isinstance(module, types):
            continue
        for p_name, param in module.named_parameters(recurse=False):
            if p_name != "weight" and not (include_bias and p_name == "bias"):
                continue
            full = f"{mod_name}.{p_name}" if mod_name else p_name
            if id(param) in seen or not _matches(full, inc, exc):
                continue
            seen.add(id(param))
            out[full] = param
    if not out:
        raise ValueError(
            f"no prunable parameters found in {type(model).__name__} for types="
            f"{[t.__name__ for t in types]}, include={include!r}, exclude={exclude!r}"
        )
    return out


class WeightMask:
    """Boolean keep-masks (True = kept) for named parameters.

    Build one with `from_scores` (lowest scores are pruned) or `dense`, apply it with `apply_`, keep it
    exact during training with `MaskedTraining`, and save it with `save` (safetensors).
    """

    def __init__(self, masks: Mapping[str, torch.Tensor]) -> None:
        if not isinstance(masks, Mapping):
            raise TypeError(
                f"masks must be a mapping name -> bool tensor, got {type(masks).__name__}"
            )
        self._masks: dict[str, torch.Tensor] = {}
        for name, m in masks.items():
            if not isinstance(name, str):
                raise TypeError(f"mask names must be str, got {name!r}")
            if not isinstance(m, torch.Tensor):
                raise TypeError(f"mask {name!r} must be a torch.Tensor, got {type(m).__name__}")
            if m.dtype != torch.bool:
                raise TypeError(f"mask {name!r} must have dtype torch.bool, got {m.dtype}")
            self._masks[name] = m.detach()
        if not self._masks:
            raise ValueError("a WeightMask needs at least one named mask; got an empty mapping")

    # ---------------------------------------------------------------- construction
    @classmethod
    def dense(cls, params: Mapping[str, torch.Tensor]) -> WeightMask:
        """An all-True mask with the shapes of `params` (e.g. `prunable_parameters(model)`)."""
        return cls(
            {n: torch.ones_like(p, dtype=torch.bool, device=p.device) for n, p in params.items()}
        )

    @classmethod
    def from_scores(
        cls,
        scores: Mapping[str, torch.Tensor],
        sparsity: float,
        scope: str = "global",
        previous: WeightMask | None = None,
        rounding: str = "nearest",
    ) -> WeightMask:
        """Prune exactly `floor(sparsity * numel + 0.5)` lowest-scored entries; keep the rest.

        `rounding="floor"` prunes `int(sparsity * numel)` instead: the count Synaptic-Flow's reference
        code prunes (`k = int((1 - density) * numel)`, with `sparsity = 1 - density`), which decides
        the masks of its iterative SynFlow. (The reference also prunes every entry tied with its
        threshold; here exactly that count is pruned, ties broken by position.)

        `scope="global"` ranks all entries together, `"layer"` prunes each tensor to `sparsity` alone.
        Ties are broken deterministically: among equal scores the entry earlier in the mapping's order
        (then in flattened order) is pruned first. Entries pruned in `previous` stay pruned (their score
        is taken as -inf), so iterative pruning never revives a weight.
        """
        sparsity = check_fraction("sparsity", sparsity, low_inclusive=True, high_inclusive=False)
        if scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
        if rounding not in ("nearest", "floor"):
            raise ValueError(f"rounding must be 'nearest' or 'floor', got {rounding!r}")
        if not isinstance(scores, Mapping) or not scores:
            raise ValueError("scores must be a non-empty mapping name -> tensor")
        flat: dict[str, torch.Tensor] = {}
        for name, s in scores.items():
            if not isinstance(s, torch.Tensor):
                raise TypeError(f"scores[{name!r}] must be a tensor, got {type(s).__name__}")
            if s.numel() == 0:
                raise ValueError(f"scores[{name!r}] is empty")
            s = s.detach().to(torch.float64).flatten()
            if torch.isnan(s).any():
                raise ValueError(
                    f"scores[{name!r}] contains NaN; scores must be comparable numbers"
                )
            flat[name] = s
        if previous is not None:
            if not isinstance(previous, WeightMask):
                raise TypeError(f"previous must be a WeightMask, got {type(previous).__name__}")
            for name, s in flat.items():
                if name not in previous:
                    raise ValueError(f"previous mask has no entry for {name!r}")
                if previous[name].numel() != s.numel():
                    raise ValueError(
                        f"previous[{name!r}] has {previous[name].numel()} entries, scores {s.numel()}"
                    )
                flat[name] = s.masked_fill(~previous[name].flatten().to(s.device), -math.inf)
        shapes = {n: scores[n].shape for n in flat}
        devices = {n: scores[n].device for n in flat}
        if scope == "layer":
            keep = {n: _keep_lowest_pruned(s, sparsity, rounding) for n, s in flat.items()}
        else:
            allflat = torch.cat([s.cpu() for s in flat.values()])
            kept = _keep_lowest_pruned(allflat, sparsity, rounding)
            keep, offset = {}, 0
            for n, s in flat.items():
                keep[n] = kept[offset : offset + s.numel()]
                offset += s.numel()
        return cls({n: keep[n].reshape(shapes[n]).to(devices[n]) for n in flat})

    # ---------------------------------------------------------------- mapping protocol
    def __getitem__(self, name: str) -> torch.Tensor:
        return self._masks[name]

    def __contains__(self, name: object) -> bool:
        return name in self._masks

    def __iter__(self) -> Iterator[str]:
        return iter(self._masks)

    def __len__(self) -> int:
        return len(self._masks)

    def items(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, bool mask) pairs."""
        return iter(self._masks.items())

    @property
    def names(self) -> list[str]:
        """The masked parameter names, in order."""
        return list(self._masks)

    # ---------------------------------------------------------------- statistics
    @property
    def numel(self) -> int:
        """Total number of masked entries."""
        return sum(m.numel() for m in self._masks.values())

    @property
    def num_pruned(self) -> int:
        """Number of pruned (False) entries."""
        return sum(int((~m).sum()) for m in self._masks.values())

    @property
    def sparsity(self) -> float:
        """Fraction of masked entries that are pruned."""
        return self.num_pruned / self.numel

    @property
    def density(self) -> float:
        """Fraction of masked entries that are kept (1 - sparsity)."""
        return 1.0 - self.sparsity

    def report(self, model: nn.Module | None = None) -> list[dict[str, Any]]:
        """Per-tensor statistics; with `model`, also the fraction of exact zeros in the live weight."""
        params = dict(model.named_parameters()) if model is not None else {}
        rows = []
        for name, m in self._masks.items():
            row: dict[str, Any] = {
                "name": name,
                "shape": tuple(m.shape),
                "numel": m.numel(),
                "pruned": int((~m).sum()),
                "sparsity": float((~m).sum()) / m.numel(),
            }
            if name in params:
                row["zeros"] = float((params[name].detach() == 0).sum()) / m.numel()
            rows.append(row)
        return rows

    def report_markdown(self, model: nn.Module | None = None) -> str:
        """`report` as a Markdown table, with a total row."""
        from maskloop.report import markdown_table

        rows = self.report(model)
        headers = ["parameter", "shape", "numel", "pruned", "sparsity"]
        if rows and "zeros" in rows[0]:
            headers.append("zeros in weight")
        body = []
        for r in rows:
            line = [r["name"], "x".join(map(str, r["shape"])), r["numel"], r["pruned"]]
            line.append(f"{r['sparsity']:.4f}")
            if "zeros" in r:
                line.append(f"{r['zeros']:.4f}")
            body.append(line)
        total = ["total", "", self.numel, self.num_pruned, f"{self.sparsity:.4f}"]
        if len(headers) == 6:
            total.append("")
        body.append(total)
        return markdown_table(headers, body)

    # ---------------------------------------------------------------- algebra
    def _check_compatible(self, other: WeightMask, op: str) -> None:
        if not isinstance(other, WeightMask):
            raise TypeError(f"cannot {op} a WeightMask with {type(other).__name__}")
        if set(self._masks) != set(other._masks):
            diff = sorted(set(self._masks) ^ set(other._masks))
            raise ValueError(f"masks cover different parameters; differing names: {diff[:5]}")
        for n, m in self._masks.items():
            if m.shape != other._masks[n].shape:
                raise ValueError(f"mask {n!r}: shape {tuple(m.shape)} vs {tuple(other[n].shape)}")

    def __and__(self, other: WeightMask) -> WeightMask:
        self._check_compatible(other, "and")
        return WeightMask({n: m & other[n].to(m.device) for n, m in self._masks.items()})

    def __or__(self, other: WeightMask) -> WeightMask:
        self._check_compatible(other, "or")
        return WeightMask({n: m | other[n].to(m.device) for n, m in self._masks.items()})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, WeightMask) or set(self._masks) != set(other._masks):
            return False
        return all(
            m.shape == other[n].shape and bool(torch.equal(m.cpu(), other[n].cpu()))
            for n, m in self._masks.items()
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"WeightMask({len(self)} tensors, numel={self.numel}, sparsity={self.sparsity:.4f})"

    def to(self, device: torch.device | str) -> WeightMask:
        """A copy with every mask on `device`."""
        return WeightMask({n: m.to(device) for n, m in self._masks.items()})

    # ---------------------------------------------------------------- application
    def _resolve(self, model: nn.Module) -> dict[str, torch.Tensor]:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        params = dict(model.named_parameters(remove_duplicate=False))
        out = {}
        for name, m in self._masks.items():
            if name not in params:
                close = [p for p in params if p.endswith(name.split(".")[-1])][:5]
                raise ValueError(
                    f"mask names parameter {name!r}, which {type(model).__name__} does not have "
                    f"(parameters with a similar suffix: {close})"
                )
            if params[name].shape != m.shape:
                raise ValueError(
                    f"mask {name!r} has shape {tuple(m.shape)} but the parameter has shape "
                    f"{tuple(params[name].shape)}"
                )
            out[name] = params[name]
        return out

    @torch.no_grad()
    def apply_(self, model: nn.Module) -> nn.Module:
        """Zero the pruned weights of `model` in place and return it."""
        for name, p in self._resolve(model).items():
            p.mul_(self._masks[name].to(device=p.device, dtype=p.dtype))
        return model

    # ---------------------------------------------------------------- persistence
    def state_dict(self) -> dict[str, torch.Tensor]:
        """The masks as a plain dict of bool tensors (CPU copies)."""
        return {n: m.detach().cpu().clone() for n, m in self._masks.items()}

    def load_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        """Replace the masks with `state` (same names and shapes)."""
        new = WeightMask(state)
        self._check_compatible(new, "load")
        self._masks = {n: new[n].to(self._masks[n].device) for n in self._masks}

    def save(self, path: str | Path) -> Path:
        """Write the masks to a safetensors file (stored as uint8: safetensors has no bool dtype)."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {n: m.to(torch.uint8).contiguous() for n, m in self.state_dict().items()}
        save_file(tensors, str(path), metadata={"format": "maskloop.WeightMask", "version": "1"})
        return path

    @classmethod
    def load(cls, path: str | Path) -> WeightMask:
        """Read masks written by `save`."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no mask file at {path}")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != "maskloop.WeightMask":
                raise ValueError(f"{path} is not a maskloop WeightMask file (metadata {meta})")
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        return cls({k: v.to(torch.bool) for k, v in tensors.items()})


def pruned_count(numel: int, sparsity: float, rounding: str = "nearest") -> int:
    """How many of `numel` entries `from_scores` prunes: `floor(s * n + 0.5)`, or `int(s * n)` with
    `rounding="floor"` (Synaptic-Flow's reference)."""
    return int(sparsity * numel) if rounding == "floor" else math.floor(sparsity * numel + 0.5)


def _keep_lowest_pruned(
    scores: torch.Tensor, sparsity: float, rounding: str = "nearest"
) -> torch.Tensor:
    """Bool keep-vector pruning exactly round(sparsity*n) lowest scores; ties -> lower index pruned."""
    n = scores.numel()
    n_prune = pruned_count(n, sparsity, rounding)
    keep = torch.ones(n, dtype=torch.bool, device=scores.device)
    if n_prune:
        order = torch.argsort(scores, stable=True)
        keep[order[:n_prune]] = False
    return keep


class MaskedTraining(Callback):
    """Keep pruned weights exactly zero while a model trains.

    Gradient hooks zero the gradients of pruned entries (so optimizer moments never see them) and the
    mask is re-applied after every `optimizer.step()` (so momentum or weight decay cannot revive a
    weight). Pass the optimizer to hook its steps, or call `reapply()` after each step in your own loop.
    Also a `maskloop` Callback: in `fit` it re-applies after each step and is saved by `Checkpoint`.
    """

    order = -10

    def __init__(
        self, model: nn.Module, mask: WeightMask, optimizer: torch.optim.Optimizer | None = None
    ) -> None:
        if not isinstance(mask, WeightMask):
            raise TypeError(f"mask must be a WeightMask, got {type(mask).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        self.model = model
        self.mask = mask
        self._params = mask._resolve(model)
        self._handles: list[Any] = []
        self._optimizer_handle: Any = None
        self._floats: list[torch.Tensor] = []
        self._attach(optimizer)

    def _attach(self, optimizer: torch.optim.Optimizer | None) -> None:
        self._floats = [
            self.mask[n].to(device=p.device, dtype=p.dtype) for n, p in self._params.items()
        ]
        self._plist = list(self._params.values())
        self._hook_gradients()
        if optimizer is not None:
            self._optimizer_handle = optimizer.register_step_post_hook(lambda *_: self.reapply())
        self.reapply()

    def _hook_gradients(self) -> None:
        """Zero pruned entries of each accumulated gradient in place (no extra allocation)."""

        def hook(param: torch.Tensor, m: torch.Tensor) -> None:
            if param.grad is not None:
                param.grad.mul_(m)

        for p, m in zip(self._plist, self._floats):
            self._handles.append(p.register_post_accumulate_grad_hook(lambda q, m=m: hook(q, m)))

    @torch.no_grad()
    def reapply(self) -> None:
        """Zero the pruned weights again (after an optimizer step)."""
        torch._foreach_mul_(self._plist, self._floats)

    def remove(self) -> None:
        """Detach every hook; the weights keep their current values."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._optimizer_handle is not None:
            self._optimizer_handle.remove()
            self._optimizer_handle = None

    def __enter__(self) -> MaskedTraining:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # Callback interface
    def on_step_end(self, state: LoopState) -> None:
        if self._optimizer_handle is None:
            self.reapply()

    def state_dict(self) -> dict[str, Any]:
        return {"mask": self.mask.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.mask.load_state_dict(state["mask"])
        self._floats = [
            self.mask[n].to(device=p.device, dtype=p.dtype) for n, p in self._params.items()
        ]
        # The gradient hooks captured the old float masks: register them anew.
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._hook_gradients()
        self.reapply()
