"""The SSJDN benchmark: the ablation ladder and the AMFMN-style peer on multiscale scenes.

Data (`make_multiscale_scenes`): every scene holds a large group of its class's objects and a
small group of vehicles/boats/trees/tanks, each caption mentions one scale, and half the images
come as twins that differ only in the small group. Per seed a fresh draw: train (seed 1000+s),
test (2000+s, twin fraction 0.5) and the **hard** split (3000+s, every image a twin, so the small
objects decide). ``--split val`` trains on 4000+s and evaluates on 5000+s / 6000+s instead: the
validation draws on which the defaults are chosen (never the test draws).

Every (method, seed) run is cached as JSON under ``<out>/cache/``; ``--resume`` reuses finished
runs and ``--time-limit`` stops starting new ones, so the grid runs in chunks. Recorded per run:
R@1/5/10 both ways and mR on test and hard, mR of small-object queries (``small_mR``), epochs to 90%
of the final mR, training time, and diagnostics (LSD label accuracy, agreement of the two BSD
passes). Outputs: ``ssjdn.md``/``.json`` (or ``ssjdn_validation.*``), the mR-per-epoch figure,
the SGS suppression figure and retrieval examples.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop.checks import check_int

from ssjdn.amfmn import AMFMNStyle, amfmn_config
from ssjdn.baselines import ABLATION_LADDER, LADDER, PREVIOUS_STL, VARIANTS, ablation_config
from ssjdn.data import RetrievalData
from ssjdn.diagnostics import plot_retrievals, plot_suppression
from ssjdn.metrics import retrieval_metrics
from ssjdn.retired import RETIRED_IN_KEY, RETIRED_METHODS, retired_at
from ssjdn.scenes import make_multiscale_scenes
from ssjdn.ssjdn import SSJDN
from ssjdn.train import TrainHistory, evaluate_retrieval, train_retrieval

__all__ = [
    "BenchSettings",
    "bench_data",
    "build_method",
    "evaluation_seconds",
    "plot_retrievals",
    "run_bench",
    "split_seeds",
    "train_rung",
]

BASELINE = "dual-encoder"
# the full model on today's defaults (``sgs_pool="centered"`` since 2026-12-04: `LADDER`'s top)
# and the full model as measured until then (``"multiply"``, the top of `ABLATION_LADDER`)
FULL = LADDER[-1]
PREVIOUS_FULL = "+STL (full SSJDN)"
PEER = "AMFMN-style"
EXAMPLE_MODELS = (FULL, PREVIOUS_FULL, "SGS chain (v1)")  # their salience maps go into the figure
DIAG_KEYS = {
    "sal_std_s1": "salience spatial std, scale 1",
    "sal_std_s4": "salience spatial std, scale 4",
    "lsd_img_acc": "LSD image acc %",
    "lsd_txt_acc_large": "LSD text acc % (large-object captions)",
    "lsd_txt_acc_small": "LSD text acc % (small-object captions)",
    "corr_s1": "corr. of the two passes' salience, scale 1",
    "corr_s4": "corr. of the two passes' salience, scale 4",
    "mR_without_f2c": "mR with the f→c pass zeroed",
    "mR_without_c2f": "mR with the c→f pass zeroed",
    "small_z_p0_s1": "SFE map f→c (scale 1): contrast on small objects (z)",
    "small_z_p1_s4": "SFE map c→f (scale 4): contrast on small objects (z)",
    "guide_z_p0": "SGS guide map f→c as multiplied (learned or contrast): z on small objects",
    "damp_small_ratio": "SGS damping on small objects / elsewhere",
    "corr_scales_p0": "corr. of the maps between scales",
    "pass_feat_cos": "cos of the two passes' features",
    "pass_contrib_cos": "cos of the two passes' contributions to v",
    "sem_var_share": "LSD semantic share of the similarity variance",
    "mR_residual_only": "mR, residual part only",
    "mR_semantic_only": "mR, semantic part only",
    "sgs_dir_cos_p0": "cos of a pooled feature with / without SGS (f→c)",
    "sgs_damp_overlap": "overlap of the two passes' SGS damping",
    "probe_img_acc": "category probe on the image embedding %",
    "probe_txt_acc_small": "category probe on small-object captions %",
    "pass_r2_c2f_from_f2c": "R² of the c→f pass's features from the f→c pass's",
}
SPLITS = {"test": (1000, 2000, 3000), "val": (4000, 5000, 6000)}
# config options added after the committed cache was made: option -> (its neutral value, the
# sub-option each other value uses); see `method_key`
ADDED_OPTIONS: dict[str, tuple[Any, dict[str, str]]] = {
    "sgs_polarity": ("suppress_salient", {}),
    "sgs_guide": ("learned", {"contrast": "sgs_contrast_kernel"}),
    "sgs_pool": ("multiply", {}),
    "sgs_guide_c2f": ("same", {}),
}
# (the options retired on 2026-12-05, `ssjdn.retired.RETIRED_OPTIONS`, entered the hash only when
# switched on, so the kept rows' keys do not change without them; the two retired in session 33
# were always in it and are put back, `ssjdn.retired.RETIRED_IN_KEY`; ``lsd_head_lr``, retired in
# session 34, was an added option, in the hash only when switched on: nothing to put back)


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and budget of one benchmark run."""

    n_train: int
    n_test: int
    image_size: int
    epochs: int
    batch_size: int = 128
    lr: float = 2e-3
    twin_fraction: float = 0.5

    @classmethod
    def quick(cls) -> BenchSettings:
        """The size the committed tables use (2 shared CPU cores)."""
        return cls(n_train=600, n_test=250, image_size=64, epochs=12)

    @classmethod
    def full(cls) -> BenchSettings:
        """A larger run for a machine of one's own."""
        return cls(n_train=2000, n_test=500, image_size=64, epochs=25)

    def key(self) -> str:
        """Short hash naming the cache folder of these settings."""
        return hashlib.sha1(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:10]


