"""The benchmark: masks x {supervised, label-free} x sparsity on digits, MLP and small CNN, paired seeds.

Protocol (per model and seed; the seed fixes the data split, the teacher and the student's init, so the
methods are paired): a dense teacher is trained with labels on one half of the training images; the
student (same architecture, its own init) is pruned before training by random / SNIP / GraSP / SynFlow /
LNPT (LG) masks at sparsities {0.9, 0.95, 0.98} (every mask keeps exactly the same number of weights),
then trained on the other half either with labels (cross-entropy) or without (the label-free objective,
teacher queried online). References: the dense student trained with labels, and the teacher. The
learning-gap diagnostic is logged for the LNPT label-free and SNIP supervised students at 95%.

Against layer collapse (global LNPT scores at 95% leave the classifier head a few weights, GraSP can
empty a hidden layer at 98%), every mask alike leaves the head dense (`exclude_head`) and keeps at
least `min_density` of each masked tensor; both are fixed in the config, never tuned on test data.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from maskloop import MaskedTraining, WeightMask, evaluate, fit, report, seed_everything
from torch import nn

from lnpt.baselines import baseline_mask
from lnpt.data import DigitsSplit, load_digits_split
from lnpt.diagnostic import LearningGapDiagnostic, spearman
from lnpt.learning_gap import LearningGap, head_pattern, prune
from lnpt.models import MLP, SmallCNN
from lnpt.training import LabelFreeTrainer

__all__ = ["BenchConfig", "run_bench"]

MASKS = ("random", "snip", "grasp", "synflow", "lnpt")
TRAININGS = ("supervised", "label-free")


@dataclass
class BenchConfig:
    """What the benchmark runs (the defaults are the full run; `quick()` the CI-sized one)."""

    models: tuple[str, ...] = ("mlp", "cnn")
    seeds: int = 5
    sparsities: tuple[float, ...] = (0.9, 0.95, 0.98)
    masks: tuple[str, ...] = MASKS
    epochs: dict[str, int] = field(default_factory=lambda: {"mlp": 40, "cnn": 30})
    teacher_epochs: dict[str, int] = field(default_factory=lambda: {"mlp": 60, "cnn": 40})
    cnn_channels: tuple[int, int, int] = (16, 32, 64)
    lr: float = 1e-2
    batch_size: int = 64
    kd_weight: float = 1.0
    score_kd_weight: float = 5.0
    temperature: float = 4.0
    synflow_rounds: int = 100
    lnpt_rounds: int = 1
    diagnostic_sparsity: float = 0.95
    # Against layer collapse, identical for every mask: the classifier head (last Linear) stays
    # dense and every masked tensor keeps at least `min_density` of its weights.
    exclude_head: bool = True
    min_density: float = 0.01

    @classmethod
    def quick(cls, seeds: int = 5) -> BenchConfig:
        """The CI-sized run: all factors, fewer epochs."""
        return cls(
            seeds=seeds,
            epochs={"mlp": 30, "cnn": 15},
            teacher_epochs={"mlp": 40, "cnn": 25},
            synflow_rounds=50,
        )


def _model(name: str, cfg: BenchConfig) -> nn.Module:
    if name == "mlp":
        return MLP(64, (300, 100), 10)
    if name == "cnn":
        return SmallCNN(cfg.cnn_channels, 10)
    raise ValueError(f"model must be 'mlp' or 'cnn', got {name!r}")


def _ce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


def _train_supervised(
    model: nn.Module,
    data: DigitsSplit,
    part: str,
    epochs: int,
    cfg: BenchConfig,
    seed: int,
    mask: WeightMask | None = None,
    callbacks: Sequence[Any] = (),
) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    cbs = list(callbacks)
    if mask is not None:
        cbs.insert(0, MaskedTraining(model, mask, opt))
    try:
        fit(
            model,
            data.loader(part, cfg.batch_size, shuffle=True, generator=gen),
            epochs=epochs,
            optimizer=opt,
            loss_fn=_ce,
            callbacks=cbs,
            progress=False,
        )
    finally:
        for cb in cbs:
            if isinstance(cb, MaskedTraining):
                cb.remove()


def _mask(
    method: str,
    student: nn.Module,
    teacher: nn.Module,
    data: DigitsSplit,
    sparsity: float,
    cfg: BenchConfig,
    seed: int,
    input_shape: tuple[int, ...],
) -> WeightMask:
    exclude = head_pattern(student) if cfg.exclude_head else None
    if method == "lnpt":
        return prune(
            student,
            teacher,
            data.loader("student", 128, labels=False),
            sparsity,
            rounds=cfg.lnpt_rounds,
            exclude=exclude,
            min_density=cfg.min_density,
            kd_weight=cfg.score_kd_weight,
            temperature=cfg.temperature,
        )
    return baseline_mask(
        method,
        student,
        sparsity,
        data=data.loader("student", 128),
        input_shape=input_shape,
        generator=torch.Generator().manual_seed(seed + 1000),
        synflow_rounds=cfg.synflow_rounds,
        exclude=exclude,
        min_density=cfg.min_density,
    )


def _accuracy(model: nn.Module, data: DigitsSplit) -> float:
    return evaluate(model, data.loader("test", 256))["accuracy"]


def run_bench(
    cfg: BenchConfig, out: str | Path, command: str, progress: bool = True
) -> report.Results:
    """Run the factorial, write `lnpt.{md,json,png}` under `out`, and return the results."""
    from tqdm.auto import tqdm

    torch.set_num_threads(2)
    out = Path(out)
    res = report.Results("lnpt", command, config=asdict(cfg))
    curves: dict[tuple[str, str], list[list[dict[str, float]]]] = {}
    jobs = [(m, s) for m in cfg.models for s in range(cfg.seeds)]
    bar = tqdm(jobs, desc="lnpt bench", disable=not progress)
    for model_name, seed in bar:
        bar.set_postfix(model=model_name, seed=seed)
        t0 = time.perf_counter()
        image = model_name == "cnn"
        data = load_digits_split(seed, image=image)
        input_shape = tuple(data.student_x.shape[1:])
        seed_everything(10_000 + seed)
        teacher = _model(model_name, cfg)
        _train_supervised(teacher, data, "teacher", cfg.teacher_epochs[model_name], cfg, seed)
        teacher.eval()
        res.add(
            "teacher (dense, other half)",
            seed,
            {"accuracy": _accuracy(teacher, data)},
            model=model_name,
            sparsity=0.0,
        )
        seed_everything(seed)
        init = _model(model_name, cfg)
        dense = copy.deepcopy(init)
        _train_supervised(dense, data, "student", cfg.epochs[model_name], cfg, seed)
        res.add(
            "dense supervised",
            seed,
            {"accuracy": _accuracy(dense, data)},
            model=model_name,
            sparsity=0.0,
        )
        finals: list[tuple[float, float, float]] = []  # (lg, weight distance, accuracy)
        for sparsity in cfg.sparsities:
            for method in cfg.masks:
                mask = _mask(method, init, teacher, data, sparsity, cfg, seed, input_shape)
                for training in TRAININGS:
                    student = copy.deepcopy(init)
                    mask.apply_(student)
                    diag = None
                    want_diag = math.isclose(sparsity, cfg.diagnostic_sparsity) and (
                        (method, training) in (("lnpt", "label-free"), ("snip", "supervised"))
                    )
                    if want_diag:
                        diag = LearningGapDiagnostic(
                            student,
                            teacher,
                            data.loader("test", 256, labels=False),
                            data.loader("test", 256),
                        )
                    cbs = [diag] if diag is not None else []
                    if training == "supervised":
                        _train_supervised(
                            student, data, "student", cfg.epochs[model_name], cfg, seed, mask, cbs
                        )
                    else:
                        gen = torch.Generator().manual_seed(seed)
                        LabelFreeTrainer(
                            student,
                            teacher,
                            mask,
                            lr=cfg.lr,
                            kd_weight=cfg.kd_weight,
                            temperature=cfg.temperature,
                        ).fit(
                            data.loader(
                                "student", cfg.batch_size, shuffle=True, labels=False, generator=gen
                            ),
                            cfg.epochs[model_name],
                            callbacks=cbs,
                            progress=False,
                        )
                    acc = _accuracy(student, data)
                    zeros = sum(int((student.get_parameter(n) == 0).sum()) for n in mask.names)
                    metrics = {
                        "accuracy": acc,
                        "surviving": float(mask.numel - mask.num_pruned),
                        "masked_weights": float(mask.numel),
                        "min_layer_density": min(1.0 - r["sparsity"] for r in mask.report()),
                        "zeros_ok": float(zeros >= mask.num_pruned),
                    }
                    probe_s = LearningGap(student, teacher, kd_weight=0.0)
                    probe_s.setup([data.test_x])
                    lg = probe_s.feature_gap([data.test_x])
                    wd = math.sqrt(
                        sum(
                            float((p.detach() - q.detach()).pow(2).sum())
                            for p, q in zip(student.parameters(), init.parameters())
                        )
                    )
                    metrics["learning_gap"] = lg
                    metrics["weight_distance"] = wd
                    finals.append((lg, wd, acc))
                    res.add(
                        f"{method}+{training}", seed, metrics, model=model_name, sparsity=sparsity
                    )
                    if diag is not None:
                        corr = diag.correlations()
                        curves.setdefault((model_name, f"{method}+{training}"), []).append(
                            diag.rows
                        )
                        clean = {f"rho_{k}": v for k, v in corr.items() if math.isfinite(v)}
                        if clean:
                            res.add(
                                f"diagnostic {method}+{training}",
                                seed,
                                clean,
                                model=model_name,
                                sparsity=sparsity,
                            )
        lgs, wds, accs = zip(*finals)
        across = {
            "rho_learning_gap": spearman(lgs, accs),
            "rho_weight_distance": spearman(wds, accs),
        }
        across = {k: v for k, v in across.items() if math.isfinite(v)}
        if across:
            res.add(
                "diagnostic across final students", seed, across, model=model_name, sparsity=-1.0
            )
        bar.write(f"{model_name} seed {seed}: {time.perf_counter() - t0:.1f}s")
    _write(res, cfg, curves, out)
    return res


def _table_sections(res: report.Results, cfg: BenchConfig) -> list[str]:
    sections = []
    for model_name in cfg.models:
        sub = report.Results("lnpt", res.command, res.config)
        sub.records = [
            r
            for r in res.records
            if r.setting.get("model") == model_name
            and r.setting.get("sparsity", 0) >= 0
            and not r.method.startswith("diagnostic")
        ]
        methods = [m for m in sub.methods]
        sections.append(f"## {model_name.upper()}: test accuracy (%)\n")
        sections.append(
            "Mean ± std over paired seeds; Δ is the paired difference to SNIP with supervised "
            "training (95% bootstrap CI). Every mask at a sparsity keeps the same number of weights.\n"
        )
        sections.append(
            sub.table(
                "accuracy",
                baseline="snip+supervised" if "snip+supervised" in methods else None,
                setting_keys=["sparsity"],
                scale=100.0,
                methods=methods,
            )
        )
        dense = sub.values("accuracy", "dense supervised")
        lf = sub.values("accuracy", "lnpt+label-free", sparsity=0.95)
        snip = sub.values("accuracy", "snip+supervised", sparsity=0.95)
        lines = []
        if dense and lf:
            shared = sorted(set(dense) & set(lf))
            d = report.paired_difference([lf[s] for s in shared], [dense[s] for s in shared])
            lines.append(
                f"- LNPT label-free at 95% minus dense supervised: {d.format(2, 100)} points "
                f"(goal: > -2) -> {'met' if d.mean > -0.02 else 'missed'}"
            )
        if snip and lf:
            shared = sorted(set(snip) & set(lf))
            d = report.paired_difference([lf[s] for s in shared], [snip[s] for s in shared])
            lines.append(
                f"- LNPT label-free at 95% minus SNIP supervised at 95%: {d.format(2, 100)} "
                f"points (goal: > 0) -> {'met' if d.mean > 0 else 'missed'}"
            )
        if lines:
            sections.append("Goals at 95% sparsity:\n\n" + "\n".join(lines) + "\n")
    diag_rows = []
    for model_name in cfg.models:
        for r_method in dict.fromkeys(
            r.method
            for r in res.records
            if r.method.startswith("diagnostic") and r.setting.get("model") == model_name
        ):
            for key in ("rho_learning_gap", "rho_weight_distance"):
                vals = res.values(key, r_method, model=model_name)
                if vals:
                    diag_rows.append(
                        [
                            model_name,
                            r_method.removeprefix("diagnostic "),
                            key[4:],
                            len(vals),
                            report.format_mean_std(vals.values(), 2),
                        ]
                    )
    if diag_rows:
        sections.append("## Learning-gap diagnostic: Spearman(metric, test accuracy)\n")
        sections.append(
            "Per epoch while one student trains (95% sparsity), or across all final students of a "
            "seed (every mask, training and sparsity). The paper predicts a strong negative rank "
            "correlation for the learning gap (smaller gap, higher accuracy) and a weak one for the "
            "weight distance.\n"
        )
        sections.append(
            report.markdown_table(["model", "run", "metric", "n", "Spearman ρ"], diag_rows)
        )
    return sections


def _write(res: report.Results, cfg: BenchConfig, curves: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sections = _table_sections(res, cfg)
    sections.append("![accuracy vs sparsity and diagnostic curves](lnpt.png)\n")
    guard = []
    if cfg.exclude_head:
        guard.append("the classifier head (last Linear) is left dense and not counted")
    if cfg.min_density > 0:
        guard.append(f"every masked tensor keeps at least {cfg.min_density:.0%} of its weights")
    sections.append(
        "Sparsity counts zeros in the masked Linear/Conv weights only"
        + (
            " (against layer collapse, for every mask alike: " + "; ".join(guard) + ")"
            if guard
            else ""
        )
        + "; unstructured zeros save no time on dense kernels.\n"
    )
    report.write_report(
        out / "lnpt.md", "lnpt benchmark: label-free pruning on digits", sections, res
    )
    try:
        _plot(res, cfg, curves, out / "lnpt.png")
    except ImportError:
        print("matplotlib not installed: skipped lnpt.png (pip install 'lnpt[bench]')")


def _plot(res: report.Results, cfg: BenchConfig, curves: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_models = len(cfg.models)
    fig, axes = plt.subplots(2, n_models, figsize=(5.5 * n_models, 8.5), squeeze=False)
    for j, model_name in enumerate(cfg.models):
        ax = axes[0, j]
        for method in [m for m in res.methods if "+" in m and not m.startswith("diagnostic")]:
            xs, mu, sd = [], [], []
            for s in cfg.sparsities:
                vals = list(res.values("accuracy", method, model=model_name, sparsity=s).values())
                if vals:
                    xs.append(s)
                    mu.append(100 * np.mean(vals))
                    sd.append(100 * np.std(vals, ddof=1) if len(vals) > 1 else 0.0)
            style = "-" if method.endswith("label-free") else "--"
            ax.errorbar(xs, mu, yerr=sd, marker="o", capsize=3, linestyle=style, label=method)
        dense = list(res.values("accuracy", "dense supervised", model=model_name).values())
        if dense:
            ax.axhline(100 * np.mean(dense), color="k", lw=1, label="dense supervised")
        ax.set_title(f"{model_name.upper()}: test accuracy vs sparsity")
        ax.set_xlabel("sparsity (fraction removed)")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        ax = axes[1, j]
        for (m_name, run), rows_list in curves.items():
            if m_name != model_name:
                continue
            for key, color in (
                ("learning_gap", "C0"),
                ("weight_distance", "C1"),
                ("test_accuracy", "C2"),
            ):
                arr = np.array([[r[key] for r in rows] for rows in rows_list])
                span = arr.max(axis=1, keepdims=True) - arr.min(axis=1, keepdims=True)
                norm = (arr - arr.min(axis=1, keepdims=True)) / np.where(span == 0, 1, span)
                style = "-" if run.endswith("label-free") else "--"
                ax.plot(norm.mean(0), style, color=color, label=f"{key} ({run})")
        ax.set_title(f"{model_name.upper()}: diagnostic curves at {cfg.diagnostic_sparsity:.0%}")
        ax.set_xlabel("epoch")
        ax.set_ylabel("min-max normalised (mean over seeds)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
