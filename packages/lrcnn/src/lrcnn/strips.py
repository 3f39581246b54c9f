"""Strip layouts and the strip-by-strip executor (forward sweeps, backward sweeps, both policies).

A *layout* fixes, for an input shape and a strip count, which rows of every tensor each strip owns
(a partition of every tensor's rows, derived backwards from an even split of the output rows) and,
for the overlap policy, which rows each strip computes (owned rows plus the halo its consumers need).

Policies (LR-CNN's OverL and 2PS):

* ``overlap``: strips are independent; every strip recomputes its halo rows at every layer.
* ``two_phase``: strips compute only the rows they own, in order; the last rows of each layer's input
  that the next strip also reads are carried over (phase 1, forward). Those boundary rows are saved;
  backward runs the strips in reverse and hands the gradient of the carried rows back to the strip
  that produced them (phase 2).

BatchNorm in training mode is exact (full-batch statistics): the forward runs one statistics sweep
per BatchNorm (sums over owned rows, combined in float64), and the backward one sweep per BatchNorm
(in reverse order) to collect the two global reductions of its backward,

    dx = gamma * invstd * (dy - mean(dy) - xhat * mean(dy * xhat)),

after which every BatchNorm is row-local and the final sweep is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from lrcnn.graph import Node, TrunkGraph, map_row

__all__ = ["Layout", "StripRunner"]

Interval = tuple[int, int]


def _hull(a: Interval | None, b: Interval) -> Interval:
    if a is None or a[1] <= a[0]:
        return b
    if b[1] <= b[0]:
        return a
    return min(a[0], b[0]), max(a[1], b[1])


def even_bounds(h: int, n: int) -> list[int]:
    """Split ``h`` rows into ``n`` contiguous non-empty strips as evenly as possible."""
    return [(i * h) // n for i in range(n + 1)]


class Layout:
    """Which rows of every tensor each strip owns and computes, for one input shape."""

    def __init__(
        self, graph: TrunkGraph, chw: tuple[int, int, int], rows: int, policy: str
    ) -> None:
        self.graph = graph
        self.policy = policy
        self.shapes = graph.shapes(chw)
        h_out = self.shapes[graph.out][1]
        if isinstance(rows, bool) or not isinstance(rows, int):
            raise TypeError(f"rows must be an int, got {rows!r}")
        if not 1 <= rows <= h_out:
            raise ValueError(
                f"rows must be between 1 and the trunk segment's {h_out} output rows, got {rows}"
            )
        if policy == "two_phase":
            bad = [n.name for n in graph.nodes if n.kind == "conv" and n.mode == "circular"]
            if bad:
                raise ValueError(
                    f"policy='two_phase' cannot run circular padding (layer {bad[0]!r} reads rows "
                    "of the last strip from the first); use policy='overlap'"
                )
        self.n = rows
        nodes = graph.nodes
        hs = [s[1] for s in self.shapes]
        # ownership: partition of every tensor's rows, propagated backwards from the output split
        part: dict[int, list[int]] = {graph.out: even_bounds(h_out, rows)}
        for node in reversed(nodes):
            if node.kind == "input":
                continue
            mine = part[node.id]
            for u in node.inputs:
                ends = (
                    [0]
                    + [
                        graph.needed(node, 0, mine[i], hs[u])[1] if mine[i] > 0 else 0
                        for i in range(1, rows)
                    ]
                    + [hs[u]]
                )
                old = part.get(u)
                new = ends if old is None else [max(x, y) for x, y in zip(old, ends)]
                for i in range(1, rows + 1):  # monotone, clipped
                    new[i] = min(max(new[i], new[i - 1]), hs[u])
                part[u] = new
        self.part = part
        self.owned = [{t: (p[i], p[i + 1]) for t, p in part.items()} for i in range(rows)]
        # rows computed per strip: owned (overlap adds the halo its consumers need)
        if policy == "overlap":
            self.comp: list[dict[int, Interval]] = []
            for i in range(rows):
                comp: dict[int, Interval] = {}
                for node in reversed(nodes):
                    iv = _hull(comp.get(node.id), self.owned[i][node.id])
                    comp[node.id] = iv
                    for u in node.inputs:
                        req = graph.needed(node, iv[0], iv[1], hs[u])
                        comp[u] = _hull(comp.get(u), req)
                self.comp.append(comp)
        else:
            self.comp = self.owned
            # carried rows per edge (consumer t, input u) after strip i: [cache_lo, part[u][i+1])
            self.cache_lo: dict[tuple[int, int], list[int]] = {}
            for node in nodes:
                for u in node.inputs:
                    los = []
                    for i in range(rows):
                        nxt = [
                            graph.needed(node, *self.owned[j][node.id], hs[u])[0]
                            for j in range(i + 1, rows)
                            if self.owned[j][node.id][1] > self.owned[j][node.id][0]
                        ]
                        los.append(min(nxt[0], part[u][i + 1]) if nxt else part[u][i + 1])
                    self.cache_lo[(node.id, u)] = los
        self.last_use = {n.id: max(n.consumers) if n.consumers else len(nodes) for n in nodes}

    def strip_rows(self, i: int, node: int) -> Interval:
        """Rows of tensor ``node`` that strip ``i`` computes."""
        return self.comp[i][node]


class _Stop(Exception):
    """Ends a statistics sweep once the BatchNorm it is after has seen its rows."""


@dataclass
class _State:
    """What one forward call fixed: BatchNorm statistics, dropout seeds, saved boundary rows."""

    batch_bn: list[int]
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    sums: dict[int, list[torch.Tensor]] = field(default_factory=dict)
    corr: dict[int, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    seeds: dict[int, int] = field(default_factory=dict)
    drop_on: dict[int, bool] = field(default_factory=dict)
    count: dict[int, int] = field(default_factory=dict)
    own_iv: tuple[int, int] = (0, 0)  # rows the current strip owns at the current node


class _BNApply(torch.autograd.Function):
    """Batch norm with given statistics; backward adds the global-statistics term on owned rows.

    ``y = w * (x - mean) * invstd + b``; the row-local part of the backward is ``w*invstd*dy``;
    with ``corr = (mean(dy), mean(dy*xhat))`` (full-tensor means, known after a sweep) the owned rows
    get ``- w*invstd*(mean(dy) + xhat*mean(dy*xhat))``, so summing over strips gives the exact
    BatchNorm gradient.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, mean, invstd, corr, own):  # type: ignore[override]
        shape = (1, -1, 1, 1)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        y = xhat
        if weight is not None:
            y = y * weight.view(shape) + bias.view(shape)
        ctx.save_for_backward(x, weight, mean, invstd)
        ctx.corr = corr
        ctx.own = own
        return y

    @staticmethod
    def backward(ctx, dy):  # type: ignore[override]
        x, weight, mean, invstd = ctx.saved_tensors
        shape = (1, -1, 1, 1)
        xhat = (x - mean.view(shape)) * invstd.view(shape)
        scale = invstd if weight is None else weight * invstd
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = dy * scale.view(shape)
            if ctx.corr is not None:
                lo, hi = ctx.own
                if hi > lo:
                    g1, g2 = ctx.corr
                    sub = (g1.view(shape) + xhat[:, :, lo:hi] * g2.view(shape)) * scale.view(shape)
                    gx[:, :, lo:hi] -= sub
        if weight is not None and ctx.needs_input_grad[1]:
            gw = (dy * xhat).sum((0, 2, 3))
        if weight is not None and ctx.needs_input_grad[2]:
            gb = dy.sum((0, 2, 3))
        return gx, gw, gb, None, None, None, None


