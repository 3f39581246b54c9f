"""The CWRU load-transfer benchmark: tasks i -> j between motor loads 0-3 hp, read through `load_cwru`.

Protocol (UDTL-style, fixed): for each seed the 40 files of the 12 kHz drive-end set (10 classes x
4 loads) are written in the CWRU format by :func:`cdhm.cwru.write_cwru_files` (simulated, seed-
dependent recordings; ~10 s per file like the real set) into a temporary directory and read back
with :func:`cdhm.load_cwru`, the path a user with the real files takes; with ``root`` set the real
files are read instead (the same files for every seed). Each file is cut into chunks that act as
recordings and split by chunk into train/test halves (seed-dependent), per load. Every method sees
the labelled source-train windows and the unlabelled target-train windows, trains a fixed number
of epochs with fixed hyperparameters and keeps its final weights (no target label selects
anything), and is scored on the target-test windows. CDHM runs with its default options.

Finished (task, seed) runs are cached in ``<out>/<name>_cache.json`` (keyed by the config and
CDHM's defaults); ``resume`` reuses them, so the run can be done in chunks of ``max_minutes``.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop.checks import check_positive_int, check_real
from maskloop.report import (
    Results,
    format_mean_std,
    markdown_table,
    paired_difference,
    write_report,
)
from sklearn.metrics import confusion_matrix
from tqdm.auto import tqdm

from cdhm.bench import METHODS, _cache_key, _figure, _run_methods, check_windowing
from cdhm.cwru import CWRU_RPM, cwru_transfer_tasks, load_cwru, write_cwru_files
from cdhm.data import CLASSES_10, BearingData, apply_front_end, split_by_recording

__all__ = ["CWRU_BASELINES", "CWRUBenchConfig", "run_cwru_bench"]

#: The baselines CDHM is compared with on the CWRU tasks (issue 18).
CWRU_BASELINES: tuple[str, ...] = ("source-only", "DANN", "MK-MMD", "Deep CORAL")
#: The quick variant: three tasks (nearest loads, both extremes) instead of all twelve.
CWRU_QUICK_TASKS: tuple[tuple[int, int], ...] = ((0, 1), (0, 3), (3, 0))


@dataclass
class CWRUBenchConfig:
    """What a CWRU load-transfer run does (saved into the results JSON).

    ``seconds`` is the length of each generated file (the real 12 kHz files hold ~10 s);
    ``chunks_per_file`` chunks of each file are the recordings of the split; ``root`` reads the
    real files from a directory instead of generating them.
    """

    tasks: list[tuple[int, int]] = field(default_factory=cwru_transfer_tasks)
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    epochs: int = 40
    seconds: float = 10.0
    window: int = 8192
    n_segments: int = 4
    chunks_per_file: int = 4
    front_end: str = "order-envelope"
    methods: tuple[str, ...] = ("CDHM", *CWRU_BASELINES)
    root: str | None = None
    cdhm_kwargs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_windowing(self.front_end, self.window, self.n_segments)
        for s, t in self.tasks:
            if s not in CWRU_RPM or t not in CWRU_RPM or s == t:
                raise ValueError(
                    f"task {s}->{t} is not a CWRU load transfer; loads are {sorted(CWRU_RPM)}, "
                    "source != target"
                )
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; allowed: {list(METHODS)}")
        if "CDHM" not in self.methods or not set(self.methods) - {"CDHM"}:
            raise ValueError(f"methods must hold CDHM and >= 1 baseline, got {self.methods}")
        check_real("seconds", self.seconds, low=0.0, low_inclusive=False)
        if self.root is not None:
            self.root = str(Path(self.root).resolve())


def _seed_data(cfg: CWRUBenchConfig, seed: int) -> tuple[BearingData, BearingData]:
    """The 4 loads of one seed, read with `load_cwru` (raw windows, front-end windows)."""
    kw = {"window": cfg.window, "chunks_per_file": cfg.chunks_per_file}
    if cfg.root is not None:
        raw = load_cwru(cfg.root, **kw)
    else:
        with tempfile.TemporaryDirectory(prefix="cdhm-cwru-") as tmp:
            write_cwru_files(tmp, seconds=cfg.seconds, seed=seed)
            raw = load_cwru(tmp, **kw)
    return raw, apply_front_end(raw, cfg.front_end, cfg.n_segments)


def _split(data: BearingData, load: int, seed: int) -> tuple[BearingData, BearingData]:
    return split_by_recording(data.subset(data.domain == load), 0.5, seed)


def run_cwru_bench(
    config: CWRUBenchConfig | None = None,
    out: str | Path = "cdhm-bench",
    command: str = "cdhm bench --cwru",
    progress: bool = True,
    resume: bool = True,
    max_minutes: float | None = None,
    threads: int = 2,
    name: str = "cdhm_cwru",
) -> tuple[Results, str]:
    """Run the CWRU load-transfer tasks, write ``<out>/<name>.{md,json,png}``; (results, markdown).

    Jobs run seed by seed; a run stopped by `max_minutes` keeps every finished method of a job in
    the cache and the report says what is missing (rerun with `resume` to continue).
    """
    if max_minutes is not None:
        check_real("max_minutes", max_minutes, low=0.0, low_inclusive=False)
    torch.set_num_threads(check_positive_int("threads", threads))
    cfg = config if config is not None else CWRUBenchConfig()
    methods = list(cfg.methods)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cache_file = out / f"{name}_cache.json"
    cache: dict[str, Any] = {}
    if resume and cache_file.exists():
        try:
            cache = json.loads(cache_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(f"{cache_file}: not a cdhm bench cache ({err}); delete it") from None
    runs = cache.setdefault(_cache_key(cfg), {})  # config, data source, CDHM defaults
    res = Results("cdhm", command, {**asdict(cfg), "benchmark": "cwru-load-transfer"})
    cms: dict[str, np.ndarray] = {}
    t_start = time.perf_counter()
    computed, stopped = 0, False
    for seed in tqdm(cfg.seeds, desc="cdhm cwru bench", disable=not progress):
        data = None
        for s, t in cfg.tasks:
            job = f"{s}->{t}|{seed}"
            have = runs.setdefault(job, {})
            for m in [m for m in methods if m not in have]:
                if max_minutes is not None and time.perf_counter() - t_start > 60 * max_minutes:
                    stopped = True
                    break
                if data is None:
                    data = _seed_data(cfg, seed)
                raw, fe = data
                (s_tr, s_te), (t_tr, t_te) = _split(raw, s, seed), _split(raw, t, seed)
                splits = {cfg.front_end: (*_split(fe, s, seed), *_split(fe, t, seed))}
                splits["raw"] = (s_tr, s_te, t_tr, t_te)
                o = _run_methods(s, t, seed, cfg, [m], s_tr, s_te, t_tr, t_te, splits)[m]
                have[m] = {
                    "metrics": o["metrics"],
                    "pred": np.asarray(o["pred"]).tolist(),
                    "true": np.asarray(o["true"]).tolist(),
                }
                computed += 1
                cache_file.write_text(json.dumps(cache))
            for m in [m for m in methods if m in have]:
                res.add(m, seed, have[m]["metrics"], task=f"{s}→{t}")
    total = time.perf_counter() - t_start
    tasks = [f"{s}→{t}" for s, t in cfg.tasks]
    full_seeds = [
        seed
        for seed in cfg.seeds
        if all(set(methods) <= set(runs.get(f"{s}->{t}|{seed}", {})) for s, t in cfg.tasks)
    ]
    for m in methods:
        for seed in full_seeds:
            recs = [r for r in res.records if r.method == m and r.seed == seed]
            keys = set.intersection(*(set(r.metrics) for r in recs))
            res.add(m, seed, {k: float(np.mean([r.metrics[k] for r in recs])) for k in keys},
                    task="mean")  # fmt: skip
    n_jobs = len(cfg.seeds) * len(cfg.tasks)
    done = sum(
        set(methods) <= set(runs.get(f"{s}->{t}|{seed}", {}))
        for seed in cfg.seeds
        for s, t in cfg.tasks
    )
    baselines = [m for m in methods if m != "CDHM"]

    def accs(m: str, task: str) -> dict[int, float]:
        return res.values("acc_target", m, task=task)

    # The best baseline: highest mean target accuracy over tasks (complete seeds), else over
    # every finished run; one baseline for every row of the table.
    pool = "mean" if full_seeds else None
    best = max(
        baselines,
        key=lambda m: float(
            np.mean(
                list(accs(m, pool).values())
                if pool
                else [r.metrics["acc_target"] for r in res.records if r.method == m] or [0.0]
            )
        ),
    )
    rows = []
    for task in [*tasks, "mean"]:
        if not accs("CDHM", task) and task != "mean":
            continue
        row = [task]
        for m in methods:
            v = accs(m, task)
            row.append(format_mean_std(v.values(), 2, 100) if v else "—")
        a, b = accs("CDHM", task), accs(best, task)
        shared = sorted(set(a) & set(b))
        row.append(
            paired_difference([a[k] for k in shared], [b[k] for k in shared]).format(2, 100)
            if shared
            else "—"
        )
        row.append(len(shared))
        rows.append(row)
    main_table = markdown_table(
        ["task (load hp)", *methods, f"CDHM − {best} [95% CI]", "seeds"], rows
    )
    mean_rows = (
        res.table("acc_target", baseline=best, setting_keys=["task"], scale=100)
        if full_seeds
        else ""
    )
    mean_rows = "\n".join(
        line for i, line in enumerate(mean_rows.splitlines()) if i < 2 or "| mean |" in line
    )

    def cell(metric: str, m: str, scale: float = 1.0) -> str:
        v = res.values(metric, m, task="mean")
        return format_mean_std(v.values(), 2, scale) if v else "—"

    detail = markdown_table(
        ["method", "source-test acc %", "target-test acc %", "s→domain probe %", "train s/task"],
        [
            [
                m,
                cell("acc_source", m, 100),
                cell("acc_target", m, 100),
                cell("probe_s_domain", m, 100),
                cell("train_seconds", m),
            ]
            for m in methods
        ],
    )
    for m in ("CDHM", best):
        for seed in cfg.seeds:
            for s, t in cfg.tasks:
                o = runs.get(f"{s}->{t}|{seed}", {}).get(m)
                if o is not None:
                    cm = confusion_matrix(o["true"], o["pred"], labels=list(range(10)))
                    cms[m] = cms.get(m, 0) + cm
    fig = _figure(
        res,
        cms,
        list(CLASSES_10),
        tasks,
        out / f"{name}.png",
        title="CWRU-format load transfer: target accuracy (mean ± std over seeds)",
    )
    source = (
        f"the real CWRU files in `{cfg.root}` (the same files for every seed)"
        if cfg.root
        else f"CWRU-format `.mat` files written per seed by `cdhm.cwru.write_cwru_files` "
        f"({cfg.seconds:g} s per file; simulated 'mild' tier, whose four conditions mimic loads "
        "0-3 hp at 1797/1772/1750/1730 rpm; fault sizes 0.007/0.014/0.021 in scale the impact "
        "severity) and read back with `load_cwru`"
    )
    verdict = ""
    if full_seeds:
        d = paired_difference(
            [accs("CDHM", "mean")[k] for k in full_seeds],
            [accs(best, "mean")[k] for k in full_seeds],
        )
        verdict = (
            f"**Mean over the {len(tasks)} tasks and {len(full_seeds)} seeds: CDHM − {best} = "
            f"{d.format(2, 100)} points** ("
            + (
                "CDHM ahead, CI above 0"
                if d.low > 0
                else "CI below 0: CDHM behind"
                if d.high < 0
                else "CI includes 0: no difference shown"
            )
            + ")."
        )
    sections = [
        f"Data: {source}; 10 classes (normal, inner race / ball / outer race @6 o'clock x "
        f"0.007/0.014/0.021 in), windows of {cfg.window} samples at 12 kHz (the 48 kHz normal "
        f"files decimated by 4), each file cut into {cfg.chunks_per_file} chunks that are the "
        "recordings of a split by recording (half train, half test, per load; never random "
        f"windows). Tasks: {', '.join(tasks)} (source → target load, hp). Seeds {cfg.seeds} "
        "(data, split and initialisation). UDTL-style fixed protocol: "
        f"{cfg.epochs} epochs, fixed hyperparameters, final weights, target labels only to "
        f"score. Input of every neural method: front end `{cfg.front_end}` with T = "
        f"{cfg.n_segments} segments. CDHM: default options. Best baseline ({best}): highest "
        "mean target accuracy over tasks. "
        f"Wall time of this invocation: {total:.0f} s ({computed} method runs computed, the "
        "rest from the cache). "
        + (
            f"**Partial run: {done} of {n_jobs} task-seed jobs done; the mean row uses the "
            f"{len(full_seeds)} seed(s) with every task done ({full_seeds}). Rerun the same "
            "command with --resume to continue.**"
            if done < n_jobs
            else f"All {n_jobs} task-seed jobs done."
        ),
        verdict,
        "## Target accuracy (%) per task, mean ± std over seeds; Δ paired over seeds\n\n"
        + main_table,
        f"## Mean over tasks; every method vs {best} (paired over seeds)\n\n" + mean_rows
        if mean_rows
        else "",
        "## Source vs target accuracy, s→domain probe (CDHM), training time (mean over tasks)"
        "\n\n" + detail,
        f"![target accuracy and confusion matrices]({fig.name})",
    ]
    sections = [s for s in sections if s]
    write_report(out / f"{name}.md", "cdhm: CWRU-format load-transfer benchmark", sections, res)
    return res, "\n\n".join(sections[1:-1]) + "\n" + (
        "(stopped by --max-minutes)\n" if stopped else ""
    )
