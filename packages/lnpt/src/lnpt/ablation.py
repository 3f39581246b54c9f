"""Choosing LNPT's scoring options on a validation split, and the anatomy of every method's masks.

`run_ablation` trains, per seed, the teacher of the benchmark (its half of the data), splits the
student's half into a training part and a validation part (`DigitsSplit.validation`), prunes the
student with every LNPT variant in `VARIANTS` and the reference masks, trains it (label-free for every
LNPT variant), and records *validation* accuracy; the test set is never touched.

Two runs of it exist. `AblationConfig()` (`lnpt bench --ablation`, report `lnpt_ablation_kd`) trains
the students with the label-free objective the package uses now (`lnpt.training.TRAINING_DEFAULTS`
through `BenchConfig()`: soft KD at tau 4, no feature term) and decides by `choose_paired` (paired
differences to the current default, the rule written before its results were read).
`AblationConfig.previous_training()` (`--ablation-training previous`, report `lnpt_ablation`) is the
first ablation, kept as the record: it pins the previous objective (feature gap + soft KD) and chose
by the best mean (`best_variant`); the default it chose is the incumbent the re-run tested.

`anatomy` records, on one seed, where each method's mask keeps its weights: per-layer density at
every sparsity, effective density (kept weights still on an input-output path), dead units, and how
the score mass distributes over layers. It writes the figure `lnpt_layers.png`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from maskloop import report, seed_everything
from maskloop import scores as ml_scores
from maskloop.checks import check_positive_int

from lnpt.anatomy import dead_units, effective_density, layer_density, score_mass
from lnpt.bench import (
    MODELS,
    BenchConfig,
    BudgetReached,
    Progress,
    _accuracy,
    _gen,
    make_mask,
    open_cached_run,
    threads_tag,
    train_label_free,
    train_supervised,
    train_teacher,
)
from lnpt.learning_gap import _params, head_pattern, score
from lnpt.runtime import with_flush_denormal

__all__ = [
    "BASE",
    "CHANGES",
    "CURRENT_VARIANTS",
    "DEFAULT_VARIANT",
    "PREVIOUS_VARIANTS",
    "VARIANTS",
    "AblationConfig",
    "PairedChoice",
    "anatomy",
    "applies",
    "cache_key",
    "choose",
    "choose_paired",
    "paired_readings",
    "run_ablation",
]

# The options every variant pins: the spec's one-shot reading. A variant names only what it changes,
# so it means the same whatever `lnpt.learning_gap.SCORE_DEFAULTS` (the chosen default) is.
BASE: dict[str, Any] = {
    "gap": "squared",
    "normalize": True,
    "adaptor": "auto",
    "score_norm": None,
    "rounds": 1,
}
# The LNPT scoring variants compared (all within the abstract: the learning gap on penultimate
# features guides the mask). Keys are `lnpt.prune` options, plus `spatial` (the gap on the unpooled
# maps of the last feature block) and `checkpoints` (scores averaged over k teacher checkpoints).
# `relation*` and `linear-adaptor*` are the basis-invariant readings (`lnpt.learning_gap`).
CHANGES: dict[str, dict[str, Any]] = {
    "one-shot": {},
    "iterative-10": {"rounds": 10},
    "layer-mean": {"score_norm": "mean"},
    "layer-sum": {"score_norm": "sum"},
    "spatial": {"spatial": True},
    "gap-norm": {"gap": "norm"},
    "raw-features": {"normalize": False},
    "checkpoints-3": {"checkpoints": 3},
    "relation": {"gap": "relation", "normalize": False},
    "relation-iterative-10": {"gap": "relation", "normalize": False, "rounds": 10},
    "relation-centered": {"gap": "relation-centered", "normalize": False},
    "linear-adaptor": {"adaptor": "linear"},
    "linear-adaptor-raw": {"adaptor": "linear", "normalize": False},
    "linear-adaptor-raw-iterative-10": {"adaptor": "linear", "normalize": False, "rounds": 10},
    # Raw features compared coordinate by coordinate (identity adaptor at equal widths), re-scored
    # over 10 rounds: assumes the raw gap's gradient is informative without a fitted adaptor and
    # that iteration (which prevents layer collapse in SynFlow) helps it as it helped the adaptor.
    "raw-features-iterative-10": {"normalize": False, "rounds": 10},
}
VARIANTS: dict[str, dict[str, Any]] = {k: {**BASE, **v} for k, v in CHANGES.items()}
REFERENCES = ("snip+supervised", "synflow+label-free")
# Under the current training also SNIP's mask trained label-free: the same training with another
# score, so the LNPT rows can be read as "mask quality" against it.
CURRENT_REFERENCES = ("snip+supervised", "snip+label-free", "synflow+label-free")
# The current default of `lnpt.score` / `lnpt.prune` (`SCORE_DEFAULTS`, `DEFAULT_ROUNDS`) as a
# variant: the incumbent of `choose_paired`.
DEFAULT_VARIANT = "linear-adaptor-raw-iterative-10"
# The variants of the first ablation (previous training objective; its report is the record).
PREVIOUS_VARIANTS: tuple[str, ...] = (
    "one-shot",
    "iterative-10",
    "layer-mean",
    "layer-sum",
    "spatial",
    "gap-norm",
    "raw-features",
    "checkpoints-3",
    "relation",
    "relation-iterative-10",
    "relation-centered",
    "linear-adaptor",
    "linear-adaptor-raw",
    "linear-adaptor-raw-iterative-10",
)
# The variants re-run under the current training (`spatial` only on the models with unpooled maps,
# `applies`). Left out, each for a stated reason from the first ablation (CPU is scarce;
# `--variants` still runs them): `layer-mean` (47.6 / 56.7 on the digits / MNIST-1D CNN, far below
# every other reading on both), `relation-iterative-10` (57.8, below its one-shot form on both),
# `linear-adaptor` on L2-normalised features (below the raw form on the digits CNN by 8 points,
# and the raw form is the incumbent's).
CURRENT_VARIANTS: tuple[str, ...] = (
    "linear-adaptor-raw-iterative-10",
    "one-shot",
    "iterative-10",
    "raw-features",
    "raw-features-iterative-10",
    "linear-adaptor-raw",
    "relation",
    "relation-centered",
    "layer-sum",
    "checkpoints-3",
    "gap-norm",
    "spatial",
)


def applies(variant: str, model: str) -> bool:
    """Whether `variant` can score `model`: the `spatial` reading needs unpooled feature maps
    (`ModelSpec.spatial_layer`), which the MLP does not have; every other variant applies to all."""
    return not (VARIANTS[variant].get("spatial") and MODELS[model].spatial_layer is None)


RULES = ("paired", "mean")


@dataclass
class AblationConfig:
    """The validation ablation: models, seeds, sparsities, variants, the benchmark's training.

    By default the students train as the benchmark does now (`BenchConfig()`, whose `label_free`
    is `lnpt.training.TRAINING_DEFAULTS`), the report is `lnpt_ablation_kd` and the choice is
    `choose_paired` against `incumbent` (`rule="paired"`); `previous_training()` is the first
    ablation's config (the record). `report`, `rule` and `incumbent` decide only how results are
    read, not the results, so they are not part of the cache key.
    """

    models: tuple[str, ...] = ("mlp", "cnn", "cnn1d")
    seeds: int = 5
    sparsities: tuple[float, ...] = (0.95,)
    variants: tuple[str, ...] = CURRENT_VARIANTS
    references: tuple[str, ...] = CURRENT_REFERENCES
    validation_fraction: float = 0.25
    bench: BenchConfig = field(default_factory=BenchConfig.validation_record)
    report: str = "lnpt_ablation_kd"
    rule: str = "paired"
    incumbent: str = DEFAULT_VARIANT

    @classmethod
    def previous_training(cls) -> AblationConfig:
        """The first scoring ablation (report `lnpt_ablation`, kept as the record): run before the
        training ablation, its students train with the previous label-free objective
        (`label_free={}`: `lnpt.training.TRAINING_BASE`), 3 seeds, every variant of the time,
        chosen by the best mean (`best_variant`)."""
        return cls(
            models=("cnn",),
            seeds=3,
            variants=PREVIOUS_VARIANTS,
            references=REFERENCES,
            bench=replace(BenchConfig.validation_record(), label_free={}),
            report="lnpt_ablation",
            rule="mean",
        )

    def check(self) -> None:
        """Raise ValueError naming the first bad field."""
        bad = [m for m in self.models if m not in MODELS]
        if bad:
            raise ValueError(f"models {bad} unknown; choose from {sorted(MODELS)}")
        bad = [v for v in (*self.variants, self.incumbent) if v not in VARIANTS]
        if bad:
            raise ValueError(f"variants {bad} unknown; choose from {sorted(VARIANTS)}")
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.rule == "paired" and self.incumbent not in self.variants:
            raise ValueError(
                f"incumbent {self.incumbent!r} must be among the variants (the paired rule "
                "measures every variant against it)"
            )
        if not self.report or any(c in self.report for c in "/\\") or self.report[0] == ".":
            raise ValueError(f"report must be a plain file stem, got {self.report!r}")
        check_positive_int("seeds", self.seeds)


def _variant_mask(
    name: str,
    init: torch.nn.Module,
    teachers: list[torch.nn.Module],
    data: Any,
    sparsity: float,
    cfg: BenchConfig,
    seed: int,
    model_name: str,
) -> Any:
    opts = dict(VARIANTS[name])
    k = opts.pop("checkpoints", 1)
    teacher: Any = teachers[-1] if k == 1 else teachers[-k:]
    return make_mask("lnpt", init, teacher, data, sparsity, cfg, seed, MODELS[model_name], opts)


def _ablate_one(
    model_name: str, seed: int, acfg: AblationConfig, progress: Progress
) -> list[dict[str, Any]]:
    cfg = acfg.bench
    spec = MODELS[model_name]
    data = spec.data(seed).validation(acfg.validation_fraction, seed)
    k = max([VARIANTS[v].get("checkpoints", 1) for v in acfg.variants] + [1])
    teachers: list[torch.nn.Module] = []
    seed_everything(seed)
    init = spec.build()
    epochs = cfg.epochs[model_name]
    bs = cfg.batch_sizes.get(model_name, 64)
    wanted = []
    for sparsity in acfg.sparsities:
        arms = [(f"lnpt:{v}", "label-free") for v in acfg.variants if applies(v, model_name)]
        arms += [tuple(r.split("+")) for r in acfg.references]
        for method, training in arms:
            key = unit_key(sparsity, method, training)
            wanted.append(key)
            if key in progress.done:
                continue
            progress.check()
            if not teachers:
                teachers = train_teacher(model_name, data, cfg, seed, checkpoints=k)
            t0 = time.perf_counter()
            if method.startswith("lnpt:"):
                mask = _variant_mask(
                    method[5:], init, teachers, data, sparsity, cfg, seed, model_name
                )
            else:
                mask = make_mask(method, init, teachers[-1], data, sparsity, cfg, seed, spec)
            secs = time.perf_counter() - t0
            student = copy.deepcopy(init)
            mask.apply_(student)
            if training == "supervised":
                train_supervised(student, data, "student", epochs, cfg, seed, mask, (), bs)
            else:
                train_label_free(student, teachers[-1], data, epochs, cfg, seed, mask, (), bs)
            res = report.Results("lnpt", "")
            res.add(
                f"{method}+{training}",
                seed,
                {"val_accuracy": _accuracy(student, data), "score_seconds": secs},
                model=model_name,
                sparsity=sparsity,
            )
            progress.put(key, res.to_dict()["records"])
    return [r for key in wanted for r in progress.done[key]]


def unit_key(sparsity: float, method: str, training: str) -> str:
    """The cache key of one arm: an LNPT variant's key holds a hash of its options, so redefining
    a variant never reuses results of its old definition."""
    key = f"{sparsity}/{method}+{training}"
    if method.startswith("lnpt:"):
        key += "#" + report_hash(json.dumps(VARIANTS[method[5:]], sort_keys=True))[:8]
    return key


@with_flush_denormal
def run_ablation(
    acfg: AblationConfig,
    out: str | Path,
    command: str,
    resume: bool = False,
    budget_s: float | None = None,
    progress: bool = True,
    threads: int = 2,
) -> tuple[report.Results, str]:
    """Run the validation ablation (cached arm by arm like the benchmark); write
    `<acfg.report>.{md,json}` and return the results and the chosen variant (`threads` torch CPU
    threads)."""

    out, cache, res, deadline = open_cached_run(acfg, out, command, threads, budget_s)
    key = cache_key(acfg)
    left = run_model_units(
        res,
        acfg,
        key,
        lambda model_name, seed, steps: _ablate_one(model_name, seed, acfg, steps),
        cache,
        "ablation",
        threads,
        resume=resume,
        deadline=deadline,
        progress=progress,
    )
    chosen = choose(res, acfg)
    _write_ablation(res, acfg, chosen, left, out)
    return res, chosen


def cache_key(acfg: AblationConfig) -> str:
    """What decides every arm of the ablation besides its own options (the cache files are named
    by `report_hash(cache_key(acfg) + model)`). Units are cached arm by arm (`unit_key`), so the
    variant / reference / seed lists are not part of it: adding a variant reuses every arm already
    run. How the results are read (report, rule, incumbent) does not change them either."""
    fixed = {
        k: v
        for k, v in asdict(acfg).items()
        if k not in ("models", "seeds", "variants", "references", "report", "rule", "incumbent")
    }
    fixed["bench"] = acfg.bench.key_dict()
    if not fixed["bench"]["label_free"]:  # keys of runs made before the option existed
        fixed["bench"].pop("label_free")
    return json.dumps(fixed, sort_keys=True, default=str)


def report_hash(text: str) -> str:
    """A short stable hash of `text` (cache file names)."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def variant_method(variant: str) -> str:
    """The method name under which LNPT scoring variant `variant`, trained label-free, is recorded."""
    return f"lnpt:{variant}+label-free"


