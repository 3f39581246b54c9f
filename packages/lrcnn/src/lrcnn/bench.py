"""Benchmark: peak activation memory and step time of plain, checkpointed and row-centric training.

Every configuration runs in a fresh subprocess (``python -m lrcnn.bench --worker JSON``) so peak
memory is not polluted by earlier runs. Measured on CPU:

* bytes saved for backward, through ``torch.autograd.graph.saved_tensors_hooks`` (unique storages,
  parameters and the input batch excluded; deterministic);
* peak RSS above the warmed-up steady state: glibc ``MALLOC_MMAP_THRESHOLD_=65536`` so freed
  buffers go back to the OS, ``VmHWM`` reset through ``/proc/self/clear_refs`` before the step and
  read from ``/proc/self/status`` after forward+backward (weights, their gradients and optimizer
  state are in the steady state: the *activation peak* is peak minus steady state; the total peak
  is reported beside it).

On CUDA, ``torch.cuda.max_memory_allocated`` replaces RSS. The planner's prediction is printed
beside every measurement, and the gradient error against plain training on the same batch.
"""

from __future__ import annotations

import copy
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CONFIGS", "run_bench", "run_workload"]

MIB = 2**20
#: ``chunk_mib`` of the chunked rows, fixed from the planner before they were measured: the
#: largest power of two at which the predicted whole step of VGG-16 overlap-8 (224x224, batch
#: 8) reaches its floor (205 MiB: the trunk's backward is then the peak; 212 at 32, 247 at 64).
CHUNK_MIB = 16


def _configs(quick: bool, batch: int | None = None) -> list[dict[str, Any]]:
    """Workloads x methods, in groups that each run in one process (methods interleaved, plain
    first as the reference of the group's ratios; a group fits one 8-minute job).

    ``batch``: the batch of the 224x224 workloads instead of 8 (2 with ``quick``); the GPU
    setting of the issue is 32 (``lrcnn bench --batch 32 --only 224-32``).

    ``trunk`` group: plain, checkpoint (best k), row-centric at R strips (exact BatchNorm,
    planner's depth), on ResNets with frozen BatchNorm through layer1/layer2, and row-centric +
    ``checkpoint_sequential`` on the rest. ``step`` group: the whole step with the optimizer step
    fused into backward (``fused``) for plain, checkpoint and the best row-centric settings.
    ``chunk`` group (VGG-16 at 224x224 batch 8, full run only): overlap-8 with the fused step
    as it is and with large Linear layers stepped in row chunks (``chunk_mib``), also with
    checkpointing on the rest of the trunk.
    """
    if quick:
        b = 2 if batch is None else batch
        work = [("vgg16", 224, b), ("resnet50", 224, b)]
    else:
        # the setting: batch 8 at 224x224, and 512x512 at batch 1
        b = 8 if batch is None else batch
        work = [("vgg16", 224, b), ("resnet50", 224, b), ("vgg16", 512, 1), ("resnet50", 512, 1)]
    out: list[dict[str, Any]] = []
    for model, res, batch in work:
        base = {"model": model, "res": res, "batch": batch}
        chunk: list[dict[str, Any]] = []
        plain = {**base, "method": "plain"}
        ck = {**base, "method": "checkpoint"}
        if model == "vgg16":
            rcs = [{**base, "method": "overlap", "rows": 8}]
            if not quick:
                rcs.append({**base, "method": "two_phase", "rows": 16})
            combo = {**base, "method": "two_phase", "rows": 8, "ckpt": True}
            trunk = [plain, ck, *rcs, combo]
            # whole step: between overlap-8 (fast) and two_phase-8+ckpt (small): overlap-8+ckpt
            step_rc = [rcs[0], {**rcs[0], "ckpt": True}, combo] if not quick else [*rcs, combo]
            step = [{**c, "fused": True} for c in (plain, ck, *step_rc)]
            if res == 224 and batch == 8:  # the head's weight gradient in row chunks
                fo = {**rcs[0], "fused": True}
                chunk = [plain, fo, {**fo, "chunk_mib": CHUNK_MIB}]
                chunk.append({**fo, "ckpt": True, "chunk_mib": CHUNK_MIB})
        else:
            exact = {**base, "method": "two_phase", "rows": 8}
            f1 = {**base, "method": "overlap", "rows": 8, "bn": "frozen", "depth": "layer1"}
            f2 = {**base, "method": "two_phase", "rows": 8, "bn": "frozen", "depth": "layer2"}
            f2c = {**f2, "ckpt": True}
            if quick:
                trunk = [plain, ck, exact, f1]
                step = [{**c, "fused": True} for c in (plain, ck, f1)]
            else:  # the main comparison in one job: frozen BN to layer2 at 8 and 6 strips,
                # the planner's own depth, and the exact row (stem in strips + checkpointing);
                # the step group: the fused step and checkpointing around frozen-BN strips
                f2_6 = {**f2, "rows": 6}
                auto = {**base, "method": "two_phase", "rows": 8, "bn": "frozen"}
                trunk = [plain, ck, f2, f2_6, auto, {**exact, "ckpt": True}]
                step = [f1, {**f2, "fused": True}, f2c]
                step += [{**c, "fused": True} for c in (plain, ck)]
        out += [{**c, "group": "trunk"} for c in trunk]
        out += [{**plain, "group": "step"}] + [{**c, "group": "step"} for c in step]
        out += [{**c, "group": "chunk"} for c in chunk]
    return out


