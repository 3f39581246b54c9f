"""The teacher-recipe check: the benchmark's teacher trained at several Adam learning rates and
epoch budgets, each read on the validation part of the student's half (never the test set).

Why: at the benchmark's `lr=1e-2` the digits CNN teacher of seed 6 lost every penultimate ReLU
channel in its first two epochs (its logits became the head's bias, the same for every input) and
stayed at chance, so LNPT, which needs a *mature* teacher, had nothing to learn from. A user who
trains the teacher the same way hits the same failure, so the recipe is chosen here, on validation,
by the rule `choose_recipe` implements (written in the README before the numbers were read).

Each teacher is read for its validation accuracy and for the fraction of its penultimate channels
that are zero on every validation input (`dead_fraction`: dead ReLUs; 1.0 is a collapsed teacher).
One run per (seed, lr) gives every epoch budget (eval-mode copies, no scheduler, so the copy at e
epochs is the teacher an e-epoch run gives).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from maskloop import evaluate, report
from maskloop.checks import check_positive_int

from lnpt.bench import (
    MODELS,
    TEACHER_FLOOR,
    BenchConfig,
    Progress,
    open_cached_run,
    train_teacher,
)
from lnpt.features import FeatureExtractor
from lnpt.runtime import with_flush_denormal

__all__ = ["TeacherCheckConfig", "choose_recipe", "recipe_name", "teacher_check"]


def recipe_name(lr: float, epochs: int) -> str:
    """The name of a teacher recipe, e.g. `lr=0.003 epochs=40`."""
    return f"lr={lr:g} epochs={epochs}"


@dataclass
class TeacherCheckConfig:
    """What `teacher_check` runs: one model, seeds, the teacher learning rates and epoch budgets
    (every other setting is the benchmark's, `bench`)."""

    model: str = "cnn"
    seeds: int = 10
    lrs: tuple[float, ...] = (1e-2, 3e-3, 1e-3)
    epochs: tuple[int, ...] = (40, 80)
    validation_fraction: float = 0.25
    bench: BenchConfig = field(default_factory=BenchConfig.validation_record)

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        if self.model not in MODELS:
            raise ValueError(f"model {self.model!r} unknown; choose from {sorted(MODELS)}")
        check_positive_int("seeds", self.seeds)
        if not self.lrs or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0 for v in self.lrs
        ):
            raise ValueError(f"lrs must be positive learning rates, got {self.lrs!r}")
        if not self.epochs or any(
            isinstance(e, bool) or not isinstance(e, int) or e < 1 for e in self.epochs
        ):
            raise ValueError(f"epochs must be positive ints, got {self.epochs!r}")


