"""``plan``: strip layouts and predicted peak activation memory, from shapes alone.

The memory model counts the tensors autograd saves for backward (by storage, so an in-place ReLU
and the convolution reading its output share one buffer), plus the transient gradient maps of the
layer being back-propagated:

* plain training: peak over layers of (saved tensors alive) + (gradient of the layer's output and
  input);
* ``checkpoint_sequential`` with ``k`` segments: the segment inputs it keeps, plus one segment's
  plain peak while it is recomputed; the best ``k`` is reported;
* row-centric: the segment keeps its input (and, for ``two_phase``, the carried boundary rows); its
  backward holds the gradient of the segment output, one strip's recompute graph (plain peak on the
  strip's rows, halo included), and the segment's parameter gradients twice (the running sums
  and the strip's own); for ``two_phase`` also the gradient of the rows the strip carried to the
  next one, which that strip's backward handed back (``carried_bytes``: the size of those rows,
  as the runner copies it out of the next strip's input gradient); the layers after the segment
  are modelled as plain (or checkpointed).

Weights, their gradients and optimizer state are not activations and are left out of the
*trunk* prediction. The *whole-step* prediction (``Plan.step_bytes``) adds what a training step
holds above weights and optimizer state: every parameter gradient alive at each point of the
backward (all of them accumulate without a fused step; with ``lrcnn.StepInBackward`` only the
one being applied, e.g. VGG-16's 392 MiB first classifier weight gradient during the head's
backward; with ``chunk_mib``, one row chunk of a chunked ``nn.Linear``'s weight gradient), and the
tensors saved at the end of the forward while the head back-propagates. All
predictions are multiplied by ``OVERHEAD`` (allocator and kernel workspace, calibrated on CPU). The relative
step time is estimated from convolution FLOPs (backward = 2x forward), including the recomputed
halos and the extra sweeps exact BatchNorm needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from lrcnn.graph import TrunkGraph, find_trunk
from lrcnn.stepping import linear_chunks
from lrcnn.strips import Layout

__all__ = ["BATCH_NORM_MODES", "POLICIES", "Plan", "Strip", "parse_budget", "plan"]

#: Strip partitioning policies: LR-CNN's OverL (``overlap``) and 2PS (``two_phase``).
POLICIES = ("overlap", "two_phase")
#: How BatchNorm runs inside the row-centric segment (see ``RowCentric``).
BATCH_NORM_MODES = ("exact", "frozen")

_SAVE_OUTPUT = (nn.ReLU, nn.Sigmoid, nn.Tanh)
MAX_ROWS = 64
#: Allocator and kernel-workspace overhead on top of the modelled tensors, calibrated against
#: peak RSS of plain training of VGG-16 and ResNet-50 (``lrcnn bench --quick``, CPU, oneDNN).
OVERHEAD = 1.1


@dataclass(frozen=True)
class Strip:
    """One strip: output rows of the segment and the segment-input rows it reads (with halo)."""

    index: int
    out_rows: tuple[int, int]
    in_rows: tuple[int, int]
    halo: tuple[int, int]


@dataclass
class Plan:
    """A strip layout plus predicted peak activation bytes (see the module docstring)."""

    input_shape: tuple[int, int, int, int]
    policy: str
    depth: int
    rows: int
    units: list[str]
    strips: list[Strip]
    plain_bytes: int
    checkpoint_bytes: int
    checkpoint_segments: int
    policy_bytes: dict[str, int]
    time_ratio: dict[str, float]
    checkpoint_time_ratio: float
    floor_bytes: int
    memory_budget: int | None = None
    notes: list[str] = field(default_factory=list)
    #: predicted whole-step peak above weights + optimizer state, keyed by (method, fused):
    #: method "plain", "checkpoint" or a policy; fused = optimizer step inside backward
    step_bytes: dict[tuple[str, bool], int] = field(default_factory=dict)

    @property
    def predicted_bytes(self) -> int:
        """Predicted peak activation bytes of the chosen policy."""
        return self.policy_bytes[self.policy]

    def covers_output_once(self) -> bool:
        """True when the strips' output rows tile the segment output exactly once."""
        rows = [r for s in self.strips for r in range(*s.out_rows)]
        return rows == list(range(self.strips[-1].out_rows[1])) if self.strips else False

    def summary(self) -> str:
        """A short human-readable table of the predictions."""
        mib = 2**20
        lines = [
            f"input {self.input_shape}, row-centric units {self.units[0]}..{self.units[-1]} "
            f"(depth {self.depth}), {self.rows} strips, policy {self.policy}",
            f"  plain training          {self.plain_bytes / mib:9.1f} MiB",
            f"  checkpoint ({self.checkpoint_segments:2d} segs)    "
            f"{self.checkpoint_bytes / mib:9.1f} MiB  ~{self.checkpoint_time_ratio:.2f}x time",
        ]
        for pol, b in self.policy_bytes.items():
            lines.append(
                f"  row-centric {pol:<11} {b / mib:9.1f} MiB  ~{self.time_ratio[pol]:.2f}x time"
            )
        lines.append(f"  floor (best rows)       {self.floor_bytes / mib:9.1f} MiB")
        return "\n".join(lines)