def measured_models(res: report.Results, models: Sequence[str]) -> tuple[str, ...]:
    """The `models` that have at least one record in `res`, in their order."""
    return tuple(m for m in models if any(r.setting.get("model") == m for r in res.records))


def _variant_values(res: report.Results, variant: str, model: str | None = None) -> list[float]:
    return [
        r.metrics["val_accuracy"]
        for r in res.records
        if r.method == variant_method(variant)
        and (model is None or r.setting.get("model") == model)
    ]


def run_model_units(
    res: report.Results,
    acfg: Any,
    key: str,
    run_one: Callable[[str, int, Progress], list[dict[str, Any]]],
    cache: Path,
    prefix: str,
    threads: int,
    resume: bool,
    deadline: float | None,
    progress: bool,
) -> list[str]:
    """An ablation's models x seeds cached per (model, seed) (the scoring and the training
    ablations): `run_one(model, seed, steps)` journalled in
    `cache/<prefix>-<model>-seed<s>-<hash of key + model><threads tag>.jsonl`, where `key` holds
    what decides every arm besides its own options; returns the units the time budget left undone,
    as `run_cached_units` does."""
    return run_cached_units(
        res,
        acfg.models,
        acfg.seeds,
        run_one,
        cache_file=lambda m, seed: (
            cache / f"{prefix}-{m}-seed{seed}-{report_hash(key + m)}{threads_tag(threads)}.jsonl"
        ),
        resume=resume,
        deadline=deadline,
        desc=prefix,
        progress=progress,
    )


