"""Session 21: the 16 x 32 overhead reading repeated, `pruning.BRACKET_SDS` 4 (current) and 6 (old)
alternating in one process; rule ``docs/benchmarks/seven-prune-overhead-repeat-s21-rule.md``.

Usage (from the repository root, under ``flock /tmp/heavy.lock nice -n 5``):

- ``python packages/seven-prune/scripts/overhead_repeat_s21.py run OUT --order 4 6 6 4 ...
  [--max-minutes M] [--stop-at HH:MM]``: for each entry of the order, set
  ``seven_prune.pruning.BRACKET_SDS`` to it and run ``seven-prune bench --budget overhead --rounds
  60 --batches 16x32 --methods SEVEN_dyn``'s code path (`bench.overhead_compare`, then
  `bench.write_overhead_outputs` into ``OUT/run<i>-sds<s>/``), recording `_round_robin`'s per-round
  lists beside it (``rounds.json``). Stops starting runs when the next would end past
  ``--max-minutes`` or past ``--stop-at`` (UTC).
- ``python packages/seven-prune/scripts/overhead_repeat_s21.py analyse OUT``: each run's overhead
  with its CI, the pooled per-arm overhead (mean of runs, two-level bootstrap: runs, then rounds
  stratified by update / cut), the paired 4 - 6 difference over consecutive pairs, and the verdict.

    overhead = (u + c / 10) / P, pooled = mean over runs, paired = mean over pairs of (o4 - o6)
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from seven_prune.bench import overhead_estimate, overhead_resamples

DELTA_T = 10
N_BOOT = 4000
GOAL = 0.05
#: two-sided 95 % t quantiles by degrees of freedom (the secondary interval over runs)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365}


def _run(args: argparse.Namespace) -> None:
    from seven_prune import pruning

    def setup(sds: float) -> None:
        pruning.BRACKET_SDS = float(sds)

    run_arms(args, setup, "bracket_sds", "sds")
    pruning.BRACKET_SDS = 4.0


def run_arms(args: argparse.Namespace, setup: Any, field: str, tag: str) -> None:
    """Run `args.order`'s arms in turn (`setup(arm)` before each run), each the overhead bench's
    16 x 32 SEVEN_dyn path, 60 rounds, into ``OUT/run<i>-<tag><arm>/`` with ``rounds.json``
    (the arm under `field`); stop as ``--max-minutes`` / ``--stop-at`` say."""
    import torch
    from seven_prune import bench

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    original = bench._round_robin
    captured: dict[str, Any] = {}

    def recording(runs: list[Any], *a: Any, **kw: Any) -> None:
        original(runs, *a, **kw)
        captured["plain"] = runs[0][5]
        captured["pruned"] = runs[1][5]

    bench._round_robin = recording
    tic0 = time.perf_counter()
    longest = 0.0
    first = getattr(args, "first", 1)  # the number of the chunk's first run (a continuation)
    for i, arm in enumerate(args.order, start=first):
        now = time.perf_counter() - tic0
        end_clock = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=longest)
        stop = dt.datetime.combine(
            end_clock.date(), dt.time.fromisoformat(args.stop_at), tzinfo=dt.timezone.utc
        )
        if i > first and (now + longest > args.max_minutes * 60 or end_clock > stop):
            print(f"stopping before run {i}: {now / 60:.1f} min used, a run takes {longest:.0f}s")
            break
        setup(arm)
        captured.clear()
        tic = time.perf_counter()
        started = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")
        res = bench.overhead_compare(
            shapes=((16, 32),), methods=("SEVEN_dyn",), rounds=60, threads=2
        )
        secs = time.perf_counter() - tic
        d = out / f"run{i}-{tag}{arm:g}"
        bench.write_overhead_outputs(res, d, secs)
        torch_threads = torch.get_num_threads()
        rounds = {
            field: float(arm),
            "run": i,
            "started_utc": started,
            "seconds": secs,
            "threads": torch_threads,
            "plain_step": captured["plain"]["step"],
            "step": captured["pruned"]["step"],
            "prune": captured["pruned"]["prune"],
            "is_cut": captured["pruned"]["is_cut"],
        }
        (d / "rounds.json").write_text(json.dumps(rounds) + "\n")
        longest = max(longest, secs)
        print(f"run {i} {field}={arm:g}: {secs:.0f}s, started {started} UTC", flush=True)
    bench._round_robin = original


def _load_runs(out: Path, tag: str = "sds") -> list[dict[str, Any]]:
    runs = []
    for f in sorted(
        out.glob(f"run*-{tag}*/rounds.json"), key=lambda p: int(p.parent.name[3:].split("-")[0])
    ):
        r = json.loads(f.read_text())
        r["report"] = json.loads((f.parent / "seven-prune-overhead.json").read_text())
        runs.append(r)
    return runs


def _parts(r: dict[str, Any], iu: np.ndarray, ic: np.ndarray) -> tuple[Any, Any, Any]:
    """(overhead, u, c) of one run on round indices `iu` (update) and `ic` (cut), last axis:
    the bench's own estimate (`bench.overhead_estimate`)."""
    p, x = np.asarray(r["plain_step"]), np.asarray(r["prune"])
    ov, _, u, c, _ = overhead_estimate(p, np.zeros_like(p), x, DELTA_T, iu, ic)
    return ov, u, c


