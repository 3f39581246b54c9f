"""Session 29: the 16 x 32 overhead repeat with a stall-robust reading; rule
``docs/benchmarks/seven-prune-overhead-s29-rule.md``. The runs are session 21's
(``overhead_repeat_s21.run_arms``: the overhead bench's 16 x 32 SEVEN_dyn path, 60 rounds, 2
threads, the plain model and SEVEN_dyn's model stepping in turn in every round); only the arms and
the analysis differ.

Usage (from the repository root, under ``flock /tmp/heavy.lock nice -n 5``):

- ``python packages/seven-prune/scripts/overhead_repeat_s29.py run OUT --arms chunk --order 1 0 0 1
  ... [--max-minutes M] [--stop-at HH:MM]``: ``--arms chunk``: arm 1 the current code (the update
  over chunks, `seven.UPDATE_CHUNK` as shipped), arm 0 `UPDATE_CHUNK = 0` (session 28's code);
  ``--chunk C`` sets arm 1's chunk instead (part A's choice, before it is the default);
  ``--arms lean``: arm 1 `seven.LEAN_UPDATE = True`, arm 0 False (session 28's arms). Runs go to
  ``OUT/run<i>-<arms><arm>/``.
- ``python packages/seven-prune/scripts/overhead_repeat_s29.py analyse OUT --arms chunk``: the
  rule's reading (below), then session 28's reading (all rounds) for comparison.

The stall filter: in a run, round i is a stall round iff the plain model's training step or
SEVEN_dyn's model's training step in that round took more than `STALL_FACTOR` (1.5) times that
model's median step in the run. Both are training steps, not the pruner's time: the filter drops
pauses of the whole machine (which slow every step) and leaves the pruner's own slow calls in.
On the remaining rounds, as the bench (`bench.overhead_estimate`):

    overhead = (u + c / 10) / P,  u = mean pruner time of update rounds, c = mean of cut rounds - u,
    P = mean plain step;  pooled per arm = mean over its runs
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead_repeat_s21 import DELTA_T, GOAL, N_BOOT, analyse_arms, run_arms  # noqa: E402
from seven_prune.bench import overhead_estimate, overhead_resamples  # noqa: E402

STALL_FACTOR = 1.5


def kept_rounds(plain: np.ndarray, step: np.ndarray, factor: float = STALL_FACTOR) -> np.ndarray:
    """Bool per round: neither training step above `factor` times its run median (not a stall)."""
    if not factor > 1:
        raise ValueError(f"factor must be > 1, got {factor!r}")
    return (plain <= factor * np.median(plain)) & (step <= factor * np.median(step))


def _arrays(r: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(plain step, pruner time, is_cut, kept) of one run."""
    p, s = np.asarray(r["plain_step"]), np.asarray(r["step"])
    x, c = np.asarray(r["prune"]), np.asarray(r["is_cut"], dtype=bool)
    return p, x, c, kept_rounds(p, s)


def _point(r: dict[str, Any]) -> np.ndarray:
    """(overhead, u, c) on the kept rounds."""
    p, x, c, ok = _arrays(r)
    p, x, c = p[ok], x[ok], c[ok]
    ov, _, u, cut, _ = overhead_estimate(
        p, np.zeros_like(p), x, DELTA_T, np.flatnonzero(~c), np.flatnonzero(c)
    )
    return np.asarray([ov, u, cut])


def _boot(r: dict[str, Any], rng: np.random.Generator) -> np.ndarray:
    """N_BOOT draws of (overhead, u, c): kept rounds resampled within update and cut rounds."""
    p, x, c, ok = _arrays(r)
    p, x, c = p[ok], x[ok], c[ok]
    bu, bc = overhead_resamples(c, rng, N_BOOT)
    ov, _, u, cut, _ = overhead_estimate(p, np.zeros_like(p), x, DELTA_T, bu, bc)
    return np.stack([ov, u, cut], axis=-1)


def _pct(a: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))


