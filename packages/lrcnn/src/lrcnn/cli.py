"""Command line: `lrcnn demo` (a small CNN, exact gradients, memory ratio) and `lrcnn bench [--quick]
[--out DIR] [--resume]`, each with `--seed` and `--threads` (the shared `maskloop.cli`).

Without `--resume` a bench run starts a new cache of finished workloads, `OUT/lrcnn.cache.jsonl`;
with it, the workloads already there are reused (a stopped run continues where it stopped)."""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path


def demo(out: str | None = None, summary_json: str | None = None, seed: int = 0) -> str:
    """Train step of a small CNN plain vs row-centric: gradient error and memory, as a table.

    Runs on torch's current thread count (`lrcnn demo` sets `--threads`, default 1: on a shared
    machine, OpenMP barriers of many small strip ops dominate otherwise); `seed` (`--seed`) draws
    the model and the batch."""
    import torch
    from maskloop.report import markdown_table, write_demo_summary
    from torch import nn

    from lrcnn import RowCentric, plan
    from lrcnn.baselines import CheckpointTrunk
    from lrcnn.models import small_cnn

    t0 = time.perf_counter()
    torch.manual_seed(seed)
    model = small_cnn(width=16)
    x = torch.randn(8, 3, 96, 96)
    y = torch.randint(0, 10, (8,))

    def measure(run: nn.Module, net: nn.Module) -> tuple[int, float, list[torch.Tensor]]:
        seen: dict[int, int] = {}
        skip = {p.untyped_storage().data_ptr() for p in net.parameters()}
        skip.add(x.untyped_storage().data_ptr())

        def pack(t: torch.Tensor) -> torch.Tensor:
            s = t.untyped_storage()
            if s.data_ptr() not in skip:
                seen[s.data_ptr()] = s.nbytes()
            return t

        nn.functional.cross_entropy(run(x), y).backward()  # warm-up: kernels for strip shapes
        net.zero_grad(set_to_none=True)
        start = time.perf_counter()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss = nn.functional.cross_entropy(run(x), y)
        loss.backward()
        secs = time.perf_counter() - start
        return sum(seen.values()), secs, [p.grad.clone() for p in net.parameters()]

    def err(ref_g: list[torch.Tensor], g: list[torch.Tensor]) -> float:
        top = max(float(r.abs().max()) for r in ref_g)
        e = 0.0
        for g1, g2 in zip(ref_g, g):
            t = float(g1.abs().max())  # zero-in-theory grads (bias before BN): vs the largest
            e = max(e, float((g1 - g2.to(g1.dtype)).abs().max()) / (t if t >= 1e-4 * top else top))
        return e

    m64 = copy.deepcopy(model).double()
    m64.zero_grad(set_to_none=True)
    nn.functional.cross_entropy(m64(x.double()), y).backward()
    g64 = [p.grad for p in m64.parameters()]
    ref = copy.deepcopy(model)
    plain_saved, plain_s, plain_g = measure(ref, ref)
    # the simplest control: activation checkpointing with the planner's best segment count
    ck_net = copy.deepcopy(model)
    ck_k = plan(model, tuple(x.shape), rows=1).checkpoint_segments
    ck_saved, ck_s, ck_g = measure(CheckpointTrunk(ck_net, ck_k), ck_net)
    rows = []
    head = ""
    for policy in ("overlap", "two_phase"):
        net = copy.deepcopy(model)
        rc = RowCentric(net, rows=4, policy=policy, depth=7)  # 2x conv-BN-ReLU + pool
        depth, _ = rc.configure(tuple(x.shape))
        pred = plan(model, tuple(x.shape), rows=4, policy=policy, depth=depth)
        if not rows:
            rows.append(
                [
                    "plain",
                    "-",
                    f"{plain_saved / 2**20:.1f}",
                    "1.00",
                    f"{pred.plain_bytes / 2**20:.1f}",
                    f"{plain_s:.2f}",
                    "0",
                    f"{err(g64, plain_g):.1e}",
                ]
            )
        saved, secs, grads = measure(rc, net)
        e_plain, e64 = err(plain_g, grads), err(g64, grads)
        rows.append(
            [
                f"{policy}-4",
                pred.units[-1],
                f"{saved / 2**20:.1f}",
                f"{saved / plain_saved:.2f}",
                f"{pred.policy_bytes[policy] / 2**20:.1f}",
                f"{secs:.2f}",
                f"{e_plain:.1e}",
                f"{e64:.1e}",
            ]
        )
        if policy == "two_phase":
            beat = saved < ck_saved and err(g64, grads) <= 10 * max(err(g64, plain_g), 1e-6)
            head = (
                f"two_phase-4: saved-for-backward {saved / plain_saved:.0%} of plain vs "
                f"checkpoint_sequential-{ck_k} {ck_saved / plain_saved:.0%}; "
                + ("beats" if beat else "does NOT beat")
                + f" the checkpoint baseline; grad err vs float64 {e64:.1e} "
                f"(plain float32: {err(g64, plain_g):.1e})"
            )
    rows.insert(
        1,
        [
            f"checkpoint-{ck_k}",
            "-",
            f"{ck_saved / 2**20:.1f}",
            f"{ck_saved / plain_saved:.2f}",
            f"{pred.checkpoint_bytes / 2**20:.1f}",
            f"{ck_s:.2f}",
            f"{err(plain_g, ck_g):.1e}",
            f"{err(g64, ck_g):.1e}",
        ],
    )
    table = markdown_table(
        [
            "method",
            "row-centric up to",
            "saved MiB",
            "ratio",
            "predicted peak MiB",
            "step s",
            "grad err vs plain",
            "grad err vs float64",
        ],
        rows,
    )
    print(
        "lrcnn demo: small CNN (BatchNorm, residual block), batch 8, 96x96, float32, the "
        "full-resolution block (2x conv-BN-ReLU + pool) in 4 row strips\n"
    )
    print(table)
    print(head)
    seconds = time.perf_counter() - t0
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "lrcnn_demo.md").write_text(table)
    if summary_json:
        write_demo_summary(
            summary_json,
            "lrcnn",
            "row-centric training of a small CNN vs plain and checkpointing",
            head,
            seconds,
            baseline="checkpoint_sequential",
            beat_baseline=beat,
        )
    return table


