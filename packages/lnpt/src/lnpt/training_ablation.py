"""Choosing the label-free *training* objective on a validation split (`lnpt bench --training-ablation`).

The scoring ablation (`lnpt.ablation`) fixed the mask; this one fixes the mask (LNPT's default score)
and varies how the pruned student learns from the teacher without labels. Per model and seed: the
benchmark's teacher (its half), the student's half split 75 / 25 into training and validation parts
(`DigitsSplit.validation`), one LNPT mask at each sparsity, then the student trained label-free with
every variant of `TRAINING_VARIANTS`, and SNIP with supervised training as the reference; validation
accuracy is recorded, the test set is never touched. `choose` picks the variant with the highest mean
validation accuracy over all models, sparsities and seeds: the benchmark's `TRAINING_DEFAULTS`.

Every variant stays within the abstract (a mature teacher guides learning online on unlabeled data):
it changes what the student is asked to match (the teacher's features, soft or hard outputs), how
strongly, and on which inputs. Each variant names only what it changes from `TRAINING_BASE`, the
objective used before this ablation, so its meaning never depends on the current default.
"""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from maskloop import evaluate, report, seed_everything
from maskloop.checks import check_positive_int

from lnpt.ablation import (
    best_variant,
    measured_models,
    model_sections,
    report_hash,
    run_model_units,
)
from lnpt.bench import (
    MODELS,
    BenchConfig,
    Progress,
    _accuracy,
    make_mask,
    open_cached_run,
    train_label_free,
    train_supervised,
    train_teacher,
)
from lnpt.learning_gap import DEFAULT_ROUNDS, SCORE_DEFAULTS
from lnpt.runtime import with_flush_denormal
from lnpt.training import TRAINING_BASE

__all__ = [
    "DEFAULT_TRAINING_VARIANTS",
    "TRAINING_BASE",
    "TRAINING_CHANGES",
    "TRAINING_VARIANTS",
    "TrainingAblationConfig",
    "choose_training",
    "run_training_ablation",
]

# What each variant assumes (the option docstrings of `LearningGap` / `LabelFreeObjective` say more):
TRAINING_CHANGES: dict[str, dict[str, Any]] = {
    # the previous objective: the teacher's features are worth matching in the student's own basis
    "features+soft": {},
    # only the teacher's outputs carry its knowledge; the feature basis of the student is free
    "soft": {"feature_weight": 0.0},
    "soft-t2": {"feature_weight": 0.0, "temperature": 2.0},
    "soft-t1": {"feature_weight": 0.0, "temperature": 1.0},
    # only the teacher's decisions are reliable (pseudo-labels), optionally only confident ones
    "hard": {"feature_weight": 0.0, "targets": "hard"},
    "hard-confident-0.9": {"feature_weight": 0.0, "targets": "hard", "confidence": 0.9},
    "features+hard": {"targets": "hard"},
    # the feature gap as a weak regulariser of the soft-logit objective
    "features-0.1+soft": {"feature_weight": 0.1},
    # the feature gap read basis-free: after a trained linear adaptor, or as batch similarity
    "linear-adaptor+soft": {"adaptor": "linear"},
    "relation+soft": {"gap": "relation", "normalize": False},
    # the teacher's function between unlabeled inputs too (blends within a batch)
    "soft-mixup-0.5": {"feature_weight": 0.0, "mixup": 0.5},
}
TRAINING_VARIANTS: dict[str, dict[str, Any]] = {
    k: {**TRAINING_BASE, **v} for k, v in TRAINING_CHANGES.items()
}

# The variants the committed ablation runs (CPU is scarce): `features+hard`, `linear-adaptor+soft`
# and `soft-mixup-0.5` were each well below `soft` on the digits CNN in a 3-seed validation probe
# (package docs) and are left to `--training-variants`.
DEFAULT_TRAINING_VARIANTS: tuple[str, ...] = (
    "features+soft",
    "soft",
    "soft-t2",
    "soft-t1",
    "hard",
    "hard-confident-0.9",
    "features-0.1+soft",
    "relation+soft",
)