def _boot_run(r: dict[str, Any], rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` bootstrap draws of (overhead, u, c) of one run: rounds resampled within update and cut
    (`bench.overhead_resamples`)."""
    bu, bc = overhead_resamples(np.asarray(r["is_cut"], dtype=bool), rng, n)
    return np.stack(_parts(r, bu, bc), axis=-1)


def _point(r: dict[str, Any]) -> np.ndarray:
    is_cut = np.asarray(r["is_cut"], dtype=bool)
    return np.asarray(_parts(r, np.flatnonzero(~is_cut), np.flatnonzero(is_cut)))


def _pct(a: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))


def _analyse(args: argparse.Namespace) -> None:
    analyse_arms(args.out, "bracket_sds", "BRACKET_SDS", "sds", 4.0, 6.0)


def analyse_arms(out: Path, field: str, header: str, tag: str, current: float, old: float) -> None:
    """Print each run's overhead, the pooled overhead per arm (`current`, `old` values of
    `field`), the paired current - old difference and the verdict on the pooled current arm."""
    runs = _load_runs(out, tag)
    rng = np.random.default_rng(0)
    print(
        f"| run | {header} | started UTC | plain step s | update ms | cut ms | overhead [95% CI] |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in runs:
        m = r["report"]["records"][1]["metrics"]
        o, u, c = _point(r)
        if not math.isclose(o, m["overhead"], rel_tol=1e-9):
            raise ValueError(f"run {r['run']}: recomputed {o} != reported {m['overhead']}")
        print(
            f"| {r['run']} | {r[field]:g} | {r['started_utc']} | "
            f"{m['plain_step_seconds']:.3f} | {u * 1e3:.1f} | {c * 1e3:.1f} | "
            f"{o * 100:.2f}% [{m['overhead_lo'] * 100:.2f}, {m['overhead_hi'] * 100:.2f}] |"
        )
    arms = {s: [r for r in runs if r[field] == s] for s in (current, old)}
    boots = {id(r): _boot_run(r, rng, N_BOOT) for r in runs}
    print()
    pooled: dict[float, tuple[float, float, float]] = {}
    for s, rs in arms.items():
        if not rs:
            continue
        pts = np.stack([_point(r) for r in rs])
        draws = rng.integers(0, len(rs), (N_BOOT, len(rs)))
        stacked = np.stack([boots[id(r)] for r in rs])  # runs x boot x 3
        b = stacked[draws, np.arange(N_BOOT)[:, None]].mean(1)  # boot x 3
        est = pts.mean(0)
        lo, hi = _pct(b[:, 0])
        pooled[s] = (float(est[0]), lo, hi)
        ov = pts[:, 0] * 100
        sd = statistics.stdev(ov) if len(ov) > 1 else float("nan")
        tq = T975.get(len(ov) - 1, float("nan"))
        half = tq * sd / math.sqrt(len(ov))
        print(
            f"arm {s:g}: {len(rs)} runs, pooled overhead {est[0] * 100:.2f}% [{lo * 100:.2f}, "
            f"{hi * 100:.2f}] (two-level bootstrap); mean ± std over runs {ov.mean():.2f} ± "
            f"{sd:.2f}, t-interval [{ov.mean() - half:.2f}, {ov.mean() + half:.2f}]; update "
            f"{est[1] * 1e3:.1f} ms [{_pct(b[:, 1] * 1e3)[0]:.1f}, {_pct(b[:, 1] * 1e3)[1]:.1f}], "
            f"cut {est[2] * 1e3:.1f} ms [{_pct(b[:, 2] * 1e3)[0]:.1f}, {_pct(b[:, 2] * 1e3)[1]:.1f}]"
        )
    pairs = []
    for a, b2 in zip(runs[0::2], runs[1::2], strict=False):
        if {a[field], b2[field]} == {current, old}:
            pairs.append((a, b2) if a[field] == current else (b2, a))
    if pairs:
        d_pt = np.stack([_point(r4) - _point(r6) for r4, r6 in pairs])
        d_b = np.stack([boots[id(r4)] - boots[id(r6)] for r4, r6 in pairs])  # pairs x boot x 3
        draws = rng.integers(0, len(pairs), (N_BOOT, len(pairs)))
        db = d_b[draws, np.arange(N_BOOT)[:, None]].mean(1)
        est = d_pt.mean(0)
        per = ", ".join(f"{x * 100:+.2f}" for x in d_pt[:, 0])
        print(
            f"paired {current:g} - {old:g} over {len(pairs)} pairs ({per} points): overhead "
            f"{est[0] * 100:+.2f} points [{_pct(db[:, 0] * 100)[0]:+.2f}, "
            f"{_pct(db[:, 0] * 100)[1]:+.2f}]; update {est[1] * 1e3:+.2f} ms "
            f"[{_pct(db[:, 1] * 1e3)[0]:+.2f}, {_pct(db[:, 1] * 1e3)[1]:+.2f}]; cut "
            f"{est[2] * 1e3:+.2f} ms [{_pct(db[:, 2] * 1e3)[0]:+.2f}, {_pct(db[:, 2] * 1e3)[1]:+.2f}]"
        )
    if current in pooled and len(arms[current]) >= 2 and len(arms[old]) >= 2:
        est, _, hi = pooled[current]
        verdict = "met" if hi < GOAL else ("not resolved" if est <= GOAL else "missed")
        print(f"goal (pooled arm {current:g} <= 5 %, CI upper bound below 5 %): {verdict}")
    else:
        print("partial: fewer than 2 runs per arm, nothing read against the goal")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    run = sub.add_parser("run")
    run.add_argument("out", type=Path)
    run.add_argument("--order", type=float, nargs="+", required=True)
    run.add_argument("--max-minutes", type=float, default=10.5)
    run.add_argument("--stop-at", default="07:24")
    an = sub.add_parser("analyse")
    an.add_argument("out", type=Path)
    args = ap.parse_args()
    if args.cmd == "run":
        if any(s not in (4.0, 6.0) for s in args.order):
            raise ValueError(f"--order: entries must be 4 or 6, got {args.order}")
        _run(args)
    else:
        _analyse(args)


if __name__ == "__main__":
    main()