def parse_budget(budget: int | float | str) -> int:
    """Bytes from ``1.5GB``, ``512MiB``, ``2e9`` or an int."""
    if isinstance(budget, bool):
        raise TypeError(f"memory_budget must be bytes or a string like '1.5GB', got {budget!r}")
    if isinstance(budget, (int, float)):
        value = float(budget)
    elif isinstance(budget, str):
        s = budget.strip().replace(" ", "")
        units = {
            "KIB": 2**10,
            "MIB": 2**20,
            "GIB": 2**30,
            "TIB": 2**40,
            "KB": 1e3,
            "MB": 1e6,
            "GB": 1e9,
            "TB": 1e12,
            "K": 2**10,
            "M": 2**20,
            "G": 2**30,
            "B": 1,
        }
        mult = 1.0
        for u, f in units.items():
            if s.upper().endswith(u):
                mult, s = float(f), s[: -len(u)]
                break
        try:
            value = float(s) * mult
        except ValueError:
            raise ValueError(
                f"memory_budget must look like '1.5GB', '512MiB' or a number of bytes, "
                f"got {budget!r}"
            ) from None
    else:
        raise TypeError(f"memory_budget must be bytes or a string like '1.5GB', got {budget!r}")
    if not value > 0:
        raise ValueError(f"memory_budget must be positive, got {budget!r}")
    return int(value)