@torch.no_grad()
def dead_fraction(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Fraction of the penultimate features (input of the last Linear, CNN maps pooled) that are
    zero on every input of `x`."""
    feats, _ = FeatureExtractor(model, None, "input", "avg")(x)
    return float((feats.abs().amax(dim=0) == 0).float().mean())


def _check_one(seed: int, tcfg: TeacherCheckConfig, steps: Progress) -> list[dict[str, Any]]:
    data = MODELS[tcfg.model].data(seed).validation(tcfg.validation_fraction, seed)
    for lr in tcfg.lrs:
        key = f"lr={lr!r}"
        if key in steps.done:
            continue
        steps.check()
        cfg = copy.deepcopy(tcfg.bench)
        cfg.teacher_lr = {tcfg.model: float(lr)}
        cfg.teacher_epochs = {**cfg.teacher_epochs, tcfg.model: max(tcfg.epochs)}
        teachers = train_teacher(tcfg.model, data, cfg, seed, at=sorted(tcfg.epochs)[:-1])
        rows = []
        for e, t in zip(sorted(tcfg.epochs), teachers):
            rows.append(
                {
                    "method": recipe_name(lr, e),
                    "seed": seed,
                    "setting": {"model": tcfg.model},
                    "metrics": {
                        "val_accuracy": evaluate(t, data.loader("test", 256))["accuracy"],
                        "dead_fraction": dead_fraction(t, data.test_x),
                    },
                }
            )
        steps.put(key, rows)
    return [r for lr in tcfg.lrs for r in steps.done[f"lr={lr!r}"]]


def choose_recipe(res: report.Results, tcfg: TeacherCheckConfig) -> str:
    """The rule written before the readings: a recipe qualifies if none of its teachers reads
    below `TEACHER_FLOOR` on validation; among those the highest mean validation accuracy over the
    seeds wins; recipes within 0.3 points of the best count as tied, and a tie goes to fewer epochs,
    then to the larger lr (the smaller change from the benchmark's). Raises ValueError if none
    qualifies."""
    stats = []
    for lr in tcfg.lrs:
        for e in tcfg.epochs:
            vals = list(res.values("val_accuracy", recipe_name(lr, e)).values())
            if vals and min(vals) >= TEACHER_FLOOR:
                stats.append((sum(vals) / len(vals), e, lr))
    if not stats:
        raise ValueError("no teacher recipe keeps every teacher above TEACHER_FLOOR")
    best = max(m for m, _, _ in stats)
    tied = [(e, -lr) for m, e, lr in stats if m >= best - 0.003]
    e, neg_lr = min(tied)
    return recipe_name(-neg_lr, e)


@with_flush_denormal
def teacher_check(
    tcfg: TeacherCheckConfig,
    out: str | Path,
    command: str,
    resume: bool = False,
    budget_s: float | None = None,
    progress: bool = True,
    threads: int = 2,
) -> tuple[report.Results, str | None]:
    """Run the check (cached per seed under `out/cache/`, `resume` reuses), write
    `lnpt_teacher_<model>.{md,json}` and return the results and the chosen recipe (None while
    unfinished)."""
    from lnpt.ablation import run_seed_check

    out, cache, res, deadline = open_cached_run(tcfg, out, command, threads, budget_s)
    # What decides a teacher besides its lr (each lr is its own unit): the epochs read, the
    # validation fraction, the model and its batch size.
    fixed = {
        "model": tcfg.model,
        "epochs": sorted(tcfg.epochs),
        "validation_fraction": tcfg.validation_fraction,
        "batch_size": tcfg.bench.batch_sizes.get(tcfg.model, 64),
    }
    left = run_seed_check(
        res,
        tcfg.model,
        tcfg.seeds,
        fixed,
        lambda seed, steps: _check_one(seed, tcfg, steps),
        cache,
        "teacher",
        threads,
        resume=resume,
        deadline=deadline,
        desc="teacher check",
        progress=progress,
    )
    chosen = None if left else choose_recipe(res, tcfg)
    rows = []
    for lr in tcfg.lrs:
        for e in sorted(tcfg.epochs):
            name = recipe_name(lr, e)
            acc = res.values("val_accuracy", name)
            dead = res.values("dead_fraction", name)
            if not acc:
                continue
            low = [s for s, v in acc.items() if v < TEACHER_FLOOR]
            rows.append(
                [
                    f"**{name}**" if name == chosen else name,
                    len(acc),
                    report.format_mean_std([100 * v for v in acc.values()], 2),
                    f"{100 * min(acc.values()):.2f}",
                    ", ".join(map(str, low)) or "none",
                    report.format_mean_std([100 * v for v in dead.values()], 1),
                    " ".join(f"{100 * acc[s]:.1f}" for s in sorted(acc)),
                ]
            )
    title = MODELS[tcfg.model].title
    sections = [
        f"## {title}: teacher recipes on validation\n",
        f"Teachers trained with labels on the teacher half (Adam, batch "
        f"{tcfg.bench.batch_sizes.get(tcfg.model, 64)}, init seed 10000 + seed), read on the "
        f"validation part of the student's half ({tcfg.validation_fraction:.0%}; the test set is "
        "unused). Dead: penultimate channels zero on every validation input. Rule (`choose_recipe`,"
        f" written before the readings): no teacher below {TEACHER_FLOOR:.0%}, then the highest "
        "mean; within 0.3 points, fewer epochs, then the larger lr.\n",
        report.markdown_table(
            [
                "recipe",
                "n",
                "val accuracy %",
                "min %",
                f"seeds < {TEACHER_FLOOR:.0%}",
                "dead channels %",
                "per seed",
            ],
            rows,
        ),
        f"Chosen: **{chosen}**.\n" if chosen else f"Unfinished: {', '.join(left)}.\n",
    ]
    report.write_report(
        Path(out) / f"lnpt_teacher_{tcfg.model}.md",
        "lnpt: the teacher recipe, chosen on validation",
        sections,
        res,
    )
    return res, chosen
