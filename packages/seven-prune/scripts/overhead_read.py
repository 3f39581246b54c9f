"""The 16 x 32 overhead read of the shipped default (issue 17's 5 % goal), runs and reading.

A read is `n` runs in one process, each the overhead bench's 16 x 32 SEVEN_dyn path
(`bench.overhead_compare(shapes=((16, 32),), methods=("SEVEN_dyn",), rounds=60, threads=2)`: a
plain MiniLM and SEVEN_dyn's MiniLM stepping in turn, 60 timed rounds, a cut every 10 updates,
AdamW hooked), with `_round_robin`'s per-round lists recorded beside the bench's outputs. It is
sessions 21-30's `overhead_repeat_s21.run_arms` with one arm (the shipped code) and the reading
of `overhead_repeat_s29.analyse` (session 29's stall-filtered rule), which read the committed
s29-s30b rules; those scripts are at commit 2c66bcb (`git show 2c66bcb:<path>`). On the runs of
`docs/benchmarks/seven-prune-overhead-s30b/` this reading prints the numbers of its
`analysis.txt` (tested).

The reading. In a run, round i is a stall round iff the plain model's training step or
SEVEN_dyn's model's training step in that round took more than `STALL_FACTOR` (1.5) times that
model's median step in the run (pauses of the whole machine; the pruner's own slow calls stay
in). On the remaining rounds, as the bench (`bench.overhead_estimate`):

    overhead = (u + c / 10) / P,  u = mean pruner time of update rounds, c = mean of cut rounds - u,
    P = mean plain step;  pooled = mean over runs

with a two-level bootstrap (4,000 resamples, seed 0): runs resampled, and within each run its
kept rounds resampled within update and cut rounds. Verdict on the pooled overhead (with at
least `MIN_RUNS` runs): met iff the 95 % CI's upper bound is below 5 %; not resolved if the
estimate is <= 5 % and the upper bound is not; missed if the estimate is above 5 %.

Usage (repository root; runs under ``flock /tmp/heavy.lock nice -n 5``):
``python packages/seven-prune/scripts/overhead_read.py run OUT --runs 4 [--max-minutes M]
[--stop-at HH:MM] [--first N]`` (runs into ``OUT/run<i>/``; no run is started that would end past
``--max-minutes`` or ``--stop-at`` UTC), then ``... analyse OUT``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
from seven_prune.bench import overhead_estimate, overhead_resamples

DELTA_T = 10
N_BOOT = 4000
GOAL = 0.05
STALL_FACTOR = 1.5
#: runs needed for a verdict (fewer: partial)
MIN_RUNS = 3


def kept_rounds(plain: np.ndarray, step: np.ndarray, factor: float = STALL_FACTOR) -> np.ndarray:
    """Bool per round: neither training step above `factor` times its run median (not a stall)."""
    if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not factor > 1:
        raise ValueError(f"factor must be a number > 1, got {factor!r}")
    return (plain <= factor * np.median(plain)) & (step <= factor * np.median(step))


def _arrays(r: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(plain step, pruner time, is_cut) on the run's kept rounds."""
    p, s = np.asarray(r["plain_step"]), np.asarray(r["step"])
    x, c = np.asarray(r["prune"]), np.asarray(r["is_cut"], dtype=bool)
    ok = kept_rounds(p, s)
    return p[ok], x[ok], c[ok]


def point(r: dict[str, Any]) -> np.ndarray:
    """(overhead, u, c) of one run on its kept rounds."""
    p, x, c = _arrays(r)
    ov, _, u, cut, _ = overhead_estimate(
        p, np.zeros_like(p), x, DELTA_T, np.flatnonzero(~c), np.flatnonzero(c)
    )
    return np.asarray([ov, u, cut])


def boot(r: dict[str, Any], rng: np.random.Generator, n: int = N_BOOT) -> np.ndarray:
    """`n` draws of (overhead, u, c): kept rounds resampled within update and cut rounds."""
    p, x, c = _arrays(r)
    bu, bc = overhead_resamples(c, rng, n)
    ov, _, u, cut, _ = overhead_estimate(p, np.zeros_like(p), x, DELTA_T, bu, bc)
    return np.stack([ov, u, cut], axis=-1)


def _pct(a: np.ndarray) -> tuple[float, float]:
    return float(np.percentile(a, 2.5)), float(np.percentile(a, 97.5))


def verdict(est: float, hi: float, n_runs: int) -> str:
    """The rule's verdict on a pooled overhead `est` with CI upper bound `hi` over `n_runs` runs."""
    if n_runs < MIN_RUNS:
        return "partial"
    return "met" if hi < GOAL else ("not resolved" if est <= GOAL else "missed")


def load_runs(out: Path) -> list[dict[str, Any]]:
    """The runs' ``rounds.json`` under `out` (``run<i>*/``), in run order."""
    files = sorted(out.glob("run*/rounds.json"), key=lambda f: int(f.parent.name[3:].split("-")[0]))
    return [json.loads(f.read_text()) for f in files]