CONFIGS = _configs(False)


def _build(name: str) -> nn.Module:
    from lrcnn import models

    torch.manual_seed(0)
    return {"vgg16": models.vgg16, "resnet50": models.resnet50}[name]()


def _meta_model(name: str) -> nn.Module:
    """The benchmark's model with its shapes only (meta device): for the planner's predictions."""
    from lrcnn import models

    with torch.device("meta"):
        return {"vgg16": models.vgg16, "resnet50": models.resnet50}[name]()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _label(cfg: dict[str, Any], unit: str | None = None) -> str:
    """A method's name in the tables; ``unit``: the last row-centric unit the planner chose."""
    m = cfg["method"]
    lab = m if m in ("plain", "checkpoint") else f"{m}-{cfg['rows']}"
    if cfg.get("bn") == "frozen":
        lab += " bn=frozen"
    if cfg.get("depth"):
        lab += f" to {cfg['depth']}"
    elif unit is not None and m not in ("plain", "checkpoint"):
        lab += f" to {unit} (planner)"
    if cfg.get("ckpt"):
        lab += "+ckpt"
    if cfg.get("fused"):
        lab += "+fused"
    if cfg.get("chunk_mib"):
        lab += f"+chunk{cfg['chunk_mib']:g}"
    return lab


def _depth_of(model: nn.Module, where: str | int | None) -> int | str:
    """``"layer2"`` -> number of trunk units up to the end of layer2; ints pass through."""
    from lrcnn.graph import find_trunk

    if where is None or isinstance(where, int):
        return "auto" if where is None else where
    names = [n for n, _ in find_trunk(model)[0]]
    idx = [i for i, n in enumerate(names) if n.startswith(where + ".")]
    if not idx:
        raise ValueError(f"depth {where!r}: no trunk unit starts with it (units: {names})")
    return idx[-1] + 1


_PLANS: dict[tuple, Any] = {}


def _planned(model: nn.Module, cfg: dict[str, Any], shape: tuple[int, ...]) -> tuple[Any, int]:
    """The planner's ``Plan`` for one benchmark method and its ``checkpoint_segments`` (for
    ``+ckpt``: the count with the lowest predicted peak; plain/checkpoint: the plain plan)."""
    from lrcnn.planner import plan as _plan
    from lrcnn.rowcentric import RowCentric

    def plan(m: nn.Module, s: tuple[int, ...], **kw: Any) -> Any:  # one model per process
        key = (id(m), tuple(s), tuple(sorted(kw.items())))
        if key not in _PLANS:
            _PLANS[key] = _plan(m, s, **kw)
        return _PLANS[key]

    chunk = {"chunk_mib": cfg["chunk_mib"]} if cfg.get("chunk_mib") else {}
    if cfg["method"] in ("plain", "checkpoint"):
        return plan(model, shape, rows=1, **chunk), 0
    pol, rows = cfg["method"], cfg["rows"]
    bn = cfg.get("bn", "exact")
    depth = _depth_of(model, cfg.get("depth"))
    kw: dict[str, Any] = dict(rows=rows, policy=pol, depth=depth, batch_norm=bn, **chunk)
    p = plan(model, shape, **kw)
    if not cfg.get("ckpt"):
        return p, 0
    # checkpoint the layers after the row-centric segment: best segment count by prediction
    n_rest = len(RowCentric(model, rows=1).trunk_units) - p.depth
    best = (p.policy_bytes[pol], 0, p)
    for k in range(2, min(n_rest, 8) + 1):
        pk = plan(model, shape, **{**kw, "depth": p.depth}, checkpoint_segments=k)
        if pk.policy_bytes[pol] < best[0]:
            best = (pk.policy_bytes[pol], k, pk)
    return best[2], best[1]