def split_seeds(seed: int, split: str = "test") -> tuple[int, int, int]:
    """The scene generator's seeds of the (train, evaluation, hard) draws of bench seed ``seed``.

    Each split owns a block of 1,000 generator seeds per draw (`SPLITS`), so every bench seed
    below 1,000 gets draws of its own: validation seeds 5..9 share no draw with seeds 0..4 of
    either split."""
    if split not in SPLITS:
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    seed = check_int("seed", seed, 0)
    if seed >= 1000:
        raise ValueError(f"seed must be < 1000 (its draws would be another split's), got {seed!r}")
    a, b, c = SPLITS[split]
    return a + seed, b + seed, c + seed


def bench_data(
    settings: BenchSettings, seed: int, split: str = "test"
) -> tuple[RetrievalData, RetrievalData, RetrievalData]:
    """(train, evaluation, hard evaluation) draws of seed ``seed`` for ``split`` "test" or "val"
    (generator seeds from `split_seeds`)."""
    a, b, c = split_seeds(seed, split)
    s = settings
    train = make_multiscale_scenes(s.n_train, s.image_size, a, twin_fraction=s.twin_fraction)
    test = make_multiscale_scenes(s.n_test, s.image_size, b, twin_fraction=s.twin_fraction)
    hard = make_multiscale_scenes(s.n_test, s.image_size, c, twin_fraction=1.0)
    return train, test, hard


def build_method(name: str, train: RetrievalData, seed: int, **overrides: Any) -> SSJDN:
    """The model of ladder rung / variant / peer ``name``, initialisation seeded by ``seed``."""
    if name == PEER:
        return AMFMNStyle.from_data(train, amfmn_config(**overrides), seed=seed)
    return SSJDN.from_data(train, ablation_config(name, **overrides), seed=seed)