def run_seed_check(
    res: report.Results,
    model: str,
    seeds: int,
    fixed: dict[str, Any],
    run_one: Callable[[int, Progress], list[dict[str, Any]]],
    cache: Path,
    prefix: str,
    threads: int,
    resume: bool,
    deadline: float | None,
    desc: str,
    progress: bool,
    first_seed: int = 0,
) -> list[str]:
    """One model's check cached per seed (the protocol, teacher and student-lr checks):
    `run_one(seed, steps)` for each seed of `first_seed .. first_seed + seeds - 1`, journalled in
    `cache/<prefix>-<model>-seed<s>-<hash of fixed><threads tag>.jsonl`; returns the units the
    time budget left undone, as `run_cached_units` does."""
    key = report_hash(json.dumps(fixed, sort_keys=True, default=str)) + threads_tag(threads)
    return run_cached_units(
        res,
        (model,),
        seeds,
        lambda _model, seed, steps: run_one(seed, steps),
        cache_file=lambda m, seed: cache / f"{prefix}-{m}-seed{seed}-{key}.jsonl",
        resume=resume,
        deadline=deadline,
        desc=desc,
        progress=progress,
        first_seed=first_seed,
    )


def run_cached_units(
    res: report.Results,
    models: tuple[str, ...],
    seeds: int,
    run_one: Callable[[str, int, Progress], list[dict[str, Any]]],
    cache_file: Callable[[str, int], Path],
    resume: bool,
    deadline: float | None,
    desc: str,
    progress: bool,
    first_seed: int = 0,
) -> list[str]:
    """Run `run_one(model, seed, steps)` for every model and seed (`first_seed .. first_seed +
    seeds - 1`), each unit cached in
    `cache_file(model, seed)` (a `Progress` journal), and add its records to `res`; returns the
    units the time budget left undone ("<model> seed <s>"). Shared by the scoring and the
    training ablations."""
    from tqdm.auto import tqdm

    left: list[str] = []
    made = 0
    for model_name in models:
        seed_range = range(first_seed, first_seed + seeds)
        for seed in tqdm(seed_range, desc=f"{desc} {model_name}", disable=not progress):
            steps = Progress(cache_file(model_name, seed), resume, deadline)
            steps.new = made
            try:
                records = run_one(model_name, seed, steps)
            except BudgetReached:
                left.append(f"{model_name} seed {seed}")
                made = steps.new
                continue
            made = steps.new
            for r in records:
                res.add(r["method"], r["seed"], r["metrics"], **r["setting"])
    return left