#: the file under `bench --out` that keeps finished workloads (read back with `--resume`)
CACHE_NAME = "lrcnn.cache.jsonl"


def _demo(args: argparse.Namespace) -> int:
    demo(args.demo_out, args.summary_json, seed=args.seed)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from lrcnn.bench import run_bench

    out = Path(args.out)
    cache = out / CACHE_NAME
    if not args.resume and cache.exists():
        cache.unlink()  # a new run measures everything again; --resume reuses what is cached
    out.mkdir(parents=True, exist_ok=True)
    cmd = "lrcnn bench" + (" --quick" if args.quick else "") + f" --threads {args.threads}"
    if args.repeats != 3:
        cmd += f" --repeats {args.repeats}"
    if args.batch is not None:
        cmd += f" --batch {args.batch}"
    if args.resume:  # rows may come from the cache: say so in the report's command
        cmd += " --resume"
    if args.only:
        cmd += f" --only {args.only}"
    print(
        run_bench(
            out,
            quick=args.quick,
            seeds=args.seeds,
            threads=args.threads,
            command=cmd,
            cache=cache,
            max_minutes=args.max_minutes,
            only=args.only,
            repeats=args.repeats,
            readme=args.readme,
            budget_s=args.budget_s,
            batch=args.batch,
        )
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `lrcnn` parser: the shared `maskloop.cli` layout plus this package's bench options."""
    from maskloop.cli import build_parser as shared_parser

    from lrcnn import __version__

    parser = shared_parser(
        "lrcnn",
        description=__doc__,
        threads=1,  # on a shared machine, OpenMP barriers of many strip-sized ops make 2 noisy
        demo_help="small CNN: exact gradients and memory ratio vs plain and checkpointing "
        "(< 1 minute)",
        bench_help="VGG-16 / ResNet-50: plain vs checkpoint vs row-centric, trunk and whole step; "
        "results in --out",
    )
    parser.add_argument("--version", action="version", version=__version__)
    d = parser.subcommands["demo"]
    d.add_argument("--out", dest="demo_out", default=None,
                   help="folder for the demo's table (lrcnn_demo.md); default: none")  # fmt: skip
    d.add_argument("--summary-json", default=None,
                   help="write a one-line JSON summary of the demo here")  # fmt: skip
    b = parser.subcommands["bench"]
    for action in b._actions:  # the shared --quick, in this benchmark's terms
        if action.dest == "quick":
            action.help = "VGG-16 / ResNet-50 at 224x224, batch 2, fewer methods"
    b.add_argument("--seeds", type=int, default=1,
                   help="repeats of each workload, each on a new batch (default 1)")  # fmt: skip
    b.add_argument("--repeats", type=int, default=3,
                   help="interleaved timing rounds per workload (>= 2, default 3)")  # fmt: skip
    b.add_argument("--max-minutes", type=float, default=None,
                   help="start no new workload after this many minutes; the rest are listed as "
                   "not measured (finish them with --resume)")  # fmt: skip
    b.add_argument("--only", default=None,
                   help="measure only workloads whose model-res-batch-group name contains this, "
                   "e.g. vgg16-224-8-trunk (with --resume the rest come from the cache)")  # fmt: skip
    b.add_argument("--budget-s", type=float, default=None,
                   help="per workload: after this many seconds no further timing rounds (>= 2) "
                   "and no float64 gradient check")  # fmt: skip
    b.add_argument("--batch", type=int, default=None,
                   help="batch of the 224x224 workloads instead of 8 (2 with --quick); the GPU "
                   "setting is --batch 32 --only 224-32")  # fmt: skip
    b.add_argument("--readme", default=None,
                   help="also write the tables between the lrcnn-bench markers of this README")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lrcnn` console script (the shared `maskloop.cli` layout)."""
    from maskloop.cli import run

    return run(argv, package="lrcnn", demo=_demo, bench=_bench, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
