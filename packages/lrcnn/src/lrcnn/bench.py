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
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["CONFIGS", "run_bench", "run_config"]

MIB = 2**20


def _configs(quick: bool) -> list[dict[str, Any]]:
    """Workloads x methods. Methods: plain, checkpoint (best k), overlap/two_phase at R strips,
    and row-centric + checkpoint_sequential on the rest of the trunk."""
    if quick:
        work = [("vgg16", 224, 2), ("resnet50", 224, 2)]
        rc = {}
        combo = [("two_phase", 8)]
    else:
        # the setting: batch 8 at 224x224, and 512x512 at the batch this machine's time
        # budget allows (one fresh process per row, each up to a minute on one core)
        work = [("vgg16", 224, 8), ("resnet50", 224, 8), ("vgg16", 512, 1), ("resnet50", 512, 1)]
        rc = {("vgg16", 224): [("overlap", 4), ("overlap", 8), ("two_phase", 8)]}
        rc[("resnet50", 224)] = rc[("resnet50", 512)] = [("overlap", 8), ("two_phase", 8)]
        combo = [("two_phase", 8)]
    out = []
    for model, res, batch in work:
        base = {"model": model, "res": res, "batch": batch}
        out.append({**base, "method": "plain"})
        out.append({**base, "method": "checkpoint"})
        for pol, rows in rc.get((model, res), [("overlap", 8), ("two_phase", 8)]):
            out.append({**base, "method": pol, "rows": rows})
        if model == "vgg16":
            out.append({**base, "method": "two_phase", "rows": 16})
        for pol, rows in combo:
            out.append({**base, "method": pol, "rows": rows, "ckpt": True})
    return out


CONFIGS = _configs(False)


def _build(name: str) -> nn.Module:
    from lrcnn import models

    torch.manual_seed(0)
    return {"vgg16": models.vgg16, "resnet50": models.resnet50}[name]()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_hwm() -> None:
    Path("/proc/self/clear_refs").write_text("5")


def _label(cfg: dict[str, Any]) -> str:
    m = cfg["method"]
    if m in ("plain", "checkpoint"):
        return m
    return f"{m}-{cfg['rows']}" + ("+ckpt" if cfg.get("ckpt") else "")


def _wrap(model: nn.Module, cfg: dict[str, Any], shape: tuple[int, ...]) -> tuple[nn.Module, dict]:
    from lrcnn.baselines import CheckpointTrunk
    from lrcnn.planner import plan
    from lrcnn.rowcentric import RowCentric

    p = plan(model, shape, rows=cfg.get("rows", 1), policy=cfg.get("policy", "overlap"))
    info: dict[str, Any] = {}
    if cfg["method"] == "plain":
        info["predicted"] = p.plain_bytes
        return model, info
    if cfg["method"] == "checkpoint":
        info["predicted"] = p.checkpoint_bytes
        info["segments"] = p.checkpoint_segments
        info["predicted_time"] = p.checkpoint_time_ratio
        return CheckpointTrunk(model, p.checkpoint_segments), info
    pol, rows = cfg["method"], cfg["rows"]
    ck = 0
    if cfg.get("ckpt"):
        # checkpoint the layers after the row-centric segment: best segment count by prediction
        base = plan(model, shape, rows=rows, policy=pol)
        n_rest = len(RowCentric(model, rows=1).trunk_units) - base.depth
        best = (base.policy_bytes[pol], 0, base)
        for k in range(2, min(n_rest, 8) + 1):
            pk = plan(model, shape, rows=rows, policy=pol, depth=base.depth, checkpoint_segments=k)
            if pk.policy_bytes[pol] < best[0]:
                best = (pk.policy_bytes[pol], k, pk)
        _, ck, p = best
    else:
        p = plan(model, shape, rows=rows, policy=pol)
    info.update(
        predicted=p.policy_bytes[pol],
        depth=p.depth,
        units=p.units[-1],
        segments=ck,
        predicted_time=p.time_ratio[pol],
    )
    return RowCentric(model, rows=rows, policy=pol, depth=p.depth, checkpoint_segments=ck), info