def best_variant(
    res: report.Results,
    models: tuple[str, ...],
    variants: tuple[str, ...],
    method: Callable[[str], str],
) -> str:
    """The variant with the highest mean validation accuracy over all models, sparsities and seeds,
    among the variants measured on every model that has results (so every candidate's mean is over
    the same models); `method(v)` is the variant's method name in `res` ("" when none qualifies)."""

    def values(v: str, model: str | None = None) -> list[float]:
        return [
            r.metrics["val_accuracy"]
            for r in res.records
            if r.method == method(v) and (model is None or r.setting.get("model") == model)
        ]

    models = measured_models(res, models)
    best, best_acc = "", -1.0
    for v in variants:
        if not models or not all(values(v, m) for m in models):
            continue
        vals = values(v)
        if sum(vals) / len(vals) > best_acc:
            best, best_acc = v, sum(vals) / len(vals)
    return best


# "Not worse" in the paired rule: a candidate's mean paired Δ to the incumbent may fall at most this
# far below 0 on any model (1 point: about two validation samples of the digits students).
WORSE_TOLERANCE = 0.01


@dataclass(frozen=True)
class PairedChoice:
    """How `choose_paired` reads one candidate: its paired Δ to the incumbent on every model."""

    variant: str
    deltas: dict[str, report.PairedDifference]  # model -> Δ (candidate - incumbent), fractions
    mean_delta: float  # mean over the models of the per-model mean Δ
    ahead_on: tuple[str, ...]  # models where the Δ's 95% CI lies above 0
    worse_on: tuple[str, ...]  # models where the mean Δ < -WORSE_TOLERANCE or the CI lies below 0

    @property
    def qualifies(self) -> bool:
        """Ahead (CI above 0) on at least one model and not worse on any."""
        return bool(self.ahead_on) and not self.worse_on