@dataclass
class TrainingAblationConfig:
    """The validation ablation of the label-free training: models, seeds, sparsities, variants."""

    models: tuple[str, ...] = ("mlp", "cnn", "cnn1d")
    seeds: int = 3
    sparsities: tuple[float, ...] = (0.95,)
    variants: tuple[str, ...] = DEFAULT_TRAINING_VARIANTS
    validation_fraction: float = 0.25
    bench: BenchConfig = field(default_factory=BenchConfig.validation_record)

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"models {bad} unknown; choose from {sorted(MODELS)}")
        bad = [v for v in self.variants if v not in TRAINING_VARIANTS]
        if bad:
            raise ValueError(f"variants {bad} unknown; choose from {sorted(TRAINING_VARIANTS)}")
        check_positive_int("seeds", self.seeds)


def _unit_key(sparsity: float, arm: str) -> str:
    """An arm's cache key; a training variant's key holds a hash of its options."""
    key = f"{sparsity}/{arm}"
    if arm.startswith("train:"):
        key += "#" + report_hash(json.dumps(TRAINING_VARIANTS[arm[6:]], sort_keys=True))[:8]
    return key


def _ablate_one(
    model_name: str, seed: int, acfg: TrainingAblationConfig, progress: Progress
) -> list[dict[str, Any]]:
    cfg = acfg.bench
    spec = MODELS[model_name]
    data = spec.data(seed).validation(acfg.validation_fraction, seed)
    seed_everything(seed)
    init = spec.build()
    epochs = cfg.epochs[model_name]
    bs = cfg.batch_sizes.get(model_name, 64)
    teacher: list[torch.nn.Module] = []
    wanted = ["teacher"]
    if "teacher" not in progress.done:  # how good the guide is on the student's own inputs
        progress.check()
        teacher = train_teacher(model_name, data, cfg, seed)[-1:]
        res = report.Results("lnpt", "")
        res.add(
            "teacher (dense, other half)",
            seed,
            {
                "val_accuracy": _accuracy(teacher[0], data),
                "student_part_accuracy": evaluate(teacher[0], data.loader("student", 256))[
                    "accuracy"
                ],
            },
            model=model_name,
            sparsity=0.0,
        )
        progress.put("teacher", res.to_dict()["records"])
    for sparsity in acfg.sparsities:
        masks: dict[str, Any] = {}
        arms = ["snip+supervised", *[f"train:{v}" for v in acfg.variants]]
        for arm in arms:
            key = _unit_key(sparsity, arm)
            wanted.append(key)
            if key in progress.done:
                continue
            progress.check()
            if not teacher:
                teacher = train_teacher(model_name, data, cfg, seed)[-1:]
            method = "snip" if arm == "snip+supervised" else "lnpt"
            if method not in masks:
                masks[method] = make_mask(method, init, teacher[0], data, sparsity, cfg, seed, spec)
            mask = masks[method]
            student = copy.deepcopy(init)
            mask.apply_(student)
            t0 = time.perf_counter()
            if arm == "snip+supervised":
                train_supervised(student, data, "student", epochs, cfg, seed, mask, (), bs)
            else:
                opts = dict(TRAINING_VARIANTS[arm[6:]])
                train_label_free(
                    student, teacher[0], data, epochs, cfg, seed, mask, (), bs, options=opts
                )
            res = report.Results("lnpt", "")
            res.add(
                arm if arm == "snip+supervised" else f"lnpt+{arm[6:]}",
                seed,
                {
                    "val_accuracy": _accuracy(student, data),
                    "train_seconds": time.perf_counter() - t0,
                },
                model=model_name,
                sparsity=sparsity,
            )
            progress.put(key, res.to_dict()["records"])
    return [r for key in wanted for r in progress.done[key]]


