"""Benchmark reporting shared by every package, so all results look alike.

`Results` collects one record per (method, setting, seed); `table` prints mean ± std over seeds and,
against a baseline, the paired difference over shared seeds with a bootstrap confidence interval.
Results are saved as JSON (schema `maskloop.results/1`), tables as Markdown, and figures with
matplotlib (the `plot` extra).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "PairedDifference",
    "Record",
    "Results",
    "environment",
    "format_mean_std",
    "markdown_table",
    "mean_std",
    "paired_difference",
    "plot_metric",
    "write_demo_summary",
    "write_report",
]

SCHEMA = "maskloop.results/1"


def _values(values: Iterable[float], name: str = "values") -> np.ndarray:
    arr = np.asarray(list(values), dtype=np.float64)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf: {arr.tolist()}")
    return arr


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    arr = _values(values)
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


def format_mean_std(values: Iterable[float], digits: int = 2, scale: float = 1.0) -> str:
    """'mean ± std' of `values * scale`, e.g. '97.12 ± 0.40'."""
    m, s = mean_std(v * scale for v in values)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


@dataclass(frozen=True)
class PairedDifference:
    """Mean of a - b over paired seeds with a percentile-bootstrap confidence interval."""

    mean: float
    low: float
    high: float
    n: int

    def format(self, digits: int = 2, scale: float = 1.0) -> str:
        """'+1.20 [+0.40, +2.00]' (scaled)."""
        return (
            f"{self.mean * scale:+.{digits}f} "
            f"[{self.low * scale:+.{digits}f}, {self.high * scale:+.{digits}f}]"
        )


def paired_difference(
    a: Sequence[float], b: Sequence[float], n_boot: int = 10000, ci: float = 0.95, seed: int = 0
) -> PairedDifference:
    """Paired difference a - b (same seeds, same order) with a bootstrap CI over the pairs."""
    x, y = _values(a, "a"), _values(b, "b")
    if x.shape != y.shape:
        raise ValueError(f"a and b must pair up: got {x.size} and {y.size} values")
    if not 0 < ci < 1:
        raise ValueError(f"ci must be in (0, 1), got {ci!r}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot!r}")
    d = x - y
    if d.size == 1:
        return PairedDifference(float(d[0]), float(d[0]), float(d[0]), 1)
    rng = np.random.default_rng(seed)
    boots = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return PairedDifference(float(d.mean()), float(lo), float(hi), int(d.size))


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    if not headers:
        raise ValueError("headers must not be empty")
    for i, r in enumerate(rows):
        if len(r) != len(headers):
            raise ValueError(f"row {i} has {len(r)} cells, headers have {len(headers)}")

    def cell(v: Any) -> str:
        if isinstance(v, float):
            v = f"{v:.4g}"
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |"]
    lines.append("|" + "|".join("---" for _ in headers) + "|")
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def environment() -> dict[str, Any]:
    """Where a result was measured: Python, torch, threads, device, platform."""
    env: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        env["torch"] = torch.__version__
        env["threads"] = torch.get_num_threads()
        env["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return env


@dataclass
class Record:
    """One measured run: a method, its setting (e.g. model, sparsity), a seed and its metrics."""

    method: str
    seed: int
    metrics: dict[str, float]
    setting: dict[str, Any] = field(default_factory=dict)


def _setting_key(setting: Mapping[str, Any], keys: Sequence[str]) -> tuple[Any, ...]:
    return tuple(setting.get(k) for k in keys)


class Results:
    """Records of a benchmark run plus what produced them (package, command, config, environment)."""

    def __init__(self, package: str, command: str, config: Mapping[str, Any] | None = None) -> None:
        if not package or not isinstance(package, str):
            raise ValueError(f"package must be a non-empty string, got {package!r}")
        self.package = package
        self.command = command
        self.config = dict(config or {})
        self.environment = environment()
        self.created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        self.records: list[Record] = []

    def add(self, method: str, seed: int, metrics: Mapping[str, float], **setting: Any) -> None:
        """Record `metrics` of `method` at `seed` under `setting` (keyword values, JSON-able)."""
        if not isinstance(method, str) or not method:
            raise ValueError(f"method must be a non-empty string, got {method!r}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {seed!r}")
        clean = {}
        for k, v in metrics.items():
            v = float(v)
            if not math.isfinite(v):
                raise ValueError(
                    f"metric {k!r} of {method} (seed {seed}) is {v}; record finite values"
                )
            clean[k] = v
        self.records.append(Record(method, seed, clean, dict(setting)))

    @property
    def methods(self) -> list[str]:
        """Methods in the order first recorded."""
        return list(dict.fromkeys(r.method for r in self.records))

    def setting_keys(self) -> list[str]:
        """All setting keys, in first-seen order."""
        return list(dict.fromkeys(k for r in self.records for k in r.setting))

    def settings(self, keys: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Distinct settings (restricted to `keys`), in first-seen order."""
        keys = list(keys) if keys is not None else self.setting_keys()
        seen = dict.fromkeys(_setting_key(r.setting, keys) for r in self.records)
        return [dict(zip(keys, s)) for s in seen]

    def values(self, metric: str, method: str, **setting: Any) -> dict[int, float]:
        """seed -> value of `metric` for `method` in records matching `setting`."""
        out = {}
        for r in self.records:
            if r.method != method or metric not in r.metrics:
                continue
            if all(r.setting.get(k) == v for k, v in setting.items()):
                if r.seed in out:
                    raise ValueError(
                        f"several records of {method} seed {r.seed} match {setting}; "
                        "narrow the setting"
                    )
                out[r.seed] = r.metrics[metric]
        return out

    def table(
        self,
        metric: str,
        baseline: str | None = None,
        setting_keys: Sequence[str] | None = None,
        digits: int = 2,
        scale: float = 1.0,
        methods: Sequence[str] | None = None,
    ) -> str:
        """Markdown: per setting and method, n seeds, mean ± std, and the paired Δ to `baseline`."""
        keys = list(setting_keys) if setting_keys is not None else self.setting_keys()
        methods = list(methods) if methods is not None else self.methods
        if baseline is not None and baseline not in self.methods:
            raise ValueError(f"baseline {baseline!r} is not among the methods {self.methods}")
        headers = [*keys, "method", "n", metric]
        if baseline is not None:
            headers.append(f"Δ vs {baseline} [95% CI]")
        rows = []
        for setting in self.settings(keys):
            for m in methods:
                vals = self.values(metric, m, **setting)
                if not vals:
                    continue
                row = [*(setting[k] for k in keys), m, len(vals)]
                row.append(format_mean_std(vals.values(), digits, scale))
                if baseline is not None:
                    base = self.values(metric, baseline, **setting)
                    shared = sorted(set(vals) & set(base))
                    if m == baseline or not shared:
                        row.append("—")
                    else:
                        d = paired_difference([vals[s] for s in shared], [base[s] for s in shared])
                        row.append(d.format(digits, scale))
                rows.append(row)
        if not rows:
            raise ValueError(f"no records carry metric {metric!r}")
        return markdown_table(headers, rows)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (schema `maskloop.results/1`)."""
        return {
            "schema": SCHEMA,
            "package": self.package,
            "command": self.command,
            "created": self.created,
            "config": self.config,
            "environment": self.environment,
            "records": [
                {"method": r.method, "seed": r.seed, "setting": r.setting, "metrics": r.metrics}
                for r in self.records
            ],
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the JSON document to `path`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1, default=str) + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Results:
        """Read a document written by `save`."""
        doc = json.loads(Path(path).read_text())
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"{path} is not a {SCHEMA} document (schema {doc.get('schema')!r})")
        res = cls(doc["package"], doc["command"], doc.get("config"))
        res.environment = doc.get("environment", {})
        res.created = doc.get("created", "")
        for r in doc["records"]:
            res.add(r["method"], r["seed"], r["metrics"], **r["setting"])
        return res


def write_report(
    path: str | os.PathLike[str],
    title: str,
    sections: Sequence[str],
    results: Results | None = None,
) -> Path:
    """Write a Markdown report (title, the command, environment, sections) and the results JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"# {title}", ""]
    if results is not None:
        env = results.environment
        lines += [
            f"Produced by `{results.command}` on {results.created} "
            f"({env.get('device', '?')}, {env.get('threads', '?')} threads, torch "
            f"{env.get('torch', '?')}, Python {env.get('python', '?')}).",
            "",
        ]
        results.save(path.with_suffix(".json"))
    for s in sections:
        lines += [s.rstrip(), ""]
    path.write_text("\n".join(lines))
    return path