def paired_readings(
    res: report.Results,
    models: tuple[str, ...],
    variants: tuple[str, ...],
    incumbent: str,
    method: Callable[[str], str] = variant_method,
) -> list[PairedChoice]:
    """`PairedChoice` of every variant other than `incumbent` measured on every model that has
    results and that it `applies` to, paired seed by seed with the incumbent (the seeds both ran;
    at least 2 per model)."""
    models = measured_models(res, models)
    out = []
    for v in variants:
        if v == incumbent or not any(applies(v, m) for m in models):
            continue
        deltas: dict[str, report.PairedDifference] = {}
        for m in (m for m in models if applies(v, m)):
            a = res.values("val_accuracy", method(v), model=m)
            b = res.values("val_accuracy", method(incumbent), model=m)
            seeds = sorted(set(a) & set(b))
            if len(seeds) < 2:
                break
            deltas[m] = report.paired_difference([a[s] for s in seeds], [b[s] for s in seeds])
        else:
            out.append(
                PairedChoice(
                    v,
                    deltas,
                    sum(d.mean for d in deltas.values()) / len(deltas),
                    tuple(m for m, d in deltas.items() if d.low > 0),
                    tuple(m for m, d in deltas.items() if d.mean < -WORSE_TOLERANCE or d.high < 0),
                )
            )
    return out


def choose_paired(
    res: report.Results,
    models: tuple[str, ...],
    variants: tuple[str, ...],
    incumbent: str,
    method: Callable[[str], str] = variant_method,
) -> str:
    """The paired rule (fixed before the ablation under the current training was read): keep the
    `incumbent` (the current default) unless a candidate is ahead of it with a paired 95% CI above
    0 on at least one model and not worse on any (mean Δ >= -1 point and CI not below 0); among
    such candidates, the one with the highest mean over models of the mean paired Δ. Noise in a
    few seeds therefore cannot move the default; a consistent gain can."""
    ok = [c for c in paired_readings(res, models, variants, incumbent, method) if c.qualifies]
    return max(ok, key=lambda c: c.mean_delta).variant if ok else incumbent


