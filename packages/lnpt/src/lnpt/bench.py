"""The benchmark: masks x {supervised, label-free} x sparsity on four students, paired seeds.

Protocol (per model and seed; the seed fixes the data split, the teacher and the student's init, so the
methods are paired): a dense teacher is trained with labels on one half of the training data; the
student (same architecture, its own init) is pruned before training by random / SNIP / GraSP /
SynFlow / LNPT (LG) masks at sparsities {0.9, 0.95, 0.98} (every mask keeps exactly the same number
of weights), then trained on the other half either with labels (cross-entropy) or without (the
label-free objective, teacher queried online). References: the dense student trained with labels,
and the teacher. Students: an MLP and a small CNN on sklearn digits, a 1-D CNN with BatchNorm on
MNIST-1D, and a ResNet-8 with BatchNorm on digits. Which mask x training arms run is `arms`. Every
mask is scored with BatchNorm in eval mode. The scoring time of each mask is recorded.

Against layer collapse (global LNPT scores at 95% leave the classifier head a few weights, GraSP can
empty a hidden layer at 98%), every mask alike leaves the head dense (`exclude_head`) and keeps at
least `min_density` of each masked tensor; both are fixed in the config, never tuned on test data.

Resumable: each (model, seed) is cached under `<out>/cache/` with a fingerprint of the config;
`resume=True` reuses finished ones, and `budget_s` stops starting new ones after that many seconds
(run again with `resume=True` to go on). The report covers whatever is finished.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from maskloop import (
    Callback,
    LoopState,
    MaskedTraining,
    WeightMask,
    evaluate,
    fit,
    report,
    seed_everything,
)
from maskloop.checks import check_positive_int
from torch import nn

from lnpt.baselines import baseline_mask
from lnpt.data import DigitsSplit, load_digits_split, load_mnist1d_split
from lnpt.diagnostic import LearningGapDiagnostic, spearman
from lnpt.learning_gap import (
    DEFAULT_ROUNDS,
    SCORE_DEFAULTS,
    LearningGap,
    head_pattern,
    prune,
)
from lnpt.models import MLP, CNN1d, SmallCNN, SmallResNet
from lnpt.runtime import host_id, with_flush_denormal
from lnpt.training import (
    TRAINING_BASE,
    TRAINING_DEFAULTS,
    LabelFreeTrainer,
    LinearWarmup,
    WarmupCosine,
)

__all__ = [
    "DEFAULT_EPOCHS",
    "DEFAULT_STUDENT_LR",
    "DEFAULT_STUDENT_SCHEDULE",
    "DEFAULT_STUDENT_WARMUP_EPOCHS",
    "DEFAULT_TEACHER_EPOCHS",
    "DEFAULT_TEACHER_LR",
    "DEFAULT_TEACHER_WARMUP_EPOCHS",
    "MODELS",
    "PREVIOUS_EPOCHS",
    "PREVIOUS_TEACHER_EPOCHS",
    "STUDENT_SCHEDULES",
    "RETIRED_LABEL_FREE",
    "BenchConfig",
    "HostMixWarning",
    "ModelSpec",
    "Progress",
    "parse_epochs",
    "run_bench",
    "without_retired_label_free",
]

# The students' training epochs of the test benchmark. The digits CNN's 120 were chosen on
# validation (`lnpt bench --protocol-check --epoch-budgets 30 60 90 120`: the longest measured
# budget, supervised SNIP still gaining), then 240 with the 5-epoch warm-up (session 17's recipe
# check, `lnpt_teacher_recipe/lnpt_student_recipe_cnn.md`: 96.35% mean validation accuracy over
# four arms at 240 epochs, 95.87 at 120, 95.85 with a teacher trained as the students; seeds 0-6),
# then 480 (session 27's rule, `docs/benchmarks/lnpt_s27_rule.md`, fresh validation seeds 7-13,
# the 240-epoch students read from the same runs: 96.16% mean over dense, SNIP supervised and
# LNPT label-free at 480 vs 95.69 at 240, +0.48 [+0.08, +0.90]; LNPT label-free +0.87);
# `PREVIOUS_EPOCHS` is the budget every validation ablation, the protocol check and the 30-epoch
# test records were run at (their configs pin it, so their cache keys stay); the runs at 120 and
# 240 are `epochs={..., "cnn": 120}` (`--epochs cnn=120`) and `--epochs cnn=240`.
PREVIOUS_EPOCHS = {"mlp": 40, "cnn": 30, "cnn1d": 10, "resnet": 15}
DEFAULT_EPOCHS = {**PREVIOUS_EPOCHS, "cnn": 480}
# The teachers' Adam learning rate where it is not the students' `lr` (1e-2), and their epochs. At
# 1e-2 the digits CNN teacher of seed 6 loses every penultimate ReLU channel in its first two epochs
# and stays at chance (10.28%), seed 0's keeps 37 of 64 (90.0%); lr 3e-3 for 80 epochs was chosen
# on validation (`lnpt bench --teacher-check`, rule in the README, report `lnpt_teacher_cnn.md`:
# 97.06 ± 1.39% over seeds 0-9, none below 95.5%; at 1e-2 87.44 ± 27.29, seed 6 at 10%).
DEFAULT_TEACHER_LR: dict[str, float] = {"cnn": 3e-3}
# The students' Adam learning rate (every arm: dense, masked, supervised and label-free) where it is
# not `lr` (1e-2). Empty: no model's student has been moved off `lr` by the validation rule
# (`lnpt bench --student-lr-check`, `lnpt.student_lr`, rule in the README): on the digits CNN at
# 95%, seeds 0-9, lr 1e-2 93.86% mean validation accuracy over four arms, 3e-3 92.01% (the sparse
# students underfit at 3e-3 in 120 epochs), so 1e-2 stays (`lnpt_student_lr_cnn.md`).
DEFAULT_STUDENT_LR: dict[str, float] = {}
# The students' linear lr warm-up, in epochs (`lnpt.training.LinearWarmup`, every arm alike), where
# a model has one (the others: none, the recipe of every run before it). The digits CNN's 5 epochs
# were chosen on validation (`lnpt bench --student-lr-check --student-recipes ...`, rule in the
# README, report `lnpt_student_recipe/lnpt_student_recipe_cnn.md`): at 95%, seeds 0-9, lr 1e-2 with
# the warm-up 95.67% mean validation accuracy over four arms, 1e-2 without 93.83%, 3e-3 for 240
# epochs 94.44%; no student below 80% (lowest 91.11%, without the warm-up 80.56%).
DEFAULT_STUDENT_WARMUP_EPOCHS: dict[str, int] = {"cnn": 5}
# The students' lr after the warm-up (every arm alike): "constant" (the lr stays at its value, every
# run before the option) or "cosine" (`lnpt.training.WarmupCosine`: decayed to 0 by a cosine over
# the rest of the run; session 26's recipe reading, `--student-recipes ...,schedule=cosine`). A
# model absent here is "constant"; only "cosine" enters a cache key.
STUDENT_SCHEDULES = ("constant", "cosine")
DEFAULT_STUDENT_SCHEDULE: dict[str, str] = {}
PREVIOUS_TEACHER_EPOCHS = {"mlp": 60, "cnn": 40, "cnn1d": 30, "resnet": 30}
DEFAULT_TEACHER_EPOCHS = {**PREVIOUS_TEACHER_EPOCHS, "cnn": 80}
# The teachers' linear lr warm-up, in epochs (`lnpt.training.LinearWarmup`), where a model's teacher
# has one; empty: no teacher warms up (every run before the option). A candidate of the students'
# recipe check (`--student-recipes ...,teacher_warmup=W`, the teacher trained as the students are).
DEFAULT_TEACHER_WARMUP_EPOCHS: dict[str, int] = {}

MASKS = ("random", "snip", "grasp", "synflow", "lnpt")
TRAININGS = ("supervised", "label-free")
ARMS = tuple(f"{m}+{t}" for m in MASKS for t in TRAININGS)
# The arms run by default (CPU is scarce): the method, the goal's baseline (SNIP with labels), the
# 98% goal's control (random), and SNIP / SynFlow masks under the same label-free training (which
# separates the score from the training). `arms=ARMS` runs the full factorial.
DEFAULT_ARMS = (
    "lnpt+label-free",
    "snip+supervised",
    "snip+label-free",
    "synflow+label-free",
    "random+label-free",
)


@dataclass(frozen=True)
class ModelSpec:
    """A benchmark student: its data, architecture, input shape and what its unpooled features are."""

    title: str
    data: Callable[[int], DigitsSplit]
    build: Callable[[], nn.Module]
    input_shape: tuple[int, ...]
    spatial_layer: str | None  # module whose output maps are the unpooled penultimate features


MODELS: dict[str, ModelSpec] = {
    "mlp": ModelSpec("digits MLP 64-300-100-10", load_digits_split, MLP, (64,), None),
    "cnn": ModelSpec(
        "digits CNN (3 conv, no BatchNorm)",
        lambda seed: load_digits_split(seed, image=True),
        lambda: SmallCNN((16, 32, 64), 10),
        (1, 8, 8),
        "features",
    ),
    "cnn1d": ModelSpec(
        "MNIST-1D 1-D CNN with BatchNorm", load_mnist1d_split, CNN1d, (1, 40), "features"
    ),
    "resnet": ModelSpec(
        "digits ResNet-8 with BatchNorm",
        lambda seed: load_digits_split(seed, image=True),
        SmallResNet,
        (1, 8, 8),
        "layer3",
    ),
}


def _with_entry(table: dict[str, Any], model: str, value: Any, default: Any) -> dict[str, Any]:
    """`table` with `model`'s entry set to `value`, or removed where `value` equals `default` (so a
    config at the default keeps its cache key)."""
    out = {k: v for k, v in table.items() if k != model}
    if value != default:
        out[model] = value
    return out


@dataclass
class BenchConfig:
    """What the benchmark runs (the defaults are the full run; `quick()` the CI-sized one)."""

    models: tuple[str, ...] = ("mlp", "cnn", "cnn1d", "resnet")
    seeds: int = 5
    sparsities: tuple[float, ...] = (0.9, 0.95, 0.98)
    arms: tuple[str, ...] = DEFAULT_ARMS
    epochs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_EPOCHS))
    teacher_epochs: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_TEACHER_EPOCHS))
    batch_sizes: dict[str, int] = field(
        default_factory=lambda: {"mlp": 64, "cnn": 64, "cnn1d": 128, "resnet": 64}
    )
    lr: float = 1e-2
    # The teacher's Adam lr per model where it differs from `lr` (absent: `lr`, the recipe before
    # the option; {} keeps every cache key of the runs made before it).
    teacher_lr: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_TEACHER_LR))
    # The students' Adam lr per model where it differs from `lr` (absent: `lr`; every arm of the
    # model alike, so the comparison stays paired). Part of a model's cache key only where it is
    # not `lr`, so the keys of every run made before the option stay.
    student_lr: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STUDENT_LR))
    # The students' linear lr warm-up per model, in epochs (`lnpt.training.LinearWarmup`: the lr
    # ramps from lr/steps to lr over that many epochs' steps; every arm of the model alike). Absent
    # or 0: no warm-up; part of a model's cache key only where it is > 0, so the keys of every run
    # made before the option stay.
    student_warmup_epochs: dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_STUDENT_WARMUP_EPOCHS)
    )
    # The teacher's linear lr warm-up per model, in epochs (as the students'); absent or 0: none,
    # and then off every cache key, so the keys of every run made before the option stay.
    teacher_warmup_epochs: dict[str, int] = field(
        default_factory=lambda: dict(DEFAULT_TEACHER_WARMUP_EPOCHS)
    )
    # The students' lr schedule after the warm-up per model (`STUDENT_SCHEDULES`; every arm of the
    # model alike, the teacher never): absent or "constant" is the recipe of every run before the
    # option and off every cache key; "cosine" decays the lr to 0 by the run's end (`WarmupCosine`).
    student_schedule: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_STUDENT_SCHEDULE))
    kd_weight: float = 1.0
    score_kd_weight: float = 5.0
    temperature: float = 4.0
    synflow_rounds: int = 100
    score_batches: int = 4  # batches of 128 inputs that SNIP, GraSP and LNPT score on (512)
    # Options of LNPT's mask: `prune` keywords, `spatial`, `score_epochs` (score the student
    # after that many epochs of its own dense label-free training, `partially_trained`; 0: at init)
    # and `checkpoints` (score against k evenly spaced snapshots of the teacher's run, the scores
    # averaged, `teacher_checkpoints`; absent or 1: the final teacher only, as every run before).
    lnpt_options: dict[str, Any] = field(default_factory=dict)
    # The label-free training: `LabelFreeTrainer` keywords over the previous objective
    # (`lnpt.training.TRAINING_BASE` with kd_weight/temperature above); by default the changes
    # chosen on validation (`lnpt bench --training-ablation`, `TRAINING_DEFAULTS`); {} is the
    # previous objective (and keeps its cache keys).
    label_free: dict[str, Any] = field(default_factory=lambda: dict(TRAINING_DEFAULTS))
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
            epochs={"mlp": 30, "cnn": 15, "cnn1d": 6, "resnet": 8},
            teacher_epochs={"mlp": 40, "cnn": 25, "cnn1d": 20, "resnet": 20},
            synflow_rounds=50,
        )

    @classmethod
    def validation_record(cls) -> BenchConfig:
        """The config every validation run so far was made with (the scoring and training
        ablations, the protocol check): the students' `PREVIOUS_EPOCHS`, the teachers at `lr` for
        `PREVIOUS_TEACHER_EPOCHS`. Their configs pin it, so the committed caches keep their keys
        and stay the record."""
        return cls(
            epochs=dict(PREVIOUS_EPOCHS),
            teacher_epochs=dict(PREVIOUS_TEACHER_EPOCHS),
            teacher_lr={},
            student_lr={},
            student_warmup_epochs={},
            teacher_warmup_epochs={},
            student_schedule={},
        )

    def key_dict(self) -> dict[str, Any]:
        """`asdict(self)` for the cache keys of the validation runs: without `teacher_lr`,
        `student_lr`, `student_warmup_epochs` and `teacher_warmup_epochs` while they are empty (the
        keys of runs made before the options); warm-ups of 0 epochs are left out as none."""
        d = asdict(self)
        for name in ("student_warmup_epochs", "teacher_warmup_epochs"):
            d[name] = {m: w for m, w in d[name].items() if w}
        d["student_schedule"] = {m: v for m, v in d["student_schedule"].items() if v != "constant"}
        for name in (
            "teacher_lr",
            "student_lr",
            "student_warmup_epochs",
            "teacher_warmup_epochs",
            "student_schedule",
        ):
            if not d[name]:
                d.pop(name)
        return d

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"models {bad} unknown; choose from {sorted(MODELS)}")
        bad = [a for a in self.arms if a not in ARMS]
        if bad:
            raise ValueError(f"arms {bad} unknown; choose from {ARMS}")
        for name in ("epochs", "teacher_epochs"):
            missing = [m for m in self.models if m not in getattr(self, name)]
            if missing:
                raise ValueError(f"{name} has no entry for models {missing}")
            bad = {m: e for m, e in getattr(self, name).items() if type(e) is not int or e < 1}
            if bad:
                raise ValueError(f"{name} must be positive ints, got {bad}")
        if self.seeds < 1:
            raise ValueError(f"seeds must be >= 1, got {self.seeds}")
        for name in ("teacher_lr", "student_lr"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise TypeError(f"{name} must be a dict model -> lr, got {type(value).__name__}")
            bad = {
                m: v
                for m, v in value.items()
                if m not in MODELS
                or isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not 0 < v < math.inf
            }
            if bad:
                raise ValueError(
                    f"{name} maps models {sorted(MODELS)} to positive learning rates, got {bad}"
                )
        for name, epochs, whose in (
            ("student_warmup_epochs", self.epochs, "students'"),
            ("teacher_warmup_epochs", self.teacher_epochs, "teachers'"),
        ):
            warm = getattr(self, name)
            if not isinstance(warm, dict):
                raise TypeError(f"{name} must be a dict model -> epochs, got {type(warm).__name__}")
            bad = {m: w for m, w in warm.items() if m not in MODELS or type(w) is not int or w < 0}
            if bad:
                raise ValueError(f"{name} maps models {sorted(MODELS)} to ints >= 0, got {bad}")
            bad = {m: w for m, w in warm.items() if m in epochs and w >= epochs[m]}
            if bad:
                raise ValueError(
                    f"{name} must be shorter than the {whose} epochs "
                    f"({ {m: epochs[m] for m in bad} }), got {bad}"
                )
        sched = self.student_schedule
        if not isinstance(sched, dict):
            raise TypeError(
                f"student_schedule must be a dict model -> schedule, got {type(sched).__name__}"
            )
        bad = {m: v for m, v in sched.items() if m not in MODELS or v not in STUDENT_SCHEDULES}
        if bad:
            raise ValueError(
                f"student_schedule maps models {sorted(MODELS)} to one of {STUDENT_SCHEDULES}, "
                f"got {bad}"
            )
        teacher_checkpoints(self)  # lnpt_options["checkpoints"]: an int >= 1 where given
        without_retired_label_free(self.label_free)  # session 33's teacher_snapshots: retired

    def teacher_lr_of(self, model: str) -> float:
        """The Adam learning rate of `model`'s teacher (`teacher_lr`, else `lr`)."""
        return float(self.teacher_lr.get(model, self.lr))

    def student_lr_of(self, model: str) -> float:
        """The Adam learning rate of `model`'s students, every arm (`student_lr`, else `lr`)."""
        return float(self.student_lr.get(model, self.lr))

    def student_warmup_of(self, model: str) -> int:
        """The epochs of `model`'s students' linear lr warm-up (0: none)."""
        return int(self.student_warmup_epochs.get(model, 0))

    def student_schedule_of(self, model: str) -> str:
        """`model`'s students' lr schedule after the warm-up ("constant" where none is set)."""
        return str(self.student_schedule.get(model, "constant"))

    def with_student_schedule(self, model: str, schedule: str) -> BenchConfig:
        """This config with `model`'s students on lr `schedule` ("constant" removes the entry, so
        the config keeps its key). Raises ValueError naming `student_schedule` on another value."""
        cfg = copy.deepcopy(self)
        cfg.student_schedule = _with_entry(self.student_schedule, model, schedule, "constant")
        cfg.check()
        return cfg

    def teacher_warmup_of(self, model: str) -> int:
        """The epochs of `model`'s teacher's linear lr warm-up (0: none)."""
        return int(self.teacher_warmup_epochs.get(model, 0))

    def with_teacher(
        self,
        model: str,
        lr: float | None = None,
        epochs: int | None = None,
        warmup_epochs: int | None = None,
    ) -> BenchConfig:
        """This config with `model`'s teacher trained at Adam `lr` for `epochs` epochs, warmed up
        over `warmup_epochs` (None keeps each as it is; an lr equal to `self.lr` and a warm-up of
        0 remove their entries, so such a config keeps its key). Raises ValueError naming the
        field on a bad value."""
        cfg = copy.deepcopy(self)
        if lr is not None:
            cfg.teacher_lr = _with_entry(self.teacher_lr, model, float(lr), self.lr)
        if epochs is not None:
            cfg.teacher_epochs = {**self.teacher_epochs, model: epochs}
        if warmup_epochs is not None:
            cfg.teacher_warmup_epochs = _with_entry(
                self.teacher_warmup_epochs, model, warmup_epochs, 0
            )
        cfg.check()
        return cfg

    def with_student_warmup(self, model: str, epochs: int) -> BenchConfig:
        """This config with `model`'s students warmed up over `epochs` epochs (0 removes the
        entry, so the config keeps its key)."""
        cfg = copy.deepcopy(self)
        cfg.student_warmup_epochs = _with_entry(self.student_warmup_epochs, model, epochs, 0)
        cfg.check()
        return cfg

    def with_student_lr(self, model: str, lr: float) -> BenchConfig:
        """This config with `model`'s students trained at Adam `lr` (the student-lr check's
        candidates); an `lr` equal to `self.lr` removes the entry, so the config keeps its key."""
        cfg = copy.deepcopy(self)
        cfg.student_lr = _with_entry(self.student_lr, model, float(lr), self.lr)
        cfg.check()
        return cfg

    def with_epochs(self, overrides: dict[str, int]) -> BenchConfig:
        """This config with the students' training epochs of some models replaced (`lnpt bench
        --epochs cnn=120`; `parse_epochs` reads the option). The epochs are part of `fingerprint`,
        so units at another budget are cached under other names and `resume` never mixes budgets;
        a model left out keeps its epochs and its cache keys. Teacher epochs are unchanged."""
        cfg = copy.deepcopy(self)
        cfg.epochs = {**self.epochs, **overrides}
        cfg.check()
        return cfg

    def fingerprint(self, model: str) -> str:
        """A hash of everything that decides one model's results (for the resume cache)."""
        d = asdict(self)
        d.pop("seeds")
        d["models"] = [model]
        d["epochs"] = self.epochs[model]
        d["teacher_epochs"] = self.teacher_epochs[model]
        d["batch_sizes"] = self.batch_sizes.get(model, 64)
        d.pop("teacher_lr")  # only this model's teacher lr, and only where it is not `lr`
        if self.teacher_lr_of(model) != self.lr:
            d["teacher_lr"] = self.teacher_lr_of(model)
        d.pop("student_lr")  # likewise: only where this model's students do not train at `lr`
        if self.student_lr_of(model) != self.lr:
            d["student_lr"] = self.student_lr_of(model)
        d.pop("student_warmup_epochs")  # likewise: only where this model's students warm up
        if self.student_warmup_of(model):
            d["student_warmup_epochs"] = self.student_warmup_of(model)
        d.pop("teacher_warmup_epochs")  # likewise: only where this model's teacher warms up
        if self.teacher_warmup_of(model):
            d["teacher_warmup_epochs"] = self.teacher_warmup_of(model)
        d.pop("student_schedule")  # likewise: only where this model's students decay their lr
        if self.student_schedule_of(model) != "constant":
            d["student_schedule"] = self.student_schedule_of(model)
        if not d["label_free"]:  # the training before the option existed: its cache keys stay
            d.pop("label_free")
        if SCORE_DEFAULTS or DEFAULT_ROUNDS != 1:  # the chosen scoring default decides LNPT masks
            d["score_defaults"] = {**SCORE_DEFAULTS, "rounds": DEFAULT_ROUNDS}
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def parse_epochs(values: Sequence[str]) -> dict[str, int]:
    """Read `--epochs MODEL=N ...` (e.g. `cnn=120`) into `{model: N}`: each MODEL one of `MODELS`,
    at most once, N a positive int. Raises ValueError naming `--epochs` and what is allowed."""
    out: dict[str, int] = {}
    for value in values:
        model, sep, n = str(value).partition("=")
        if not sep or model not in MODELS:
            raise ValueError(
                f"--epochs takes MODEL=N with MODEL one of {', '.join(MODELS)}, got {value!r}"
            )
        if model in out:
            raise ValueError(f"--epochs gives {model} more than once")
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--epochs {model}=N needs N a positive int, got {n!r}")
        out[model] = int(n)
    return out