def analyse(out: Path, tag: str) -> None:
    """The rule's reading: per run, per arm (pooled, two-level bootstrap), paired 1 - 0, verdict."""
    runs = []
    for f in sorted(
        out.glob(f"run*-{tag}*/rounds.json"), key=lambda p: int(p.parent.name[3:].split("-")[0])
    ):
        runs.append(json.loads(f.read_text()))
    rng = np.random.default_rng(0)
    print("stall-filtered reading (rule of session 29):")
    print("| run | arm | started UTC | stall rounds | plain step s | update ms | cut ms | "
          "overhead [95% CI] | by medians |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    boots = {}
    for r in runs:
        p, x, c, ok = _arrays(r)
        o, u, cut = _point(r)
        b = _boot(r, rng)
        boots[r["run"]] = b
        lo, hi = _pct(b[:, 0])
        med = (np.median(x[~c]) + (np.median(x[c]) - np.median(x[~c])) / DELTA_T) / np.median(p)
        print(
            f"| {r['run']} | {r[tag]:g} | {r['started_utc']} | {int((~ok).sum())} | "
            f"{p[ok].mean():.3f} | {u * 1e3:.1f} | {cut * 1e3:.1f} | {o * 100:.2f}% "
            f"[{lo * 100:.2f}, {hi * 100:.2f}] | {med * 100:.2f}% |"
        )
    pooled = {}
    for arm in (1.0, 0.0):
        rs = [r for r in runs if r[tag] == arm]
        if not rs:
            continue
        pts = np.stack([_point(r) for r in rs])
        draws = rng.integers(0, len(rs), (N_BOOT, len(rs)))
        stacked = np.stack([boots[r["run"]] for r in rs])
        b = stacked[draws, np.arange(N_BOOT)[:, None]].mean(1)
        est = pts.mean(0)
        lo, hi = _pct(b[:, 0])
        pooled[arm] = (float(est[0]), lo, hi, len(rs))
        ov = pts[:, 0] * 100
        sd = statistics.stdev(ov) if len(ov) > 1 else float("nan")
        print(
            f"arm {arm:g}: {len(rs)} runs, pooled overhead {est[0] * 100:.2f}% [{lo * 100:.2f}, "
            f"{hi * 100:.2f}]; mean ± std over runs {ov.mean():.2f} ± {sd:.2f}; update "
            f"{est[1] * 1e3:.1f} ms [{_pct(b[:, 1] * 1e3)[0]:.1f}, {_pct(b[:, 1] * 1e3)[1]:.1f}], "
            f"cut {est[2] * 1e3:.1f} ms [{_pct(b[:, 2] * 1e3)[0]:.1f}, {_pct(b[:, 2] * 1e3)[1]:.1f}]"
        )
    pairs = []
    for a, b2 in zip(runs[0::2], runs[1::2], strict=False):
        if {a[tag], b2[tag]} == {1.0, 0.0}:
            pairs.append((a, b2) if a[tag] == 1.0 else (b2, a))
    if pairs:
        d_pt = np.stack([_point(x1) - _point(x0) for x1, x0 in pairs])
        d_b = np.stack([boots[x1["run"]] - boots[x0["run"]] for x1, x0 in pairs])
        draws = rng.integers(0, len(pairs), (N_BOOT, len(pairs)))
        db = d_b[draws, np.arange(N_BOOT)[:, None]].mean(1)
        est = d_pt.mean(0)
        print(
            f"paired 1 - 0 over {len(pairs)} pairs: overhead {est[0] * 100:+.2f} points "
            f"[{_pct(db[:, 0] * 100)[0]:+.2f}, {_pct(db[:, 0] * 100)[1]:+.2f}]; update "
            f"{est[1] * 1e3:+.2f} ms [{_pct(db[:, 1] * 1e3)[0]:+.2f}, {_pct(db[:, 1] * 1e3)[1]:+.2f}]"
            f"; cut {est[2] * 1e3:+.2f} ms [{_pct(db[:, 2] * 1e3)[0]:+.2f}, "
            f"{_pct(db[:, 2] * 1e3)[1]:+.2f}]"
        )
    if 1.0 in pooled and pooled[1.0][3] >= 2:
        est, _, hi, _ = pooled[1.0]
        verdict = "met" if hi < GOAL else ("not resolved" if est <= GOAL else "missed")
        print(f"goal (pooled arm 1, stall-filtered, <= 5 %, CI upper bound below 5 %): {verdict}")
    else:
        print("partial: fewer than 2 runs of arm 1, nothing read against the goal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("out", type=Path)
    run.add_argument("--arms", choices=("chunk", "lean"), required=True)
    run.add_argument("--order", type=float, nargs="+", required=True)
    run.add_argument("--max-minutes", type=float, default=8.5)
    run.add_argument("--stop-at", default="09:56")
    run.add_argument("--first", type=int, default=1, help="the first run's number (a continuation)")
    run.add_argument("--chunk", type=int, default=None, help="arm 1's UPDATE_CHUNK (--arms chunk)")
    an = sub.add_parser("analyse")
    an.add_argument("out", type=Path)
    an.add_argument("--arms", choices=("chunk", "lean"), required=True)
    args = ap.parse_args()
    if args.cmd == "analyse":
        analyse(args.out, args.arms)
        print("\nsession 28's reading (all rounds, not this rule's):")
        analyse_arms(args.out, args.arms, "arm", args.arms, 1.0, 0.0)
        return
    if any(a not in (0.0, 1.0) for a in args.order):
        raise ValueError(f"--order: entries must be 1 or 0, got {args.order}")
    from seven_prune import seven

    shipped = seven.UPDATE_CHUNK
    arm1 = shipped if args.chunk is None else args.chunk
    if args.arms == "chunk":
        seven._chunk_views([], arm1)  # raises unless a valid chunk size

    def setup(arm: float) -> None:
        if args.arms == "chunk":
            seven.UPDATE_CHUNK = arm1 if arm == 1.0 else 0
        else:
            seven.LEAN_UPDATE = arm == 1.0

    try:
        run_arms(args, setup, args.arms, args.arms)
    finally:
        seven.LEAN_UPDATE = True
        seven.UPDATE_CHUNK = shipped


if __name__ == "__main__":
    main()