def choose(res: report.Results, acfg: AblationConfig) -> str:
    """The scoring variant chosen on validation: `choose_paired` against `acfg.incumbent`
    (`rule="paired"`) or `best_variant` (`rule="mean"`, the first ablation's rule) over `acfg`'s
    models."""
    if acfg.rule == "paired":
        return choose_paired(res, acfg.models, acfg.variants, acfg.incumbent)
    return best_variant(res, acfg.models, acfg.variants, variant_method)


def model_sections(
    res: report.Results,
    models: tuple[str, ...],
    extra: Callable[[str, report.Results], list[str]],
) -> list[str]:
    """Per model with results: a heading and the validation-accuracy table (paired Δ to supervised
    SNIP where it ran), then `extra(model, its records)`. Shared by both ablations' reports."""
    sections: list[str] = []
    for model_name in models:
        sub = report.Results("lnpt", res.command, res.config)
        sub.records = [r for r in res.records if r.setting.get("model") == model_name]
        if not sub.records:
            continue
        sections.append(f"## {MODELS[model_name].title}\n")
        sections.append(
            sub.table(
                "val_accuracy",
                baseline="snip+supervised" if "snip+supervised" in sub.methods else None,
                setting_keys=["sparsity"],
                scale=100.0,
            )
        )
        sections += extra(model_name, sub)
    return sections


def _write_ablation(
    res: report.Results, acfg: AblationConfig, chosen: str, left: list[str], out: Path
) -> None:
    training = (
        f"the current label-free objective (`label_free={json.dumps(acfg.bench.label_free)}` over "
        "`lnpt.training.TRAINING_BASE`)"
        if acfg.bench.label_free
        else "the previous label-free objective (`lnpt.training.TRAINING_BASE`: feature gap + soft KD)"
    )
    sections = [
        "Validation accuracy (%) of students trained on 75% of the student's half and evaluated "
        "on the other 25% of it (the test set is not used). Every LNPT variant is trained "
        f"label-free with {training}. Δ is the paired difference to SNIP with supervised training "
        "(95% bootstrap CI).\n"
    ]
    if acfg.rule == "paired":
        ref_variant, why = acfg.incumbent, "the default when this ablation ran"
    else:
        ref_variant, why = "raw-features", "the best of the first ablation"

    def against_ref(model_name: str, sub: report.Results) -> list[str]:
        ref = variant_method(ref_variant)
        if ref not in sub.methods or len(sub.methods) < 2:
            return []
        return [
            f"Paired Δ to the `{ref_variant}` variant ({why}):\n",
            sub.table("val_accuracy", baseline=ref, setting_keys=["sparsity"], scale=100.0),
        ]

    sections += model_sections(res, acfg.models, against_ref)
    models = list(measured_models(res, acfg.models))
    rows = []
    for v in acfg.variants:
        vals = _variant_values(res, v)
        if vals:
            changed = {k: val for k, val in VARIANTS[v].items() if BASE.get(k, object()) != val}
            per_model = []
            for m in models:
                mv = _variant_values(res, v, m)
                per_model.append(report.format_mean_std(mv, 2, 100) if mv else "—")
            rows.append(
                [
                    v,
                    json.dumps(changed),
                    len(vals),
                    *per_model,
                    report.format_mean_std(vals, 2, 100),
                ]
            )
    if rows:
        sections.append("## Mean validation accuracy over sparsities and seeds\n")
        sections.append(
            f"Options: what each variant changes from `{json.dumps(BASE)}` (the spec's one-shot "
            "reading).\n"
        )
        sections.append(
            report.markdown_table(
                ["variant", "options", "n", *[f"{m} val accuracy" for m in models], "all models"],
                rows,
            )
        )
        if acfg.rule == "mean":
            sections.append(
                f"Chosen (highest mean over the models every candidate ran on): **{chosen}**.\n"
            )
    if acfg.rule == "paired":
        sections += _paired_section(res, acfg, chosen, models)
    if left:
        sections.append(f"Unfinished (run again with `--resume`): {', '.join(left)}.\n")
    title = "lnpt ablation: LNPT scoring variants on validation"
    if acfg.bench.label_free:
        title += ", under the current label-free training"
    report.write_report(out / f"{acfg.report}.md", title, sections, res)


