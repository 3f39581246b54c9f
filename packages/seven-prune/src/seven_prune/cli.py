"""Command line: `seven-prune demo` and `seven-prune bench [--quick]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# the task names only: seven_prune.bench imports torch lazily enough to keep `--help` quick
TASKS = ("text", "vision", "overhead")


def demo(out: Path | None = None, summary_json: Path | None = None) -> dict[str, float]:
    """SEVEN_dyn vs one-shot magnitude at 80% sparsity on a tiny config-built BERT (< 1 minute).

    The tiny BERT is first trained densely on the built-in synthetic sentiment task (standing in for a
    pretrained model), then each method prunes and fine-tunes a copy with the same seed and batches.
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

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model is overhead-bound: one thread is fastest on a busy CPU
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
    model = tiny_bert(hidden_size=64, intermediate_size=128, seed=0)
    pre = train_and_evaluate(model, None, train, test, cfg, seed=99, steps=300, lr=2e-3)
    init = copy.deepcopy(model.state_dict())
    rows, acc = [["dense (pretrained)", "0.00", f"{pre['accuracy'] * 100:.1f}"]], {}
    for name in ("magnitude", "SEVEN_dyn"):
        model.load_state_dict(init)
        torch.manual_seed(0)
        pruner = (
            SevenPruner(model, 0.8, "dyn", start=cfg.start, window=cfg.window, delta_t=cfg.delta_t)
            if name == "SEVEN_dyn"
            else MagnitudePruner(model, 0.8)
        )
        m = train_and_evaluate(model, pruner, train, test, cfg, seed=0)
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
    torch.set_num_threads(threads)
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `seven-prune` console script."""
    parser = argparse.ArgumentParser(prog="seven-prune", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="SEVEN vs magnitude on a tiny BERT (< 1 minute)")
    p_demo.add_argument("--out", type=Path, default=None, help="folder for the demo table")
    p_demo.add_argument("--summary-json", type=Path, default=None, help="write a one-line summary")
    p_bench = sub.add_parser(
        "bench", help="MiniLM on Rotten Tomatoes + tiny ViT on digits (short budget), or one epoch"
    )
    p_bench.add_argument(
        "--quick",
        action="store_true",
        help="short budget: 0.8 sparsity only, 6 methods, 80 short steps, 3 seeds (about 9.5 min)",
    )
    p_bench.add_argument(
        "--budget",
        choices=("short", "epoch", "overhead"),
        default="short",
        help="short: the 80-step grid (text, vision, overhead); epoch: the one-epoch MiniLM grid "
        "of issue 17 (about 2 hours on 2 cores; run it in chunks with --max-minutes and --resume); "
        "overhead: each pruner's cost beside a plain MiniLM step at 16 x 32 and 32 x 64",
    )
    p_bench.add_argument(
        "--out",
        type=Path,
        default=Path("seven-prune-bench"),
        help="results folder (report .md, .json, figures, resume cache); default ./seven-prune-bench",
    )
    p_bench.add_argument("--seeds", type=int, default=None, help="paired seeds (default 3)")
    p_bench.add_argument(
        "--resume",
        action="store_true",
        help="continue from the cache in OUT (seven-prune[-epoch].partial.json): run only what a "
        "stopped run lacks",
    )
    p_bench.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="epoch budget: start no run that would end after this many minutes (a chunk); the "
        "cache keeps what is done",
    )
    p_bench.add_argument(
        "--tasks",
        nargs="+",
        default=list(TASKS),
        choices=TASKS,
        help="short budget: which tasks to run (overhead: pruner time at the bench batch and 32 x 64)",
    )
    args = parser.parse_args(argv)
    if args.version:
        from seven_prune import __version__

        print(__version__)
        return 0
    if args.command == "demo":
        demo(args.out, args.summary_json)
        return 0
    if args.command == "bench":
        from seven_prune.bench import EPOCH_STEM, run_bench, run_epoch_bench

        if args.seeds is not None and args.seeds < 1:
            parser.error(f"--seeds must be >= 1, got {args.seeds}")
        if args.max_minutes is not None and not args.max_minutes > 0:
            parser.error(f"--max-minutes must be > 0, got {args.max_minutes}")
        if args.budget == "epoch":
            if args.quick:
                parser.error(
                    "--quick belongs to the short budget; the epoch grid has no quick form"
                )
            run_epoch_bench(args.out, args.seeds, args.resume, args.max_minutes)
            print((args.out / f"{EPOCH_STEM}.md").read_text())
            return 0
        if args.max_minutes is not None:
            parser.error("--max-minutes applies to --budget epoch")
        if args.budget == "overhead":
            import time

            import torch

            from seven_prune.bench import OVERHEAD_STEM, overhead_compare, write_overhead_outputs

            torch.set_num_threads(2)
            tic = time.perf_counter()
            res = overhead_compare(
                save=lambda r: write_overhead_outputs(r, args.out, time.perf_counter() - tic)
            )
            write_overhead_outputs(res, args.out, time.perf_counter() - tic)
            print((args.out / f"{OVERHEAD_STEM}.md").read_text())
            return 0
        run_bench(args.quick, args.out, args.seeds, tuple(args.tasks), resume=args.resume)
        print((args.out / "seven-prune.md").read_text())
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
