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
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from maskloop.checks import check_fraction
from maskloop.loop import Callback, LoopState

__all__ = [
    "DEFAULT_MIN_DENSITY",
    "SAFE_OPTIMIZERS",
    "DEFAULT_TYPES",
    "MaskedTraining",
    "WeightMask",
    "filter_names",
    "prunable_parameters",
    "pruned_count",
]

DEFAULT_TYPES: tuple[type[nn.Module], ...] = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

DEFAULT_MIN_DENSITY = 0.01
"""The default per-tensor floor of `WeightMask.from_scores`: a guard against layer collapse (every
tensor keeps at least 1% of its entries, at least one), not a tuned density."""


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
        min_density: float | None = None,
    ) -> WeightMask:
        """Prune exactly `floor(sparsity * numel + 0.5)` lowest-scored entries; keep the rest.

        `scope="global"` ranks all entries together, `"layer"` prunes each tensor to `sparsity` alone.
        Ties are broken deterministically: among equal scores the entry earlier in the mapping's order
        (then in flattened order) is pruned first. Entries pruned in `previous` stay pruned (their score
        is taken as -inf), so iterative pruning never revives a weight.

        `rounding="floor"` prunes `int(sparsity * numel)` instead: the count Synaptic-Flow's reference
        code prunes (`k = int((1 - density) * numel)`, with `sparsity = 1 - density`), which decides
        the masks of its iterative SynFlow. (The reference also prunes every entry tied with its
        threshold; here exactly that count is pruned, ties broken by position.)

        **Layer-collapse guard** (`min_density`, on by default): every tensor keeps at least
        `f_t = max(1, ceil(min_density * numel_t))` of its highest-scored entries (never more than
        `previous` left it), so no tensor is emptied by a global selection. The guard's kept entries
        are taken first and the rest of the budget is filled by the global ranking, so the overall
        sparsity is still exact; when the plain selection already keeps `f_t` in every tensor the
        result is identical to it. A `UserWarning` names each tensor the plain selection would have
        emptied. `min_density=None` means `DEFAULT_MIN_DENSITY` (0.01), relaxed to one entry per
        tensor when the floors do not fit in the budget; an explicit value raises `ValueError`
        instead. `min_density=0` turns the guard off (plain selection; tensors may be emptied).
        With `scope="layer"` a tensor that `sparsity` would empty keeps its floor (so its sparsity,
        and the total, come out slightly lower) and is named in the warning.
        """
        sparsity = check_fraction("sparsity", sparsity, low_inclusive=True, high_inclusive=False)
        if scope not in ("global", "layer"):
            raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
        if rounding not in ("nearest", "floor"):
            raise ValueError(f"rounding must be 'nearest' or 'floor', got {rounding!r}")
        explicit = min_density is not None
        density_floor = (
            check_fraction("min_density", min_density, meaning="the least fraction kept per tensor")
            if explicit
            else DEFAULT_MIN_DENSITY
        )
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
        alive = {n: s.numel() for n, s in flat.items()}
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
                prev = previous[name].flatten().to(s.device)
                alive[name] = int(prev.sum())
                flat[name] = s.masked_fill(~prev, -math.inf)
        shapes = {n: scores[n].shape for n in flat}
        devices = {n: scores[n].device for n in flat}

        def floors_for(d: float) -> dict[str, int]:
            if d == 0.0:
                return dict.fromkeys(flat, 0)
            return {n: min(max(1, math.ceil(d * s.numel())), alive[n]) for n, s in flat.items()}

        floors = floors_for(density_floor)
        if scope == "layer":
            keep = {}
            emptied = []
            for n, s in flat.items():
                n_prune = pruned_count(s.numel(), sparsity, rounding)
                if s.numel() - n_prune < floors[n]:
                    if s.numel() - n_prune == 0:
                        emptied.append(n)
                    n_prune = s.numel() - floors[n]
                keep[n] = _keep_top(s, s.numel() - n_prune)
        else:
            allflat = torch.cat([s.cpu() for s in flat.values()])
            budget = allflat.numel() - pruned_count(allflat.numel(), sparsity, rounding)
            keep = _split(_keep_top(allflat, budget), flat)
            counts = {n: int(k.sum()) for n, k in keep.items()}
            short = [n for n in flat if counts[n] < floors[n]]
            emptied = [n for n in short if counts[n] == 0]
            if short:
                if sum(floors.values()) > budget:
                    if explicit:
                        raise ValueError(
                            f"min_density={density_floor} keeps {sum(floors.values())} entries in "
                            f"per-tensor floors alone, more than the {budget} that sparsity="
                            f"{sparsity} leaves; lower min_density (0 turns the guard off)"
                        )
                    floors = floors_for(1e-300)  # one entry per tensor
                    if sum(floors.values()) > budget:
                        raise ValueError(
                            f"sparsity={sparsity} keeps {budget} entries, fewer than the "
                            f"{len(flat)} tensors: every tensor cannot keep one; pass "
                            "min_density=0 to allow emptied tensors"
                        )
                lifted = []
                for n, s in flat.items():
                    s = s.cpu().clone()
                    if floors[n]:
                        s[_keep_top(s, floors[n])] = math.inf  # always within the budget
                    lifted.append(s)
                keep = _split(_keep_top(torch.cat(lifted), budget), flat)
        if emptied:
            warnings.warn(
                f"the plain {scope} selection at sparsity={sparsity} would have emptied "
                f"{', '.join(map(repr, emptied))}; each keeps its min_density floor instead "
                "(pass min_density=0 to allow emptied tensors)",
                UserWarning,
                stacklevel=2,
            )
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


