"""The console script: the shared `maskloop.cli` layout, help on every option, help pages render."""

import argparse
from pathlib import Path

import pytest
from ted_prune.cli import build_parser, main


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["bench", "--help"]])
def test_help_renders(argv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: ted-prune" in capsys.readouterr().out


def _walk(parser: argparse.ArgumentParser, path: str = "ted-prune"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _walk(sub, f"{path} {name}")
        else:
            yield path, action


def test_every_option_has_help() -> None:
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}"
               for path, a in _walk(build_parser()) if not (a.help or "").strip()]  # fmt: skip
    assert not missing, missing


def test_same_flags_as_every_package() -> None:
    p = build_parser()
    bench = p.parse_args(["bench"])
    assert bench.out == Path("ted-prune-bench") and not bench.out_given
    assert (bench.quick, bench.resume, bench.seed, bench.threads) == (False, False, 0, 2)
    assert p.parse_args(["bench", "--quick", "--out", "x", "--resume"]).out == Path("x")
    demo = p.parse_args(["demo", "--seed", "3", "--threads", "1"])
    assert (demo.command, demo.seed, demo.threads) == ("demo", 3, 1)