class _Model:
    """Shape-level memory and FLOP model of one trunk for one input shape."""

    def __init__(self, graph: TrunkGraph, shape: tuple[int, int, int, int], elem: int) -> None:
        self.g = graph
        self.n = shape[0]
        self.elem = elem
        self.shapes = graph.shapes(shape[1:])
        key: dict[int, int] = {0: 0}
        for node in graph.nodes[1:]:
            share = node.inplace and node.kind in ("act", "add")
            key[node.id] = key[node.inputs[0]] if share else node.id
        self.key = key

    def pbytes(self, i: int) -> int:
        """Bytes of the parameters of node ``i``'s layer (its gradient's size)."""
        m = self.g.nodes[i].module
        if m is None or self.g.nodes[i].kind not in ("conv", "bn"):
            return 0
        return sum(p.numel() for p in m.parameters(recurse=False)) * self.elem

    def pmax(self, i: int) -> int:
        """Bytes of the largest single parameter of node ``i``'s layer."""
        m = self.g.nodes[i].module
        if m is None or self.g.nodes[i].kind not in ("conv", "bn"):
            return 0
        return max((p.numel() for p in m.parameters(recurse=False)), default=0) * self.elem

    def numel(self, t: int, rows: int | None = None) -> int:
        c, h, w = self.shapes[t]
        return self.n * c * (h if rows is None else rows) * w

    def saves(self, node, rows: dict[int, int] | None = None) -> tuple[list[int], int]:  # type: ignore[no-untyped-def]
        """(storage keys saved, extra bytes) of a node under plain autograd."""
        u = node.inputs[0] if node.inputs else 0
        r_out = None if rows is None else rows[node.id]
        if node.kind in ("conv", "bn", "avgpool"):
            return [self.key[u]], 0
        if node.kind == "maxpool":
            return [self.key[u]], self.numel(node.id, r_out) * 8
        if node.kind == "act":
            return (
                [self.key[node.id]] if isinstance(node.module, _SAVE_OUTPUT) else [self.key[u]]
            ), 0
        if node.kind == "drop":
            return [], self.numel(node.id, r_out) if node.module.p > 0 else 0
        return [], 0

    def sim(
        self,
        ids: list[int],
        rows: dict[int, int] | None = None,
        external: set[int] | None = None,
        copies: set[int] | None = None,
        grad_base: int = 0,
        grads: str = "none",
    ) -> tuple[int, int]:
        """(saved bytes, peak bytes) of plain training over nodes ``ids`` (rows override heights).

        Whole step: ``grad_base`` bytes of gradients are alive during this backward, plus
        (``grads="all"``) every gradient of the layers back-propagated so far or (``"one"``,
        a fused optimizer step) only the largest one of the layer being back-propagated.

        ``copies``: nodes whose saved input is a private copy (a padded or concatenated strip).
        A convolution's backward also holds a copy of its input and output gradient in the
        kernel's layout (oneDNN reorders), which calibrates the transient term.
        """
        external = {0} if external is None else external
        copies = copies or set()
        size: dict[object, int] = {}

        def rws(t: int) -> int | None:
            return None if rows is None else rows.get(t)

        for t in [0, *ids]:
            size.setdefault(self.key[t], self.numel(t, rws(t)))
        for i in ids:
            for u in self.g.nodes[i].inputs:
                size.setdefault(self.key[u], self.numel(u, rws(u)))
            if i in copies:
                size[("copy", i)] = self.numel(
                    self.g.nodes[i].inputs[0], rws(self.g.nodes[i].inputs[0])
                )
        saved: set[object] = set()
        extra = 0
        peak = 0
        steps = []
        for i in ids:
            node = self.g.nodes[i]
            u = node.inputs[0]
            live = saved | {self.key[u], self.key[i]}
            peak = max(peak, sum(size[k] for k in live - external) * self.elem + extra)
            keys, ex = self.saves(node, rows)
            if i in copies and node.kind in ("conv", "maxpool", "avgpool"):
                keys = [("copy", i)]
            saved |= set(keys)
            extra += ex
            steps.append((set(saved), extra, i, u))
        total = sum(size[k] for k in saved - external) * self.elem + extra
        acc = grad_base
        for sv, ex, i, u in reversed(steps):
            gmaps = (self.numel(i, rws(i)) + self.numel(u, rws(u))) * self.elem
            if self.g.nodes[i].kind == "conv":
                gmaps *= 2  # reordered copies of the input and the output gradient
            if i in copies:  # two_phase: the carried-row gradient is added to a copy
                gmaps += self.numel(u, rws(u)) * self.elem
            if grads == "all":
                acc += self.pbytes(i)
            held = acc + (self.pmax(i) if grads == "one" else 0)
            peak = max(peak, sum(size[k] for k in sv - external) * self.elem + ex + gmaps + held)
        return total, max(peak, total)

    def flops(self, node, rows: int | None = None) -> float:  # type: ignore[no-untyped-def]
        c, h, w = self.shapes[node.id]
        r = h if rows is None else rows
        if node.kind == "conv":
            m = node.module
            return 2.0 * self.n * c * r * w * m.in_channels / m.groups * node.k * node.kw
        return float(self.n * c * r * w)


def _unit_nodes(graph: TrunkGraph, lo: int, hi: int) -> list[int]:
    first = graph.unit_end[lo - 1] + 1 if lo > 0 else 1
    last = graph.unit_end[hi - 1] if hi > 0 else 0
    return [n.id for n in graph.nodes[first : last + 1]]


