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
    for noise in (0.0, 0.2):
        for m in ("full", "TED", "random_dynamic"):
            r = train_digits(m, "mlp", noise, 0.7 if m != "full" else 1.0, seed=0, epochs=15)
            accs[(m, noise)] = r["accuracy"]
            rows.append([m, noise, f"{r['accuracy']:.2f}", f"{r['f']:.3f}", f"{r['seconds']:.2f}"])
    table = report.markdown_table(["method", "label noise", "test acc (%)", "f", "train s"], rows)
    print("digits MLP, 15 epochs, budget 0.7, seed 0")
    print(table)
    seconds = time.perf_counter() - start
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "ted-prune-demo.md").write_text(table + "\n")
    if args.summary_json:
        headline = (
            f"digits MLP at f=0.7, 20% noise: TED {accs[('TED', 0.2)]:.1f}% vs random-dynamic "
            f"{accs[('random_dynamic', 0.2)]:.1f}% vs full {accs[('full', 0.2)]:.1f}%"
        )
        report.write_demo_summary(args.summary_json, "ted-prune",
                                  "TED dynamic data pruning vs random on digits", headline,
                                  seconds)  # fmt: skip
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ted_prune.bench import run_bench

    if args.seeds is not None and args.seeds < 1:
        raise SystemExit(f"--seeds must be >= 1, got {args.seeds}")
    run_bench(args.quick, Path(args.out), args.seeds)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ted-prune` console script."""
    parser = argparse.ArgumentParser(prog="ted-prune", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="cmd")
    d = sub.add_parser("demo", help="under a minute: digits, TED vs random at 70%%")
    d.add_argument("--out", type=Path, default=None)
    d.add_argument("--summary-json", type=Path, default=None)
    b = sub.add_parser("bench", help="the benchmark (docs/benchmarks/ted-prune.*)")
    b.add_argument("--quick", action="store_true")
    b.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    b.add_argument("--seeds", type=int, default=None)
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