def _rows(t: torch.Tensor, offset: int, n: int) -> torch.Tensor:
    """Rows ``[offset, offset + n)`` of ``t``; ``t`` itself when that is all of it (a narrow in
    the recompute graph would cost a full-size zero-filled gradient in backward)."""
    if offset == 0 and n == t.shape[2]:
        return t
    return t.narrow(2, offset, n)


def _vslice(
    t: torch.Tensor, start: int, lo: int, hi: int, h: int, mode: str, fill: float
) -> torch.Tensor:
    """Contiguous padded-coordinate rows (see ``_vrows``): contiguous so convolution and pooling
    take their fast kernels."""
    return _vrows(t, start, lo, hi, h, mode, fill).contiguous()


def _vrows(
    t: torch.Tensor, start: int, lo: int, hi: int, h: int, mode: str, fill: float
) -> torch.Tensor:
    """Padded-coordinate rows ``[lo, hi)`` of a tensor of height ``h``, from ``t`` holding real
    rows ``[start, start + t.shape[2])``."""
    if mode == "zeros":
        rlo, rhi = max(lo, 0), min(hi, h)
        if rhi <= rlo:
            return t.new_full((t.shape[0], t.shape[1], hi - lo, t.shape[3]), fill)
        part = _rows(t, rlo - start, rhi - rlo)
        top, bottom = rlo - lo, hi - rhi
        if top or bottom:
            part = F.pad(part, (0, 0, top, bottom), value=fill)
        return part
    idx = [map_row(r, h, mode) - start for r in range(lo, hi)]
    if idx == list(range(idx[0], idx[0] + len(idx))):
        return _rows(t, idx[0], len(idx))
    return t.index_select(2, torch.tensor(idx, device=t.device))