def _grad_error(model: nn.Module, run: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Max relative gradient error (per tensor) of ``run`` against the plain model, in float64.

    float64 shows the method's exactness; in float32 both sides carry rounding noise that deep
    BatchNorm networks amplify (see ``lrcnn demo`` for the float32 picture).
    """
    model.double()
    x = x.double()
    ref = copy.deepcopy(model)
    for m in (model, ref):
        m.zero_grad(set_to_none=True)
    torch.manual_seed(123)  # same dropout masks in the heads
    nn.functional.cross_entropy(ref(x), y).backward()
    torch.manual_seed(123)
    nn.functional.cross_entropy(run(x), y).backward()
    scale = max(float(p.grad.abs().max()) for p in ref.parameters() if p.grad is not None)
    err = 0.0
    for p1, p2 in zip(ref.parameters(), model.parameters()):
        if p1.grad is None:
            continue
        top = float(p1.grad.abs().max())
        denom = top if top >= 1e-4 * scale else scale  # zero-in-theory grads: vs the largest
        err = max(err, float((p1.grad - p2.grad).abs().max()) / max(denom, 1e-30))
    return err


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


def run_config(cfg: dict[str, Any]) -> dict[str, float]:
    """Measure one configuration in this process (call it in a fresh one).

    Order: one warm-up step (allocates gradients and optimizer state), one measured step (peak
    memory and bytes saved for backward), then the timed steps (after the allocator is switched
    to its steady state on CPU), then the float64 gradient check on the first two images.
    """
    torch.set_num_threads(int(cfg.get("threads", 1)))
    cuda = torch.cuda.is_available() and cfg.get("device", "auto") != "cpu"
    dev = torch.device("cuda" if cuda else "cpu")
    model = _build(cfg["model"]).to(dev).train()
    shape = (cfg["batch"], 3, cfg["res"], cfg["res"])
    run, info = _wrap(model, cfg, shape)
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=gen).to(dev)
    y = torch.randint(0, 1000, (cfg["batch"],), generator=gen).to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        loss = nn.functional.cross_entropy(run(x), y)
        loss.backward()

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    # warm-up: allocates gradients and optimizer state (kept: zero_grad(set_to_none=False))
    step()
    opt.step()
    opt.zero_grad(set_to_none=False)
    # peak memory of one forward+backward. The activation peak leaves out the head's backward
    # (VGG's 25088x4096 FC weight-gradient buffer is a parameter gradient, not an activation):
    # forward peak, then the peak from the moment the gradient reaches the trunk output on.
    marks: dict[str, int] = {}

    def now() -> int:
        return torch.cuda.memory_allocated() if cuda else _rss_kib("VmRSS") * 1024

    def high() -> int:
        return torch.cuda.max_memory_allocated() if cuda else _rss_kib("VmHWM") * 1024

    def reset() -> None:
        if cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        else:
            _reset_hwm()

    def at_trunk_grad(g: torch.Tensor) -> None:
        marks["head_bwd"] = high()
        reset()

    hook = model.avgpool.register_forward_pre_hook(
        lambda m, inp: inp[0].register_hook(at_trunk_grad) and None
    )
    skip = {p.untyped_storage().data_ptr() for p in model.parameters()}
    skip.add(x.untyped_storage().data_ptr())
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:  # records storages only, keeps no reference
        s = t.untyped_storage()
        if s.data_ptr() not in skip:
            seen[s.data_ptr()] = s.nbytes()
        return t

    sync()
    reset()
    base = now()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = nn.functional.cross_entropy(run(x), y)
    sync()
    fwd_peak = high()
    loss.backward()
    sync()
    bwd_peak = high()
    hook.remove()
    del loss
    act = max(fwd_peak, bwd_peak) - base
    total = max(fwd_peak, bwd_peak, marks.get("head_bwd", 0))
    saved = sum(seen.values())
    opt.zero_grad(set_to_none=False)
    if not cuda:
        _malloc_steady()
    step()  # warm-up in the steady allocator state
    opt.zero_grad(set_to_none=False)
    times = []
    for _ in range(int(cfg.get("repeats", 2))):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
        opt.zero_grad(set_to_none=False)
    grad_err = 0.0 if cfg["method"] == "plain" else _grad_error(model, run, x[:2], y[:2])
    return {
        "act_peak_mib": act / MIB,
        "total_peak_mib": total / MIB,
        "saved_mib": saved / MIB,
        "predicted_mib": info["predicted"] / MIB,
        "step_s": min(times),
        "grad_rel_err": grad_err,
        "depth": float(info.get("depth", 0)),
        "segments": float(info.get("segments", 0)),
        "predicted_time": float(info.get("predicted_time", 1.0)),
        "cuda": float(cuda),
    }


def _spawn(cfg: dict[str, Any]) -> dict[str, float]:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", OMP_NUM_THREADS=str(cfg["threads"]))
    proc = subprocess.run(
        [sys.executable, "-m", "lrcnn.bench", "--worker", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark worker failed for {cfg}:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_bench(
    out: str | os.PathLike[str] = "docs/benchmarks",
    quick: bool = False,
    seeds: int = 1,
    threads: int = 1,
    command: str = "lrcnn bench",
    cache: str | os.PathLike[str] | None = None,
    max_minutes: float | None = None,
) -> str:
    """Run every configuration, write ``lrcnn.{md,json,png}`` under ``out``; return the table.

    ``cache``: a JSON-lines file of finished configurations, read first and appended to, so an
    interrupted run resumes. ``max_minutes``: start no new configuration after this long; the
    ones not measured are listed in the report.
    """
    from maskloop.report import Results, markdown_table, write_report
    from tqdm import tqdm

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be an int >= 1, got {seeds!r}")
    cfgs = _configs(quick)
    res = Results("lrcnn", command, {"quick": quick, "threads": threads, "seeds": seeds})
    rows_out = []
    plain: dict[tuple, dict[str, float]] = {}
    done: dict[str, dict[str, float]] = {}
    if cache is not None and Path(cache).exists():
        for line in Path(cache).read_text().splitlines():
            if line.strip():
                rec = json.loads(line)
                done[rec["key"]] = rec["metrics"]
    start = time.perf_counter()
    skipped: list[str] = []
    for cfg in tqdm(cfgs, desc="lrcnn bench", unit="config"):
        for seed in range(seeds):
            full = {**cfg, "threads": threads, "seed": seed}
            ck = json.dumps(full, sort_keys=True)
            key = (cfg["model"], cfg["res"], cfg["batch"], seed)
            late = max_minutes is not None and time.perf_counter() - start > 60 * max_minutes
            if ck in done:
                m = dict(done[ck])
            elif late or (cfg["method"] != "plain" and key not in plain):
                skipped.append(f"{cfg['model']} {cfg['res']} batch {cfg['batch']} {_label(cfg)}")
                continue
            else:
                m = _spawn(full)
                if cache is not None:
                    with open(cache, "a") as fh:
                        fh.write(json.dumps({"key": ck, "metrics": m}) + "\n")
            if cfg["method"] == "plain":
                plain[key] = m
            p = plain[key]
            m["mem_ratio"] = m["act_peak_mib"] / p["act_peak_mib"]
            m["saved_ratio"] = m["saved_mib"] / max(p["saved_mib"], 1e-9)
            m["time_ratio"] = m["step_s"] / p["step_s"]
            m["pred_over_meas"] = m["predicted_mib"] / max(m["act_peak_mib"], 1e-9)
            res.add(_label(cfg), seed, m, model=cfg["model"], res=cfg["res"], batch=cfg["batch"])
            rows_out.append(
                [
                    cfg["model"],
                    cfg["res"],
                    cfg["batch"],
                    _label(cfg),
                    f"{m['act_peak_mib']:.0f}",
                    f"{m['mem_ratio']:.2f}",
                    f"{m['total_peak_mib']:.0f}",
                    f"{m['saved_mib']:.0f}",
                    f"{m['predicted_mib']:.0f}",
                    f"{m['pred_over_meas']:.2f}",
                    f"{m['step_s']:.2f}",
                    f"{m['time_ratio']:.2f}",
                    f"{m['predicted_time']:.2f}",
                    f"{m['grad_rel_err']:.1e}",
                ]
            )
    headers = [
        "model",
        "res",
        "batch",
        "method",
        "act peak MiB",
        "ratio",
        "total peak MiB",
        "saved MiB",
        "predicted MiB",
        "pred/meas",
        "step s",
        "time ratio",
        "pred time",
        "grad err (f64)",
    ]
    table = markdown_table(headers, rows_out)
    outdir = Path(out)
    outdir.mkdir(parents=True, exist_ok=True)
    png = _plot(res, outdir / "lrcnn.png")
    device = (
        "CUDA max_memory_allocated"
        if any(r.metrics["cuda"] for r in res.records)
        else ("CPU peak RSS above the warmed-up steady state")
    )
    sections = [
        "## Peak activation memory and step time\n\n"
        f"Activation peak = {device} during one forward+backward (weights, gradients and "
        "optimizer state excluded), ratio = to plain training of the same workload; saved = "
        "bytes autograd keeps for backward (saved_tensors_hooks); predicted = `lrcnn.plan`'s "
        "shape-only prediction of the activation peak (pred time: of the step-time ratio, from "
        "FLOPs); step s = the faster of two timed steps after warm-up, with glibc malloc in its "
        f"steady state, {threads} torch thread(s); grad err = max per-tensor relative error of "
        "parameter gradients against plain training on the first two images of the batch, in "
        "float64. Methods: "
        "`checkpoint` = `checkpoint_sequential` over the trunk with the planner's best segment "
        "count; `overlap-R` / `two_phase-R` = RowCentric with R strips on the depth the planner "
        "picks; `+ckpt` = plus `checkpoint_sequential` on the rest of the trunk.\n\n" + table,
        f"![memory vs time]({png.name})",
    ]
    if skipped:
        sections.append(
            "## Not measured\n\nThe time limit of this run (`max_minutes`) was reached before: "
            + "; ".join(skipped)
            + "."
        )
    write_report(outdir / "lrcnn.md", "lrcnn benchmark", sections, res)
    return table


def _plot(res: Any, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups: dict[tuple, list] = {}
    for r in res.records:
        groups.setdefault((r.setting["model"], r.setting["res"], r.setting["batch"]), []).append(r)
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 4), squeeze=False)
    for ax, (key, recs) in zip(axes[0], groups.items()):
        for r in recs:
            ax.scatter(r.metrics["time_ratio"], r.metrics["mem_ratio"], s=30)
            ax.annotate(r.method, (r.metrics["time_ratio"], r.metrics["mem_ratio"]), fontsize=7)
        ax.set_xlabel("step time / plain")
        ax.set_ylabel("activation peak / plain")
        ax.set_title(f"{key[0]} {key[1]}x{key[1]} batch {key[2]}")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(run_config(json.loads(sys.argv[2]))))
    else:
        raise SystemExit("usage: python -m lrcnn.bench --worker JSON")
