"""The convolutional trunk as a row-local graph: layer geometry, heights and row intervals.

Every supported layer maps a band of output rows to a band of input rows (its receptive field in the
height direction). For output rows ``[a, b)`` of a layer with kernel ``k``, stride ``s``, dilation
``d`` and top padding ``p_t``, the padded-coordinate input rows are

    [a*s - p_t, (b-1)*s - p_t + d*(k-1) + 1)

which are then mapped to real rows of the unpadded input (clipped for zero padding, mirrored for
``reflect``, clamped for ``replicate``, wrapped for ``circular``). Chaining this map backwards from a
strip of output rows gives the rows every layer must compute for that strip (its halo).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

__all__ = ["Residual", "TrunkGraph", "find_trunk"]

#: Element-wise activations (row-local, any kernel-free function of one element).
ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardtanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Softplus,
    nn.PReLU,
)
#: Layers that start a classifier head: the trunk ends before the first of them.
HEAD_TYPES: tuple[type[nn.Module], ...] = (
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool2d,
    nn.Flatten,
    nn.Linear,
)
SUPPORTED = (
    "Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d, Dropout, Dropout2d, Identity, element-wise "
    "activations (ReLU, GELU, SiLU, ...), torchvision BasicBlock/Bottleneck, lrcnn.Residual, "
    "nn.Sequential of these"
)


class Residual(nn.Module):
    """A residual block ``post(main(x) + shortcut(x))`` that RowCentric can run row by row.

    Use it inside your own ``nn.Sequential`` to express skip connections (``shortcut=None`` is the
    identity; ``post`` is an optional element-wise activation applied after the sum).
    """

    def __init__(
        self, main: nn.Module, shortcut: nn.Module | None = None, post: nn.Module | None = None
    ) -> None:
        super().__init__()
        if not isinstance(main, nn.Module):
            raise TypeError(f"main must be an nn.Module, got {type(main).__name__}")
        self.main = main
        self.shortcut = shortcut
        self.post = post

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``post(main(x) + shortcut(x))``."""
        y = self.main(x) + (self.shortcut(x) if self.shortcut is not None else x)
        return self.post(y) if self.post is not None else y


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(v, int):
        return v, v
    return int(v[0]), int(v[1])