def _adder(offset: int, g_rows: torch.Tensor):  # type: ignore[no-untyped-def]
    """Tensor hook adding ``g_rows`` to rows ``[offset, offset + len)`` of a gradient."""

    def hook(g: torch.Tensor) -> torch.Tensor:
        g = g.clone()
        g.narrow(2, offset, g_rows.shape[2]).add_(g_rows)
        return g

    return hook


def _own_rows(g: torch.Tensor) -> torch.Tensor:
    """``g`` in a buffer of its own size. The gradient of carried rows comes out of autograd as
    a narrow view (``cat``'s backward) of the gradient of the whole concatenated strip input;
    handed to the next strip as it is, it would keep that strip-sized buffer alive through the
    next strip's recompute and backward (ResNet-50 to layer2, 6 strips: ~38 MiB of such buffers
    between strips). A copy of the rows alone frees it; the values are the same."""
    if g.untyped_storage().nbytes() > g.numel() * g.element_size():
        return g.clone(memory_format=torch.contiguous_format)
    return g


def _avg_counts(
    n_out: int, a: int, b: int, k: int, s: int, p: int, n: int, incl: bool
) -> list[int]:
    out = []
    for i in range(a, b):
        start = i * s - p
        end = min(start + k, n + p)
        size = end - start
        if not incl:
            size = min(end, n) - max(start, 0)
        out.append(size)
    return out


