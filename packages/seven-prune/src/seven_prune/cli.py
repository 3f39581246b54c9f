"""Command line: `seven-prune demo` and `seven-prune bench [--quick] [--out DIR] [--resume]
[--budget short|epoch|overhead]`, each with `--seed` and `--threads` (the shared `maskloop.cli`)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

# the task names only: seven_prune.bench imports torch lazily enough to keep `--help` quick
TASKS = ("text", "vision", "overhead")
SPLITS = ("test", "validation")  # seven_prune.bench.SPLITS (not imported here: the CLI loads fast)


def demo(
    out: Path | None = None, summary_json: Path | None = None, seed: int = 0
) -> dict[str, float]:
    """SEVEN_dyn vs one-shot magnitude at 80% sparsity on a tiny config-built BERT (< 1 minute).

    The tiny BERT is first trained densely on the built-in synthetic sentiment task (standing in for a
    pretrained model), then each method prunes and fine-tunes a copy with the same seed and batches.
    `seed` (`--seed`) shifts the model's initialisation and the batch order (the data stay fixed).
    It runs on torch's current thread count: `seven-prune demo` sets one (`--threads`), as the tiny
    model is overhead-bound and one thread is fastest on a busy CPU (31 s vs 194 s on 2 threads).
    """
    import copy

    import torch
    from maskloop.report import markdown_table, write_demo_summary

    from seven_prune.baselines import MagnitudePruner
    from seven_prune.bench import BenchConfig, train_and_evaluate
    from seven_prune.data import synthetic_sentiment
    from seven_prune.models import tiny_bert
    from seven_prune.pruning import sparsity_by_layer_type
    from seven_prune.seven import SevenPruner

    tic = time.perf_counter()
    train, test = synthetic_sentiment(3000, seed=0), synthetic_sentiment(1000, seed=1)
    cfg = BenchConfig(
        task="synthetic",
        methods=(),
        sparsities=(0.8,),
        seeds=1,
        steps=150,
        batch_size=32,
        lr=1e-3,
        start=10,
        window=100,
        delta_t=5,
        pre_batches=8,
    )
    model = tiny_bert(hidden_size=64, intermediate_size=128, seed=seed)
    pre = train_and_evaluate(model, None, train, test, cfg, seed=99 + seed, steps=300, lr=2e-3)
    init = copy.deepcopy(model.state_dict())
    rows, acc = [["dense (pretrained)", "0.00", f"{pre['accuracy'] * 100:.1f}"]], {}
    for name in ("magnitude", "SEVEN_dyn"):
        model.load_state_dict(init)
        torch.manual_seed(seed)
        pruner = (
            SevenPruner(model, 0.8, "dyn", start=cfg.start, window=cfg.window, delta_t=cfg.delta_t)
            if name == "SEVEN_dyn"
            else MagnitudePruner(model, 0.8)
        )
        m = train_and_evaluate(model, pruner, train, test, cfg, seed=seed)
        acc[name] = m["accuracy"]
        rows.append(
            [
                name,
                f"{sparsity_by_layer_type(pruner.mask)['all']:.2f}",
                f"{m['accuracy'] * 100:.1f}",
            ]
        )
        pruner.remove()
    seconds = time.perf_counter() - tic
    table = markdown_table(["method", "sparsity", "test accuracy (%)"], rows)
    print(
        "tiny BERT (2 layers, hidden 64) on the built-in synthetic sentiment task, 80% sparsity\n"
    )
    print(table)
    print(f"done in {seconds:.1f} s")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "seven-prune-demo.md").write_text(table)
    beat = acc["SEVEN_dyn"] > acc["magnitude"]
    if summary_json is not None:
        headline = (
            f"80% sparse tiny BERT: SEVEN_dyn {acc['SEVEN_dyn'] * 100:.1f}% vs magnitude "
            f"{acc['magnitude'] * 100:.1f}% (dense {pre['accuracy'] * 100:.1f}%)"
            + (
                ""
                if beat
                else "; SEVEN does not beat magnitude on this easy synthetic task (see the MiniLM "
                "benchmark for where it does)"
            )
        )
        write_demo_summary(
            summary_json,
            "seven-prune",
            "SEVEN_dyn vs magnitude pruning of a tiny BERT",
            headline,
            seconds,
            baseline="magnitude",
            beat_baseline=beat,
        )
    return acc


def _demo(args: argparse.Namespace) -> int:
    demo(args.demo_out, args.summary_json, seed=args.seed)
    return 0


def _batch_shape(text: str) -> tuple[int, int]:
    """`--batches` values: 'BxL' with B sentences and L word-pieces, both >= 1."""
    m = re.fullmatch(r"(\d+)x(\d+)", text)
    if m is None or int(m[1]) < 1 or int(m[2]) < 1:
        raise argparse.ArgumentTypeError(
            f"a batch shape is BxL (sentences x word-pieces, both >= 1), e.g. 16x32; got {text!r}"
        )
    return int(m[1]), int(m[2])


def _bench(args: argparse.Namespace) -> int:
    from seven_prune.bench import EPOCH_STEM, run_bench, run_epoch_bench

    parser = args._parser
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be >= 1, got {args.seeds}")
    if args.max_minutes is not None and not args.max_minutes > 0:
        parser.error(f"--max-minutes must be > 0, got {args.max_minutes}")
    if args.batches is not None and args.budget != "overhead":
        parser.error("--batches applies to --budget overhead")
    if args.budget == "epoch":
        if args.quick:
            parser.error("--quick belongs to the short budget; the epoch grid has no quick form")
        if args.sparsities is not None and args.methods is None:
            parser.error("--sparsities applies with --methods")
        run_epoch_bench(
            args.out,
            args.seeds,
            args.resume,
            args.max_minutes,
            threads=args.threads,
            methods=args.methods,
            reference=args.reference,
            split=args.split,
            sparsities=args.sparsities,
        )
        print((args.out / f"{EPOCH_STEM}.md").read_text())
        return 0
    if args.max_minutes is not None:
        parser.error("--max-minutes applies to --budget epoch")
    if args.rounds is not None and args.budget != "overhead":
        parser.error("--rounds applies to --budget overhead")
    if args.rounds is not None and args.rounds < 20:
        parser.error(f"--rounds must be >= 20 (two cut intervals), got {args.rounds}")
    if args.methods is not None and args.budget != "overhead":
        parser.error("--methods applies to --budget epoch or overhead")
    if args.reference is not None or args.split != "test":
        parser.error("--reference and --split apply to --budget epoch")
    if args.sparsities is not None:
        parser.error("--sparsities applies to --budget epoch")
    if args.budget == "overhead":
        from seven_prune.bench import OVERHEAD_STEM, overhead_compare, write_overhead_outputs

        tic = time.perf_counter()
        res = overhead_compare(
            **({} if args.batches is None else {"shapes": args.batches}),
            **({} if args.methods is None else {"methods": args.methods}),
            **({} if args.rounds is None else {"rounds": args.rounds}),
            save=lambda r: write_overhead_outputs(r, args.out, time.perf_counter() - tic),
            threads=args.threads,
        )
        write_overhead_outputs(res, args.out, time.perf_counter() - tic)
        print((args.out / f"{OVERHEAD_STEM}.md").read_text())
        return 0
    run_bench(
        args.quick,
        args.out,
        args.seeds,
        tuple(args.tasks),
        resume=args.resume,
        threads=args.threads,
    )
    print((args.out / "seven-prune.md").read_text())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `seven-prune` parser: the shared `maskloop.cli` layout plus this package's options."""
    from maskloop.cli import build_parser as shared_parser

    from seven_prune import __version__

    parser = shared_parser(
        "seven-prune",
        description=__doc__,
        demo_threads=1,
        demo_help="SEVEN_dyn vs magnitude at 80%% sparsity on a tiny config-built BERT (< 1 minute)",
        bench_help="MiniLM on Rotten Tomatoes + tiny ViT on digits (short budget), the one-epoch "
        "MiniLM grid, or the pruner overhead; results in --out",
    )
    parser.add_argument("--version", action="version", version=__version__)
    demo_p = parser.subcommands["demo"]
    demo_p.add_argument("--out", dest="demo_out", type=Path, default=None,
                        help="folder for the demo's table (seven-prune-demo.md); default: none")  # fmt: skip
    demo_p.add_argument("--summary-json", type=Path, default=None,
                        help="write a one-line JSON summary of the demo here")  # fmt: skip
    bench = parser.subcommands["bench"]
    bench.add_argument("--budget", choices=("short", "epoch", "overhead"), default="short",
                       help="short: the 80-step grid (text, vision, overhead); epoch: the one-epoch "
                       "MiniLM grid of issue 17 (about 2 hours on 2 cores; run it in chunks with "
                       "--max-minutes and --resume); overhead: each pruner's cost beside a plain "
                       "MiniLM step at 16 x 32 and 32 x 64 (default: short)")  # fmt: skip
    bench.add_argument("--seeds", type=int, default=None, help="paired seeds (default 3)")
    bench.add_argument("--batches", nargs="+", type=_batch_shape, default=None, metavar="BxL",
                       help="overhead budget: the batch shapes (sentences x word-pieces) to time, "
                       "e.g. 16x32 (default: 16x32 32x64)")  # fmt: skip
    bench.add_argument("--rounds", type=int, default=None,
                       help="overhead budget: timed rounds per batch shape (default 100; at "
                       "least 20)")  # fmt: skip
    bench.add_argument("--max-minutes", type=float, default=None,
                       help="epoch budget: start no run that would end after this many minutes "
                       "(a chunk); the cache keeps what is done")  # fmt: skip
    bench.add_argument("--methods", nargs="+", default=None, metavar="LABEL",
                       help="epoch budget: run only these labels (the grid's, 'movement "
                       "(learned scores)', or a labelled variant of SEVEN_dyn, PLATON or it: "
                       "'SEVEN_dyn (signed moments, alpha A1/A2)', 'PLATON (beta B1/B2)', "
                       "'movement (learned scores, score lr X, warm-up N)', any of the options in "
                       "that order), with the grid's data, seeds and schedule, under their own "
                       "cache: give them their own --out (default: the whole grid); overhead budget: the "
                       "pruners to time (default: 'SEVEN_dyn' 'SEVEN_dyn (fused)'), each hooking the "
                       "optimizer as fit does; a label ending in ' (no optimizer hook)' times it "
                       "without, re-zeroing the pruned weights every step")  # fmt: skip
    bench.add_argument("--sparsities", nargs="+", type=float, default=None, metavar="S",
                       help="epoch budget, with --methods: only their runs at these sparsities "
                       "(dense always; default: every sparsity of their runs)")  # fmt: skip
    bench.add_argument("--reference", type=Path, default=None,
                       help="epoch budget: a results JSON of the grid (e.g. "
                       "docs/benchmarks/seven-prune-epoch.partial.json) to pair these runs with "
                       "by seed in the report (read, not run)")  # fmt: skip
    bench.add_argument("--split", choices=SPLITS, default="test",
                       help="epoch budget: evaluate on the 800 test sentences (default) or on 800 "
                       "training sentences held out as a validation set (train on the rest; for "
                       "choosing settings; its own task name and cache)")  # fmt: skip
    bench.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS,
                       help="short budget: which tasks to run (overhead: pruner time at the "
                       "pilot's batch, 32 x 48); default: all three")  # fmt: skip
    for action in bench._actions:  # the shared --quick, in this benchmark's terms
        if action.dest == "quick":
            action.help = (
                "short budget cut to sparsity 0.8 and 6 text / 5 vision methods (about 9.5 min); "
                "its numbers are the full grid's 0.8 rows"
            )
    bench.set_defaults(_parser=bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `seven-prune` console script (the shared `maskloop.cli` layout)."""
    from maskloop.cli import run

    return run(argv, package="seven-prune", demo=_demo, bench=_bench, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