def _predicted_step(model: nn.Module, cfg: dict[str, Any], shape: tuple[int, ...]) -> int:
    """The planner's whole-step peak (bytes above weights + optimizer state) for a method."""
    p, _ = _planned(model, cfg, shape)
    return p.step_bytes[(cfg["method"], bool(cfg.get("fused")))]


def _wrap(model: nn.Module, cfg: dict[str, Any], shape: tuple[int, ...]) -> tuple[nn.Module, dict]:
    from lrcnn.baselines import CheckpointTrunk
    from lrcnn.rowcentric import RowCentric

    info: dict[str, Any] = {}
    p, ck = _planned(model, cfg, shape)
    if cfg["method"] == "plain":
        info.update(predicted=p.plain_bytes, predicted_time=1.0)
        return model, info
    if cfg["method"] == "checkpoint":
        info.update(
            predicted=p.checkpoint_bytes,
            segments=p.checkpoint_segments,
            predicted_time=p.checkpoint_time_ratio,
        )
        return CheckpointTrunk(model, p.checkpoint_segments), info
    pol = cfg["method"]
    info.update(
        predicted=p.policy_bytes[pol],
        depth=p.depth,
        units=p.units[-1],
        segments=ck,
        predicted_time=p.time_ratio[pol],
    )
    run = RowCentric(
        model,
        rows=cfg["rows"],
        policy=pol,
        depth=p.depth,
        checkpoint_segments=ck,
        batch_norm=cfg.get("bn", "exact"),
    )
    return run, info


def _grad_error(
    ref: nn.Module, model: nn.Module, run: nn.Module, x: torch.Tensor, y: torch.Tensor
) -> float:
    """Max relative gradient error (per tensor) of ``run`` (wrapping ``model``) against ``ref``
    (a float64 copy of the plain model with its gradients computed), in float64.

    float64 shows the method's exactness; in float32 both sides carry rounding noise that deep
    BatchNorm networks amplify and max-pool near-ties turn into jumps (see the tests).
    """
    model.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # same dropout masks in the heads
    nn.functional.cross_entropy(run(x), y).backward()
    scale = max(float(p.grad.abs().max()) for p in ref.parameters() if p.grad is not None)
    errs = []
    for p1, p2 in zip(ref.parameters(), model.parameters()):
        if p1.grad is None:
            continue
        top = float(p1.grad.abs().max())
        denom = top if top >= 1e-4 * scale else scale  # zero-in-theory grads: vs the largest
        errs.append(float((p1.grad - p2.grad).abs().max()) / max(denom, 1e-30))
    model.zero_grad(set_to_none=True)
    if not errs or not all(e == e for e in errs):  # NaN: never report it as 0 via max()
        return float("nan")
    return max(errs)


def _grad_error_frozen(
    ref: nn.Module, model: nn.Module, run: Any, x: torch.Tensor, y: torch.Tensor
) -> float:
    """Gradient error of a ``batch_norm="frozen"`` run against plain training whose BatchNorms
    inside the row-centric segment are in eval mode (what the option computes)."""
    ref2 = copy.deepcopy(model)
    frozen = {id(m) for m in run.frozen_batch_norms(tuple(x.shape), x.dtype)}
    for m2, m in zip(ref2.modules(), model.modules()):
        if id(m) in frozen:
            m2.eval()
    ref2.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    nn.functional.cross_entropy(ref2(x), y).backward()
    return _grad_error(ref2, model, run, x, y)


