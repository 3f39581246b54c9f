"""Command line: `ted-prune demo` (digits, TED vs random at 70%) and `ted-prune bench [--quick]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def _demo(args: argparse.Namespace) -> int:
    import torch
    from maskloop import report

    from ted_prune.bench import train_digits

    torch.set_num_threads(2)
    start = time.perf_counter()
    rows, accs = [], {}
    f = 0.5
    # the setting where the chosen reading showed its value on validation: 20% label noise
    for noise in (0.2,):
        for m in ("full", "TED", "random_dynamic"):
            r = train_digits(m, "mlp", noise, f if m != "full" else 1.0, seed=0, epochs=15)
            accs[(m, noise)] = r["accuracy"]
            rows.append([m, noise, f"{r['accuracy']:.2f}", f"{r['f']:.3f}", f"{r['seconds']:.2f}"])
    table = report.markdown_table(["method", "label noise", "test acc (%)", "f", "train s"], rows)
    print(f"digits MLP, 15 epochs, budget {f}, seed 0 (one seed: a demo, not evidence; the "
          "benchmark has the paired seeds)")  # fmt: skip
    print(table)
    beat = accs[("TED", 0.2)] > accs[("random_dynamic", 0.2)]
    verdict = "beats" if beat else "does NOT beat"
    headline = (
        f"digits MLP, 20% label noise, f={f}: TED {accs[('TED', 0.2)]:.1f}% vs random-dynamic "
        f"{accs[('random_dynamic', 0.2)]:.1f}% (full data {accs[('full', 0.2)]:.1f}%): TED "
        f"{verdict} random selection in this run (one seed); on clean data it does not (benchmark)"
    )
    print(headline)
    seconds = time.perf_counter() - start
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "ted-prune-demo.md").write_text(table + "\n\n" + headline + "\n")
    if args.summary_json:
        report.write_demo_summary(args.summary_json, "ted-prune",
                                  "TED dynamic data pruning vs random on noisy digits", headline,
                                  seconds, baseline="random_dynamic",
                                  beat_baseline=beat)  # fmt: skip
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.seeds is not None and args.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
    if args.suite == "digits":
        from ted_prune.bench import run_bench

        run_bench(args.quick, Path(args.out), args.seeds)
        return 0
    from ted_prune.bench_mnist1d import run_mnist1d

    for name in ("num_samples", "epochs", "threads"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    done = run_mnist1d(
        Path(args.out),
        stage=args.stage,
        seeds=args.seeds or 5,
        num_samples=args.num_samples,
        epochs=args.epochs,
        resume=args.resume,
        time_limit=args.time_limit,
        threads=args.threads,
    )
    return 0 if done else 3


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ted-prune` console script."""
    parser = argparse.ArgumentParser(prog="ted-prune", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="cmd")
    d = sub.add_parser(
        "demo", help="under a minute: digits with 20%% label noise, TED vs random-dynamic at f=0.5"
    )
    d.add_argument("--out", type=Path, default=None, help="folder for the demo's table")
    d.add_argument("--summary-json", type=Path, default=None,
                   help="write the one-line demo summary (JSON) here")  # fmt: skip
    b = sub.add_parser("bench", help="the benchmark (MNIST-1D by default; digits with --suite)")
    b.add_argument("--suite", choices=("mnist1d", "digits"), default="mnist1d",
                   help="mnist1d: TED vs baselines on MNIST-1D (default); digits: the older grid")  # fmt: skip
    b.add_argument("--quick", action="store_true", help="digits only: the smaller grid")
    b.add_argument("--out", type=Path, default=Path("ted-prune-bench"),
                   help="results folder (default ./ted-prune-bench/)")  # fmt: skip
    b.add_argument("--seeds", type=int, default=None, help="paired seeds (default 5)")
    b.add_argument("--stage", choices=("all", "val", "test"), default="all",
                   help="mnist1d: the validation ablation, the test grid, or both")  # fmt: skip
    b.add_argument("--num-samples", type=int, default=5000,
                   help="mnist1d samples generated (80%% train incl. 500 validation, 20%% test)")  # fmt: skip
    b.add_argument("--epochs", type=int, default=20, help="mnist1d training epochs")
    b.add_argument("--resume", action="store_true",
                   help="keep the run cache in --out and skip finished (setting, seed) groups")  # fmt: skip
    b.add_argument("--time-limit", type=float, default=None,
                   help="seconds after which no new group is started (exit code 3: rerun with --resume)")  # fmt: skip
    b.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args(argv)
    if args.version:
        from ted_prune import __version__

        print(__version__)
        return 0
    if args.cmd == "demo":
        return _demo(args)
    if args.cmd == "bench":
        return _bench(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