def analyse(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per run and pooled: the rule's reading (see the module docstring), as a dict."""
    rng = np.random.default_rng(0)
    per, boots = [], []
    for r in runs:
        p, x, c = _arrays(r)
        o, u, cut = point(r)
        b = boot(r, rng)
        boots.append(b)
        lo, hi = _pct(b[:, 0])
        full = np.asarray(r["is_cut"], dtype=bool)
        xs, ps = np.asarray(r["prune"]), np.asarray(r["plain_step"])
        med = (np.median(xs[~full]) + (np.median(xs[full]) - np.median(xs[~full])) / DELTA_T) / (
            np.median(ps)
        )
        per.append({
            "run": r["run"], "started_utc": r["started_utc"], "stall_rounds": len(ps) - len(p),
            "plain_step_s": float(p.mean()), "update_ms": float(u * 1e3), "cut_ms": float(cut * 1e3),
            "overhead": float(o), "lo": lo, "hi": hi, "by_medians": float(med),
        })  # fmt: skip
    res: dict[str, Any] = {"runs": per}
    if runs:
        pts = np.stack([point(r) for r in runs])
        draws = rng.integers(0, len(runs), (N_BOOT, len(runs)))
        b = np.stack(boots)[draws, np.arange(N_BOOT)[:, None]].mean(1)
        est = pts.mean(0)
        lo, hi = _pct(b[:, 0])
        ov = pts[:, 0] * 100
        res.update(
            n_runs=len(runs), overhead=float(est[0]), lo=lo, hi=hi,
            mean_pct=float(ov.mean()),
            std_pct=statistics.stdev(ov) if len(ov) > 1 else float("nan"),
            update_ms=float(est[1] * 1e3), update_ci=_pct(b[:, 1] * 1e3),
            cut_ms=float(est[2] * 1e3), cut_ci=_pct(b[:, 2] * 1e3),
            verdict=verdict(float(est[0]), hi, len(runs)),
        )  # fmt: skip
    return res


def report(res: dict[str, Any]) -> str:
    """The reading as text: a table of runs, the pooled line and the verdict."""
    lines = [
        "stall-filtered reading (rule of session 29):",
        "| run | started UTC | stall rounds | plain step s | update ms | cut ms | "
        "overhead [95% CI] | by medians |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["runs"]:
        lines.append(
            f"| {r['run']} | {r['started_utc']} | {r['stall_rounds']} | {r['plain_step_s']:.3f} | "
            f"{r['update_ms']:.1f} | {r['cut_ms']:.1f} | {r['overhead'] * 100:.2f}% "
            f"[{r['lo'] * 100:.2f}, {r['hi'] * 100:.2f}] | {r['by_medians'] * 100:.2f}% |"
        )
    if "overhead" in res:
        u, c = res["update_ci"], res["cut_ci"]
        lines.append(
            f"{res['n_runs']} runs, pooled overhead {res['overhead'] * 100:.2f}% "
            f"[{res['lo'] * 100:.2f}, {res['hi'] * 100:.2f}]; mean ± std over runs "
            f"{res['mean_pct']:.2f} ± {res['std_pct']:.2f}; update {res['update_ms']:.1f} ms "
            f"[{u[0]:.1f}, {u[1]:.1f}], cut {res['cut_ms']:.1f} ms [{c[0]:.1f}, {c[1]:.1f}]"
        )
        lines.append(
            f"goal (pooled, stall-filtered, <= 5 %, CI upper bound below 5 %): {res['verdict']}"
        )
    else:
        lines.append("no runs")
    return "\n".join(lines)


def run(out: Path, n_runs: int, max_minutes: float, stop_at: str, first: int = 1) -> None:
    """`n_runs` runs into ``out/run<i>/`` (the bench's outputs and ``rounds.json``); stops
    before a run that would end past `max_minutes` from the start or past `stop_at` (UTC)."""
    import torch
    from seven_prune import bench

    out.mkdir(parents=True, exist_ok=True)
    original = bench._round_robin
    captured: dict[str, Any] = {}

    def recording(runs: list[Any], *a: Any, **kw: Any) -> None:
        original(runs, *a, **kw)
        captured["plain"], captured["pruned"] = runs[0][5], runs[1][5]

    bench._round_robin = recording
    tic0, longest = time.perf_counter(), 0.0
    try:
        for i in range(first, first + n_runs):
            now = time.perf_counter() - tic0
            end_clock = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=longest)
            stop = dt.datetime.combine(
                end_clock.date(), dt.time.fromisoformat(stop_at), tzinfo=dt.timezone.utc
            )
            if i > first and (now + longest > max_minutes * 60 or end_clock > stop):
                print(
                    f"stopping before run {i}: {now / 60:.1f} min used, a run takes {longest:.0f}s"
                )
                break
            captured.clear()
            tic = time.perf_counter()
            started = dt.datetime.now(dt.timezone.utc).strftime("%H:%M:%S")
            res = bench.overhead_compare(
                shapes=((16, 32),), methods=("SEVEN_dyn",), rounds=60, threads=2
            )
            secs = time.perf_counter() - tic
            d = out / f"run{i}"
            bench.write_overhead_outputs(res, d, secs)
            rounds = {
                "run": i, "started_utc": started, "seconds": secs,
                "threads": torch.get_num_threads(), "plain_step": captured["plain"]["step"],
                "step": captured["pruned"]["step"], "prune": captured["pruned"]["prune"],
                "is_cut": captured["pruned"]["is_cut"],
            }  # fmt: skip
            (d / "rounds.json").write_text(json.dumps(rounds) + "\n")
            longest = max(longest, secs)
            print(f"run {i}: {secs:.0f}s, started {started} UTC", flush=True)
    finally:
        bench._round_robin = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("out", type=Path)
    r.add_argument("--runs", type=int, default=4)
    r.add_argument("--max-minutes", type=float, default=10.0)
    r.add_argument("--stop-at", default="23:59")
    r.add_argument("--first", type=int, default=1, help="the first run's number (a continuation)")
    an = sub.add_parser("analyse")
    an.add_argument("out", type=Path)
    an.add_argument("--json", type=Path, default=None, help="also write the reading as JSON")
    args = ap.parse_args()
    if args.cmd == "run":
        if args.runs < 1:
            raise ValueError(f"--runs must be >= 1, got {args.runs}")
        run(args.out, args.runs, args.max_minutes, args.stop_at, args.first)
        return
    res = analyse(load_runs(args.out))
    print(report(res))
    if args.json is not None:
        args.json.write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