class StripRunner:
    """Runs a trunk segment strip by strip for one layout; used by the autograd function."""

    def __init__(self, graph: TrunkGraph, layout: Layout) -> None:
        self.graph = graph
        self.layout = layout
        self.params = [
            p for n in graph.nodes if n.module is not None for p in n.module.parameters()
        ]
        # deduplicate shared parameters while keeping order
        seen: set[int] = set()
        self.params = [p for p in self.params if not (id(p) in seen or seen.add(id(p)))]
        nodes = graph.nodes
        desc: dict[int, set[int]] = {}
        for node in reversed(nodes):
            s: set[int] = set()
            for c in node.consumers:
                s |= desc[c] | {c}
            desc[node.id] = s
        self.desc = desc
        # in-place activations (as in the original layer) where the input is a fresh strip tensor
        # nobody else reads: never a view of the saved segment input or of carried rows
        fresh = ("conv", "bn", "add", "maxpool", "avgpool")
        self.inplace_ok = {
            n.id
            for n in nodes
            if n.kind == "act"
            and n.inplace
            and nodes[n.inputs[0]].kind in fresh
            and nodes[n.inputs[0]].consumers == [n.id]
        }

    # -- one operation on one strip ------------------------------------------------------------
    def _apply(
        self,
        node: Node,
        ins: list[tuple[torch.Tensor, int]],
        out: Interval,
        st: _State,
        inplace: bool = False,
    ) -> torch.Tensor:
        a, b = out
        shapes = self.layout.shapes
        if node.kind == "add":
            (x, xs), (y, ys) = ins
            return _rows(x, a - xs, b - a) + _rows(y, a - ys, b - a)
        t, start = ins[0]
        c_in, h_in, w_in = shapes[node.inputs[0]]
        if node.kind in ("act", "bn", "drop", "drop2d"):
            x = _rows(t, a - start, b - a)
            if node.kind == "act":
                if inplace and x is t:
                    return node.module(x)  # the layer's own in-place form
                return node.fn(x)  # type: ignore[misc]
            if node.kind == "bn":
                return self._bn(node, x, a, b, st)
            return self._drop(node, x, a, b, st)
        if b <= a:
            c, _, w = shapes[node.id]
            return t.new_zeros((t.shape[0], c, 0, w))
        lo = a * node.s - node.pt
        hi = (b - 1) * node.s - node.pt + node.d * (node.k - 1) + 1
        m = node.module
        if node.kind == "conv":
            x = _vslice(t, start, lo, hi, h_in, node.mode, 0.0)
            if node.mode == "zeros" and node.pl == node.pr:
                padw = node.pl
            else:
                x = F.pad(
                    x,
                    (node.pl, node.pr, 0, 0),
                    mode="constant" if node.mode == "zeros" else node.mode,
                )
                padw = 0
            return F.conv2d(
                x, m.weight, m.bias, (node.s, node.sw), (0, padw), (node.d, node.dw), m.groups
            )
        if node.kind == "maxpool":
            x = _vslice(t, start, lo, hi, h_in, "zeros", -math.inf)
            return F.max_pool2d(
                x,
                (node.k, node.kw),
                (node.s, node.sw),
                (0, node.pl),
                (node.d, node.dw),
                ceil_mode=node.ceil,
            )
        # avgpool: window sums, divided by PyTorch's divisor (separable in rows and columns)
        x = _vslice(t, start, lo, hi, h_in, "zeros", 0.0)
        sums = F.avg_pool2d(
            x,
            (node.k, node.kw),
            (node.s, node.sw),
            (0, node.pl),
            ceil_mode=node.ceil,
            count_include_pad=True,
            divisor_override=1,
        )
        if m.divisor_override:
            return sums / m.divisor_override
        w_out = shapes[node.id][2]
        incl = bool(m.count_include_pad)
        rc = _avg_counts(w_out, a, b, node.k, node.s, node.pt, h_in, incl)
        cc = _avg_counts(w_out, 0, w_out, node.kw, node.sw, node.pl, w_in, incl)
        div = torch.tensor(rc, dtype=x.dtype, device=x.device)[:, None] * torch.tensor(
            cc, dtype=x.dtype, device=x.device
        )
        return sums / div

    def _bn(self, node: Node, x: torch.Tensor, a: int, b: int, st: _State) -> torch.Tensor:
        m = node.module
        if node.id not in st.batch_bn:
            return F.batch_norm(
                x, m.running_mean, m.running_var, m.weight, m.bias, False, 0.0, m.eps
            )
        if node.id not in st.stats:  # statistics sweep: sum the owned rows, stop the strip
            oa, ob = st.own_iv
            own = x.narrow(2, oa - a, ob - oa).to(torch.float64)
            s = st.sums.setdefault(node.id, [0.0, 0.0])  # type: ignore[list-item]
            s[0] = s[0] + own.sum((0, 2, 3))
            s[1] = s[1] + (own * own).sum((0, 2, 3))
            raise _Stop
        mean, invstd = st.stats[node.id]
        oa, ob = st.own_iv
        return _BNApply.apply(
            x, m.weight, m.bias, mean, invstd, st.corr.get(node.id), (oa - a, ob - a)
        )

    def _drop(self, node: Node, x: torch.Tensor, a: int, b: int, st: _State) -> torch.Tensor:
        if not st.drop_on.get(node.id, False):
            return x
        p = float(node.module.p)
        if p >= 1.0:
            return x * 0.0
        n, c, _, w = x.shape
        seed = st.seeds[node.id]
        if node.kind == "drop2d":
            g = torch.Generator(device=x.device)
            g.manual_seed(seed)
            keep = torch.rand((n, c, 1, 1), generator=g, device=x.device) >= p
        else:  # one generator per absolute row: masks do not depend on the strip layout
            rows = []
            for r in range(a, b):
                g = torch.Generator(device=x.device)
                g.manual_seed((seed * 1_000_003 + r) % (2**63 - 1))
                rows.append(torch.rand((n, c, w), generator=g, device=x.device) >= p)
            keep = torch.stack(rows, 2) if rows else x.new_zeros(x.shape, dtype=torch.bool)
        return x * keep.to(x.dtype) / (1.0 - p)

    # -- one strip through the whole segment ---------------------------------------------------
    def run_strip(
        self,
        i: int,
        x: torch.Tensor,
        st: _State,
        *,
        grad: bool,
        need_x: bool = False,
        tails_in: dict[tuple[int, int], tuple[torch.Tensor, int]] | None = None,
        capture: int | None = None,
        carry_out: dict[tuple[int, int], tuple[torch.Tensor, int]] | None = None,
        inject: dict[tuple[int, int], torch.Tensor] | None = None,
    ) -> dict[str, object]:
        """Compute strip ``i``; returns its output, leaves, carried rows and captured tensors."""
        lay = self.layout
        graph = self.graph
        two = lay.policy == "two_phase"
        vals: dict[int, tuple[torch.Tensor, int]] = {}
        leaves: dict[object, torch.Tensor] = {}
        carry = carry_out if carry_out is not None else {}
        captured: dict[str, torch.Tensor] = {}
        for node in graph.nodes:
            iv = lay.comp[i][node.id]
            if node.kind == "input":
                t = x.narrow(2, iv[0], iv[1] - iv[0])
                if grad and need_x:
                    t = t.detach().requires_grad_()
                    leaves["x"] = t
                vals[0] = (t, iv[0])
                continue
            ins = []
            for u in node.inputs:
                t, lo = vals[u]
                if two:
                    e = (node.id, u)
                    tail = tails_in.get(e) if tails_in else None
                    if tail is not None:
                        tt, tlo = tail
                        if grad:
                            tt = tt.detach().requires_grad_()
                            leaves[e] = tt
                        t, lo = torch.cat([tt, t], 2), tlo
                    clo = lay.cache_lo[e][i]
                    end = lay.part[u][i + 1]
                    if end > clo:
                        sl = t.narrow(2, clo - lo, end - clo)
                        if carry_out is not None:  # only the forward sweep hands rows on
                            carry[e] = (sl if grad else sl.clone(), clo)
                        if inject and e in inject and t.requires_grad:
                            # the next strip's gradient for these carried rows joins this
                            # strip's gradient of t when autograd reaches t (a hook, not an
                            # extra output: that would hold a full-size zero-padded gradient)
                            t.register_hook(_adder(clo - lo, inject[e]))
                ins.append((t, lo))
            st.own_iv = lay.owned[i][node.id]
            if capture == node.id:
                captured["bn_in"] = ins[0][0].narrow(2, iv[0] - ins[0][1], iv[1] - iv[0])
            y = self._apply(
                node, ins, iv, st, inplace=node.id in self.inplace_ok and capture != node.inputs[0]
            )
            if capture == node.id:
                captured["bn_out"] = y
            vals[node.id] = (y, iv[0])
            # free strip tensors after their last consumer, also when recording the graph:
            # autograd keeps what backward needs; the rest (e.g. the BatchNorm outputs a
            # residual sum reads) would otherwise live until the strip's forward ends
            for u in node.inputs:
                if lay.last_use[u] == node.id:
                    vals.pop(u, None)
        return {"out": vals[graph.out][0], "leaves": leaves, "carry": carry, "cap": captured}

    # -- forward -------------------------------------------------------------------------------
    def new_state(self, training_flags: dict[int, bool]) -> _State:
        """Per-call state: which BatchNorms use batch statistics, dropout seeds."""
        batch_bn = []
        st = _State(batch_bn=batch_bn)
        for n in self.graph.nodes:
            if n.kind == "bn" and (training_flags[n.id] or n.module.running_mean is None):
                batch_bn.append(n.id)
            if n.kind in ("drop", "drop2d"):
                st.drop_on[n.id] = training_flags[n.id] and n.module.p > 0
                if st.drop_on[n.id]:
                    st.seeds[n.id] = int(torch.randint(0, 2**62, (1,)).item())
        return st

    def _sweep(
        self, x: torch.Tensor, st: _State, keep_out: bool
    ) -> tuple[torch.Tensor | None, list]:
        lay = self.layout
        c, h, w = lay.shapes[self.graph.out]
        out = x.new_empty((x.shape[0], c, h, w)) if keep_out else None
        tails: list[dict[tuple[int, int], tuple[torch.Tensor, int]]] = []
        carried: dict[tuple[int, int], tuple[torch.Tensor, int]] = {}
        for i in range(lay.n):
            tails.append(carried)
            made: dict[tuple[int, int], tuple[torch.Tensor, int]] = {}
            res = None  # free the previous strip before computing this one
            try:
                res = self.run_strip(i, x, st, grad=False, tails_in=carried, carry_out=made)
            except _Stop:
                res = None
            carried = made
            if res is not None and out is not None:
                a, b = lay.owned[i][self.graph.out]
                out[:, :, a:b] = res["out"]
        return out, tails

    def forward(self, x: torch.Tensor, st: _State) -> tuple[torch.Tensor, list]:
        """Statistics sweeps (one per batch-statistics BatchNorm), then the output sweep."""
        n_total = x.shape[0]
        for bn in st.batch_bn:
            self._sweep(x, st, keep_out=False)
            s1, s2 = st.sums.pop(bn)
            _, h, w = self.layout.shapes[bn]
            cnt = n_total * h * w
            mean = s1 / cnt
            var = (s2 / cnt - mean * mean).clamp_min(0.0)
            m = self.graph.nodes[bn].module
            invstd = 1.0 / torch.sqrt(var + m.eps)
            st.stats[bn] = (mean.to(x.dtype), invstd.to(x.dtype))
            st.count[bn] = cnt
            if m.training and m.track_running_stats and m.running_mean is not None:
                factor = 0.0 if m.momentum is None else m.momentum
                if m.num_batches_tracked is not None:
                    m.num_batches_tracked.add_(1)
                    if m.momentum is None:
                        factor = 1.0 / float(m.num_batches_tracked)
                unbiased = var * cnt / max(cnt - 1, 1)
                m.running_mean.mul_(1 - factor).add_(mean.to(m.running_mean.dtype) * factor)
                m.running_var.mul_(1 - factor).add_(unbiased.to(m.running_var.dtype) * factor)
        out, tails = self._sweep(x, st, keep_out=True)
        return out, tails  # type: ignore[return-value]

    # -- backward ------------------------------------------------------------------------------
    def backward(
        self, x: torch.Tensor, gout: torch.Tensor, st: _State, tails: list, need_x: bool
    ) -> tuple[torch.Tensor | None, list[torch.Tensor | None]]:
        """Backward sweeps: one per batch-statistics BatchNorm (last first), then the final one."""
        lay = self.layout
        out_id = self.graph.out
        order = range(lay.n - 1, -1, -1) if lay.policy == "two_phase" else range(lay.n)
        for bn in reversed(st.batch_bn):
            down = self.desc[bn] | {bn}
            g1 = g2 = None
            gcarry: dict[tuple[int, int], torch.Tensor] = {}
            for i in order:
                res = outs = inputs = grads = dy = xhat = None  # free the previous strip
                with torch.enable_grad():
                    res = self.run_strip(
                        i,
                        x,
                        st,
                        grad=True,
                        tails_in=tails[i] if tails else None,
                        capture=bn,
                        inject=gcarry,
                    )
                a, b = lay.owned[i][out_id]
                outs = [res["out"]]
                gouts = [gout[:, :, a:b]]
                tail_keys = [e for e in res["leaves"] if isinstance(e, tuple) and e[1] in down]
                inputs = [res["cap"]["bn_out"]] + [res["leaves"][e] for e in tail_keys]
                grads = torch.autograd.grad(outs, inputs, gouts, allow_unused=True)
                dy = grads[0]
                gcarry = {e: _own_rows(g) for e, g in zip(tail_keys, grads[1:]) if g is not None}
                if dy is None:
                    continue
                mean, invstd = st.stats[bn]
                xhat = (res["cap"]["bn_in"].detach() - mean.view(1, -1, 1, 1)) * invstd.view(
                    1, -1, 1, 1
                )
                d64 = dy.to(torch.float64)
                s1 = d64.sum((0, 2, 3))
                s2 = (d64 * xhat.to(torch.float64)).sum((0, 2, 3))
                g1 = s1 if g1 is None else g1 + s1
                g2 = s2 if g2 is None else g2 + s2
            cnt = st.count[bn]
            if g1 is None:
                g1 = g2 = torch.zeros_like(st.stats[bn][0], dtype=torch.float64)
            st.corr[bn] = ((g1 / cnt).to(x.dtype), (g2 / cnt).to(x.dtype))
        params = self.params
        gparams: list[torch.Tensor | None] = [None] * len(params)
        gx = torch.zeros_like(x) if need_x else None
        gcarry = {}
        for i in order:
            res = outs = inputs = grads = live = gw = rest = None  # free the previous strip
            with torch.enable_grad():
                res = self.run_strip(
                    i,
                    x,
                    st,
                    grad=True,
                    need_x=need_x,
                    tails_in=tails[i] if tails else None,
                    inject=gcarry,
                )
            a, b = lay.owned[i][out_id]
            outs = [res["out"]]
            gouts = [gout[:, :, a:b]]
            keys = [k for k in res["leaves"] if k != "x"]
            want = [p for p in params if p.requires_grad]
            inputs = list(want) + [res["leaves"][k] for k in keys]
            if need_x:
                inputs.append(res["leaves"]["x"])
            live = [(o, g) for o, g in zip(outs, gouts) if o.requires_grad]
            if not live or not inputs:
                continue
            grads = torch.autograd.grad(
                [o for o, _ in live], inputs, [g for _, g in live], allow_unused=True
            )
            gw = iter(grads[: len(want)])
            for j, p in enumerate(params):
                if not p.requires_grad:
                    continue
                g = next(gw)
                if g is not None:
                    # in place: strips' parameter gradients are fresh tensors autograd made
                    gparams[j] = g if gparams[j] is None else gparams[j].add_(g)
            rest = grads[len(want) :]
            gcarry = {k: _own_rows(g) for k, g in zip(keys, rest[: len(keys)]) if g is not None}
            if need_x:
                gxi = rest[len(keys)]
                if gxi is not None:
                    lo, hi = lay.comp[i][0]
                    gx[:, :, lo:hi] += gxi  # type: ignore[index]
        return gx, gparams