COMMITTED_THREADS = 2  # the torch thread count of every committed run


def threads_tag(threads: int) -> str:
    """The cache-name suffix of a torch CPU thread count: "" at `COMMITTED_THREADS`, else
    "-threads<n>". The count decides results, not only speed: it changes the floating-point
    summation order and so every trained network (the digits CNN teacher of seed 0 reads 90.00% on
    test at 2 threads, 90.83% at 1, and every student after it differs), so units run at another
    count are never reused for, or mixed into, the committed ones on `--resume`."""
    threads = check_positive_int("threads", threads)
    return "" if threads == COMMITTED_THREADS else f"-threads{threads}"


def _ce(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(outputs, targets, reduction="none")


def train_supervised(
    model: nn.Module,
    data: DigitsSplit,
    part: str,
    epochs: int,
    cfg: BenchConfig,
    seed: int,
    mask: WeightMask | None = None,
    callbacks: Sequence[Any] = (),
    batch_size: int = 64,
    lr: float | None = None,
    warmup_epochs: int = 0,
    schedule: str = "constant",
    schedule_epochs: int | None = None,
) -> None:
    """Cross-entropy training with Adam at `lr` (default `cfg.lr`; masked weights held at zero
    when `mask` is given), warmed up linearly over `warmup_epochs` epochs (`LinearWarmup`; 0:
    none), then at a `schedule` lr (`_lr_schedule`: "constant", or "cosine" to 0 by the end of
    `schedule_epochs`, default `epochs`)."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr if lr is None else lr)
    cbs = [*callbacks, *_lr_schedule(warmup_epochs, schedule, schedule_epochs or epochs)]
    if mask is not None:  # attached by fit at its start, detached at its end
        cbs.insert(0, MaskedTraining(model, mask, opt))
    fit(
        model,
        data.loader(part, batch_size, shuffle=True, generator=gen),
        epochs=epochs,
        optimizer=opt,
        loss_fn=_ce,
        callbacks=cbs,
        progress=False,
    )


def train_label_free(
    model: nn.Module,
    teacher: nn.Module,
    data: DigitsSplit,
    epochs: int,
    cfg: BenchConfig,
    seed: int,
    mask: WeightMask | None,
    callbacks: Sequence[Any] = (),
    batch_size: int = 64,
    options: dict[str, Any] | None = None,
    lr: float | None = None,
    warmup_epochs: int = 0,
    schedule: str = "constant",
    schedule_epochs: int | None = None,
) -> None:
    """Label-free training against the teacher on the student's inputs only, with the
    `LabelFreeTrainer` options `cfg.label_free` (or `options`, for the training ablation) over
    `TRAINING_BASE` with `kd_weight=cfg.kd_weight, temperature=cfg.temperature` (every option is
    spelled out, so the trainer's own defaults never decide a benchmark run), Adam at `lr`
    (default `cfg.lr`), warmed up linearly over `warmup_epochs` epochs (0: none), then at a
    `schedule` lr as `train_supervised`'s. A retired option at its neutral value is dropped
    (`without_retired_label_free`); at another value it raises ValueError."""
    gen = torch.Generator().manual_seed(seed)
    opts = {**TRAINING_BASE, "kd_weight": cfg.kd_weight, "temperature": cfg.temperature}
    opts.update(cfg.label_free if options is None else options)
    opts = without_retired_label_free(opts, "label-free options")
    lr = cfg.lr if lr is None else lr
    LabelFreeTrainer(model, teacher, mask, lr=lr, seed=seed, **opts).fit(
        data.loader("student", batch_size, shuffle=True, labels=False, generator=gen),
        epochs,
        callbacks=[*callbacks, *_lr_schedule(warmup_epochs, schedule, schedule_epochs or epochs)],
        progress=False,
    )


def _warmup(epochs: int) -> list[Callback]:
    """The warm-up callback of `epochs` epochs, or none for 0."""
    if type(epochs) is not int or epochs < 0:
        raise ValueError(f"warmup_epochs must be an int >= 0, got {epochs!r}")
    return [LinearWarmup(epochs)] if epochs else []


def _lr_schedule(warmup_epochs: int, schedule: str, epochs: int) -> list[Callback]:
    """The lr callbacks of a run: "constant" is `_warmup(warmup_epochs)` alone (every run before the
    option, unchanged); "cosine" is `WarmupCosine(epochs, warmup_epochs)`. Raises ValueError naming
    `schedule` or `warmup_epochs`."""
    if schedule not in STUDENT_SCHEDULES:
        raise ValueError(f"schedule must be one of {STUDENT_SCHEDULES}, got {schedule!r}")
    warm = _warmup(warmup_epochs)
    return warm if schedule == "constant" else [WarmupCosine(epochs, warmup_epochs)]


def _gen(seed: int) -> torch.Generator:
    """The generator that draws the scoring batches (the same inputs for every mask of a seed)."""
    return torch.Generator().manual_seed(20_000 + seed)


def make_mask(
    method: str,
    student: nn.Module,
    teacher: nn.Module | Sequence[nn.Module],
    data: DigitsSplit,
    sparsity: float,
    cfg: BenchConfig,
    seed: int,
    spec: ModelSpec,
    lnpt_options: dict[str, Any] | None = None,
) -> WeightMask:
    """The mask of `method` at `sparsity`, with the collapse guard of `cfg` (same for every mask)."""
    exclude = head_pattern(student) if cfg.exclude_head else None
    if method == "lnpt":
        opts: dict[str, Any] = {"kd_weight": cfg.score_kd_weight, "temperature": cfg.temperature}
        opts.update(cfg.lnpt_options if lnpt_options is None else lnpt_options)
        if opts.pop("spatial", False):
            if spec.spatial_layer is None:
                raise ValueError("this model has no unpooled feature maps (spatial=True)")
            opts.update(feature_layer=spec.spatial_layer, which="output", pool=None)
        if opts.get("allocation") == "synflow" or opts.get("path_term") is not None:
            opts["input_shape"] = spec.input_shape  # SynFlow's all-ones input (session 22)
        score_epochs = check_score_epochs(opts.pop("score_epochs", 0))
        k = check_checkpoints(opts.pop("checkpoints", 1))
        if k > 1:
            if isinstance(teacher, nn.Module) or len(teacher) < k:
                got = 1 if isinstance(teacher, nn.Module) else len(teacher)
                raise ValueError(
                    f"checkpoints={k} needs a list of at least {k} teacher snapshots "
                    f"(`train_teacher(..., checkpoints={k})`), got {got}"
                )
            teacher = list(teacher)[-k:]
        scored = student
        if score_epochs:
            first = teacher if isinstance(teacher, nn.Module) else teacher[-1]
            scored = partially_trained(student, first, data, cfg, seed, spec, score_epochs)
        return prune(
            scored,
            teacher,
            data.loader("student", 128, shuffle=True, labels=False, generator=_gen(seed)),
            sparsity,
            exclude=exclude,
            min_density=cfg.min_density,
            max_batches=cfg.score_batches,
            **opts,
        )
    return baseline_mask(
        method,
        student,
        sparsity,
        data=data.loader("student", 128, shuffle=True, generator=_gen(seed)),
        input_shape=spec.input_shape,
        generator=torch.Generator().manual_seed(seed + 1000),
        synflow_rounds=cfg.synflow_rounds,
        exclude=exclude,
        min_density=cfg.min_density,
        max_batches=cfg.score_batches,
    )


def _int_option(name: str, value: object, minimum: int) -> int:
    """`lnpt_options[name]`: an int >= `minimum` (bools refused). Raises TypeError or ValueError
    naming `name` and what is allowed."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value}")
    return value


def check_score_epochs(value: object) -> int:
    """`lnpt_options["score_epochs"]`: an int >= 0 (0: score at init). Raises TypeError or
    ValueError naming `score_epochs`."""
    return _int_option("score_epochs", value, 0)


def check_checkpoints(value: object) -> int:
    """`lnpt_options["checkpoints"]`: an int >= 1 (1: the final teacher only). Raises TypeError or
    ValueError naming `checkpoints`."""
    return _int_option("checkpoints", value, 1)


# Label-free training options that validation rejected and that were retired from the library:
# name -> (the neutral value every kept run has, the last commit with the option's code).
# Session 33's `teacher_snapshots` (soft targets averaged over k snapshots of the teacher's run,
# `LearningGap(target_snapshots=...)`; rejected by rule s33, `docs/benchmarks/lnpt_s33_rule.md`)
# was never in a cache key at its neutral value (absent), so no key needs it pinned.
RETIRED_LABEL_FREE: dict[str, tuple[Any, str]] = {"teacher_snapshots": (1, "7b1d953")}


def without_retired_label_free(options: Any, where: str = "label_free") -> dict[str, Any]:
    """`options` (a label-free training config, `BenchConfig.label_free`) without the retired
    options (`RETIRED_LABEL_FREE`) that hold their neutral value, so an old saved config that names
    one at it still runs as before. A retired option at any other value raises ValueError naming
    it and the last commit whose code runs it (`git show <commit>:packages/lnpt/src/lnpt/...`);
    `options` not a dict raises TypeError."""
    if not isinstance(options, dict):
        raise TypeError(f"{where} must be a dict of options, got {type(options).__name__}")
    out = {}
    for name, value in options.items():
        if name in RETIRED_LABEL_FREE:
            neutral, commit = RETIRED_LABEL_FREE[name]
            if type(value) is not type(neutral) or value != neutral:
                raise ValueError(
                    f"{where}: {name}={value!r} was retired (rejected on validation; only "
                    f"{neutral!r}, the final teacher alone, remains); the code that runs it is "
                    f"at commit {commit}"
                )
            continue
        out[name] = value
    return out


def teacher_checkpoints(cfg: BenchConfig) -> int:
    """How many snapshots of the teacher's run LNPT's mask is scored against:
    `cfg.lnpt_options["checkpoints"]` (session 21's reading), absent: 1, the final teacher.

    With k > 1 the benchmark and the student-lr check train the teacher once with
    `train_teacher(..., checkpoints=k)` (copies at epochs round(T i / k), i = 1..k, of the same
    run, T the teacher's epochs) and LNPT's score is the mean over the snapshots,
    `S = (1/k) sum_i |theta * dJ_i/dtheta|` with `J_i` the learning gap to snapshot i (`lnpt.score`
    with a list of teachers), in every scoring round. The students still train against the final
    teacher (the same network `checkpoints=1` gives), and SNIP's, GraSP's and SynFlow's masks
    never read a teacher. What it assumes: the features a teacher learns early (coarse, shared
    by many weights) and late (fine) both say which student weights the gap needs, so the mean
    over its run ranks weights more robustly than the final teacher's gap alone."""
    return check_checkpoints(cfg.lnpt_options.get("checkpoints", 1))


def partially_trained(
    student: nn.Module,
    teacher: nn.Module,
    data: DigitsSplit,
    cfg: BenchConfig,
    seed: int,
    spec: ModelSpec,
    epochs: int,
) -> nn.Module:
    """A dense copy of `student` after the first `epochs` epochs of its own label-free training
    (the benchmark's label-free objective against `teacher` on the student's inputs, its lr,
    batch size and lr warm-up schedule, stopped after `epochs` epochs): the state that
    `lnpt_options={"score_epochs": epochs}` scores LNPT's mask at (session 18's reading).

    The mask is still applied to `student`'s initial weights, and the student trains from them: the
    method stays a mask chosen before the student's own training, from no labels, guided by the
    learning gap on penultimate features. What the option assumes: that the gap's gradient ranks
    weights better once the student's penultimate features have begun to follow the teacher's (at
    init they are random projections, and on the digits CNN the mask read there trails supervised
    SNIP's), and that a ranking read a few epochs in transfers to the initial weights (as in
    rewinding to init after a short dense run). It costs `epochs` dense label-free epochs more than
    scoring at init; `student` is not modified."""
    model_name = next(k for k, v in MODELS.items() if v is spec)
    work = copy.deepcopy(student)
    warm = cfg.student_warmup_of(model_name)  # the ramp of the full run, stopped at `epochs`
    bs = cfg.batch_sizes.get(model_name, 64)
    lr = cfg.student_lr_of(model_name)
    train_label_free(
        work, teacher, data, epochs, cfg, seed, None, batch_size=bs, lr=lr, warmup_epochs=warm,
        schedule=cfg.student_schedule_of(model_name), schedule_epochs=cfg.epochs[model_name],
    )  # fmt: skip
    return work.eval()


def _accuracy(model: nn.Module, data: DigitsSplit) -> float:
    return evaluate(model, data.loader("test", 256))["accuracy"]


class _Snapshots(Callback):
    """Keep eval-mode copies of the model at the end of the given (1-based) epochs."""

    def __init__(self, epochs: Sequence[int]) -> None:
        self.at = set(epochs)
        self.copies: list[nn.Module] = []

    def on_epoch_end(self, state: LoopState) -> None:
        if state.epoch in self.at:
            self.copies.append(copy.deepcopy(state.model).eval())


def train_teacher(
    model_name: str,
    data: DigitsSplit,
    cfg: BenchConfig,
    seed: int,
    checkpoints: int = 1,
    at: Sequence[int] = (),
) -> list[nn.Module]:
    """The dense teacher trained with labels on the teacher half (Adam at
    `cfg.teacher_lr_of(model_name)`, warmed up over `cfg.teacher_warmup_of(model_name)` epochs),
    in eval mode; with `checkpoints=k`, copies taken at k evenly
    spaced epochs of the same run (the last is the fully trained teacher, identical to the one
    `checkpoints=1` gives); `at` (1-based epochs below the total) replaces that spacing."""
    seed_everything(10_000 + seed)
    teacher = MODELS[model_name].build()
    total = cfg.teacher_epochs[model_name]
    ends = sorted({max(1, round(total * (i + 1) / checkpoints)) for i in range(checkpoints)})
    if at:
        ends = sorted({*at, total})
    snaps = _Snapshots(ends[:-1])
    bs = cfg.batch_sizes.get(model_name, 64)
    lr = cfg.teacher_lr_of(model_name)
    warm = cfg.teacher_warmup_of(model_name)
    train_supervised(
        teacher, data, "teacher", total, cfg, seed,
        callbacks=[snaps], batch_size=bs, lr=lr, warmup_epochs=warm,
    )  # fmt: skip
    return [*snaps.copies, teacher.eval()]


class BudgetReached(Exception):
    """Raised between two units of work once the time budget of a run is spent."""


class HostMixWarning(UserWarning):
    """A resumed cache adds units of this host to units trained on another (or on an unrecorded)
    host: label-free units are host-dependent (`lnpt.runtime.host_id`), so a paired comparison
    across them is not bit-reproducible on either host."""


class Progress:
    """Finished units of one (model, seed), appended as JSON lines so a run resumes mid-seed.

    `deadline` (a `time.perf_counter()` value or None): `check()` raises `BudgetReached` after it,
    but only once this process has finished at least one unit (so every call makes progress).

    Each line is `{"key", "value", "host"}`: `host` is `lnpt.runtime.host_id()` of the process
    that trained the unit (since session 34; older lines have none). Readers use key and value only;
    the host is in no cache key. On resume, `hosts` maps every loaded key to its recorded host
    (None: unrecorded); the first unit this process adds to a cache that holds units of another or
    an unrecorded host warns once (`HostMixWarning`, naming how many), since the cache then mixes
    hosts. A resume that adds nothing stays silent.
    """

    def __init__(self, path: Path, resume: bool, deadline: float | None) -> None:
        self.path = path
        self.deadline = deadline
        self.done: dict[str, Any] = {}
        self.hosts: dict[str, str | None] = {}
        self.new = 0
        self.host = host_id()
        if resume and path.exists():
            for line in path.read_text().splitlines():
                if line.strip():
                    d = json.loads(line)
                    self.done[d["key"]] = d["value"]
                    self.hosts[d["key"]] = d.get("host")
        elif path.exists():
            path.unlink()
        self._warned = False

    def other_hosts(self) -> dict[str, str | None]:
        """Loaded units not recorded on this host: key -> their host (None: unrecorded)."""
        return {k: h for k, h in self.hosts.items() if h != self.host}

    def check(self) -> None:
        """Stop (raise `BudgetReached`) once past the deadline."""
        if self.new and self.deadline is not None and time.perf_counter() > self.deadline:
            raise BudgetReached

    def put(self, key: str, value: Any) -> None:
        """Record one finished unit (with this host, `lnpt.runtime.host_id`)."""
        other = self.other_hosts()
        if other and not self._warned:
            self._warned = True
            unrecorded = sum(h is None for h in other.values())
            warnings.warn(
                f"{self.path.name}: adding units trained on this host ({self.host}) to "
                f"{len(other)} cached units of another host ({unrecorded} with no host recorded, "
                "made before session 34); label-free units are host-dependent, so this cache "
                "mixes hosts (re-run it without --resume to make it on one)",
                HostMixWarning,
                stacklevel=2,
            )
        self.done[key] = value
        self.hosts[key] = self.host
        self.new += 1
        with self.path.open("a") as f:
            f.write(json.dumps({"key": key, "value": value, "host": self.host}) + "\n")


def _run_one(
    model_name: str, seed: int, cfg: BenchConfig, progress: Progress
) -> tuple[list[dict[str, Any]], dict[str, list[list[dict[str, float]]]]]:
    """All arms of one (model, seed), unit by unit through `progress`: records and curves."""
    spec = MODELS[model_name]
    data = spec.data(seed)
    bs = cfg.batch_sizes.get(model_name, 64)
    epochs = cfg.epochs[model_name]
    lr, warm = cfg.student_lr_of(model_name), cfg.student_warmup_of(model_name)
    sched = cfg.student_schedule_of(model_name)
    seed_everything(seed)
    init = spec.build()
    teacher_box: list[nn.Module] = []  # the teacher's snapshots, the final one last
    k = teacher_checkpoints(cfg)

    def teacher() -> nn.Module:
        if not teacher_box:
            teacher_box.extend(train_teacher(model_name, data, cfg, seed, checkpoints=k))
        return teacher_box[-1]

    def guide(method: str) -> nn.Module | list[nn.Module]:
        # what the mask is scored against: LNPT's reads every snapshot (`checkpoints`)
        teacher()
        return list(teacher_box) if method == "lnpt" and k > 1 else teacher_box[-1]

    def setting(sparsity: float) -> dict[str, Any]:
        return {"model": model_name, "sparsity": sparsity}

    if "references" not in progress.done:
        progress.check()
        res = report.Results("lnpt", "")
        res.add(
            "teacher (dense, other half)",
            seed,
            {"accuracy": _accuracy(teacher(), data)},
            **setting(0.0),
        )
        dense = copy.deepcopy(init)
        train_supervised(
            dense, data, "student", epochs, cfg, seed, batch_size=bs, lr=lr, warmup_epochs=warm,
            schedule=sched,
        )  # fmt: skip
        res.add("dense supervised", seed, {"accuracy": _accuracy(dense, data)}, **setting(0.0))
        progress.put("references", {"records": res.to_dict()["records"], "curves": {}})
    masks_used = list(dict.fromkeys(a.split("+")[0] for a in cfg.arms))
    for sparsity in cfg.sparsities:
        for method in masks_used:
            key = f"{sparsity}/{method}"
            if key in progress.done:
                continue
            progress.check()
            res = report.Results("lnpt", "")
            curves: dict[str, list[list[dict[str, float]]]] = {}
            # the guide first: a resumed seed retrains its teacher here, off the scoring clock
            g = guide(method)
            t0 = time.perf_counter()
            mask = make_mask(method, init, g, data, sparsity, cfg, seed, spec)
            score_s = time.perf_counter() - t0
            for training in TRAININGS:
                arm = f"{method}+{training}"
                if arm not in cfg.arms:
                    continue
                student = copy.deepcopy(init)
                mask.apply_(student)
                diag = None
                if math.isclose(sparsity, cfg.diagnostic_sparsity) and arm in (
                    "lnpt+label-free",
                    "snip+supervised",
                ):
                    diag = LearningGapDiagnostic(
                        student,
                        teacher(),
                        data.loader("test", 256, labels=False),
                        data.loader("test", 256),
                    )
                cbs = [diag] if diag is not None else []
                if training == "supervised":
                    train_supervised(
                        student, data, "student", epochs, cfg, seed, mask, cbs, bs, lr, warm,
                        schedule=sched,
                    )  # fmt: skip
                else:
                    train_label_free(
                        student, teacher(), data, epochs, cfg, seed, mask, cbs, bs, lr=lr,
                        warmup_epochs=warm, schedule=sched,
                    )  # fmt: skip
                acc = _accuracy(student, data)
                zeros = sum(int((student.get_parameter(n) == 0).sum()) for n in mask.names)
                probe = LearningGap(student, teacher(), kd_weight=0.0)
                probe.setup([data.test_x])
                wd = math.sqrt(
                    sum(
                        float((p.detach() - q.detach()).pow(2).sum())
                        for p, q in zip(student.parameters(), init.parameters())
                    )
                )
                metrics = {
                    "accuracy": acc,
                    "score_seconds": score_s,
                    "surviving": float(mask.numel - mask.num_pruned),
                    "masked_weights": float(mask.numel),
                    "min_layer_density": min(1.0 - r["sparsity"] for r in mask.report()),
                    "zeros_ok": float(zeros >= mask.num_pruned),
                    "learning_gap": probe.feature_gap([data.test_x]),
                    "weight_distance": wd,
                }
                res.add(arm, seed, metrics, **setting(sparsity))
                if diag is not None:
                    curves.setdefault(arm, []).append(diag.rows)
                    corr = {f"rho_{k}": v for k, v in diag.correlations().items()}
                    clean = {k: v for k, v in corr.items() if math.isfinite(v)}
                    if clean:
                        res.add(f"diagnostic {arm}", seed, clean, **setting(sparsity))
            progress.put(key, {"records": res.to_dict()["records"], "curves": curves})
    records: list[dict[str, Any]] = []
    curves_all: dict[str, list[list[dict[str, float]]]] = {}
    for value in progress.done.values():
        records += value["records"]
        for arm, rows in value["curves"].items():
            curves_all.setdefault(arm, []).extend(rows)
    finals = [
        (r["metrics"]["learning_gap"], r["metrics"]["weight_distance"], r["metrics"]["accuracy"])
        for r in records
        if "learning_gap" in r["metrics"]
    ]
    if finals:
        lgs, wds, accs = zip(*finals)
        across = {
            "rho_learning_gap": spearman(lgs, accs),
            "rho_weight_distance": spearman(wds, accs),
        }
        across = {k: v for k, v in across.items() if math.isfinite(v)}
        if across:
            records.append(
                {
                    "method": "diagnostic across final students",
                    "seed": seed,
                    "setting": {"model": model_name, "sparsity": -1.0},
                    "metrics": across,
                }
            )
    return records, curves_all


def open_cached_run(
    cfg: Any, out: str | Path, command: str, threads: int, budget_s: float | None
) -> tuple[Path, Path, report.Results, float | None]:
    """The common start of a cached, resumable run (the benchmark, the ablations, the protocol
    check): check `cfg`, set the torch thread count, create `out/cache/`, open the results;
    returns `(out, cache, results, deadline)`, the deadline `budget_s` seconds from now (None: no
    limit)."""
    cfg.check()
    torch.set_num_threads(check_positive_int("threads", threads))
    out = Path(out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    res = report.Results("lnpt", command, config=asdict(cfg))
    deadline = None if budget_s is None else time.perf_counter() + budget_s
    return out, cache, res, deadline


@with_flush_denormal
def run_bench(
    cfg: BenchConfig,
    out: str | Path,
    command: str,
    progress: bool = True,
    resume: bool = False,
    budget_s: float | None = None,
    threads: int = 2,
    name: str = "lnpt",
) -> report.Results:
    """Run the benchmark, write `<name>.{md,json,png}` (default `lnpt.*`) under `out`, and return
    the results.

    Finished work is cached under `out/cache/` unit by unit (a mask at a sparsity with its
    trainings); with `resume=True` it is reused. After `budget_s` seconds no new unit starts (at
    least one does; the report then covers the finished (model, seed) runs). `threads`: torch CPU
    threads (the committed runs used 2; another count is cached apart, `threads_tag`).
    """
    from tqdm.auto import tqdm

    out, cache, res, deadline = open_cached_run(cfg, out, command, threads, budget_s)
    curves: dict[tuple[str, str], list[list[dict[str, float]]]] = {}
    jobs = [(m, s) for m in cfg.models for s in range(cfg.seeds)]
    bar = tqdm(jobs, desc="lnpt bench", disable=not progress)
    skipped: list[tuple[str, int]] = []
    made = 0
    for model_name, seed in bar:
        stem = f"{model_name}-seed{seed}-{cfg.fingerprint(model_name)}{threads_tag(threads)}"
        path = cache / f"{stem}.json"
        if resume and path.exists():
            doc = json.loads(path.read_text())
        else:
            bar.set_postfix(model=model_name, seed=seed)
            t0 = time.perf_counter()
            steps = Progress(cache / f"{stem}.partial.jsonl", resume, deadline)
            steps.new = made
            try:
                records, cur = _run_one(model_name, seed, cfg, steps)
            except BudgetReached:
                skipped.append((model_name, seed))
                made = steps.new
                continue
            made = steps.new
            doc = {"records": records, "curves": cur, "seconds": time.perf_counter() - t0}
            path.write_text(json.dumps(doc) + "\n")
            bar.write(f"{model_name} seed {seed}: {doc['seconds']:.1f}s")
        for r in doc["records"]:
            res.add(r["method"], r["seed"], r["metrics"], **r["setting"])
        for arm, rows in doc["curves"].items():
            curves.setdefault((model_name, arm), []).extend(rows)
    if skipped:
        print(f"budget reached: {len(skipped)} (model, seed) runs left; rerun with --resume")
    res.config["unfinished"] = [f"{m} seed {s}" for m, s in skipped]
    _write(res, cfg, curves, out, name)
    return res


# A seed whose teacher reads below this test accuracy is outside LNPT's premise (a *mature* teacher
# guides the student): its label-free arms learn from a chance-level guide. The goal lines leave such
# seeds out and name them; the tables keep them. Written after seed 6 of the digits CNN (teacher
# 10.28%: its dense training with labels stuck at chance), before its goal lines were recomputed;
# no committed seed 0-4 teacher is near it (90.0% the lowest).
TEACHER_FLOOR = 0.5


def collapsed_teachers(res: report.Results, model_name: str) -> dict[int, float]:
    """Seed -> teacher test accuracy, for the seeds of `model_name` whose teacher is below
    `TEACHER_FLOOR`."""
    teachers = res.values("accuracy", "teacher (dense, other half)", model=model_name)
    return {s: v for s, v in sorted(teachers.items()) if v < TEACHER_FLOOR}


def _paired(
    res: report.Results, a: str, b: str, exclude: Sequence[int] = (), **setting: Any
) -> report.PairedDifference | None:
    va, vb = res.values("accuracy", a, **setting), res.values("accuracy", b, **setting)
    shared = sorted((set(va) & set(vb)) - set(exclude))
    if len(shared) < 2:
        return None
    return report.paired_difference([va[s] for s in shared], [vb[s] for s in shared])


def _verdict(ok: bool, have: int, want: int | None) -> str:
    """'met'/'missed', or no verdict when fewer seeds finished than the run asked for: a partial
    run's CI is printed for information only (a resumed run gives the verdict once complete)."""
    if want is not None and have < want:
        return f"partial ({have} of {want} seeds), no verdict"
    return "met" if ok else "missed"


def goal_lines(res: report.Results, model_name: str, seeds: int | None = None) -> list[str]:
    """The issue's goals for one model, each with its measured paired difference and verdict
    (without the seeds whose teacher collapsed, `collapsed_teachers`, named in a last line).

    `seeds` is the number of seeds the run asked for: a goal whose two arms share fewer finished
    seeds than that (a run stopped by `--budget-s`) is printed with its CI but no verdict."""
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ValueError(f"seeds must be a positive int or None, got {seeds!r}")
    lines = []
    setting = {"model": model_name}
    bad = collapsed_teachers(res, model_name)

    def finished(a: str, b: str, **more: Any) -> int:
        """Seeds with both arms finished (collapsed teachers included: they count as run)."""
        va = res.values("accuracy", a, **setting, **more)
        vb = res.values("accuracy", b, **setting, **({} if b == "dense supervised" else more))
        return len(set(va) & set(vb))

    d = _paired(res, "lnpt+label-free", "snip+supervised", bad, sparsity=0.95, **setting)
    if d is not None:
        have = finished("lnpt+label-free", "snip+supervised", sparsity=0.95)
        lines.append(
            f"- 95%: LNPT label-free minus SNIP supervised: {d.format(2, 100)} points "
            f"(goal: CI lower bound > -0.5) -> {_verdict(d.low > -0.005, have, seeds)}"
        )
    lf = res.values("accuracy", "lnpt+label-free", sparsity=0.95, **setting)
    dense = res.values("accuracy", "dense supervised", **setting)
    shared = sorted((set(lf) & set(dense)) - set(bad))
    if len(shared) >= 2:
        d = report.paired_difference([lf[s] for s in shared], [dense[s] for s in shared])
        have = finished("lnpt+label-free", "dense supervised", sparsity=0.95)
        lines.append(
            f"- 95%: LNPT label-free minus dense supervised: {d.format(2, 100)} points "
            f"(goal: > -2) -> {_verdict(d.mean > -0.02, have, seeds)}"
        )
    if model_name != "mlp":
        d = _paired(res, "lnpt+label-free", "random+label-free", bad, sparsity=0.98, **setting)
        if d is not None:
            have = finished("lnpt+label-free", "random+label-free", sparsity=0.98)
            lines.append(
                f"- 98%: LNPT label-free minus random label-free: {d.format(2, 100)} points "
                f"(goal: >= +20) -> {_verdict(d.mean >= 0.2, have, seeds)}"
            )
    if bad and lines:
        named = ", ".join(f"seed {s} ({100 * v:.2f}%)" for s, v in bad.items())
        lines.append(
            f"- left out of the goal lines above (teacher below {TEACHER_FLOOR:.0%} on test, "
            f"not a mature teacher; kept in the table): {named}"
        )
    return lines


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
        if not sub.records:
            continue
        methods = list(sub.methods)
        sections.append(f"## {MODELS[model_name].title}: test accuracy (%)\n")
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
        lines = goal_lines(res, model_name, cfg.seeds)
        if lines:
            sections.append("Goals:\n\n" + "\n".join(lines) + "\n")
    rows = []
    for model_name in cfg.models:
        for mask in dict.fromkeys(a.split("+")[0] for a in cfg.arms):
            vals = [
                r.metrics["score_seconds"]
                for r in res.records
                if r.setting.get("model") == model_name
                and r.method.startswith(mask + "+")
                and "score_seconds" in r.metrics
            ]
            if vals:
                rows.append([model_name, mask, len(vals), report.format_mean_std(vals, 3)])
    if rows:
        sections.append("## Scoring time per mask (s, 2 CPU threads)\n")
        sections.append(
            "Time to compute one mask (all rounds; SynFlow iterates 100 times) over all seeds and "
            "sparsities, mean ± std.\n"
        )
        sections.append(report.markdown_table(["model", "mask", "n", "seconds"], rows))
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


def _write(
    res: report.Results, cfg: BenchConfig, curves: dict, out: Path, name: str = "lnpt"
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    sections = _table_sections(res, cfg)
    sections.append(f"![accuracy vs sparsity and diagnostic curves]({name}.png)\n")
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
    left = res.config.get("unfinished") or []
    if left:
        sections.append(f"Unfinished (run again with `--resume`): {', '.join(left)}.\n")
    report.write_report(
        out / f"{name}.md", "lnpt benchmark: label-free pruning before training", sections, res
    )
    try:
        _plot(res, cfg, curves, out / f"{name}.png")
    except ImportError:
        print(f"matplotlib not installed: skipped {name}.png (pip install 'lnpt[bench]')")


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
        _label_axes(
            ax,
            f"{model_name.upper()}: test accuracy vs sparsity",
            "sparsity (fraction removed)",
            "test accuracy (%)",
        )
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
        _label_axes(
            ax,
            f"{model_name.upper()}: diagnostic curves at {cfg.diagnostic_sparsity:.0%}",
            "epoch",
            "min-max normalised (mean over seeds)",
        )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _label_axes(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    """Title, axis labels, a light grid and (when anything is labelled) a small legend."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)


def resnet18_scoring_time(
    n_images: int = 512, batch_size: int = 128, threads: int = 2, **prune_options: Any
) -> dict[str, float]:
    """Seconds to compute an LNPT mask (95%) of an unmodified torchvision ResNet-18 at 32x32.

    Student and teacher are `torchvision.models.resnet18(num_classes=10)` built from their config (no
    weights are downloaded; timing does not depend on trained values), `n_images` unlabeled
    random inputs in batches of `batch_size`, `threads` CPU threads. Also times SNIP on the same
    inputs with random labels, for scale.
    """
    import torchvision

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    student = torchvision.models.resnet18(num_classes=10)
    teacher = torchvision.models.resnet18(num_classes=10).eval()
    xs = [torch.randn(batch_size, 3, 32, 32) for _ in range(max(1, n_images // batch_size))]
    ys = [torch.randint(0, 10, (batch_size,)) for _ in xs]
    t0 = time.perf_counter()
    prune(student, teacher, xs, 0.95, exclude=head_pattern(student), **prune_options)
    lnpt_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    baseline_mask("snip", student, 0.95, data=list(zip(xs, ys)), exclude=head_pattern(student))
    snip_s = time.perf_counter() - t0
    return {"lnpt_seconds": lnpt_s, "snip_seconds": snip_s, "images": float(len(xs) * batch_size)}