_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">", "h")


def plot_metric(
    results: Results,
    metric: str,
    x: str,
    path: str | os.PathLike[str],
    *,
    methods: Sequence[str] | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    scale: float = 1.0,
    reference: str | None = None,
    **fixed: Any,
) -> Path:
    """Line plot of `metric` against setting `x`, one line per method, mean ± std over seeds.

    Records are restricted to those whose setting matches `fixed`. `reference` (e.g. "dense") is
    drawn as a dashed horizontal line at its mean instead of a point. Needs matplotlib (`plot` extra).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise ImportError("plot_metric needs matplotlib: pip install 'maskloop[plot]'") from err
    methods = list(methods) if methods is not None else results.methods
    ref = None
    if reference is not None:
        ref_vals = results.values(metric, reference, **fixed)
        if not ref_vals:
            raise ValueError(f"reference {reference!r} has no {metric!r} records matching {fixed}")
        ref = mean_std(v * scale for v in ref_vals.values())[0]
        methods = [m for m in methods if m != reference]
    many = len(methods) > 6  # many lines: distinct markers too, and the legend beside the axes
    fig, ax = plt.subplots(figsize=(8.5, 4.5) if many else (6, 4))
    plotted = 0
    for i, m in enumerate(methods):
        xs = sorted(
            {r.setting[x] for r in results.records if r.method == m and x in r.setting},
            key=lambda v: (isinstance(v, str), v),
        )
        pts = []
        for xv in xs:
            vals = results.values(metric, m, **{x: xv}, **fixed)
            if vals:
                mu, sd = mean_std(v * scale for v in vals.values())
                pts.append((xv, mu, sd))
        if pts:
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] for p in pts],
                marker=_MARKERS[i % len(_MARKERS)] if many else "o",
                capsize=3,
                label=m,
            )
            plotted += 1
    if ref is not None:
        ax.axhline(ref, color="0.3", linestyle="--", linewidth=1, label=f"{reference} ({ref:.2f})")
    if not plotted:
        plt.close(fig)
        raise ValueError(f"no records with metric {metric!r} and setting {x!r} match {fixed}")
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title or f"{results.package}: {metric}")
    ax.grid(alpha=0.3)
    if many:
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def write_demo_summary(
    path: str | os.PathLike[str],
    package: str,
    what: str,
    headline: str,
    seconds: float,
    *,
    baseline: str | None = None,
    beat_baseline: bool | None = None,
) -> Path:
    """Write a package demo's one-line summary as JSON (read by the monorepo's `nox -s demo`).

    `baseline` names the simplest control the demo compares the method with and `beat_baseline`
    says whether the method beat it in this run (None: the demo does not decide it), so the demo
    table tells at a glance whether the method earned its place.
    """
    if beat_baseline is not None and not isinstance(beat_baseline, bool):
        raise TypeError(f"beat_baseline must be a bool or None, got {type(beat_baseline).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "package": package,
        "what": what,
        "headline": headline,
        "seconds": round(float(seconds), 2),
        "baseline": baseline,
        "beat_baseline": beat_baseline,
    }
    path.write_text(json.dumps(doc, indent=1) + "\n")
    return path