def _malloc_steady() -> None:
    """Switch glibc malloc from the measuring setting (every block over 64 KiB mmapped, so freed
    memory leaves RSS) to its usual steady state (blocks up to 32 MiB reused from the heap) for
    the timing steps: otherwise every strip-sized allocation pays fresh page faults."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * MIB)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 64 * MIB)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: keep the allocator as it is
        pass


class _Meter:
    """Current and peak memory: CUDA allocator counters or CPU RSS / VmHWM."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def now(self) -> int:
        self.sync()
        return torch.cuda.memory_allocated() if self.cuda else _rss_kib("VmRSS") * 1024

    def high(self) -> int:
        self.sync()
        return torch.cuda.max_memory_allocated() if self.cuda else _rss_kib("VmHWM") * 1024

    def reset(self) -> None:
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_hwm()


def _trunk_hook(model: nn.Module, fn: Any) -> Any:
    """Call ``fn()`` when backward reaches the trunk output (the head's input)."""
    pool = model.avgpool
    return pool.register_forward_pre_hook(
        lambda m, inp: inp[0].register_hook(lambda g: (fn(), None)[1]) and None
    )


def run_workload(work: dict[str, Any], methods: list[dict[str, Any]]) -> list[dict[str, float]]:
    """Measure every method of one workload in this process (call it in a fresh one).

    1. Memory, per method in turn (allocator in its measuring state): a warm-up step; the
       *trunk* figure as before (gradients allocated, the head's backward left out: forward
       peak, and the peak from the moment the gradient reaches the trunk output on); the
       *whole step* (gradients set to None before it, so it holds every gradient it makes:
       forward, head backward, trunk backward, optimizer step; each phase's peak above the
       state before the step = weights + optimizer state).
    2. Time: ``repeats`` rounds, each timing one whole step of every method in turn
       (interleaved, one process, fixed threads), after the allocator is switched to its steady
       state; the ratio to plain is taken per round.
    3. Gradient error of every row-centric method against plain, float64, first two images.
    """
    from lrcnn.stepping import StepInBackward

    t_start = time.perf_counter()
    budget = float(work.get("budget_s", math.inf))  # drop extra rounds / the check past it
    torch.set_num_threads(int(work.get("threads", 1)))
    cuda = torch.cuda.is_available() and work.get("device", "auto") != "cpu"
    dev = torch.device("cuda" if cuda else "cpu")
    meter = _Meter(cuda)
    model = _build(work["model"]).to(dev).train()
    shape = (work["batch"], 3, work["res"], work["res"])
    gen = torch.Generator().manual_seed(1 + int(work.get("seed", 0)))
    x = torch.randn(shape, generator=gen).to(dev)
    y = torch.randint(0, 1000, (work["batch"],), generator=gen).to(dev)
    initial = {k: v.detach().clone() for k, v in model.state_dict().items()}
    sgd = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    fused: dict[float | None, StepInBackward] = {}
    runs = [(cfg, *_wrap(model, cfg, shape)) for cfg in methods]

    def attach(cfg: dict[str, Any]) -> StepInBackward | None:
        """Per-parameter optimizers (state kept between steps) hooked in for fused methods, one
        set per ``chunk_mib``."""
        if not cfg.get("fused"):
            return None
        chunk = cfg.get("chunk_mib")
        if chunk not in fused:
            kw = dict(lr=1e-4, momentum=0.9, chunk_mib=chunk)
            fused[chunk] = StepInBackward(model, torch.optim.SGD, **kw)
        else:
            fused[chunk]._attach()
        return fused[chunk]

    def whole_step(cfg: dict[str, Any], run: nn.Module, marks: dict[str, int] | None) -> None:
        loss = nn.functional.cross_entropy(run(x), y)
        if marks is not None:
            marks["fwd"] = meter.high()
            meter.reset()
        loss.backward()
        del loss
        if marks is not None:
            marks["trunk_bwd"] = meter.high()
            meter.reset()
        if not cfg.get("fused"):
            sgd.step()
        model.zero_grad(set_to_none=True)
        if marks is not None:
            marks["opt"] = meter.high()

    results = []
    for cfg, run, info in runs:
        h = attach(cfg)
        whole_step(cfg, run, None)  # warm-up: momentum buffers, kernels for strip shapes
        trunk: dict[str, float] = {}
        if not cfg.get("fused"):  # trunk figure, gradients allocated (as before)
            for p in model.parameters():
                p.grad = torch.zeros_like(p)
            tm: dict[str, int] = {}
            hook = _trunk_hook(
                model, lambda tm=tm: (tm.__setitem__("head", meter.high()), meter.reset())
            )
            skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
            skip |= {p.grad.untyped_storage().data_ptr() for p in model.parameters()}
            skip.add(x.untyped_storage().data_ptr())
            seen: dict[int, int] = {}

            def pack(
                t: torch.Tensor, seen: dict[int, int] = seen, skip: set[int] = skip
            ) -> torch.Tensor:
                s = t.untyped_storage()  # records storages, keeps no reference
                if s.data_ptr() not in skip:
                    seen[s.data_ptr()] = s.nbytes()
                return t

            meter.reset()
            base = meter.now()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = nn.functional.cross_entropy(run(x), y)
            fwd_peak = meter.high()
            loss.backward()
            del loss
            bwd_peak = meter.high()
            hook.remove()
            trunk = {
                "act_peak_mib": (max(fwd_peak, bwd_peak) - base) / MIB,
                "saved_mib": sum(seen.values()) / MIB,
            }
            model.zero_grad(set_to_none=True)
        wm: dict[str, int] = {}
        hook = _trunk_hook(
            model, lambda wm=wm: (wm.__setitem__("head_bwd", meter.high()), meter.reset())
        )
        meter.reset()
        base = meter.now()
        whole_step(cfg, run, wm)
        hook.remove()
        if h is not None:
            h.remove()
        phases = {k: (v - base) / MIB for k, v in wm.items()}
        results.append(
            {
                **trunk,
                "step_peak_mib": max(phases.values()),
                **{f"step_{k}_mib": v for k, v in phases.items()},
                "static_mib": base / MIB,
                "predicted_mib": info["predicted"] / MIB,
                "predicted_time": float(info.get("predicted_time", 1.0)),
                "depth": float(info.get("depth", 0)),
                "segments": float(info.get("segments", 0)),
                "cuda": float(cuda),
            }
        )
    # time: interleaved rounds of whole steps
    if not cuda:
        _malloc_steady()
    for cfg, run, _ in runs:  # warm-up in the steady allocator state
        h = attach(cfg)
        whole_step(cfg, run, None)
        if h is not None:
            h.remove()
    times: list[list[float]] = [[] for _ in runs]
    for rnd in range(int(work.get("repeats", 3))):
        if rnd >= 2 and time.perf_counter() - t_start > 0.6 * budget:
            break
        for j, (cfg, run, _) in enumerate(runs):
            h = attach(cfg)
            meter.sync()
            t0 = time.perf_counter()
            whole_step(cfg, run, None)
            meter.sync()
            times[j].append(time.perf_counter() - t0)
            if h is not None:
                h.remove()
    pj = next(j for j, (c, *_) in enumerate(runs) if c["method"] == "plain" and not c.get("fused"))
    for j, r in enumerate(results):
        ratios = [a / b for a, b in zip(times[j], times[pj])]
        r["step_s"] = statistics.median(times[j])
        r["time_ratio"] = statistics.mean(ratios)
        r["time_ratio_std"] = statistics.stdev(ratios) if len(ratios) > 1 else 0.0
    if time.perf_counter() - t_start > 0.7 * budget:  # no time left for the check
        for r in results:
            r["grad_rel_err"] = float("nan")
        return results
    # gradient error in float64 on two images, from the initial weights (the steps above moved
    # them, on random data)
    model.load_state_dict(initial)
    del initial
    model.double()
    x2, y2 = x[:2].double(), y[:2]
    ref = copy.deepcopy(model)
    ref.zero_grad(set_to_none=True)
    torch.manual_seed(123)
    nn.functional.cross_entropy(ref(x2), y2).backward()
    done: dict[str, float] = {}
    for (cfg, run, _), r in zip(runs, results):
        if cfg["method"] == "plain":
            r["grad_rel_err"] = 0.0
            continue
        key = _label({**cfg, "fused": False, "chunk_mib": None})
        if key not in done:
            if cfg.get("bn") == "frozen":
                done[key] = _grad_error_frozen(ref, model, run, x2, y2)
            else:
                done[key] = _grad_error(ref, model, run, x2, y2)
        r["grad_rel_err"] = done[key]
    return results