def _checkpoint(
    model: _Model, lo: int, hi: int, k: int, grad_base: int = 0, grads: str = "none"
) -> tuple[int, float, int]:
    """Peak bytes, recompute FLOPs and bytes kept at the end of the forward of
    checkpoint_sequential(units[lo:hi], k) (``grad_base`` / ``grads`` as in ``_Model.sim``:
    the gradients of later segments are alive while a segment back-propagates)."""
    g = model.g
    n_units = hi - lo
    k = max(1, min(k, n_units))
    size = n_units // k
    segs = [(lo + s, lo + s + size) for s in range(0, size * (k - 1), size)]
    segs.append((lo + size * (k - 1), hi))
    kept = 0
    peak = 0
    recompute = 0.0
    saved_end = 0
    later = [0] * len(segs)  # gradient bytes of the segments after segment j
    if grads == "all":
        for j in range(len(segs) - 2, -1, -1):
            ids = _unit_nodes(g, *segs[j + 1])
            later[j] = later[j + 1] + sum(model.pbytes(i) for i in ids)
    for j, (a, b) in enumerate(segs):
        ids = _unit_nodes(g, a, b)
        if not ids:
            continue
        inp = g.nodes[ids[0]].inputs[0]
        ext = {model.key[inp]} | {0}
        saved, pk = model.sim(ids, external=ext, grad_base=grad_base + later[j], grads=grads)
        if j < len(segs) - 1:
            peak = max(peak, kept + pk)
            if inp != 0:
                kept += model.numel(inp) * model.elem
            recompute += sum(model.flops(g.nodes[i]) for i in ids)
        else:
            peak = max(peak, kept + pk)
            saved_end = kept + saved
    return peak, recompute, saved_end


def carried_bytes(model: _Model, lay: Layout) -> list[int]:
    """Bytes of the rows strip ``i`` carries to strip ``i + 1`` under ``two_phase``, summed over
    every (consumer, input) edge of the segment, for each boundary ``i`` (empty for
    ``overlap``). The forward saves all of them for backward (the *tails*); the backward hands
    their gradient, of the same size, from strip ``i + 1`` back to strip ``i``, which holds it
    through its recompute and backward."""
    if lay.policy != "two_phase":
        return []
    out = []
    for i in range(lay.n - 1):
        total = 0
        for node in lay.graph.nodes[1:]:
            for u in node.inputs:
                lo = lay.cache_lo[(node.id, u)][i]
                total += (lay.part[u][i + 1] - lo) * model.numel(u, 1) * model.elem
        out.append(total)
    return out


