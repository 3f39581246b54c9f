"""Why validation and test disagree: one student's two protocols side by side, seed by seed.

The scoring ablation (`lnpt.ablation`, the *validation protocol*) and the test benchmark
(`lnpt.bench`, the *test protocol*) share the teacher (the teacher half, the same seed and epochs),
the student's initialisation, the epochs, the batch size, the learning rate and the scoring rule.
They differ in two things only:

- the data the student is scored and trained on: under the validation protocol 75% of its half
  (`DigitsSplit.validation`; 539 of 719 digits), so also a quarter fewer steps at the same epochs,
  and its 512 scoring inputs are drawn from that part;
- the data accuracy is read on: the held-out quarter of the student's half (180 digits) against
  the test set (360 digits).

`protocol_check` runs both protocols per seed for the masks and trainings that decide the goal
(without the benchmark's diagnostic callback, so it also checks that the benchmark's and the
ablation's records are reproduced) and reads the validation-protocol students on the test set as
well: that cell separates "trained on less data" from "read on another, smaller set". It also
tracks training and validation accuracy of the validation-protocol students at several epoch
budgets (whether the sparse students are undertrained) and the anatomy of every mask (kept
weights per layer, effective density, dead channels). The test set never decides anything here.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop import evaluate, report, seed_everything
from maskloop.checks import check_positive_int

from lnpt.anatomy import dead_units, effective_density
from lnpt.bench import (
    MODELS,
    BenchConfig,
    Progress,
    _Snapshots,
    make_mask,
    train_label_free,
    train_supervised,
    train_teacher,
)
from lnpt.runtime import with_flush_denormal

__all__ = ["PROTOCOL_ARMS", "ProtocolConfig", "protocol_check"]

PROTOCOLS = ("validation", "test")
# The arms that can be read in both protocols: the goal's pair, SNIP's mask under the same
# label-free training, and the dense reference (the gap to dense). The default leaves out
# SNIP+label-free (CPU is scarce; the ablation and the benchmark both have it).
PROTOCOL_ARMS = ("lnpt+label-free", "snip+supervised", "snip+label-free", "dense+supervised")
DEFAULT_PROTOCOL_ARMS = ("lnpt+label-free", "snip+supervised", "dense+supervised")


@dataclass
class ProtocolConfig:
    """What `protocol_check` runs: a model, seeds, one sparsity, the epoch budgets read on the
    validation protocol (the benchmark's own budget among them) and the benchmark's config."""

    model: str = "cnn"
    seeds: int = 5
    sparsity: float = 0.95
    budgets: tuple[int, ...] = (30, 60)
    validation_fraction: float = 0.25
    arms: tuple[str, ...] = DEFAULT_PROTOCOL_ARMS
    bench: BenchConfig = field(default_factory=BenchConfig.validation_record)

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.model not in MODELS:
            raise ValueError(f"model {self.model!r} unknown; choose from {sorted(MODELS)}")
        check_positive_int("seeds", self.seeds)
        bad = [a for a in self.arms if a not in PROTOCOL_ARMS]
        if bad or not self.arms:
            raise ValueError(f"arms must be a non-empty subset of {PROTOCOL_ARMS}, got {bad}")
        if not self.budgets or any(
            isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in self.budgets
        ):
            raise ValueError(f"budgets must be positive ints, got {self.budgets!r}")
        if self.bench.epochs[self.model] not in self.budgets:
            raise ValueError(
                f"budgets {self.budgets} must include the benchmark's {self.bench.epochs[self.model]} "
                "epochs (the cell compared with its records)"
            )


def _train(
    arm: str,
    init: torch.nn.Module,
    teacher: torch.nn.Module,
    data: Any,
    mask: Any,
    epochs: int,
    budgets: tuple[int, ...],
    cfg: BenchConfig,
    seed: int,
    bs: int,
) -> list[torch.nn.Module]:
    """Train `arm` for `epochs` from `init`; eval-mode copies at each epoch of `budgets` (no
    scheduler, so the copy at e epochs is the student a run of e epochs gives)."""
    student = copy.deepcopy(init)
    if mask is not None:
        mask.apply_(student)
    snaps = _Snapshots(budgets)
    if arm.endswith("+supervised"):
        train_supervised(student, data, "student", epochs, cfg, seed, mask, [snaps], bs)
    else:
        train_label_free(student, teacher, data, epochs, cfg, seed, mask, [snaps], bs)
    return snaps.copies


def _acc(model: torch.nn.Module, data: Any, part: str) -> float:
    return evaluate(model, data.loader(part, 256))["accuracy"]


def _check_one(seed: int, pcfg: ProtocolConfig, progress: Progress) -> list[dict[str, Any]]:
    cfg = pcfg.bench
    spec = MODELS[pcfg.model]
    full = spec.data(seed)
    datasets = {"test": full, "validation": full.validation(pcfg.validation_fraction, seed)}
    seed_everything(seed)
    init = spec.build()
    bs = cfg.batch_sizes.get(pcfg.model, 64)
    epochs = cfg.epochs[pcfg.model]
    # One teacher serves both protocols: the validation split moves part of the student's half
    # only, and `train_teacher` reads the teacher's half alone (the tests check both).
    teacher_box: list[torch.nn.Module] = []

    def teacher() -> torch.nn.Module:
        if not teacher_box:
            teacher_box.append(train_teacher(pcfg.model, full, cfg, seed)[-1])
        return teacher_box[0]

    setting = {"model": pcfg.model, "sparsity": pcfg.sparsity}
    keys = []
    if "teacher" not in progress.done:
        progress.check()
        rec = {"test_accuracy": _acc(teacher(), full, "test")}
        progress.put("teacher", [_record("teacher", seed, rec, protocol="both", **setting)])
    keys.append("teacher")
    for protocol in PROTOCOLS:
        data = datasets[protocol]
        budgets = pcfg.budgets if protocol == "validation" else (epochs,)
        masks: dict[str, Any] = {}
        for arm in pcfg.arms:
            key = f"{protocol}/{arm}"
            keys.append(key)
            if key in progress.done:
                continue
            progress.check()
            method = arm.split("+")[0]
            records = []
            if method != "dense" and method not in masks:
                masks[method] = make_mask(
                    method, init, teacher(), data, pcfg.sparsity, cfg, seed, spec
                )
                records += _anatomy_records(method, init, masks[method], seed, protocol, setting)
            copies = _train(
                arm,
                init,
                teacher(),
                data,
                masks.get(method),
                max(budgets),
                budgets,
                cfg,
                seed,
                bs,
            )
            for e, model in zip(sorted(budgets), copies):
                m = {
                    "accuracy": _acc(model, data, "test"),
                    "train_accuracy": _acc(model, data, "student"),
                }
                if protocol == "validation" and e == epochs:
                    m["test_accuracy"] = _acc(model, full, "test")
                records.append(_record(arm, seed, m, protocol=protocol, epochs=e, **setting))
            progress.put(key, records)
    return [r for key in keys for r in progress.done[key]]


def _record(method: str, seed: int, metrics: dict[str, float], **setting: Any) -> dict[str, Any]:
    return {"method": method, "seed": seed, "setting": setting, "metrics": metrics}


def _anatomy_records(
    method: str,
    init: torch.nn.Module,
    mask: Any,
    seed: int,
    protocol: str,
    setting: dict[str, Any],
) -> list[dict[str, Any]]:
    """Per masked tensor: kept weights, their share, effective share, dead output units."""
    shape = MODELS[setting["model"]].input_shape
    eff = effective_density(init, mask, shape)
    dead = dead_units(init, mask, shape)
    out = []
    for name, m in mask.items():
        metrics = {
            "kept": float(m.sum()),
            "density": float(m.float().mean()),
            "effective": eff[name],
            "dead_units": float(dead[name][0]),
            "units": float(dead[name][1]),
        }
        out.append(
            _record(f"{method} mask", seed, metrics, protocol=protocol, layer=name, **setting)
        )
    return out


@with_flush_denormal
def protocol_check(
    pcfg: ProtocolConfig,
    out: str | Path,
    command: str,
    resume: bool = False,
    budget_s: float | None = None,
    progress: bool = True,
    threads: int = 2,
) -> report.Results:
    """Run both protocols seed by seed (cached per seed in `out/cache/`, `resume` reuses them) and
    write `lnpt_protocol_<model>.{md,json}` under `out`.

    `threads` decides the results, not only the speed: the benchmark's and the ablation's runs
    used 2, and another count changes the floating-point summation order, hence the teacher and
    every student (seed 0's digits CNN teacher: 90.00% test accuracy at 2 threads, 90.83% at 1).
    So the thread count is part of the cache name (`lnpt.bench.threads_tag`), and a count other
    than 2 writes `lnpt_protocol_<model>_threads<n>` (a second realisation of the same seeds)."""

    from lnpt.ablation import run_seed_check
    from lnpt.bench import open_cached_run

    out, cache, res, deadline = open_cached_run(pcfg, out, command, threads, budget_s)
    fixed = {k: v for k, v in asdict(pcfg).items() if k != "seeds"}
    fixed["bench"] = pcfg.bench.key_dict()
    left = run_seed_check(
        res,
        pcfg.model,
        pcfg.seeds,
        fixed,
        lambda seed, steps: _check_one(seed, pcfg, steps),
        cache,
        "protocol",
        threads,
        resume=resume,
        deadline=deadline,
        desc="protocol",
        progress=progress,
    )
    sections = protocol_sections(res, pcfg)
    if left:
        sections.append(f"Unfinished (run again with `--resume`): {', '.join(left)}.\n")
    stem = f"lnpt_protocol_{pcfg.model}" + (f"_threads{threads}" if threads != 2 else "")
    report.write_report(
        out / f"{stem}.md",
        f"lnpt: validation vs test protocol, {MODELS[pcfg.model].title}",
        sections,
        res,
    )
    return res


def _pct(v: float) -> str:
    return f"{100 * v:.2f}"


def protocol_sections(res: report.Results, pcfg: ProtocolConfig) -> list[str]:
    """The report's tables: per-seed accuracies and paired Δ in the three cells, the epoch budgets,
    and the masks' anatomy."""
    cfg = pcfg.bench
    epochs = cfg.epochs[pcfg.model]
    sections: list[str] = []
    a, b = "lnpt+label-free", "snip+supervised"
    cells = {
        "validation protocol, read on validation": ("validation", "accuracy"),
        "validation protocol, read on test": ("validation", "test_accuracy"),
        "test protocol, read on test": ("test", "accuracy"),
    }
    vals = {
        (cell, arm): res.values(metric, arm, protocol=protocol, epochs=epochs)
        for cell, (protocol, metric) in cells.items()
        for arm in (a, b)
    }
    teacher = res.values("test_accuracy", "teacher")
    seeds = sorted(teacher)
    if not seeds or not all(vals[(c, arm)] for c in cells for arm in (a, b)):
        return ["No seed has finished both protocols yet.\n"]
    rows = []
    for s in seeds:
        row: list[Any] = [s, _pct(teacher[s])]
        for c in cells:
            if s in vals[(c, a)] and s in vals[(c, b)]:
                x, y = vals[(c, a)][s], vals[(c, b)][s]
                row += [_pct(x), _pct(y), f"{100 * (x - y):+.2f}"]
            else:
                row += ["—"] * 3
        rows.append(row)
    summary: list[Any] = ["Δ mean [95% CI]", ""]
    spread: list[Any] = ["std of Δ over seeds", ""]
    for c in cells:
        shared = sorted(set(vals[(c, a)]) & set(vals[(c, b)]))
        xs = [vals[(c, a)][s] for s in shared]
        ys = [vals[(c, b)][s] for s in shared]
        d = report.paired_difference(xs, ys) if len(shared) > 1 else None
        summary += [
            report.format_mean_std(xs, 2, 100),
            report.format_mean_std(ys, 2, 100),
            d.format(2, 100) if d else "—",
        ]
        diffs = 100 * (np.array(xs) - np.array(ys))
        spread += ["", "", f"{diffs.std(ddof=1):.2f}" if len(diffs) > 1 else "—"]
    rows += [summary, spread]
    heads = ["seed", "teacher (test)"]
    for c in ("val/val", "val/test", "test/test"):
        heads += [f"LNPT LF {c}", f"SNIP sup {c}", f"Δ {c}"]
    sections.append(
        f"## {pcfg.sparsity:.0%} sparsity: LNPT label-free vs SNIP supervised, per seed\n"
    )
    sections.append(
        "Accuracy %, the benchmark's budget "
        f"({epochs} epochs). val/val: trained on 75% of the student's half, read on the held-out "
        "quarter (the ablation's protocol); val/test: the same students read on the test set; "
        "test/test: trained on the whole half, read on the test set (the benchmark's protocol). "
        "Δ = LNPT − SNIP, points; CI: paired bootstrap over seeds.\n"
    )
    sections.append(report.markdown_table(heads, rows))
    rows = []
    for arm in pcfg.arms:
        for e in pcfg.budgets:
            tr = res.values("train_accuracy", arm, protocol="validation", epochs=e)
            va = res.values("accuracy", arm, protocol="validation", epochs=e)
            if tr:
                rows.append(
                    [
                        arm,
                        e,
                        len(tr),
                        report.format_mean_std(tr.values(), 2, 100),
                        report.format_mean_std(va.values(), 2, 100),
                    ]
                )
    sections.append("## Epoch budget (validation protocol)\n")
    sections.append(
        "Training accuracy (on the 75% the student trains on, labels read only here) and "
        "validation accuracy after e epochs, mean ± std over seeds; one run per seed, read at "
        f"each budget (no scheduler, so the {epochs}-epoch row is the ablation's student).\n"
    )
    sections.append(
        report.markdown_table(["arm", "epochs", "n", "train accuracy %", "val accuracy %"], rows)
    )
    rows = []
    for method in [m for m in res.methods if m.endswith(" mask")]:
        for protocol in PROTOCOLS:
            layers = dict.fromkeys(
                r.setting["layer"]
                for r in res.records
                if r.method == method and r.setting.get("protocol") == protocol
            )
            for layer in layers:
                v = {
                    k: list(res.values(k, method, protocol=protocol, layer=layer).values())
                    for k in ("kept", "density", "effective", "dead_units", "units")
                }
                rows.append(
                    [
                        method.removesuffix(" mask"),
                        protocol,
                        layer,
                        len(v["kept"]),
                        report.format_mean_std(v["kept"], 0),
                        report.format_mean_std(v["density"], 1, 100),
                        report.format_mean_std(v["effective"], 1, 100),
                        f"{np.mean(v['dead_units']):.1f} ({min(v['dead_units']):.0f}-"
                        f"{max(v['dead_units']):.0f}) / {v['units'][0]:.0f}",
                    ]
                )
    if rows:
        sections.append(f"## Masks at {pcfg.sparsity:.0%}: where the kept weights are\n")
        sections.append(
            "Mean ± std over seeds: kept weights, kept %, effective % (kept and on an "
            "input-output path) and dead output channels (mean, range over seeds); the head is "
            "dense and not counted.\n"
        )
        sections.append(
            report.markdown_table(
                ["mask", "protocol", "layer", "n", "kept", "kept %", "effective %", "dead units"],
                rows,
            )
        )
    return sections
