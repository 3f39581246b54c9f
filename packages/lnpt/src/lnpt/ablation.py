"""Choosing LNPT's scoring options on a validation split, and the anatomy of every method's masks.

`run_ablation` trains, per seed, the teacher of the benchmark (its half of the data), splits the
student's half into a training part and a validation part (`DigitsSplit.validation`), prunes the
student with every LNPT variant in `VARIANTS` and the reference masks, trains it (label-free for every
LNPT variant), and records *validation* accuracy; the test set is never touched. The variant with
the best mean validation accuracy over the sparsities and seeds is the default of `lnpt.prune`.

`anatomy` records, on one seed, where each method's mask keeps its weights: per-layer density at
every sparsity, effective density (kept weights still on an input-output path), dead units, and how
the score mass distributes over layers. It writes the figure `lnpt_layers.png`.
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
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
    train_label_free,
    train_supervised,
    train_teacher,
)
from lnpt.learning_gap import _params, head_pattern, score

__all__ = ["BASE", "CHANGES", "VARIANTS", "AblationConfig", "anatomy", "choose", "run_ablation"]

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
}
VARIANTS: dict[str, dict[str, Any]] = {k: {**BASE, **v} for k, v in CHANGES.items()}
REFERENCES = ("snip+supervised", "synflow+label-free")


@dataclass
class AblationConfig:
    """The validation ablation: models, seeds, sparsities, variants, the benchmark's training."""

    models: tuple[str, ...] = ("cnn",)
    seeds: int = 3
    sparsities: tuple[float, ...] = (0.95,)
    variants: tuple[str, ...] = tuple(VARIANTS)
    references: tuple[str, ...] = REFERENCES
    validation_fraction: float = 0.25
    # The scoring ablation was run before the training ablation: its students train with the
    # previous label-free objective (`label_free={}`: `lnpt.training.TRAINING_BASE`).
    bench: BenchConfig = field(default_factory=lambda: BenchConfig(label_free={}))


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
        arms = [(f"lnpt:{v}", "label-free") for v in acfg.variants]
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
    `lnpt_ablation.{md,json}` and return the results and the chosen variant (`threads` torch CPU
    threads)."""

    torch.set_num_threads(check_positive_int("threads", threads))
    out = Path(out)
    cache = out / "cache"
    cache.mkdir(parents=True, exist_ok=True)
    res = report.Results("lnpt", command, config=asdict(acfg))
    # Units are cached arm by arm (`unit_key`), so the variant / reference / seed lists are not part
    # of the fingerprint: adding a variant reuses every arm already run.
    fixed = {
        k: v
        for k, v in asdict(acfg).items()
        if k not in ("models", "seeds", "variants", "references")
    }
    if not fixed["bench"]["label_free"]:  # keys of runs made before the option existed
        fixed["bench"].pop("label_free")
    key = json.dumps(fixed, sort_keys=True, default=str)
    deadline = None if budget_s is None else time.perf_counter() + budget_s
    left = run_cached_units(
        res,
        acfg.models,
        acfg.seeds,
        lambda model_name, seed, steps: _ablate_one(model_name, seed, acfg, steps),
        cache_file=lambda model_name, seed: (
            cache / f"ablation-{model_name}-seed{seed}-{report_hash(key + model_name)}.jsonl"
        ),
        resume=resume,
        deadline=deadline,
        desc="ablation",
        progress=progress,
    )
    chosen = choose(res, acfg)
    _write_ablation(res, acfg, chosen, left, out)
    return res, chosen


def report_hash(text: str) -> str:
    """A short stable hash of `text` (cache file names)."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _variant_values(res: report.Results, variant: str, model: str | None = None) -> list[float]:
    return [
        r.metrics["val_accuracy"]
        for r in res.records
        if r.method == f"lnpt:{variant}+label-free"
        and (model is None or r.setting.get("model") == model)
    ]


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
) -> list[str]:
    """Run `run_one(model, seed, steps)` for every model and seed, each unit cached in
    `cache_file(model, seed)` (a `Progress` journal), and add its records to `res`; returns the
    units the time budget left undone ("<model> seed <s>"). Shared by the scoring and the
    training ablations."""
    from tqdm.auto import tqdm

    left: list[str] = []
    made = 0
    for model_name in models:
        for seed in tqdm(range(seeds), desc=f"{desc} {model_name}", disable=not progress):
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

    models = tuple(m for m in models if any(r.setting.get("model") == m for r in res.records))
    best, best_acc = "", -1.0
    for v in variants:
        if not models or not all(values(v, m) for m in models):
            continue
        vals = values(v)
        if sum(vals) / len(vals) > best_acc:
            best, best_acc = v, sum(vals) / len(vals)
    return best


def choose(res: report.Results, acfg: AblationConfig) -> str:
    """The scoring variant chosen on validation: `best_variant` over `acfg`'s models."""
    return best_variant(res, acfg.models, acfg.variants, lambda v: f"lnpt:{v}+label-free")


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
    sections = [
        "Validation accuracy (%) of students trained on 75% of the student's half and evaluated "
        "on the other 25% of it (the test set is not used). Every LNPT variant is trained "
        "label-free. Δ is the paired difference to SNIP with supervised training (95% bootstrap "
        "CI).\n"
    ]

    def against_raw_features(model_name: str, sub: report.Results) -> list[str]:
        ref = "lnpt:raw-features+label-free"
        if ref not in sub.methods or len(sub.methods) < 2:
            return []
        return [
            "Paired Δ to the `raw-features` variant (the best of the first ablation):\n",
            sub.table("val_accuracy", baseline=ref, setting_keys=["sparsity"], scale=100.0),
        ]

    sections += model_sections(res, acfg.models, against_raw_features)
    models = [m for m in acfg.models if any(r.setting.get("model") == m for r in res.records)]
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
        sections.append(
            f"Chosen (highest mean over the models every candidate ran on): **{chosen}**.\n"
        )
    if left:
        sections.append(f"Unfinished (run again with `--resume`): {', '.join(left)}.\n")
    report.write_report(
        out / "lnpt_ablation.md",
        "lnpt ablation: LNPT scoring variants on validation",
        sections,
        res,
    )


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