def _spawn(work: dict[str, Any], methods: list[dict[str, Any]]) -> list[dict[str, float]]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(work["threads"]))
    proc = subprocess.run(
        [sys.executable, "-m", "lrcnn.bench", "--worker", json.dumps([work, methods])],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {work}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(
    out: str | os.PathLike[str] = "lrcnn-bench",
    quick: bool = False,
    seeds: int = 1,
    threads: int = 1,
    command: str = "lrcnn bench",
    cache: str | os.PathLike[str] | None = None,
    max_minutes: float | None = None,
    only: str | None = None,
    repeats: int = 3,
    readme: str | os.PathLike[str] | None = None,
    budget_s: float | None = None,
    batch: int | None = None,
) -> str:
    """Run every workload, write ``lrcnn.{md,json,png}`` under ``out``; return the table.

    ``cache``: a JSON-lines file of finished workloads, read first and appended to, so an
    interrupted run resumes. ``max_minutes``: start no new workload after this long; the ones
    not measured are listed in the report. ``only``: measure only workloads whose
    ``model-res-batch-group`` name contains this (the others come from the cache or are listed
    as not measured). ``budget_s``: per workload, seconds after which the worker times no
    further rounds (at least two) and skips the float64 gradient check. ``batch``: the batch of
    the 224x224 workloads (default 8, or 2 with ``quick``). ``readme``: also write
    both tables between the
    ``<!-- lrcnn-bench:start -->`` / ``<!-- lrcnn-bench:end -->`` markers of this file.
    """
    from maskloop.checks import check_int
    from maskloop.report import Results, markdown_table, write_report
    from tqdm import tqdm

    from lrcnn.graph import find_trunk

    for name, v, lo in (("seeds", seeds, 1), ("threads", threads, 1), ("repeats", repeats, 2)):
        check_int(name, v, lo)
    if batch is not None:
        check_int("batch", batch, 1)
    works: dict[tuple, list[dict[str, Any]]] = {}
    for c in _configs(quick, batch):
        works.setdefault((c["model"], c["res"], c["batch"], c["group"]), []).append(c)
    res = Results(
        "lrcnn", command, {"quick": quick, "threads": threads, "seeds": seeds, "repeats": repeats}
    )
    done: dict[str, list[dict[str, float]]] = {}
    if cache is not None and Path(cache).exists():
        for line in Path(cache).read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["key"]] = rec["metrics"]
    start = time.perf_counter()
    skipped: list[str] = []
    rows_trunk: list[list[Any]] = []
    rows_step: list[list[Any]] = []
    for (model, rs, batch, group), methods in tqdm(
        works.items(), desc="lrcnn bench", unit="workload"
    ):
        for seed in range(seeds):
            work = {
                "model": model,
                "res": rs,
                "batch": batch,
                "threads": threads,
                "seed": seed,
                "repeats": repeats,
                "group": group,
            }
            if budget_s is not None:
                work["budget_s"] = budget_s
            # the time budget is not part of what is measured: not in the cache key
            ck = json.dumps([{**work, "budget_s": None}, methods], sort_keys=True)
            late = max_minutes is not None and time.perf_counter() - start > 60 * max_minutes
            if ck in done:
                ms = done[ck]
            elif late or (only is not None and only not in f"{model}-{rs}-{batch}-{group}"):
                skipped.append(f"{model} {rs} batch {batch} ({group} group)")
                continue
            else:
                ms = _spawn(work, methods)
                if cache is not None:
                    with open(cache, "a") as fh:
                        fh.write(json.dumps({"key": ck, "metrics": ms}) + "\n")
            p = ms[0]
            net = _meta_model(model)
            units = [n for n, _ in find_trunk(net)[0]]
            for cfg, m in zip(methods, ms):
                m = dict(m)
                m["step_ratio"] = m["step_peak_mib"] / p["step_peak_mib"]
                # shape-only, so computed here (also for cached measurements)
                m["predicted_step_mib"] = _predicted_step(net, cfg, (batch, 3, rs, rs)) / MIB
                m["step_pred_over_meas"] = m["predicted_step_mib"] / max(m["step_peak_mib"], 1e-9)
                unit = units[int(m["depth"]) - 1] if m.get("depth") else None
                label = _label(cfg, unit)
                tr = f"{m['time_ratio']:.2f} ± {m['time_ratio_std']:.2f}"
                if "act_peak_mib" in m and group == "trunk":
                    m["mem_ratio"] = m["act_peak_mib"] / p["act_peak_mib"]
                    m["saved_ratio"] = m["saved_mib"] / max(p["saved_mib"], 1e-9)
                    m["pred_over_meas"] = m["predicted_mib"] / max(m["act_peak_mib"], 1e-9)
                    rows_trunk.append(
                        [
                            model,
                            rs,
                            batch,
                            label,
                            f"{m['act_peak_mib']:.0f}",
                            f"{m['mem_ratio']:.2f}",
                            f"{m['saved_mib']:.0f}",
                            f"{m['predicted_mib']:.0f}",
                            f"{m['pred_over_meas']:.2f}",
                            tr,
                            f"{m['predicted_time']:.2f}",
                            f"{m['grad_rel_err']:.1e}",
                        ]
                    )
                rec_m = {k: v for k, v in m.items() if v == v}  # NaN = not checked: left out
                res.add(label, seed, rec_m, model=model, res=rs, batch=batch, group=group)
                rows_step.append(
                    [
                        model,
                        rs,
                        batch,
                        label,
                        f"{m['step_peak_mib']:.0f}",
                        f"{m['step_ratio']:.2f}",
                        f"{m['predicted_step_mib']:.0f}",
                        f"{m['step_pred_over_meas']:.2f}",
                        f"{m['step_fwd_mib']:.0f}",
                        f"{m.get('step_head_bwd_mib', float('nan')):.0f}",
                        f"{m['step_trunk_bwd_mib']:.0f}",
                        f"{m['step_opt_mib']:.0f}",
                        f"{m['static_mib']:.0f}",
                        f"{m['step_s']:.2f}",
                        tr,
                    ]
                )
    trunk_headers = [
        "model",
        "res",
        "batch",
        "method",
        "trunk act peak MiB",
        "ratio",
        "saved MiB",
        "predicted MiB",
        "pred/meas",
        "time ratio",
        "pred time",
        "grad err (f64)",
    ]
    step_headers = [
        "model",
        "res",
        "batch",
        "method",
        "step peak MiB",
        "ratio",
        "predicted MiB",
        "pred/meas",
        "forward",
        "head bwd",
        "trunk bwd",
        "opt step",
        "static MiB",
        "step s",
        "time ratio",
    ]
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    png = _plot(res, outdir / "lrcnn.png")
    device = (
        f"CUDA max_memory_allocated on {torch.cuda.get_device_name()}"
        if any(r.metrics["cuda"] for r in res.records) and torch.cuda.is_available()
        else "CPU peak RSS (VmHWM) above the state before the step"
    )
    time_note = (
        f"Time ratio = whole training step (forward, backward, SGD step) over plain's, mean ± "
        f"std over {repeats} interleaved rounds in one process ({threads} torch thread(s)), "
        "glibc malloc in its steady state; the machine is shared, so other jobs may have "
        "loaded it during the run (interleaving cancels that only in part)."
    )
    sections = [
        "## Trunk: peak activation memory\n\n"
        f"Trunk act peak = {device} during forward and the trunk's backward (gradients kept "
        "allocated, the head's backward left out: the figure the method acts on); ratio = to "
        "plain; saved = bytes autograd keeps for backward (saved_tensors_hooks); predicted = "
        "`lrcnn.plan`'s shape-only prediction (pred time: of the step-time ratio, from FLOPs); "
        "grad err = max per-tensor relative error of parameter gradients against plain training "
        "on the first two images, float64 (`bn=frozen` rows: against plain training with those "
        "BatchNorms in eval mode). " + time_note + " Methods: `checkpoint` = "
        "`checkpoint_sequential` over the trunk with the planner's best segment count; "
        "`overlap-R` / `two_phase-R` = RowCentric with R strips (exact train-mode BatchNorm); "
        '`to U` = strips through trunk unit U (`(planner)`: the depth `depth="auto"` '
        "picks, lowest predicted peak x time); `bn=frozen` = the segment's BatchNorms frozen "
        "(running statistics, a named approximation); `+ckpt` = "
        "plus `checkpoint_sequential` on the rest of the trunk; `+fused` = optimizer step "
        "fused into backward (`lrcnn.StepInBackward`); `+chunkC` = with "
        "`StepInBackward(chunk_mib=C)`: large Linear layers' weight gradients computed and "
        "stepped in row chunks of at most C MiB, never whole.\n\n"
        + markdown_table(trunk_headers, rows_trunk),
        "## Whole training step\n\n"
        "Step peak = peak of the whole step (forward, backward, optimizer step) above the state "
        "before it (weights + optimizer state; gradients set to None before the step); ratio = "
        "to plain; predicted = `lrcnn.plan`'s whole-step prediction from shapes "
        "(`Plan.step_bytes`: the trunk model plus the gradients alive in each phase and, "
        "during the head's backward, the tensors saved by the forward). Breakdown (where the "
        "memory goes): each phase's peak above that state: "
        "forward; head backward until the gradient reaches the trunk output; the trunk's "
        "backward; the optimizer step. static = RSS before the step (weights, optimizer state, "
        "the process). " + time_note + "\n\n" + markdown_table(step_headers, rows_step),
        f"![memory vs time]({png.name})\n\n![where the whole step's memory goes](lrcnn_step.png)",
    ]
    if skipped:
        sections.append(
            "## Not measured\n\nNot run in this invocation (time limit or `--only`) and not in "
            "the cache: " + "; ".join(skipped) + "."
        )
    write_report(outdir / "lrcnn.md", "lrcnn benchmark", sections, res)
    if readme is not None:
        _write_readme(
            Path(readme),
            f"Produced by `{command}` (CPU unless a CUDA device is named in the full report; "
            f"{threads} torch thread(s); shared machine, other jobs may have loaded it). "
            "Trunk activation peak:\n\n"
            + markdown_table(trunk_headers, rows_trunk)
            + "\n\nWhole training step (peak above weights + optimizer state, by phase):\n\n"
            + markdown_table(step_headers, rows_step)
            + ("\n\nNot measured: " + "; ".join(skipped) + "." if skipped else ""),
        )
    return markdown_table(step_headers, rows_step)