@with_flush_denormal
def run_training_ablation(
    acfg: TrainingAblationConfig,
    out: str | Path,
    command: str,
    resume: bool = False,
    budget_s: float | None = None,
    progress: bool = True,
    threads: int = 2,
) -> tuple[report.Results, str]:
    """Run the training ablation (cached arm by arm under `out/cache/`); write
    `lnpt_training_ablation.{md,json}` and return the results and the chosen variant."""

    out, cache, res, deadline = open_cached_run(acfg, out, command, threads, budget_s)
    # What decides every arm besides its own options: the benchmark config minus the training
    # options the variants replace, the validation fraction and the scoring default (the mask).
    bench = acfg.bench.key_dict()
    bench.pop("label_free")
    fixed = {
        "bench": bench,
        "validation_fraction": acfg.validation_fraction,
        "score": {**SCORE_DEFAULTS, "rounds": DEFAULT_ROUNDS},
    }
    key = json.dumps(fixed, sort_keys=True, default=str)
    left = run_model_units(
        res,
        acfg,
        key,
        lambda model_name, seed, steps: _ablate_one(model_name, seed, acfg, steps),
        cache,
        "training",
        threads,
        resume=resume,
        deadline=deadline,
        progress=progress,
    )
    chosen = choose_training(res, acfg)
    _write(res, acfg, chosen, left, out)
    return res, chosen


def _values(res: report.Results, variant: str, model: str | None = None) -> list[float]:
    return [
        r.metrics["val_accuracy"]
        for r in res.records
        if r.method == f"lnpt+{variant}" and (model is None or r.setting.get("model") == model)
    ]


def choose_training(res: report.Results, acfg: TrainingAblationConfig) -> str:
    """The training variant chosen on validation: `best_variant` over `acfg`'s models ("" when
    none was measured on every model that has results)."""
    return best_variant(res, acfg.models, acfg.variants, lambda v: f"lnpt+{v}")


def _write(
    res: report.Results,
    acfg: TrainingAblationConfig,
    chosen: str,
    left: list[str],
    out: Path,
) -> None:
    sections = [
        "Validation accuracy (%) of students trained on 75% of the student's half and evaluated on "
        "the other 25% of it (the test set is not used). Every label-free arm uses the same LNPT "
        "mask (the default score) and differs only in the training objective; Δ is the paired "
        "difference to SNIP with supervised training (95% bootstrap CI).\n"
    ]

    def teacher_on_student_part(model_name: str, sub: report.Results) -> list[str]:
        part = res.values("student_part_accuracy", "teacher (dense, other half)", model=model_name)
        if not part:
            return []
        return [
            "The teacher's accuracy on the student's training part (the labels it effectively "
            f"gives): {report.format_mean_std(part.values(), 2, 100)} %.\n"
        ]

    sections += model_sections(res, acfg.models, teacher_on_student_part)
    models = list(measured_models(res, acfg.models))
    rows = []
    for v in acfg.variants:
        vals = _values(res, v)
        if not vals:
            continue
        per_model = [
            report.format_mean_std(_values(res, v, m), 2, 100) if _values(res, v, m) else "—"
            for m in models
        ]
        rows.append(
            [
                v,
                json.dumps(TRAINING_CHANGES[v]),
                len(vals),
                *per_model,
                report.format_mean_std(vals, 2, 100),
            ]
        )
    if rows:
        sections.append("## Mean validation accuracy over sparsities and seeds\n")
        sections.append(
            f"Options: what each variant changes from `{json.dumps(TRAINING_BASE)}` (the label-free "
            "objective before this ablation).\n"
        )
        sections.append(
            report.markdown_table(
                ["variant", "options", "n", *[f"{m} val" for m in models], "all models"], rows
            )
        )
        sections.append(
            f"Chosen (highest mean over the models every candidate ran on): **{chosen}**.\n"
        )
    if left:
        sections.append(f"Unfinished (run again with `--resume`): {', '.join(left)}.\n")
    report.write_report(
        out / "lnpt_training_ablation.md",
        "lnpt ablation: label-free training objectives on validation",
        sections,
        res,
    )
