"""TED's selections on the scoring benchmark's runs, as digests, and where its scoring time goes.

Usage::

    python packages/ted-prune/scripts/scoring_digest.py --out before.json [--profile]
    python packages/ted-prune/scripts/scoring_digest.py --out after.json --compare before.json

Runs the TED runs of `ted-prune bench --suite mnist1d --stage scoring` (the package defaults,
`train_mnist1d("TED", ...)`: settings clean / noise20 / dup30, f = 0.7 / 0.5 / 0.3, seed 0,
25,000 samples, 30 epochs, one torch thread by default) and records, per run, a SHA-256 of every
epoch's selection (kept indices, int64) together with its loss weights (float64, every sample), of
the final scores and alignments (float64), and the test accuracy and f. `--compare` says whether
every digest equals that of an earlier file (e.g. written by the code before a change): a cheaper
scoring path must keep them bit-identical.

`--profile` also times the parts of TED's scoring (inclusive thread CPU time, ms per epoch; nested
parts are included in their callers) by wrapping the pruner's methods; the wrappers change no value.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ted_prune import bench_mnist1d, observations, pruner, ted
from ted_prune.bench_mnist1d import _splits, train_mnist1d

_TIMES: dict[str, float] = defaultdict(float)
_CALLS: dict[str, int] = defaultdict(int)


def _timed(name: str, fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            _TIMES[name] += time.thread_time() - t0
            _CALLS[name] += 1

    return wrapper


def _install_profile() -> None:
    """Wrap the parts of TED's scoring path with inclusive thread-time counters."""
    for owner, attr in (
        (pruner.DataPruner, "observe"),
        (pruner.DataPruner, "timed_weights"),
        (pruner.DataPruner, "select"),
        (pruner.DataPruner, "end_epoch"),
        (observations.ObservationStore, "stage"),
        (observations.ObservationStore, "flush"),
        (observations.ObservationStore, "_write"),
        (observations.ObservationStore, "_squared_norms"),
        (ted.TEDPruner, "_select"),
        (ted.TEDPruner, "_end_epoch"),
        (ted.TEDPruner, "_forward_scores"),
        (ted.TEDPruner, "factors"),
        (ted, "ted_scores"),
        (ted, "quantiles"),
        (ted, "sample_groups"),
    ):
        name = f"{getattr(owner, '__name__', owner)}.{attr}".replace("ted_prune.", "")
        setattr(owner, attr, _timed(name, getattr(owner, attr)))


def _sha(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(np.ascontiguousarray(t.detach().cpu().numpy()).tobytes())
    return h.hexdigest()[:16]


def recording_pruner(made: list[Any]) -> Any:
    """A stand-in for `bench_mnist1d._pruner` that builds the pruner as usual, appends it to
    `made`, and records a digest of every epoch's selection (indices and loss weights) in the
    pruner's `digests` list: the record two runs' selections are compared by."""
    build = bench_mnist1d._pruner

    def recording(*a: Any, **kw: Any) -> Any:
        p = build(*a, **kw)
        made.append(p)
        select = p._select
        p.digests = []

        def record(epoch: int) -> Any:
            sel = select(epoch)
            p.digests.append(_sha(sel.indices.long(), p.weight))
            return sel

        p._select = record
        return p

    return recording


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--compare", type=Path, help="an earlier --out file to compare with")
    ap.add_argument("--num-samples", type=int, default=25000)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--settings", nargs="+", default=list(bench_mnist1d.SETTINGS))
    ap.add_argument("--budgets", nargs="+", type=float, default=list(bench_mnist1d.BUDGETS))
    ap.add_argument("--profile", action="store_true", help="time the parts of TED's scoring")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.profile:
        _install_profile()

    made: list[Any] = []
    recording = recording_pruner(made)

    bench_mnist1d._pruner = recording
    runs: dict[str, Any] = {}
    for setting in args.settings:
        train, _, test = _splits(setting, args.num_samples, args.seed)
        for f in args.budgets:
            _TIMES.clear()
            _CALLS.clear()
            made.clear()
            r = train_mnist1d("TED", train, test, args.epochs, f, args.seed)
            p = made[-1]
            key = f"{setting} f={f}"
            runs[key] = {
                "selections": p.digests,
                "scores": _sha(p.scores, p.last_alignment),
                "accuracy": r["accuracy"],
                "f": r["f"],
                "score_ms_per_epoch": 1e3 * r["score_seconds_per_epoch"],
                "seconds": r["seconds"],
            }
            if args.profile:
                runs[key]["profile_ms_per_epoch"] = {
                    k: round(1e3 * v / args.epochs, 3) for k, v in sorted(_TIMES.items())
                }
                runs[key]["calls"] = dict(_CALLS)
            print(f"{key}: accuracy {r['accuracy']:.2f}, f {r['f']:.4f}, scoring "
                  f"{runs[key]['score_ms_per_epoch']:.2f} ms/epoch, run {r['seconds']:.2f} s",
                  flush=True)  # fmt: skip
            for k, v in runs[key].get("profile_ms_per_epoch", {}).items():
                print(f"    {k:40s} {v:8.3f} ms/epoch  ({_CALLS[k]} calls)")
    cfg = {k: v for k, v in vars(args).items() if k not in ("out", "compare", "profile")}
    args.out.write_text(json.dumps({"config": cfg, "runs": runs}, indent=1) + "\n")
    if args.compare:
        ref = json.loads(args.compare.read_text())["runs"]
        same = 0
        for key, run in runs.items():
            old = ref.get(key)
            equal = old is not None and all(
                old[k] == run[k] for k in ("selections", "scores", "accuracy", "f")
            )
            same += equal
            print(f"{key}: {'identical' if equal else 'DIFFERENT'}")
        print(f"{same} of {len(runs)} runs bit-identical to {args.compare}")


if __name__ == "__main__":
    main()