def _keep_top(scores: torch.Tensor, n_keep: int) -> torch.Tensor:
    """Bool keep-vector of the `n_keep` highest scores; among ties the lower index is pruned first."""
    n = scores.numel()
    keep = torch.ones(n, dtype=torch.bool, device=scores.device)
    if n_keep < n:
        order = torch.argsort(scores, stable=True)
        keep[order[: n - n_keep]] = False
    return keep


def _split(kept: torch.Tensor, flat: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, offset = {}, 0
    for n, s in flat.items():
        out[n] = kept[offset : offset + s.numel()]
        offset += s.numel()
    return out


#: Optimizers (exact types) that never move a weight whose gradient is always exactly zero and whose
#: state entries are zero (SGD with momentum / weight decay, the Adam family, RMSprop, Adagrad,
#: Adadelta: every update is a multiple of the gradient, of the first moment or of the weight itself).
#: Under them `MaskedTraining` masks gradients only and re-applies the mask only when it changes.
SAFE_OPTIMIZERS: tuple[type[torch.optim.Optimizer], ...] = (
    torch.optim.SGD,
    torch.optim.Adam,
    torch.optim.AdamW,
    torch.optim.NAdam,
    torch.optim.RAdam,
    torch.optim.Adamax,
    torch.optim.RMSprop,
    torch.optim.Adagrad,
    torch.optim.Adadelta,
)
# optimizer state entries that accumulate gradients (zeroed on newly pruned entries) and the
# second-moment entries that divide the update (held at a positive constant on pruned entries)
_FIRST_MOMENTS = ("exp_avg", "momentum_buffer", "grad_avg", "acc_delta")
_SECOND_MOMENTS = ("exp_avg_sq", "max_exp_avg_sq", "square_avg", "sum")
# Kept entries that have never had a gradient (dead units of the sparse net) sit at exactly 0 in the
# second moment, and `sqrt`/division over exact zeros take a slow path on x86 CPUs (measured: 3% of
# zeros made Adam's `sqrt` over a 1024x1024 moment 2.2x slower). Such an entry's first moment is 0
# too, so its update is 0 with any second moment; it is held at a tiny floor instead. Once a gradient
# g arrives, `beta2 * floor + (1 - beta2) * g**2` rounds to `(1 - beta2) * g**2` exactly (the floor is
# below half an ulp of it) for |g| > 1.3e-10 in float32 (floor 1e-30) and |g| > 1e-90 in float64
# (floor 1e-200), so updates stay bit for bit those of the dense optimizer on the masked problem. The
# floor decays by beta2 per step and is re-held every `refresh_every`; detach resets it to 0.
_UNTOUCHED_FLOOR = {torch.float32: 1e-30, torch.float64: 1e-200}


def _revives(new: torch.Tensor, old: torch.Tensor) -> bool:
    """Whether bool mask `new` keeps an entry that `old` prunes (`(new & ~old).any()`), in one
    read of both: on a CPU 8 entries at a time as 64-bit words (bools are bytes 0/1, so the
    bitwise and-not of the words is nonzero exactly where an entry is revived); elsewhere in torch."""
    if new.device.type != "cpu" or not (new.is_contiguous() and old.is_contiguous()):
        return bool((new & ~old).any())
    a, b = new.reshape(-1).numpy(), old.reshape(-1).numpy()
    m = a.size // 8 * 8
    if m and bool(np.any(a[:m].view(np.uint64) & ~b[:m].view(np.uint64))):
        return True
    return bool(np.any(a[m:] & ~b[m:]))


def _revives_all(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[bool]:
    """`_revives(new, old)` for every pair: one at a time on a CPU (or across devices); on one
    other device all reductions first and one host copy (`_revives_stacked`), so a GPU is waited
    for once, not once per parameter."""
    devices = {t.device for pair in pairs for t in pair}
    if len(devices) != 1 or next(iter(devices)).type == "cpu":
        return [_revives(new, old) for new, old in pairs]
    return _revives_stacked(pairs)


def _revives_stacked(pairs: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> list[bool]:
    """`_revives_all` with every `(new & ~old).any()` reduced on the pairs' device, then one copy."""
    if not pairs:
        return []
    return torch.stack([(new & ~old).any() for new, old in pairs]).tolist()


class MaskedTraining(Callback):
    """Keep pruned weights exactly zero while a model trains; attach, swap masks, detach.

    Lifecycle (as `torch.ao.pruning`'s prepare / step / squash and `torch.nn.utils.parametrize`'s
    register / remove): constructing one does not touch the model. It attaches in `on_fit_start` (as a
    `fit` callback, then detaches in `on_fit_end`), in `__enter__` (detaches in `__exit__`), or with
    `attach()` (detach with `detach()` / `remove()`). Attaching zeroes the pruned weights, hooks each
    masked parameter's gradient (pruned entries set to exactly 0 right after accumulation, so callbacks
    reading `.grad`, the optimizer and DDP's all-reduce only see masked gradients) and, when an
    optimizer is known (passed here or `fit`'s), hooks its steps. `set_mask(mask)` swaps the mask at
    any time (re-applying it and fixing the optimizer state of the entries that changed).

    Cost: one pass over the gradients per step. With an optimizer in `SAFE_OPTIMIZERS` and
    `reapply="auto"` (default) the weights are re-applied only when the mask changes: a weight with
    zero value, zero gradient and zero first moment never moves under them. A pruned entry's second
    moment (`exp_avg_sq`, ...) is held at `second_moment` (1.0) instead of exact zero: the update of
    such an entry is `lr * 0 / (sqrt(v) + eps) = 0` either way, kept entries' updates are bit for bit
    those of a dense optimizer on the masked problem, and the step avoids the slow `sqrt`/division on
    large runs of exact zeros (Adam's step was ~1.6x slower with 90% zero moments). It is refreshed
    every `refresh_every` steps (it decays by `beta2` per step and must not reach denormals), and reset
    to 0 on detach; a swap that only prunes zeroes the newly pruned first moments alone (one pass)
    and leaves their second moments to the next refresh (an update of 0 / (sqrt(v) + eps) is 0
    anyway). Other optimizers, or `reapply="always"`, re-apply the mask after every step.
    Without a known optimizer in your own loop, call `reapply()` after each step if your optimizer is
    not in `SAFE_OPTIMIZERS`.

    `state_dict` holds the mask, so `Checkpoint` saves and resumes it.
    """

    order = -10

    def __init__(
        self,
        model: nn.Module | WeightMask | None = None,
        mask: WeightMask | None = None,
        optimizer: torch.optim.Optimizer | None = None,
        *,
        reapply: str = "auto",
        second_moment: float = 1.0,
        refresh_every: int = 1000,
    ) -> None:
        if isinstance(model, WeightMask) and mask is None:  # MaskedTraining(mask)
            model, mask = None, model
        if not isinstance(mask, WeightMask):
            raise TypeError(f"mask must be a WeightMask, got {type(mask).__name__}")
        if model is not None and not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(
                f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}"
            )
        if reapply not in ("auto", "always"):
            raise ValueError(f"reapply must be 'auto' or 'always', got {reapply!r}")
        if not (isinstance(second_moment, (int, float)) and math.isfinite(second_moment)):
            raise ValueError(f"second_moment must be a finite number > 0, got {second_moment!r}")
        if second_moment <= 0:
            raise ValueError(f"second_moment must be a finite number > 0, got {second_moment!r}")
        if (
            isinstance(refresh_every, bool)
            or not isinstance(refresh_every, int)
            or refresh_every < 1
        ):
            raise ValueError(f"refresh_every must be an int >= 1, got {refresh_every!r}")
        if model is not None:
            mask._resolve(model)  # fail early on names/shapes; the model is not touched
        self.model = model
        self.mask = mask
        self.optimizer = optimizer
        self.reapply_mode = reapply
        self.second_moment = float(second_moment)
        self.refresh_every = refresh_every
        self._params: dict[str, torch.Tensor] = {}
        self._plist: list[torch.Tensor] = []
        # the mask's own bool tensors (True = kept) on the parameters' devices, stored once; the hot
        # paths multiply by their zero-copy uint8 views (a vectorised multiply, ~8x faster on CPU
        # than `masked_fill_` with a bool mask); rare paths build `~keep` on the fly
        self._keep: list[torch.Tensor] = []
        self._handles: list[Any] = []
        self._optimizer_handle: Any = None
        self._hooked_optimizer: torch.optim.Optimizer | None = None
        self._fixed: set[int] = set()  # ids of params whose optimizer state was set up
        self._steps = 0
        self._attached_by_fit = False

    # ---------------------------------------------------------------- lifecycle
    @property
    def attached(self) -> bool:
        """Whether the hooks are in place."""
        return bool(self._handles)

    @property
    def holds_zeros(self) -> bool:
        """Whether the pruned weights stay exactly zero with no `reapply()` after optimizer steps:
        attached, with a hooked optimizer in `SAFE_OPTIMIZERS` and `reapply="auto"` (a pruned
        weight then has zero value, gradient and first moment, which such an optimizer never
        moves; see the class docstring). A caller that re-zeroes weights after each step (a
        pruner) may skip it then."""
        return self.attached and self._optimizer_handle is not None and self._safe()

    def attach(
        self, model: nn.Module | None = None, optimizer: torch.optim.Optimizer | None = None
    ) -> MaskedTraining:
        """Zero the pruned weights and hook gradients (and the optimizer's steps); returns self.

        Attaching an attached instance only adds an optimizer not hooked yet.
        """
        if model is not None:
            if self.model is not None and model is not self.model and self.attached:
                raise ValueError("already attached to another model; detach() first")
            self.model = model
        if optimizer is not None:
            self.optimizer = optimizer
        if self.model is None:
            raise ValueError("MaskedTraining needs a model: pass it here or to the constructor")
        if not self.attached:
            self._params = self.mask._resolve(self.model)
            self._plist = list(self._params.values())
            self._keep = [self.mask[n].to(p.device) for n, p in self._params.items()]
            self._hook_gradients()
            self._fixed.clear()
            self.reapply()
        if self.optimizer is not None and self._hooked_optimizer is not self.optimizer:
            if self._optimizer_handle is not None:
                self._optimizer_handle.remove()
            self._optimizer_handle = self.optimizer.register_step_post_hook(self._after_step)
            self._hooked_optimizer = self.optimizer
            self._fix_optimizer_state()
        return self

    def detach(self) -> None:
        """Remove every hook; the weights keep their values and the held second moments (pruned
        entries, and kept entries still at the floor) go back to 0 (the state of a dense optimizer on
        the masked problem)."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        if self._optimizer_handle is not None:
            self._optimizer_handle.remove()
            self._optimizer_handle = None
        opt, self._hooked_optimizer = self._hooked_optimizer, None
        if opt is not None:
            with torch.no_grad():
                for p, keep in zip(self._plist, self._keep):
                    pruned = ~keep
                    st = opt.state.get(p, {})
                    for key in _SECOND_MOMENTS:
                        if isinstance(st.get(key), torch.Tensor) and st[key].shape == p.shape:
                            st[key].masked_fill_(pruned, 0.0)
                            floor = _UNTOUCHED_FLOOR.get(st[key].dtype)
                            if floor is not None:
                                st[key].masked_fill_(st[key] <= floor, 0.0)
        self._fixed.clear()

    def remove(self) -> None:
        """Alias of `detach()`."""
        self.detach()

    def __enter__(self) -> MaskedTraining:
        return self.attach()

    def __exit__(self, *exc: object) -> None:
        self.detach()

    def set_mask(self, mask: WeightMask, *, prunes_only: bool = False) -> None:
        """Swap in `mask` (same names and shapes); when attached, re-apply it at once and reset the
        optimizer state of the entries it changes (newly pruned: moments zeroed, second moment held;
        revived: moments 0, as for a weight that never had a gradient).

        With a hooked optimizer, whether the swap revives entries is found per parameter in one
        read of both masks (`_revives`, 64 bits at a time: ~3-5 ms for MiniLM's 10.7M targets); a
        parameter whose swap only prunes (a gradual pruner's cut) gets the one-multiply fix of its
        first moments, one that revives the full fix.

        `prunes_only=True` is the caller's promise that the swap only prunes: every entry `mask`
        keeps is kept by the current mask (new <= old entrywise, as a gradual pruner's cut that
        never revives). The revive check is then skipped (it reads both masks; 5.2 ms median for
        MiniLM's 10.7M targets, seven-prune session 33) and every parameter takes the only-prunes
        branch; where the promise holds, weights, mask and optimizer state are bit for bit those
        of `prunes_only=False` (tested). It is not checked (the check is what it saves): a mask
        that revives entries under it leaves their optimizer moments as they were (a pruned
        entry's first moments 0, its second moments held at `second_moment`) instead of resetting
        them to 0, so revived weights then train with other Adam statistics than a fresh weight.
        """
        if not isinstance(mask, WeightMask):
            raise TypeError(f"mask must be a WeightMask, got {type(mask).__name__}")
        if not isinstance(prunes_only, bool):
            raise TypeError(
                f"prunes_only must be a bool (True: the caller promises the swap only prunes), "
                f"got {prunes_only!r}"
            )
        self.mask._check_compatible(mask, "swap")
        self.mask = WeightMask({n: mask[n].to(self.mask[n].device) for n in self.mask})
        if not self.attached:
            return
        # the revived entries, only where an optimizer's state is fixed from them (a read of
        # every mask otherwise wasted)
        hooked = self._hooked_optimizer is not None and self._safe()
        news = [self.mask[n].to(p.device) for n, p in self._params.items()]
        if hooked:
            if prunes_only:
                revived: list[torch.Tensor | None] = [None] * len(news)
            else:
                flags = _revives_all(list(zip(news, self._keep)))
                revived = [n & ~o if f else None for n, o, f in zip(news, self._keep, flags)]
        self._keep[:] = news  # the hooks read this list
        self.reapply()
        if hooked:
            self._fix_optimizer_state(revived=revived)

    # ---------------------------------------------------------------- hooks
    def _hook_gradients(self) -> None:
        """Zero pruned entries of each accumulated gradient in place (no extra allocation).

        A multiply by the kept mask's uint8 view: the result is exact (x * 1 = x, x * 0 = +-0) for
        finite gradients; a non-finite gradient stops `fit` before the step anyway.
        """
        keeps = self._keep

        def hook(param: torch.Tensor, i: int) -> None:
            if param.grad is not None:
                param.grad.mul_(keeps[i].view(torch.uint8))

        for i, p in enumerate(self._plist):
            self._handles.append(p.register_post_accumulate_grad_hook(lambda q, i=i: hook(q, i)))

    def _safe(self) -> bool:
        return self.reapply_mode == "auto" and type(self._hooked_optimizer) in SAFE_OPTIMIZERS

    def _after_step(self, *_: Any) -> None:
        self._steps += 1
        if not self._safe():
            self.reapply()
        if len(self._fixed) < len(self._plist) or self._steps % self.refresh_every == 0:
            self._fix_optimizer_state(refresh=self._steps % self.refresh_every == 0)

    @torch.no_grad()
    def _fix_optimizer_state(
        self,
        revived: list[torch.Tensor | None] | None = None,
        refresh: bool = False,
    ) -> None:
        """Hold pruned entries' second moments at a positive constant; on a mask change (`revived`
        given: per parameter its revived entries, or None where the swap only prunes) also zero
        the first moments of newly pruned entries and reset revived entries' moments to 0."""
        opt = self._hooked_optimizer
        if opt is None or not self._safe():
            return
        swap = revived is not None
        for i, p in enumerate(self._plist):
            st = opt.state.get(p)
            if not st:
                continue  # no state before the optimizer's first step
            rev = revived[i] if revived is not None else None
            if swap and not refresh and id(p) in self._fixed and rev is None:
                # A swap that only prunes (a gradual pruner's cut): what keeps the newly pruned
                # weights at zero is their first moments at 0 (one multiply by the mask). Their
                # second moments keep decaying until the next refresh (0 / (sqrt(v) + eps) = 0
                # for any v >= 0); kept entries were kept before, floors included. The full
                # fix below cost ~64 ms per swap on MiniLM's 10.7M targets, this one pass.
                keep_u8 = self._keep[i].view(torch.uint8)
                for key in _FIRST_MOMENTS:
                    t = st.get(key)
                    if isinstance(t, torch.Tensor) and t.shape == p.shape:
                        t.mul_(keep_u8)  # +-0 as a fill
                continue
            pruned = ~self._keep[i]
            if rev is not None:
                for key in (*_FIRST_MOMENTS, *_SECOND_MOMENTS):
                    t = st.get(key)
                    if isinstance(t, torch.Tensor) and t.shape == p.shape:
                        t.masked_fill_(rev, 0.0)
            if swap or refresh or id(p) not in self._fixed:
                for key in _FIRST_MOMENTS:
                    t = st.get(key)
                    if isinstance(t, torch.Tensor) and t.shape == p.shape:
                        t.masked_fill_(pruned, 0.0)
                for key in _SECOND_MOMENTS:
                    t = st.get(key)
                    if isinstance(t, torch.Tensor) and t.shape == p.shape:
                        t.masked_fill_(pruned, self.second_moment)
                        floor = _UNTOUCHED_FLOOR.get(t.dtype)
                        if floor is not None:
                            t.masked_fill_(t == 0, floor)
                self._fixed.add(id(p))

    @torch.no_grad()
    def reapply(self) -> None:
        """Zero the pruned weights again (after an optimizer step, or after editing weights)."""
        if not self._plist:
            if self.model is None:
                raise ValueError("MaskedTraining is not attached to a model")
            self.mask.apply_(self.model)
            return
        for p, keep in zip(self._plist, self._keep):
            p.mul_(keep.view(torch.uint8))  # a NaN weight stays NaN: fit then stops on the loss

    # ---------------------------------------------------------------- Callback interface
    def on_fit_start(self, state: LoopState) -> None:
        if self.model is not None and self.model is not state.model:
            raise ValueError("MaskedTraining was built for another model than the one fit trains")
        self._attached_by_fit = not self.attached
        self.attach(state.model, self.optimizer or state.optimizer)

    def on_step_end(self, state: LoopState) -> None:
        if self._optimizer_handle is None:
            self.reapply()

    def on_fit_end(self, state: LoopState) -> None:
        if self._attached_by_fit:
            self.detach()
            self._attached_by_fit = False

    def state_dict(self) -> dict[str, Any]:
        return {"mask": self.mask.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.set_mask(WeightMask(state["mask"]))