def train_rung(
    name: str,
    train: RetrievalData,
    test: RetrievalData | None,
    settings: BenchSettings,
    seed: int,
    progress: bool = False,
    **overrides: Any,
) -> tuple[SSJDN, TrainHistory]:
    """Build ``name`` (seeded by ``seed``) and train it with the benchmark's budget, evaluating on
    ``test`` after every epoch when given. Depends only on the arguments."""
    model = build_method(name, train, seed, **overrides)
    return model, train_with_settings(model, train, test, settings, seed, progress=progress)


def train_with_settings(
    model: SSJDN,
    train: RetrievalData,
    test: RetrievalData | None,
    settings: BenchSettings,
    seed: int,
    progress: bool = False,
    callbacks: Sequence[Any] = (),
) -> TrainHistory:
    """Train ``model`` with the benchmark's budget (epochs, batch size, learning rate of
    ``settings``), evaluating on ``test`` after every epoch when given; ``callbacks`` as in
    `train_retrieval`."""
    return train_retrieval(
        model,
        train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        eval_data=test,
        seed=seed,
        progress=progress,
        callbacks=callbacks,
    )


def evaluation_seconds(n_images: int = 1000, n_captions: int = 5000, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of `retrieval_metrics` on a random n_images x n_captions matrix."""
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(n_images, n_captions)).astype(np.float32)
    cap_img = np.repeat(np.arange(n_images), int(np.ceil(n_captions / n_images)))[:n_captions]
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        retrieval_metrics(sims, cap_img)
        best = min(best, time.perf_counter() - t)
    return best


def end_to_end_seconds(
    model: SSJDN, n_images: int = 1000, n_captions: int = 5000, image_size: int = 64
) -> float:
    """Wall time of encoding n_images images and n_captions captions, the similarity matrix and
    the metrics (the whole evaluation of a 1,000 x 5,000 test set)."""
    data = make_multiscale_scenes(min(n_images, 200), image_size, seed=77)
    reps = int(np.ceil(n_images / len(data)))
    images = data.images.repeat(reps, 1, 1, 1)[:n_images]
    caps = (data.flat_captions * int(np.ceil(n_captions / len(data.flat_captions))))[:n_captions]
    cap_img = np.arange(n_captions) % n_images
    t = time.perf_counter()
    sims = model.similarity_of(model.encode_images(images), model.encode_texts(caps))
    retrieval_metrics(sims, cap_img)
    return time.perf_counter() - t


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def method_key(name: str) -> str:
    """Short hash of the model configuration of method ``name`` under today's defaults.

    It is part of every cached run's file name, so that a run cached under other defaults (a rung
    whose options changed since) is never reused as if it were today's method: it is run again.
    A retired row (`ssjdn.retired.RETIRED_METHODS`) keeps the key its runs were cached under, so
    that they can still be read (``scripts/decide.py``)."""
    if name in RETIRED_METHODS:
        return RETIRED_METHODS[name]
    cfg = asdict(amfmn_config() if name == PEER else ablation_config(name))
    # fields retired after every row's key held them at their one remaining value (STL's
    # ``stl_rho`` and ``stl_variant``, session 33): hashed at that value, so the keys stay
    cfg = {**cfg, **RETIRED_IN_KEY}
    # without SGS the SGS options have no effect: a switch of their defaults keeps the key
    if cfg["sgs"] == "none":
        cfg = {k: v for k, v in cfg.items() if not k.startswith("sgs_")}
    # without STL kappa has no effect (the plain hinge): hashed at the value every run cached
    # before its default moved to 1.0 was hashed with, so those runs keep their keys
    if not cfg["stl"]:
        cfg["stl_kappa"] = PREVIOUS_STL["stl_kappa"]
    # options added after runs were cached enter the hash only when they are switched on (at their
    # neutral value the model is the one cached before they existed), each with its sub-options
    for option, (neutral, subs) in ADDED_OPTIONS.items():
        if cfg.get(option, neutral) == neutral:
            cfg = {k: v for k, v in cfg.items() if k != option and k not in subs}
        for value, used in subs.items():
            if cfg.get(option) != value:
                cfg.pop(used, None)
    blob = json.dumps({"method": name, **cfg}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:8]


def cache_stem(name: str, seed: int) -> str:
    """File stem of the cached run of method ``name`` on seed ``seed``: name, config hash, seed."""
    return f"{_slug(name)}__{method_key(name)}__seed{seed}"


def _one_run(
    name: str, seed: int, settings: BenchSettings, split: str, progress: bool
) -> tuple[dict[str, Any], SSJDN, RetrievalData]:
    from ssjdn.diagnostics import (
        chain_agreement,
        label_accuracy,
        label_probe,
        pass_interplay,
        pass_overlap,
        pass_redundancy,
        salience_contrast,
        semantic_reach,
        sgs_effect,
        suppression_focus,
    )

    train, test, hard = bench_data(settings, seed, split)
    model, hist = train_rung(name, train, test, settings, seed, progress=progress)
    final = dict(hist.metrics[-1])
    h = evaluate_retrieval(model, hard)
    final["hard_mR"] = h["mR"]
    final["hard_small_mR"] = h.get("small_mR", float("nan"))
    final["epochs_to_90"] = hist.epochs_to_fraction(0.9)
    final["train_s"] = hist.seconds
    if model.lsd is not None:
        final.update(label_accuracy(model, test))
        if model.lsd.out_dim_factor == 2:
            final.update(semantic_reach(model, test))
    if model.bsd is not None:
        final.update(salience_contrast(model, test))
        final.update(label_probe(model, train, test))
        if hard.image_small is not None and hard.image_small.any():
            final.update(suppression_focus(model, hard))
        if model.bsd.sgs != "none":
            final.update(sgs_effect(model, test))
    if model.bsd is not None and len(model.bsd.orders) == 2:
        final.update(chain_agreement(model, test))
        final.update(pass_interplay(model, test))
        final.update(pass_redundancy(model, test))
        if hard.image_small is not None and hard.image_small.any():
            final.update(pass_overlap(model, hard))
    return {"metrics": final, "curve": hist.curve("mR"), "loss": hist.loss}, model, hard


def _goal_rows(res: Any, methods: list[str], ladder: list[str], eval_s: float, e2e_s: float) -> str:
    from maskloop import report

    def vals(m: str, k: str = "mR") -> dict[int, float]:
        return res.values(k, m)

    rows = []
    for a, b in zip(ladder[:-1], ladder[1:]):
        va, vb = vals(a), vals(b)
        shared = sorted(set(va) & set(vb))
        if len(shared) < 2:
            rows.append([f"{b} raises mR over {a}", "not run", f"{len(shared)} paired seeds"])
            continue
        d = report.paired_difference([vb[s] for s in shared], [va[s] for s in shared])
        rows.append(
            [f"{b} raises mR over {a} (CI above 0)", "met" if d.low > 0 else "missed", d.format()]
        )
    for other, margin in ((BASELINE, 10.0), (PEER, 2.0)):
        if FULL in methods and other in methods:
            vf, vo = vals(FULL), vals(other)
            shared = sorted(set(vf) & set(vo))
            if len(shared) >= 2:
                d = report.paired_difference([vf[s] for s in shared], [vo[s] for s in shared])
                rows.append(
                    [
                        f"full SSJDN ({FULL}) >= {other} + {margin:g} mR",
                        "met" if d.mean >= margin else "missed",
                        d.format(),
                    ]
                )
    rows.append(
        ["metrics of 1,000 x 5,000 < 5 s", "met" if eval_s < 5 else "missed", f"{eval_s:.3f} s"]
    )
    if e2e_s == e2e_s:
        rows.append(
            [
                "whole evaluation (encode 1,000 images + 5,000 captions, similarity, metrics) < 5 s",
                "met" if e2e_s < 5 else "missed",
                f"{e2e_s:.2f} s",
            ]
        )
    return report.markdown_table(["goal", "status", "measured (paired Δ [95% CI])"], rows)


def _paired_rows(res: Any, pairs: list[tuple[str, str]], what: str) -> str:
    """Table of the paired mR / hard_mR difference b - a over shared seeds for each (a, b)."""
    from maskloop import report

    rows = []
    for a, b in pairs:
        for metric in ("mR", "hard_mR"):
            va, vb = res.values(metric, a), res.values(metric, b)
            shared = sorted(set(va) & set(vb))
            if shared:
                d = report.paired_difference([vb[x] for x in shared], [va[x] for x in shared])
                rows.append([f"{a} → {b}", metric, len(shared), d.format()])
    return report.markdown_table([what, "metric", "n", "paired Δ [95% CI]"], rows)


def run_bench(
    out: str | Path = "ssjdn-bench",
    quick: bool = True,
    seeds: int = 5,
    settings: BenchSettings | None = None,
    methods: list[str] | None = None,
    command: str | None = None,
    progress: bool = True,
    split: str = "test",
    resume: bool = False,
    time_limit: float | None = None,
    cache_dir: str | Path | None = None,
    time_evaluation: bool = True,
    first_seed: int = 0,
    threads: int = 2,
    epochs: int | None = None,
    report_name: str | None = None,
) -> dict[str, Any]:
    """Run ``methods`` x ``seeds`` (cached per run under ``cache_dir``, default ``out/cache``) and
        write the report.

        ``resume`` reuses cached runs; ``time_limit`` (seconds) stops starting new runs, so a long grid
        runs in chunks. The seeds are ``first_seed .. first_seed + seeds - 1``; ``threads`` is the torch
        CPU thread count. ``epochs`` overrides the training budget of ``settings`` (the same for every
        method; it is part of the cache folder's name, and a budget other than the preset's writes its
        report as ``<stem>_e<epochs>``). ``report_name`` replaces that file stem (letters, digits, ``_``
    and ``-``), so that a report of extra runs does not overwrite the one that chose the defaults.
    ``time_evaluation`` times the whole 1,000 x 5,000 evaluation with the
        first seed's full model (encoding included). Returns the Results, the table text, the goal table and the missing runs.
    """
    from maskloop import report

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive int, got {seeds!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be 'test' or 'val', got {split!r}")
    first_seed = check_int("first_seed", first_seed, 0)
    if report_name is not None and (
        not isinstance(report_name, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", report_name)
    ):
        raise ValueError(
            f"report_name must be a file stem of letters, digits, '_' and '-', got {report_name!r}"
        )
    threads = check_int("threads", threads, 1)
    if time_limit is not None and not time_limit > 0:
        raise ValueError(f"time_limit must be > 0 seconds or None, got {time_limit!r}")
    known = [*ABLATION_LADDER, PEER, *VARIANTS]  # `LADDER`'s rungs are among these
    methods = list(methods) if methods is not None else known
    retired = [m for m in methods if m in RETIRED_METHODS]
    if retired:
        raise ValueError(
            f"methods {retired} are retired readings (rejected on validation); their models are "
            f"built by the code at commit(s) {sorted({retired_at(m) for m in retired})}"
        )
    bad = [m for m in methods if m not in known]
    if bad:
        raise ValueError(f"methods must be among {known}, got {bad}")
    # the goals judge `LADDER` (today's defaults); the rungs as measured until 2026-12-04
    # (`ABLATION_LADDER`, ``sgs_pool="multiply"``) are reported beside it when they ran
    ladder = [m for m in LADDER if m in methods]
    previous_ladder = [m for m in ABLATION_LADDER if m in methods]
    preset = settings or (BenchSettings.quick() if quick else BenchSettings.full())
    s = preset if epochs is None else replace(preset, epochs=check_int("epochs", epochs, 1))
    out = Path(out)
    cache = (Path(cache_dir) if cache_dir is not None else out / "cache") / split / s.key()
    cache.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    cmd = command or f"ssjdn bench --seeds {seeds}" + (" --split val" if split == "val" else "")
    stem = "ssjdn" if split == "test" else "ssjdn_validation"
    if s.epochs != preset.epochs:
        stem += f"_e{s.epochs}"
    stem = report_name or stem
    res = report.Results(
        "ssjdn", cmd, config={**asdict(s), "seeds": seeds, "first_seed": first_seed, "split": split}
    )
    curves = report.Results("ssjdn", cmd)
    examples: dict[str, tuple[SSJDN, RetrievalData]] = {}
    missing: list[str] = []
    t_start = time.perf_counter()
    for seed in range(first_seed, first_seed + seeds):
        for name in methods:
            run_stem = cache_stem(name, seed)
            f, saved = cache / f"{run_stem}.json", cache / f"{run_stem}.model"
            want_model = seed == first_seed and name in EXAMPLE_MODELS and split == "test"
            if resume and f.is_file():
                run = json.loads(f.read_text())
                if want_model and (saved / SSJDN.WEIGHTS).is_file():  # not in a fresh clone
                    cls = AMFMNStyle if name == PEER else SSJDN
                    examples[name] = (cls.load(saved), bench_data(s, seed, split)[2])
            elif time_limit is not None and time.perf_counter() - t_start > time_limit:
                missing.append(f"{name} seed {seed}")
                continue
            else:
                run, model, hard = _one_run(name, seed, s, split, progress)
                f.write_text(json.dumps(run))
                if want_model:
                    model.save(saved)
                    examples[name] = (model, hard)
                m = run["metrics"]
                print(
                    f"[{split}] seed {seed} {name:28s} mR {m['mR']:5.1f} small {m.get('small_mR', 0):5.1f} "
                    f"hard {m['hard_mR']:5.1f} ({m['train_s']:.0f}s, total "
                    f"{(time.perf_counter() - t_start) / 60:.1f} min)",
                    flush=True,
                )
            res.add(name, seed, run["metrics"])
            for e, v in enumerate(run["curve"], 1):
                curves.add(name, seed, {"mR": v}, epoch=e)
    total = time.perf_counter() - t_start
    done = [m for m in methods if res.values("mR", m)]
    if not done:
        raise RuntimeError(f"no run finished within time_limit={time_limit}")
    eval_s = evaluation_seconds()
    e2e_s = float("nan")
    if examples and time_evaluation:
        torch.set_num_threads(threads)
        timed = examples.get(FULL, next(iter(examples.values())))[0]
        e2e_s = end_to_end_seconds(timed, image_size=s.image_size)
    base = BASELINE if BASELINE in done else done[0]
    tables = {}
    for metric in ("mR", "small_mR", "hard_mR", "hard_small_mR"):
        tables[metric] = res.table(metric, baseline=base, setting_keys=[], methods=done)
    ladder_done = [m for m in ladder if m in done]
    step_table = _paired_rows(res, list(zip(ladder_done[:-1], ladder_done[1:])), "rung")
    prev_done = [m for m in previous_ladder if m in done]
    prev_pairs = [(a, b) for a, b in zip(prev_done[:-1], prev_done[1:]) if b not in LADDER]
    prev_table = _paired_rows(res, prev_pairs, "rung (sgs_pool='multiply')")
    variant_pairs = [(VARIANTS[v][0], v) for v in done if v in VARIANTS and VARIANTS[v][0] in done]
    variant_table = _paired_rows(res, variant_pairs, "variant against its rung")
    keys = ["i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR"]
    rk_rows = []
    for m in done:
        row: list[Any] = [m]
        for k in keys:
            mu, sd = report.mean_std(res.values(k, m).values())
            row.append(f"{mu:.1f} ± {sd:.1f}")
        rk_rows.append(row)
    rk = report.markdown_table(["method", *keys], rk_rows)
    diag_rows = []
    for m in done:
        row = [m]
        for k in DIAG_KEYS:
            try:
                v = res.values(k, m)
            except (KeyError, ValueError):
                v = {}
            row.append(report.format_mean_std(v.values(), 2) if v else "—")
        diag_rows.append(row)
    diag = report.markdown_table(
        ["method", *DIAG_KEYS.values()],
        diag_rows,
    )
    conv = res.table("epochs_to_90", setting_keys=[], digits=1, methods=done)
    timing = res.table("train_s", setting_keys=[], digits=1, methods=done)
    goals = _goal_rows(res, done, ladder_done, eval_s, e2e_s)
    out.mkdir(parents=True, exist_ok=True)
    figs = [
        report.plot_metric(
            curves,
            "mR",
            "epoch",
            out / f"{stem}.png",
            title=f"mR per epoch on the {split} draw (mean ± std over seeds)",
            ylabel="mR (%)",
        ).name
    ]
    if split == "test" and examples:
        first = next(iter(examples.values()))
        figs.append(plot_retrievals(*first, out / "ssjdn_retrievals.png").name)
        figs.append(
            plot_suppression(
                {k: v[0] for k, v in examples.items()},
                next(iter(examples.values()))[1],
                out / "ssjdn_sgs.png",
            ).name
        )
    what = "validation" if split == "val" else "test"
    sections = [
        f"Multiscale procedural scenes (`make_multiscale_scenes`): {s.n_train} training / {s.n_test} "
        f"{what} images ({s.image_size}px, 5 captions each, one scale per caption, 10 classes, twin "
        f"fraction {s.twin_fraction}) plus a hard draw of {s.n_test} images that all come as twins "
        f"differing only in the small group; {s.epochs} epochs, batch {s.batch_size}, Adam lr {s.lr}; "
        f"seeds {first_seed}..{first_seed + seeds - 1} (a fresh draw per seed). Wall time of this invocation "
        f"{total / 60:.1f} min (cached runs reused: {resume}).",
        "Not run (time limit): " + (", ".join(missing) if missing else "none") + ".",
        "## Goals\n\n" + goals,
        "## Each rung against the one below (paired over seeds)\n\n" + step_table,
        *(
            [
                "## The ladder as measured until 2026-12-04 (`sgs_pool='multiply'`; reported, "
                "not judged): each rung against the one below\n\n" + prev_table
            ]
            if prev_pairs
            else []
        ),
        *(
            [
                "## Each variant against the rung it modifies (paired over seeds; the options are "
                "chosen on the validation split from these rows)\n\n" + variant_table
            ]
            if variant_pairs
            else []
        ),
        f"## mR, paired Δ against {base}\n\n" + tables["mR"],
        "## mR of small-object queries (full gallery)\n\n" + tables["small_mR"],
        "## Hard split (every image has a twin differing in the small group): mR\n\n"
        + tables["hard_mR"],
        "## Hard split: mR of small-object queries\n\n" + tables["hard_small_mR"],
        "## R@K (mean ± std over seeds)\n\n" + rk,
        "## Diagnostics (why a component adds or not)\n\n" + diag,
        "## Epochs to 90% of the final mR\n\n" + conv,
        "## Training seconds per run\n\n" + timing,
        "## Figures\n\n" + "\n\n".join(f"![{f}]({f})" for f in figs),
    ]
    report.write_report(out / f"{stem}.md", f"SSJDN benchmark ({what} split)", sections, res)
    text = "\n\n".join([goals, step_table, tables["mR"], tables["hard_mR"], diag])
    print(text)
    return {
        "results": res,
        "curves": curves,
        "table": text,
        "goals": goals,
        "missing": missing,
        "seconds": total,
    }
