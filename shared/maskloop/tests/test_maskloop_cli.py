"""maskloop.cli: the standard demo / bench command line."""

import argparse
import random
from pathlib import Path

import pytest
import torch
from maskloop.cli import (
    bench_parser,
    build_parser,
    non_negative_int,
    positive_float,
    positive_int,
    run,
)


def test_standard_parser_defaults_and_flags() -> None:
    parser = build_parser("toy")
    args = parser.parse_args(["bench"])
    assert (args.command, args.quick, args.resume, args.seed, args.threads) == (
        "bench",
        False,
        False,
        0,
        2,
    )
    assert args.out == Path("toy-bench") and not args.out_given
    args = parser.parse_args(
        ["bench", "--quick", "--out", "res", "--resume", "--seed", "3", "--threads", "1"]
    )
    assert (args.quick, args.out, args.out_given, args.resume, args.seed, args.threads) == (
        True, Path("res"), True, True, 3, 1
    )  # fmt: skip
    args = parser.parse_args(["demo", "--seed", "7"])
    assert args.command == "demo" and args.seed == 7 and not hasattr(args, "quick")
    parser.subcommands["bench"].add_argument("--methods", default="all", help="which methods")
    assert parser.parse_args(["bench", "--methods", "a"]).methods == "a"


def test_demo_threads_default_is_the_demos_own() -> None:
    """demo_threads sets the demo's --threads default without changing the bench's."""
    parser = build_parser("toy", threads=2, demo_threads=1)
    assert parser.parse_args(["demo"]).threads == 1
    assert parser.parse_args(["bench"]).threads == 2
    assert parser.parse_args(["demo", "--threads", "3"]).threads == 3
    assert "(default: 1)" in parser.subcommands["demo"].format_help()
    assert "(default: 2)" in parser.subcommands["bench"].format_help()
    assert build_parser("toy").parse_args(["demo"]).threads == 2


def test_every_option_has_help_text(capsys) -> None:
    parser = build_parser("toy")
    for sub in parser.subcommands.values():
        for action in sub._actions:
            assert action.help, action.dest
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--help"])
    out = capsys.readouterr().out
    assert "./toy-bench/" in out and "--resume" in out


@pytest.mark.parametrize(
    "argv",
    [[], ["train"], ["bench", "--threads", "0"], ["demo", "--seed", "-1"], ["bench", "--out"]],
)
def test_bad_command_lines_exit_with_usage(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser("toy").parse_args(argv)
    assert exc.value.code == 2 and "usage:" in capsys.readouterr().err


def test_run_sets_threads_and_seeds_then_dispatches() -> None:
    calls = []
    threads = torch.get_num_threads()

    def demo(args):
        calls.append(("demo", args.seed, torch.get_num_threads(), random.random()))

    def bench(args):
        calls.append(("bench", args.out, args.quick))
        return 3

    try:
        assert (
            run(["demo", "--seed", "5", "--threads", "1"], package="toy", demo=demo, bench=bench)
            == 0
        )
        assert run(["bench", "--quick"], package="toy", demo=demo, bench=bench) == 3
    finally:
        torch.set_num_threads(threads)
    random.seed(5)
    assert calls == [("demo", 5, 1, random.random()), ("bench", Path("toy-bench"), True)]
    with pytest.raises(TypeError, match="callables"):
        run(["demo"], package="toy", demo=None, bench=bench)


def test_bench_parser_for_a_stand_alone_module() -> None:
    args = bench_parser("toy").parse_args(["--quick"])
    assert (args.command, args.out, args.quick, args.seed) == ("bench", Path("toy-bench"), True, 0)


@pytest.mark.parametrize("text", ["0", "-2", "1.5", "two", ""])
def test_positive_int_rejects_with_a_usage_error(text) -> None:
    """maskloop.cli.positive_int: anything but an int >= 1 is an argparse error naming the text."""
    with pytest.raises(argparse.ArgumentTypeError, match="int >= 1"):
        positive_int(text)
    assert positive_int("3") == 3 and non_negative_int("0") == 0


@pytest.mark.parametrize("text", ["0", "-0.5", "nan", "inf-ish", ""])
def test_positive_float_rejects_with_a_usage_error(text) -> None:
    """maskloop.cli.positive_float: anything but a number > 0 is an argparse error naming the text."""
    with pytest.raises(argparse.ArgumentTypeError, match="number > 0"):
        positive_float(text)
    assert positive_float("2.5") == 2.5