def _paired_section(
    res: report.Results, acfg: AblationConfig, chosen: str, models: list[str]
) -> list[str]:
    readings = paired_readings(res, tuple(models), acfg.variants, acfg.incumbent)
    rows = []
    for c in sorted(readings, key=lambda c: -c.mean_delta):
        rows.append(
            [
                c.variant,
                *[c.deltas[m].format(2, 100) if m in c.deltas else "—" for m in models],
                f"{100 * c.mean_delta:+.2f}",
                ", ".join(c.ahead_on) or "—",
                ", ".join(c.worse_on) or "—",
                "yes" if c.qualifies else "no",
            ]
        )
    lines = [
        f"## The rule: paired Δ to the current default (`{acfg.incumbent}`)\n",
        "Fixed before the results were read: keep the current default unless a variant is ahead "
        "of it with a paired 95% bootstrap CI above 0 on at least one model and not worse on any "
        f"(mean Δ >= -{100 * WORSE_TOLERANCE:.0f} point and CI not entirely below 0); among such "
        "variants, the one with the highest mean over the models of its mean paired Δ. Δ in "
        "points, candidate minus default, paired by seed; a variant is read on the models it "
        "applies to (`spatial` needs unpooled maps: not the MLP).\n",
    ]
    if rows:
        lines.append(
            report.markdown_table(
                [
                    "variant",
                    *[f"Δ {m}" for m in models],
                    "mean Δ",
                    "ahead on",
                    "worse on",
                    "qualifies",
                ],
                rows,
            )
        )
    verdict = (
        f"**{chosen}** (the current default stays)"
        if chosen == acfg.incumbent
        else f"**{chosen}** (replaces `{acfg.incumbent}`)"
    )
    lines.append(f"Chosen by the paired rule: {verdict}.\n")
    return lines


def anatomy(
    model_name: str,
    out: str | Path,
    cfg: BenchConfig | None = None,
    seed: int = 0,
    sparsities: tuple[float, ...] = (0.9, 0.95, 0.98),
    variants: tuple[str, ...] = ("one-shot", "layer-sum", "linear-adaptor-raw-iterative-10"),
    resume: bool = False,
    threads: int = 2,
) -> dict[str, Any]:
    """Per-layer density, effective density and dead units of every method's mask at each sparsity,
    and the score mass per layer of SNIP and LNPT (an iterative variant's first round, at M = 1);
    the LNPT variants default to the spec's one-shot reading, per-layer sum normalisation and the
    current default score (`linear-adaptor-raw-iterative-10`); writes `lnpt_layers_<model>.{json,png}` under
    `out`. The JSON is rewritten after every mask, and `resume=True` skips the masks it holds."""
    cfg = cfg or BenchConfig()
    torch.set_num_threads(check_positive_int("threads", threads))
    spec = MODELS[model_name]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"lnpt_layers_{model_name}.json"
    methods = ["random", "snip", "synflow", *[f"lnpt:{v}" for v in variants], "grasp"]
    doc: dict[str, Any] = {"model": model_name, "seed": seed, "masks": {}, "score_mass": {}}
    if resume and path.exists():
        doc = json.loads(path.read_text())

    def save() -> None:
        path.write_text(json.dumps(doc, indent=1) + "\n")

    data = spec.data(seed)
    teachers = train_teacher(model_name, data, cfg, seed)
    seed_everything(seed)
    init = spec.build()
    exclude = head_pattern(init) if cfg.exclude_head else None
    params = _params(init, None, exclude)
    if "snip" not in doc["score_mass"]:
        doc["score_mass"]["snip"] = score_mass(
            ml_scores.snip(
                init,
                data.loader("student", 128, shuffle=True, generator=_gen(seed)),
                params=params,
                max_batches=cfg.score_batches,
            )
        )
    for v in variants:
        if f"lnpt:{v}" in doc["score_mass"]:
            continue  # an iterative variant's mass is that of its first round (at M = 1)
        opts = dict(VARIANTS[v])
        opts.pop("rounds", None)
        opts.pop("checkpoints", None)
        if opts.pop("spatial", False):
            opts.update(feature_layer=spec.spatial_layer, which="output", pool=None)
        sc = score(
            init,
            teachers[-1],
            data.loader("student", 128, shuffle=True, labels=False, generator=_gen(seed)),
            exclude=exclude,
            max_batches=cfg.score_batches,
            kd_weight=cfg.score_kd_weight,
            temperature=cfg.temperature,
            **opts,
        )
        doc["score_mass"][f"lnpt:{v}"] = score_mass(sc)
    save()
    for m in methods:
        for s in sparsities:
            if f"{m}@{s}" in doc["masks"]:
                continue
            if m.startswith("lnpt:"):
                mask = _variant_mask(m[5:], init, teachers, data, s, cfg, seed, model_name)
            else:
                mask = make_mask(m, init, teachers[-1], data, s, cfg, seed, spec)
            doc["masks"][f"{m}@{s}"] = {
                "density": layer_density(mask),
                "effective": effective_density(init, mask, spec.input_shape),
                "dead_units": dead_units(init, mask, spec.input_shape),
            }
            save()
    write_anatomy_report(path)
    return doc