def _row_centric(
    model: _Model,
    full: TrunkGraph,
    depth: int,
    rows: int,
    policy: str,
    ckpt: int = 0,
    batch_norm: str = "exact",
    head_grads: tuple[int, int] = (0, 0),
) -> tuple[int, float, Layout, dict[bool, int]]:
    """Predicted peak bytes, relative step time, layout and whole-step peak (keyed by fused) of
    a row-centric segment; ``head_grads`` = (all, largest) gradient bytes of the head."""
    seg = TrunkGraph.__new__(TrunkGraph)
    seg.nodes = full.nodes[: full.unit_end[depth - 1] + 1]
    seg.unit_end = full.unit_end[:depth]
    seg.out = full.unit_end[depth - 1]
    lay = Layout(seg, model.shapes[0], rows, policy)
    e = model.elem
    out = seg.out
    ids = [n.id for n in seg.nodes[1:]]
    strip_peak = 0
    fwd_t = 0
    if policy == "two_phase":  # concatenated (carried + new) rows are a private copy
        copies = {
            n.id
            for n in seg.nodes
            if n.kind in ("conv", "maxpool", "avgpool") and n.d * (n.k - 1) + 1 > n.s
        }
    else:  # first and last strips pad explicitly
        copies = {
            n.id for n in seg.nodes if n.kind in ("conv", "maxpool", "avgpool") and (n.pt or n.pb)
        }
    carried = carried_bytes(model, lay)
    tails = sum(carried)
    for i in range(rows):
        r = {t: iv[1] - iv[0] for t, iv in lay.comp[i].items()}
        if policy == "two_phase":
            for node in seg.nodes[1:]:  # carried rows enlarge the strip's inputs
                for u in node.inputs:
                    if i > 0:
                        extra = lay.part[u][i] - lay.cache_lo[(node.id, u)][i - 1]
                        r[u] = r[u] + max(extra, 0)
        _, pk = model.sim(ids, rows=r, copies=copies)
        # two_phase: strip i's recompute and backward also hold the gradient of the rows it
        # carried to strip i + 1, handed back by that strip's backward (same size as the rows)
        strip_peak = max(strip_peak, pk + (carried[i] if i < len(carried) else 0))
        fwd_t = max(
            fwd_t,
            max(
                (model.numel(n.inputs[0], r[n.inputs[0]]) + model.numel(n.id, r[n.id])) * e
                for n in seg.nodes[1:]
            ),
        )
    params = (
        sum(
            p.numel()
            for n in seg.nodes
            if n.module is not None
            for p in n.module.parameters(recurse=False)
        )
        * e
    )
    seg_out = model.numel(out) * e
    rest = list(range(out + 1, len(full.nodes)))
    n_units = len(full.unit_end)

    def rest_model(grad_base: int = 0, grads: str = "none") -> tuple[int, float, int]:
        """Peak, recompute FLOPs and bytes saved at the end of the forward of the rest."""
        if rest and ckpt > 0:
            return _checkpoint(model, depth, n_units, ckpt, grad_base, grads)
        if rest:
            saved, pk = model.sim(rest, grad_base=grad_base, grads=grads)
            return pk, 0.0, saved
        return seg_out, 0.0, seg_out

    rest_peak, rest_recompute, rest_saved = rest_model()
    bwd = tails + seg_out + strip_peak + 2 * params
    fwd = tails + seg_out + fwd_t
    peak = max(fwd, tails + rest_peak, bwd)
    # whole step: gradients alive in each phase (all accumulate, or one at a time if fused)
    g_head, g_head_max = head_grads
    g_rest = sum(model.pbytes(i) for i in rest)
    step: dict[bool, int] = {}
    for fused in (False, True):
        base = 0 if fused else g_head
        rest_pk, _, _ = rest_model(base, "one" if fused else "all")
        held = tails + rest_saved + (g_head_max if fused else g_head)  # head's backward
        seg_bwd = bwd + (0 if fused else g_head + g_rest)
        last = 0 if fused else g_head + g_rest + params  # all gradients, optimizer step
        step[fused] = max(fwd, held, tails + rest_pk, seg_bwd, last)
    # time: FLOPs of sweeps over strips vs plain (backward = 2x forward)
    batch_bn = [n.id for n in seg.nodes if n.kind == "bn"] if batch_norm == "exact" else []
    strip_f = [
        sum(model.flops(n, lay.comp[i][n.id][1] - lay.comp[i][n.id][0]) for n in seg.nodes[1:])
        for i in range(rows)
    ]
    seg_plain = sum(model.flops(n) for n in seg.nodes[1:])
    total_plain = sum(model.flops(n) for n in full.nodes[1:])
    sf = sum(strip_f)
    sweeps_f = 0.0
    for bn in batch_bn:
        sweeps_f += sf * (bn / len(seg.nodes))  # forward statistics sweep up to the BatchNorm
        sweeps_f += sf + 2 * sf * (1 - bn / len(seg.nodes))  # backward reduction sweep
    seg_t = sf + sf + 2 * sf + sweeps_f  # forward, recompute, backward, BN sweeps
    t = (seg_t + 3 * (total_plain - seg_plain) + rest_recompute) / (3 * total_plain)
    return peak, t, lay, step


