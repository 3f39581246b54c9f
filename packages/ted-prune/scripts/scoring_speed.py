"""Why TED's scoring share moves with the machine's speed: the kept default's runs of several
timing chunks (`scoring_paired.py` caches), split into the re-scoring forward passes and the rest
of scoring, each set against the chunk's full-data epoch (RULE-s23.md).

    python packages/ted-prune/scripts/scoring_speed.py --out FILE.md \
        s21=docs/benchmarks/ted-prune-score-rows/s21:all \
        s22=docs/benchmarks/ted-prune-score-rows/s22:b1024 \
        s23=docs/benchmarks/ted-prune-score-rows/s23:default

Per chunk (LABEL=DIR:ARM; the first is the reference): the mean full-data epoch, TED's scoring
ms per epoch, its re-scoring part (forward-only CNN passes over the pruned samples) and the rest
(observing batches, the epoch's write, the closed-form scores, selection, weights), and the
share. Against the reference, each part's elasticity to the full-data epoch,
ln(part ratio) / ln(epoch ratio): 1 = the part slows exactly as training does (its share does not
move), 0 = it does not slow at all (a fixed cost: its share falls as 1 / epoch). 95% bootstrap
CIs resample the runs of each chunk independently (10,000 draws, numpy rng seed 0). The chunks'
runs share the same mix of settings and budgets, so their means compare.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
from maskloop import report
from ted_prune.runcache import load_cache

PARTS = ("full_epoch_ms", "score_ms", "rescore_ms", "rest_ms", "share")


def chunk_parts(rows: list[dict[str, Any]], arm: str) -> dict[str, np.ndarray]:
    """Per run of `arm`: the full-data epoch (ms), scoring, re-scoring and the rest (ms per
    epoch), and the share (scoring / full-data epoch). Raises ValueError when `arm` has no run."""
    mine = [r for r in rows if r.get("arm") == arm]
    if not mine:
        raise ValueError(f"arm {arm!r} has no run in the cache")
    fe = np.array([1e3 * r["full_epoch_seconds"] for r in mine])
    score = np.array([r["overhead"] for r in mine]) * fe
    rescore = np.array([r["rescore"] for r in mine]) * fe
    return {"full_epoch_ms": fe, "score_ms": score, "rescore_ms": rescore,
            "rest_ms": score - rescore, "share": score / fe}  # fmt: skip


def elasticity(ref: dict[str, np.ndarray], other: dict[str, np.ndarray], part: str,
               n_boot: int = 10_000, seed: int = 0) -> tuple[float, float, float]:  # fmt: skip
    """ln(mean part ratio) / ln(mean full-epoch ratio), other over ref, with a 95% bootstrap CI
    (the runs of each chunk resampled independently). Raises ValueError when the two chunks ran
    at the same mean speed (the ratio's log is 0: nothing to read)."""

    def el(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
        den = math.log(b["full_epoch_ms"].mean() / a["full_epoch_ms"].mean())
        return math.log(b[part].mean() / a[part].mean()) / den

    if abs(math.log(other["full_epoch_ms"].mean() / ref["full_epoch_ms"].mean())) < 1e-9:
        raise ValueError("the two chunks have the same mean full-data epoch: no elasticity")
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        ia = rng.integers(0, len(ref[part]), len(ref[part]))
        ib = rng.integers(0, len(other[part]), len(other[part]))
        boots.append(el({k: v[ia] for k, v in ref.items()}, {k: v[ib] for k, v in other.items()}))
    lo, hi = np.quantile(boots, [0.025, 0.975])
    return el(ref, other), float(lo), float(hi)


def _ci(x: np.ndarray) -> str:
    m = report.paired_difference(list(x), [0.0] * len(x))
    return f"{m.mean:.4g} [{m.low:.4g}, {m.high:.4g}]"


def summary(chunks: dict[str, dict[str, np.ndarray]]) -> str:
    """The Markdown tables: per chunk its parts (mean [95% CI]); per later chunk each part's
    elasticity to the full-data epoch against the first chunk."""
    labels = list(chunks)
    rows = [[c, len(chunks[c]["share"]), *(_ci(chunks[c][p]) for p in PARTS)] for c in labels]
    out = [report.markdown_table(["chunk", "runs", "full-data epoch (ms)", "scoring (ms/epoch)",
                                  "re-scoring (ms/epoch)", "rest (ms/epoch)", "share"], rows)]  # fmt: skip
    ref = chunks[labels[0]]
    el_rows = []
    for c in labels[1:]:
        ratio = chunks[c]["full_epoch_ms"].mean() / ref["full_epoch_ms"].mean()
        if abs(math.log(ratio)) < 1e-9:
            continue
        cells = []
        for p in ("score_ms", "rescore_ms", "rest_ms"):
            e, lo, hi = elasticity(ref, chunks[c], p)
            cells.append(f"{e:.2f} [{lo:.2f}, {hi:.2f}]")
        el_rows.append([f"{c} / {labels[0]}", f"{ratio:.2f}", *cells])
    if el_rows:
        out += ["", report.markdown_table(["chunks", "full-epoch ratio", "scoring elasticity",
                                           "re-scoring elasticity", "rest elasticity"], el_rows)]  # fmt: skip
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("chunks", nargs="+", help="LABEL=DIR:ARM (DIR holds scoring-paired-runs.jsonl)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    chunks: dict[str, dict[str, np.ndarray]] = {}
    for spec in args.chunks:
        label, sep, rest = spec.partition("=")
        path, sep2, arm = rest.rpartition(":")
        if not (sep and sep2 and label and path and arm):
            ap.error(f"chunks: expected LABEL=DIR:ARM, got {spec!r}")
        chunks[label] = chunk_parts(load_cache(Path(path) / "scoring-paired-runs.jsonl"), arm)
    text = summary(chunks)
    if args.out is not None:
        cmd = "python packages/ted-prune/scripts/scoring_speed.py " + " ".join(args.chunks)
        args.out.write_text(f"# TED scoring share against the machine's speed\n\nProduced by "
                            f"`{cmd}`; rule: `docs/benchmarks/ted-prune-score-rows/RULE-s23.md`."
                            f"\n\n{text}\n")  # fmt: skip
    print(text)


if __name__ == "__main__":
    main()
