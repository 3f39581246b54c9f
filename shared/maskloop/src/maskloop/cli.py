"""The command line every package shares: `<package> demo` and `<package> bench [--quick] [--out DIR]
[--resume]`, each with `--seed` and `--threads`.

A package's `cli.py` becomes::

    from maskloop.cli import run

    def main(argv=None) -> int:
        return run(argv, package="lnpt", description=__doc__, demo=_demo, bench=_bench)

where `_demo(args)` and `_bench(args)` receive the parsed `argparse.Namespace` (`args.command`,
`args.seed`, `args.threads`, and for bench `args.quick`, `args.out` (a `Path`, default
`./<package>-bench/`; the repository's nox session passes `docs/benchmarks`), `args.out_given`,
`args.resume`) and return an exit code (or None for 0). `run` sets the torch thread count and seeds
Python, NumPy and torch before calling them. Extra options: build the parser with `build_parser`,
add to `parser.subcommands["bench"]`, and pass it as `run(..., parser=parser)`. A stand-alone
benchmark module (`python -m <package>.bench`) uses `bench_parser`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "add_bench_arguments",
    "bench_parser",
    "build_parser",
    "finish_bench_args",
    "non_negative_int",
    "positive_float",
    "positive_int",
    "run",
]

Handler = Callable[[argparse.Namespace], "int | None"]


def _int_at_least(text: str, minimum: int) -> int:
    try:
        v = int(text)
    except ValueError:
        v = minimum - 1
    if v < minimum:
        raise argparse.ArgumentTypeError(f"must be an int >= {minimum}, got {text!r}")
    return v


def non_negative_int(text: str) -> int:
    """An argparse `type=` for counts and seeds: an int >= 0, else a clear usage error."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """An argparse `type=` for sizes, seeds counts and threads: an int >= 1, else a usage error."""
    return _int_at_least(text, 1)


def positive_float(text: str) -> float:
    """An argparse `type=` for time limits and rates: a number > 0, else a clear usage error."""
    try:
        v = float(text)
    except ValueError:
        v = float("nan")
    if not v > 0:
        raise argparse.ArgumentTypeError(f"must be a number > 0, got {text!r}")
    return v


def _common(threads: int) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=non_negative_int, default=0,
                        help="random seed for Python, NumPy and torch (default: 0)")  # fmt: skip
    common.add_argument("--threads", type=positive_int, default=threads,
                        help=f"torch CPU threads (default: {threads})")  # fmt: skip
    return common


def add_bench_arguments(parser: argparse.ArgumentParser, package: str) -> argparse.ArgumentParser:
    """Add `--quick`, `--out DIR` (default `./<package>-bench/`) and `--resume` to `parser`."""
    parser.add_argument("--quick", action="store_true",
                        help="the CI-sized variant: fewer settings, seeds and steps")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help=f"results folder for the tables, JSON and figures "
                             f"(default: ./{package}-bench/)")  # fmt: skip
    parser.add_argument("--resume", action="store_true",
                        help="reuse the finished runs cached in --out instead of running them again")  # fmt: skip
    parser.set_defaults(_package=package)
    return parser


def finish_bench_args(args: argparse.Namespace) -> argparse.Namespace:
    """Fill `args.out` (default `./<package>-bench/`) and `args.out_given`; `run` calls it."""
    if hasattr(args, "out"):
        args.out_given = args.out is not None
        if args.out is None:
            args.out = Path(f"{args._package}-bench")
    return args


class _Parser(argparse.ArgumentParser):
    subcommands: dict[str, argparse.ArgumentParser]

    def parse_args(self, args: Sequence[str] | None = None, namespace: Any = None) -> Any:  # type: ignore[override]
        return finish_bench_args(super().parse_args(args, namespace))


def build_parser(
    package: str,
    *,
    prog: str | None = None,
    description: str | None = None,
    threads: int = 2,
    demo_threads: int | None = None,
    demo_help: str = "run a short demonstration on built-in data (under a minute)",
    bench_help: str = "run the benchmark and write its tables (Markdown + JSON) to --out",
) -> argparse.ArgumentParser:
    """The standard parser: `demo` and `bench [--quick] [--out DIR] [--resume]`, with `--seed` and
    `--threads` on both; `parser.subcommands` maps each name to its subparser (to add options).

    `threads` is the default of `--threads`; `demo_threads`, when given, is the demo's own default
    (a tiny demo model can be fastest on one thread while the benchmark runs on two)."""
    if not isinstance(package, str) or not package:
        raise ValueError(f"package must be a non-empty str, got {package!r}")
    parser = _Parser(prog=prog or package, description=description,
                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    sub = parser.add_subparsers(dest="command", metavar="{demo,bench}", required=True)
    common = _common(threads)
    demo_common = common if demo_threads is None else _common(demo_threads)
    demo = sub.add_parser("demo", help=demo_help, description=demo_help, parents=[demo_common])
    bench = sub.add_parser("bench", help=bench_help, description=bench_help, parents=[common])
    add_bench_arguments(bench, package)
    parser.subcommands = {"demo": demo, "bench": bench}
    return parser


def bench_parser(
    package: str, *, prog: str | None = None, description: str | None = None, threads: int = 2
) -> argparse.ArgumentParser:
    """A parser with bench's options only (`--quick`, `--out`, `--resume`, `--seed`, `--threads`),
    for a stand-alone `python -m <package>.bench`."""
    parser = _Parser(prog=prog or f"python -m {package}.bench", description=description,
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     parents=[_common(threads)])  # fmt: skip
    add_bench_arguments(parser, package)
    parser.set_defaults(command="bench")
    return parser


def run(
    argv: Sequence[str] | None,
    *,
    package: str,
    demo: Handler,
    bench: Handler,
    description: str | None = None,
    parser: argparse.ArgumentParser | None = None,
) -> int:
    """Parse `argv`, set threads and seeds, and call `demo(args)` or `bench(args)`; the exit code."""
    import torch

    from maskloop.loop import seed_everything

    if not callable(demo) or not callable(bench):
        raise TypeError("demo and bench must be callables taking the parsed arguments")
    parser = parser or build_parser(package, description=description)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    seed_everything(args.seed)
    handler = demo if args.command == "demo" else bench
    code = handler(args)
    return 0 if code is None else int(code)