def plan(
    model: nn.Module,
    input_shape: tuple[int, int, int, int],
    rows: int | None = None,
    memory_budget: int | float | str | None = None,
    policy: str = "overlap",
    *,
    depth: int | str | None = "auto",
    dtype: torch.dtype = torch.float32,
    checkpoint_segments: int = 0,
    batch_norm: str = "exact",
    chunk_mib: float | None = None,
) -> Plan:
    """Plan row-centric training of ``model`` for inputs of ``input_shape`` (N, C, H, W).

    From shapes alone: the strip layout, predicted peak activation memory of plain training, of
    the best ``torch.utils.checkpoint.checkpoint_sequential`` and of each policy, and, with
    ``memory_budget``, the fewest strips whose prediction fits (``ValueError`` when even the floor
    does not). ``depth="auto"`` picks how many trunk units run row-centric: the lowest product of
    predicted peak and predicted step time (with a budget: the fastest depth that fits).
    ``batch_norm`` as in ``RowCentric``: ``"exact"`` BatchNorms cost a statistics sweep each,
    ``"frozen"`` ones none. ``chunk_mib``: the fused whole-step predictions
    (``step_bytes[(method, True)]``) assume ``StepInBackward(model, ..., chunk_mib=chunk_mib)``:
    a chunked ``nn.Linear`` (``lrcnn.stepping.linear_chunks``) holds one chunk of its weight
    gradient at a time, not the whole of it.
    """
    if batch_norm not in BATCH_NORM_MODES:
        raise ValueError(f"batch_norm must be one of {BATCH_NORM_MODES}, got {batch_norm!r}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if (
        not isinstance(input_shape, (tuple, list, torch.Size))
        or len(input_shape) != 4
        or not all(isinstance(v, int) and v > 0 for v in input_shape)
    ):
        raise ValueError(f"input_shape must be (N, C, H, W) positive ints, got {input_shape!r}")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, int)):
        raise TypeError(f"rows must be an int, got {rows!r}")
    if rows is not None and rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    budget = None if memory_budget is None else parse_budget(memory_budget)
    units, _ = find_trunk(model)
    full = TrunkGraph(units)
    shape = tuple(int(v) for v in input_shape)
    m = _Model(full, shape, torch.empty((), dtype=dtype).element_size())  # type: ignore[arg-type]
    n_units = len(units)
    if depth == "auto":
        depths = list(range(1, n_units + 1))
    elif depth is None:
        depths = [n_units]
    elif isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= n_units:
        raise ValueError(f"depth must be 'auto', None or 1..{n_units}, got {depth!r}")
    else:
        depths = [depth]
    out_rows = {d: m.shapes[full.unit_end[d - 1]][1] for d in depths}
    if rows is not None and all(rows > out_rows[d] for d in depths):
        raise ValueError(
            f"rows must be between 1 and the segment's output rows "
            f"({max(out_rows[d] for d in depths)} at most here), got {rows}"
        )
    cache: dict[tuple[int, int, str], tuple[int, float, Layout]] = {}
    step_cache: dict[tuple[int, int, str], dict[bool, int]] = {}
    # parameter gradients outside the trunk graph (the head): all of them and the largest
    trunk_params = {
        id(p)
        for n in full.nodes
        if n.module is not None and n.kind in ("conv", "bn")
        for p in n.module.parameters(recurse=False)
    }
    head = [p for p in model.parameters() if id(p) not in trunk_params]
    alive = {id(p): p.numel() * m.elem for p in head}  # bytes of a gradient alive at once
    if chunk_mib is not None:  # a fused step holds one chunk of a chunked Linear's gradient
        for layer, r in linear_chunks(model, chunk_mib, m.elem).items():
            alive[id(layer.weight)] = r * layer.in_features * m.elem
            if layer.bias is not None:
                alive[id(layer.bias)] = r * m.elem
    head_grads = (
        sum(p.numel() * m.elem for p in head),
        max((alive[id(p)] for p in head), default=0),
    )

    def rc(d: int, r: int, pol: str) -> tuple[int, float, Layout]:
        if (d, r, pol) not in cache:
            pk, t, lay, st = _row_centric(
                m, full, d, r, pol, checkpoint_segments, batch_norm, head_grads
            )
            cache[(d, r, pol)] = (int(pk * OVERHEAD), t, lay)
            step_cache[(d, r, pol)] = {f: int(v * OVERHEAD) for f, v in st.items()}
        return cache[(d, r, pol)]

    def best_depth(r: int) -> int | None:
        cands = [(rc(d, r, policy)[0], rc(d, r, policy)[1], d) for d in depths if r <= out_rows[d]]
        if not cands:
            return None
        if budget is not None and rows is None:  # budget mode: fastest depth that fits
            fit = [c for c in cands if c[0] <= budget]
            if fit:
                return min(fit, key=lambda c: (c[1], c[0]))[2]
        return min(cands, key=lambda c: (c[0] * c[1], c[0]))[2]  # peak x time

    def row_choices(d_list: list[int]) -> list[int]:
        top = min(MAX_ROWS, max(out_rows[d] for d in d_list))
        return list(range(1, top + 1))

    notes = []
    if rows is not None:
        chosen_rows = rows
        d = best_depth(rows)
        assert d is not None
    else:
        chosen_rows, d = None, None  # type: ignore[assignment]
        for r in row_choices(depths):
            dd = best_depth(r)
            if dd is None:
                continue
            if budget is not None and rc(dd, r, policy)[0] <= budget:
                chosen_rows, d = r, dd
                break
        if chosen_rows is None:
            # no budget, or none fits: the lowest predicted peak
            cands = [
                (rc(dd, r, policy)[0], r, dd)
                for r in row_choices(depths)
                for dd in [best_depth(r)]
                if dd is not None
            ]
            floor, r, dd = min(cands)
            if budget is not None:
                raise ValueError(
                    f"memory_budget {budget} bytes ({budget / 2**20:.1f} MiB) is below the "
                    f"predicted floor {floor} bytes ({floor / 2**20:.1f} MiB) of row-centric "
                    f"training for input {shape} with policy {policy!r}"
                )
            chosen_rows, d = r, dd
    # floor over rows for the reported depth choices
    floor = min(rc(dd, r, policy)[0] for r in row_choices([d]) for dd in [d] if r <= out_rows[dd])
    pol_bytes = {}
    pol_time = {}
    step_bytes: dict[tuple[str, bool], int] = {}
    for pol in POLICIES:
        try:
            pk, t, _ = rc(d, chosen_rows, pol)
        except ValueError as err:  # e.g. circular padding under two_phase
            notes.append(str(err))
            continue
        pol_bytes[pol], pol_time[pol] = pk, t
        for f, v in step_cache[(d, chosen_rows, pol)].items():
            step_bytes[(pol, f)] = v
    _, _, lay = rc(d, chosen_rows, policy)
    all_ids = [n.id for n in full.nodes[1:]]
    plain_saved, plain = m.sim(all_ids)
    best_ck = min(
        ((_checkpoint(m, 0, n_units, k), k) for k in range(1, n_units + 1)),
        key=lambda v: v[0][0],
    )
    (ck_bytes, ck_re, _), ck_k = best_ck
    g_head, g_head_max = head_grads
    g_all = g_head + sum(m.pbytes(i) for i in all_ids)
    for f in (False, True):
        base, mode = (0, "one") if f else (g_head, "all")
        held = g_head_max if f else g_head  # gradients alive during the head's backward
        last = 0 if f else g_all  # every gradient at the optimizer step
        _, pk = m.sim(all_ids, grad_base=base, grads=mode)
        step_bytes[("plain", f)] = int(max(pk, plain_saved + held, last) * OVERHEAD)
        ck_pk, _, ck_saved = _checkpoint(m, 0, n_units, ck_k, base, mode)
        step_bytes[("checkpoint", f)] = int(max(ck_pk, ck_saved + held, last) * OVERHEAD)
    total_f = sum(m.flops(n) for n in full.nodes[1:])
    out_id = full.unit_end[d - 1]
    strips = []
    for i in range(chosen_rows):
        a, b = lay.owned[i][out_id]
        lo, hi = lay.comp[i][0]
        olo, ohi = lay.owned[i][0]
        strips.append(Strip(i, (a, b), (lo, hi), (max(olo - lo, 0), max(hi - ohi, 0))))
    return Plan(
        input_shape=shape,  # type: ignore[arg-type]
        policy=policy,
        depth=d,
        rows=chosen_rows,
        units=[n for n, _ in units[:d]],
        strips=strips,
        plain_bytes=int(plain * OVERHEAD),
        checkpoint_bytes=int(ck_bytes * OVERHEAD),
        checkpoint_segments=ck_k,
        policy_bytes=pol_bytes,
        time_ratio=pol_time,
        checkpoint_time_ratio=(3 * total_f + ck_re) / (3 * total_f),
        floor_bytes=floor,
        memory_budget=budget,
        notes=notes,
        step_bytes=step_bytes,
    )
