"""SEVEN_dyn's per-step cost on a CUDA GPU, beside a plain MiniLM training step (issue 17, point 3).

The CPU benchmark (`seven-prune bench --budget overhead`) times the pruner against a plain step of
the real MiniLM on Rotten Tomatoes. A lent GPU machine has neither package's files, so this script
times the same pruners the same way on a MiniLM-L6-shaped classifier with random weights and random
token batches (a step's and the pruner's time depend on the shapes, not on the values): a plain
model and one model per method take steps in turn, round after round, the order rotating
(`seven_prune.bench._round_robin`), each step and pruner call ending with a CUDA synchronisation;
the pruners are built as the benchmark builds them (`build_pruner`: sparsity 0.8 on the cubic
schedule over the timed rounds, a cut every 10 updates, guard 0.01, masked training hooking AdamW)
and the overhead (update + cut / 10) / plain step comes with its paired bootstrap CI
(`_overhead_paired`). Float32 training, as the benchmark. `--device cpu` only checks the script. Usage:

    python packages/seven-prune/scripts/overhead_gpu.py --batches 16x32,32x64 --out overhead_gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace

import torch
from seven_prune.bench import (
    _forever,
    _overhead_paired,
    _round_robin,
    build_pruner,
    text_config,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from semi_structured_gpu import build  # noqa: E402


def batches(batch: int, length: int, device: torch.device):
    """An endless stream of random token batches (vocabulary 30522, 2 labels) on `device`."""
    gen = torch.Generator().manual_seed(batch * 1000 + length)
    pool = [
        {
            "input_ids": torch.randint(0, 30522, (batch, length), generator=gen).to(device),
            "attention_mask": torch.ones(batch, length, dtype=torch.long, device=device),
            "labels": torch.randint(0, 2, (batch,), generator=gen).to(device),
        }
        for _ in range(8)
    ]
    return _forever(pool)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="16x32,32x64", help="sentences x word-pieces")
    ap.add_argument("--methods", default="SEVEN_dyn,PLATON", help="pruners (benchmark labels)")
    ap.add_argument("--rounds", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--out", default=None)
    ap.add_argument("--device", default="cuda", help="cuda, or cpu to check the script itself")
    args = ap.parse_args()
    if args.device not in ("cuda", "cpu"):
        raise SystemExit(f"--device must be cuda or cpu, got {args.device!r}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda needs a CUDA GPU (none is available)")
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    out = {"device": name, "torch": torch.__version__, "rows": []}
    print(f"device: {out['device']}, torch {torch.__version__}")
    methods = args.methods.split(",")
    for shape in args.batches.split(","):
        b, length = (int(v) for v in shape.split("x"))
        cfg = replace(
            text_config(False, 1),
            batch_size=b,
            max_len=length,
            start=0,
            window=args.warmup + args.rounds + 2,
            delta_t=10,
            min_density=0.01,
        )
        runs = []
        for method in ("plain", *methods):
            model = build("minilm-l6", dev)  # MiniLM-L6's shapes, random weights (seed 0)
            pr = None if method == "plain" else build_pruner(method, model, 0.8, cfg, 0)
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
            if pr is not None:
                pr.hook_optimizer(opt)
            runs.append((method, model, pr, opt, batches(b, length, dev), {"step": [], "update": [], "cut": []}))  # fmt: skip
        _round_robin(runs, args.warmup + args.rounds, cut_every=None, warmup=args.warmup, rotate=True)  # fmt: skip
        plain = runs[0][5]["step"]
        for method, _, pr, _, _, times in runs[1:]:
            m = _overhead_paired(plain, times, 10)
            m |= {"method": method, "batch": shape, "final_sparsity": pr.achieved_sparsity}
            out["rows"].append(m)
            print(
                f"{shape} {method}: plain step {m['plain_step_seconds'] * 1000:.2f} ms, update "
                f"{m['update_seconds'] * 1000:.2f} ms, cut {m['cut_seconds'] * 1000:.2f} ms -> "
                f"overhead {m['overhead'] * 100:.2f}% [{m['overhead_lo'] * 100:.2f}, "
                f"{m['overhead_hi'] * 100:.2f}], with hooks {m['overhead_with_hooks'] * 100:.2f}%"
            )
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)
        del runs
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