def pool_len(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    """PyTorch's pooling output length (``pooling_output_shape``), ceil_mode included."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


_WINDOWED: tuple[tuple[type[nn.Module], str], ...] = (
    (nn.Conv2d, "conv"),
    (nn.MaxPool2d, "maxpool"),
    (nn.AvgPool2d, "avgpool"),
)


def _window(m: nn.Module) -> dict[str, object]:
    """Vertical and horizontal window geometry of a convolution or pooling layer."""
    kh, kw = _pair(m.kernel_size)
    if isinstance(m, nn.Conv2d):
        sh, sw = _pair(m.stride)
        dh, dw = _pair(m.dilation)
        pl, pr, pt, pb = (int(v) for v in m._reversed_padding_repeated_twice)
        return dict(
            k=kh, s=sh, d=dh, pt=pt, pb=pb, kw=kw, sw=sw, dw=dw, pl=pl, pr=pr, mode=m.padding_mode
        )
    sh, sw = _pair(m.stride if m.stride is not None else m.kernel_size)
    ph, pw = _pair(m.padding)
    dh, dw = _pair(getattr(m, "dilation", 1))  # AvgPool2d has no dilation
    return dict(
        k=kh, s=sh, d=dh, pt=ph, pb=ph, kw=kw, sw=sw, dw=dw, pl=pw, pr=pw, ceil=bool(m.ceil_mode)
    )


@dataclass
class Node:
    """One row-local operation of the trunk graph (a tensor is identified with the node making it)."""

    id: int
    kind: str  # input, conv, maxpool, avgpool, act, bn, drop, drop2d, add
    inputs: tuple[int, ...]
    name: str = ""
    module: nn.Module | None = None
    fn: Callable[[torch.Tensor], torch.Tensor] | None = None
    # vertical geometry (rows); horizontal geometry (columns)
    k: int = 1
    s: int = 1
    d: int = 1
    pt: int = 0
    pb: int = 0
    kw: int = 1
    sw: int = 1
    dw: int = 1
    pl: int = 0
    pr: int = 0
    mode: str = "zeros"
    ceil: bool = False
    inplace: bool = False  # the original layer writes its output into its input (memory model)
    unit: int = 0  # index of the trunk unit this node belongs to
    consumers: list[int] = field(default_factory=list)


def map_row(r: int, h: int, mode: str) -> int:
    """Real input row read for padded-coordinate row ``r`` of an input of height ``h``."""
    if 0 <= r < h:
        return r
    if mode == "reflect":
        return -r if r < 0 else 2 * h - 2 - r
    if mode == "replicate":
        return 0 if r < 0 else h - 1
    if mode == "circular":
        return r % h
    raise AssertionError(mode)  # zero padding never maps


class TrunkGraph:
    """The trunk's layers as a topologically ordered DAG of row-local nodes.

    Built from a list of ``(name, module)`` units; raises ``TypeError`` naming the first layer that
    cannot run row by row.
    """

    def __init__(self, units: Sequence[tuple[str, nn.Module]]) -> None:
        self.nodes: list[Node] = [Node(0, "input", ())]
        self.unit_end: list[int] = []  # last node id of each unit
        cur = 0
        for ui, (name, m) in enumerate(units):
            cur = self._add(name, m, cur, ui)
            self.unit_end.append(cur)
        self.out = cur
        for n in self.nodes:
            for u in n.inputs:
                self.nodes[u].consumers.append(n.id)

    # -- construction -------------------------------------------------------------------------
    def _new(self, kind: str, inputs: tuple[int, ...], **kw: object) -> int:
        node = Node(len(self.nodes), kind, inputs, **kw)  # type: ignore[arg-type]
        self.nodes.append(node)
        return node.id

    def _add(self, name: str, m: nn.Module, cur: int, unit: int) -> int:
        if isinstance(m, nn.Sequential):
            for cn, c in m.named_children():
                cur = self._add(f"{name}.{cn}" if name else cn, c, cur, unit)
            return cur
        if isinstance(m, nn.Identity):
            return cur
        if isinstance(m, nn.MaxPool2d) and m.return_indices:
            raise TypeError(f"layer {name!r}: MaxPool2d(return_indices=True) is not supported")
        kind = next((k for t, k in _WINDOWED if isinstance(m, t)), None)
        if kind is not None:
            return self._new(kind, (cur,), name=name, module=m, unit=unit, **_window(m))
        if type(m) is nn.BatchNorm2d:
            return self._new("bn", (cur,), name=name, module=m, unit=unit)
        if type(m) is nn.Dropout:
            return self._new("drop", (cur,), name=name, module=m, unit=unit)
        if type(m) is nn.Dropout2d:
            return self._new("drop2d", (cur,), name=name, module=m, unit=unit)
        if isinstance(m, ACTIVATIONS):
            inplace = bool(getattr(m, "inplace", False))
            fn = m
            if inplace:  # run out of place: strips may be views of saved tensors
                fn = copy.copy(m)
                fn.inplace = False
            return self._new("act", (cur,), name=name, module=m, fn=fn, inplace=inplace, unit=unit)
        if isinstance(m, Residual):
            a = self._add(f"{name}.main", m.main, cur, unit)
            b = self._add(f"{name}.shortcut", m.shortcut, cur, unit) if m.shortcut else cur
            out = self._new("add", (a, b), name=f"{name}.add", unit=unit)
            return self._add(f"{name}.post", m.post, out, unit) if m.post is not None else out
        cls = type(m)
        if cls.__name__ in ("BasicBlock", "Bottleneck") and cls.__module__.startswith(
            "torchvision."
        ):
            parts = ["conv1", "bn1", "relu", "conv2", "bn2"]
            if cls.__name__ == "Bottleneck":
                parts += ["relu", "conv3", "bn3"]
            a = cur
            for p in parts:
                a = self._add(f"{name}.{p}", getattr(m, p), a, unit)
            b = self._add(f"{name}.downsample", m.downsample, cur, unit) if m.downsample else cur
            out = self._new("add", (a, b), name=f"{name}.add", inplace=True, unit=unit)
            return self._add(f"{name}.relu", m.relu, out, unit)
        raise TypeError(
            f"layer {name!r} of type {cls.__name__} cannot run row by row inside the trunk; "
            f"supported: {SUPPORTED}"
        )

    # -- geometry -------------------------------------------------------------------------------
    def shapes(self, chw: tuple[int, int, int]) -> list[tuple[int, int, int]]:
        """(C, H, W) of every node's output for an input of (C, H, W); ValueError if too small."""
        out: list[tuple[int, int, int]] = []
        for n in self.nodes:
            if n.kind == "input":
                out.append(tuple(chw))  # type: ignore[arg-type]
                continue
            c, h, w = out[n.inputs[0]]
            if n.kind == "conv":
                m = n.module
                if c != m.in_channels:  # type: ignore[union-attr]
                    raise ValueError(
                        f"layer {n.name!r} expects {m.in_channels} channels, gets {c}"  # type: ignore[union-attr]
                    )
                c = m.out_channels  # type: ignore[union-attr]
                h2 = (h + n.pt + n.pb - n.d * (n.k - 1) - 1) // n.s + 1
                w2 = (w + n.pl + n.pr - n.dw * (n.kw - 1) - 1) // n.sw + 1
            elif n.kind in ("maxpool", "avgpool"):
                h2 = pool_len(h, n.k, n.s, n.pt, n.d, n.ceil)
                w2 = pool_len(w, n.kw, n.sw, n.pl, n.dw, n.ceil)
            elif n.kind == "add":
                other = out[n.inputs[1]]
                if other != (c, h, w):
                    raise ValueError(
                        f"residual {n.name!r}: branch shapes differ, {(c, h, w)} vs {other}"
                    )
                h2, w2 = h, w
            else:
                h2, w2 = h, w
            if h2 < 1 or w2 < 1 or (n.mode == "reflect" and max(n.pt, n.pb) >= h):
                raise ValueError(
                    f"input too small for the network: layer {n.name!r} gets (C, H, W) = "
                    f"{(c if n.kind != 'conv' else n.module.in_channels, h, w)} and would "  # type: ignore[union-attr]
                    f"produce {h2}x{w2}; use a larger input or a shallower trunk"
                )
            out.append((c, h2, w2))
        return out

    def needed(self, n: Node, a: int, b: int, h_in: int) -> tuple[int, int]:
        """Real input rows ``[lo, hi)`` that output rows ``[a, b)`` of node ``n`` read."""
        if b <= a:
            return 0, 0
        if n.kind not in ("conv", "maxpool", "avgpool"):
            return a, b
        lo = a * n.s - n.pt
        hi = (b - 1) * n.s - n.pt + n.d * (n.k - 1) + 1
        if n.kind != "conv" or n.mode == "zeros":
            rlo, rhi = max(lo, 0), min(hi, h_in)
            if rhi <= rlo:  # all padding: keep one real row so the strip has a shape
                rlo = min(max(lo, 0), h_in - 1)
                rhi = rlo + 1
            return rlo, rhi
        rows = [map_row(r, h_in, n.mode) for r in range(lo, hi)]
        return min(rows), max(rows) + 1


def find_trunk(
    model: nn.Module,
) -> tuple[list[tuple[str, nn.Module]], Callable[[torch.Tensor], torch.Tensor] | None]:
    """Split ``model`` into its convolutional trunk (named units) and the head applied after it.

    Recognises torchvision VGG (``features`` + ``avgpool`` + ``classifier``) and ResNet (``conv1``
    ... ``layer4`` + ``avgpool`` + ``fc``) unmodified, an ``nn.Sequential`` (the trunk ends before the
    first adaptive pool, Flatten or Linear) and a single supported layer or block.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if all(hasattr(model, a) for a in ("features", "avgpool", "classifier")) and isinstance(
        model.features, nn.Sequential
    ):
        units = [(f"features.{n}", m) for n, m in model.features.named_children()]

        def vgg_head(y: torch.Tensor) -> torch.Tensor:
            return model.classifier(torch.flatten(model.avgpool(y), 1))

        return units, vgg_head
    resnet = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4", "fc")
    if all(hasattr(model, a) for a in resnet):
        units = [(a, getattr(model, a)) for a in ("conv1", "bn1", "relu", "maxpool")]
        for layer in ("layer1", "layer2", "layer3", "layer4"):
            units += [(f"{layer}.{n}", m) for n, m in getattr(model, layer).named_children()]

        def resnet_head(y: torch.Tensor) -> torch.Tensor:
            return model.fc(torch.flatten(model.avgpool(y), 1))

        return units, resnet_head
    if isinstance(model, nn.Sequential):
        children = list(model.named_children())
        cut = next(
            (i for i, (_, m) in enumerate(children) if isinstance(m, HEAD_TYPES)), len(children)
        )
        if cut == 0:
            raise TypeError(
                f"model {type(model).__name__} has no convolutional trunk: its first layer is "
                f"{type(children[0][1]).__name__ if children else 'missing'}"
            )
        head_mods = [m for _, m in children[cut:]]
        if not head_mods:
            return children, None

        def seq_head(y: torch.Tensor) -> torch.Tensor:
            for m in head_mods:
                y = m(y)
            return y

        return children[:cut], seq_head
    return [("", model)], None