def write_anatomy_report(path: str | Path) -> Path:
    """`lnpt_layers_<model>.{md,png}` from a (possibly partial) anatomy JSON: the generated tables
    and the figure of the methods complete at every sparsity."""
    path = Path(path)
    doc = json.loads(path.read_text())
    keys = list(doc["masks"])
    methods = list(dict.fromkeys(k.rsplit("@", 1)[0] for k in keys))
    sparsities = tuple(sorted({float(k.rsplit("@", 1)[1]) for k in keys}))
    complete = [m for m in methods if all(f"{m}@{s}" in doc["masks"] for s in sparsities)]
    missing = [m for m in methods if m not in complete]
    figure = path.with_suffix(".png")
    try:
        _plot_layers(doc, complete, sparsities, figure)
    except ImportError:
        print("matplotlib not installed: skipped the layer figure (pip install 'lnpt[bench]')")
    model = doc["model"]
    lines = [
        f"# lnpt mask anatomy: {MODELS[model].title}, seed {doc['seed']}",
        "",
        f"Produced by `lnpt bench --anatomy --models {model}` (resumable with `--resume`). Kept % is "
        "the mask's density per layer; effective % counts only kept weights on an input-output "
        "path; dead units are output channels with no effective weight. Score mass: each layer's "
        "share of the summed scores and the mean score per weight. The classifier head is dense "
        "and every masked tensor keeps at least 1%, as in the benchmark.",
        "",
        anatomy_markdown(doc),
        "",
        f"![per-layer density]({figure.name})",
        "",
    ]
    if missing:
        lines.append(f"Unfinished (not in the figure): {', '.join(missing)}.\n")
    out = path.with_suffix(".md")
    out.write_text("\n".join(lines))
    return out


def anatomy_markdown(doc: dict[str, Any]) -> str:
    """Tables of the anatomy document: density / effective density / dead units, score mass."""
    rows = []
    for key, d in doc["masks"].items():
        method, s = key.rsplit("@", 1)
        for layer in d["density"]:
            dead, units = d["dead_units"][layer]
            rows.append(
                [
                    s,
                    method,
                    layer,
                    f"{100 * d['density'][layer]:.1f}",
                    f"{100 * d['effective'][layer]:.1f}",
                    f"{dead}/{units}",
                ]
            )
    t1 = report.markdown_table(
        ["sparsity", "mask", "layer", "kept %", "effective %", "dead units"], rows
    )
    rows = []
    for method, mass in doc["score_mass"].items():
        for layer, (share, mean) in mass.items():
            rows.append([method, layer, f"{100 * share:.1f}", f"{mean:.2e}"])
    t2 = report.markdown_table(["score", "layer", "share of score mass %", "mean score"], rows)
    return t1 + "\n" + t2


def _plot_layers(
    doc: dict[str, Any], methods: list[str], sparsities: tuple[float, ...], path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(sparsities), figsize=(5 * len(sparsities), 4), squeeze=False)
    for j, s in enumerate(sparsities):
        ax = axes[0, j]
        layers = list(doc["masks"][f"{methods[0]}@{s}"]["density"])
        x = np.arange(len(layers))
        w = 0.8 / len(methods)
        for i, m in enumerate(methods):
            d = doc["masks"][f"{m}@{s}"]
            ax.bar(x + i * w, [100 * d["density"][n] for n in layers], w, label=m, alpha=0.85)
            ax.scatter(
                x + i * w, [100 * d["effective"][n] for n in layers], color="k", s=8, zorder=3
            )
        ax.set_xticks(x + 0.4 - w / 2, [n.replace(".weight", "") for n in layers], rotation=30)
        ax.set_yscale("log")
        ax.set_ylabel("kept % (bars), effective % (dots)")
        ax.set_title(f"{doc['model']}: sparsity {s:.0%}")
        ax.grid(alpha=0.3, axis="y")
        if j == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
