"""Benchmark: per-step overhead of `MaskedTraining` against dense training of the same model.

Dense and masked training run interleaved (ABAB...) on the same model shape, data, optimizer and
seed, so drifts in machine load hit both alike. The overhead is the ratio of median step times.
Run with `python -m maskloop.bench [--quick] [--out DIR]`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from maskloop import report
from maskloop.masks import MaskedTraining, WeightMask, prunable_parameters

__all__ = ["main", "step_times"]

MODELS: dict[str, Callable[[], nn.Module]] = {
    "mlp-784-1024-1024-10": lambda: nn.Sequential(
        nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 10)
    ),
    "cnn-32x32": lambda: nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 8 * 8, 256),
        nn.ReLU(),
        nn.Linear(256, 10),
    ),  # fmt: skip
}
INPUTS = {"mlp-784-1024-1024-10": (784,), "cnn-32x32": (3, 32, 32)}


def step_times(
    model_name: str, masked: bool, seed: int, steps: int, batch: int = 128, sparsity: float = 0.9
) -> list[float]:
    """Seconds per training step (Adam) of `model_name`, with or without `MaskedTraining`."""
    torch.manual_seed(seed)
    model = MODELS[model_name]()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    guard = None
    if masked:
        scores = {n: p.detach().abs() for n, p in prunable_parameters(model).items()}
        guard = MaskedTraining(model, WeightMask.from_scores(scores, sparsity), opt)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, *INPUTS[model_name], generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    times = []
    for i in range(steps + 3):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        if i >= 3:  # warm-up steps are not timed
            times.append(time.perf_counter() - t0)
    if guard is not None:
        guard.remove()
    return times


def main(argv: list[str] | None = None) -> int:
    """Measure dense vs masked step time over seeds; write maskloop.md/.json to --out."""
    parser = argparse.ArgumentParser(prog="python -m maskloop.bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer steps and seeds")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = args.seeds or (3 if args.quick else 5)
    steps = 15 if args.quick else 40
    command = "python -m maskloop.bench" + (" --quick" if args.quick else "")
    res = report.Results("maskloop", command, {"steps": steps, "seeds": seeds, "sparsity": 0.9})
    for name in MODELS:
        for seed in range(seeds):
            for _ in range(2):  # interleave dense and masked runs twice per seed
                dense = step_times(name, False, seed, steps)
                masked = step_times(name, True, seed, steps)
            ms_dense = statistics.median(dense) * 1e3
            ms_masked = statistics.median(masked) * 1e3
            res.add("dense", seed, {"step_ms": ms_dense, "ratio": 1.0}, model=name)
            res.add(
                "MaskedTraining", seed, {"step_ms": ms_masked, "ratio": ms_masked / ms_dense},
                model=name,
            )  # fmt: skip
            print(f"{name} seed {seed}: dense {ms_dense:.2f} ms, masked {ms_masked:.2f} ms")
    sections = [
        "Per-step time (Adam, batch 128, 90% sparsity) of the same model trained dense and under "
        "`MaskedTraining` (gradient hooks + re-apply after each step). Median over steps per seed; "
        "mean ± std over seeds. The goal is an overhead under 5% (ratio < 1.05).",
        "## Step time (ms)\n\n" + res.table("step_ms", baseline="dense"),
        "## Ratio to dense\n\n" + res.table("ratio", digits=3),
    ]
    path = report.write_report(args.out / "maskloop.md", "maskloop: MaskedTraining overhead",
                               sections, results=res)  # fmt: skip
    print(res.table("ratio", digits=3))
    print(f"written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