def _write_readme(path: Path, text: str) -> None:
    """Replace the text between the README's benchmark markers (tables are never hand-edited)."""
    start, end = "<!-- lrcnn-bench:start -->", "<!-- lrcnn-bench:end -->"
    doc = path.read_text()
    if start not in doc or end not in doc:
        raise ValueError(f"{path}: no {start} ... {end} markers to write the tables between")
    head, rest = doc.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


def _plot(res: Any, path: Path) -> Path:
    """Memory ratio vs time ratio per workload (trunk rows: circles, whole-step rows: triangles)
    and, in ``lrcnn_step.png`` beside it, where the whole step's memory goes (phase peaks)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list] = {}
    for r in res.records:
        groups.setdefault((r.setting["model"], r.setting["res"], r.setting["batch"]), []).append(r)
    n = max(len(groups), 1)
    fig, axes = plt.subplots(1, n, figsize=(5 * n, 4), squeeze=False)
    for ax, (key, recs) in zip(axes[0], groups.items()):
        for r in recs:
            trunk = "mem_ratio" in r.metrics
            yv = r.metrics["mem_ratio"] if trunk else r.metrics["step_ratio"]
            ax.scatter(r.metrics["time_ratio"], yv, s=30, marker="o" if trunk else "^")
            ax.annotate(r.method, (r.metrics["time_ratio"], yv), fontsize=6)
        ax.set_xlabel("step time / plain")
        ax.set_ylabel("peak / plain (o trunk, ^ whole step)")
        ax.set_title(f"{key[0]} {key[1]}x{key[1]} batch {key[2]}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    phases = [
        ("step_fwd_mib", "forward"),
        ("step_head_bwd_mib", "head backward"),
        ("step_trunk_bwd_mib", "trunk backward"),
        ("step_opt_mib", "optimizer step"),
    ]
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 4), squeeze=False)
    for ax, (key, recs) in zip(axes[0], groups.items()):
        recs = [r for r in recs if not (r.setting["group"] != "trunk" and r.method == "plain")]
        xs = range(len(recs))
        w = 0.2
        for k, (field_, name) in enumerate(phases):
            ax.bar(
                [x + (k - 1.5) * w for x in xs],
                [max(r.metrics.get(field_, 0.0), 0.0) for r in recs],
                w,
                label=name,
            )
        ax.set_xticks(list(xs))
        ax.set_xticklabels([r.method for r in recs], rotation=60, ha="right", fontsize=6)
        ax.set_ylabel("peak above weights + optimizer state, MiB")
        ax.set_title(f"whole step: {key[0]} {key[1]}x{key[1]} batch {key[2]}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path.with_name("lrcnn_step.png"), dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(run_workload(*json.loads(sys.argv[2]))))
    else:
        raise SystemExit("usage: python -m lrcnn.bench --worker JSON")
