"""maskloop.testing: the shared checks of a CLI's help texts and a README's links."""

import argparse

import pytest
from maskloop.cli import build_parser
from maskloop.testing import options_without_help, relative_links


def test_options_without_help_walks_sub_commands() -> None:
    parser = build_parser("toy")
    assert options_without_help(parser) == []
    parser.subcommands["bench"].add_argument("--bare")
    parser.subcommands["demo"].add_argument("--hidden", help=argparse.SUPPRESS)
    assert sorted(options_without_help(parser)) == ["toy bench --bare", "toy demo --hidden"]
    plain = argparse.ArgumentParser(prog="p")
    sub = plain.add_subparsers(dest="cmd")
    sub.add_parser("run")  # a sub-command without help
    assert options_without_help(plain) == ["p run"]
    with pytest.raises(TypeError, match="parser must be"):
        options_without_help("toy")


def test_relative_links_finds_what_breaks_on_pypi() -> None:
    text = (
        "See [docs](https://example.org/a.md), [here](#usage) and [mail](mailto:a@b.c).\n"
        "![plot](docs/benchmarks/x.png) and [spec](../specs/x.md)\n"
        '[ref]: ./notes.md\n<img src="img/a.png"> <a href="https://example.org">x</a>\n'
    )
    assert relative_links(text) == [
        "docs/benchmarks/x.png",
        "../specs/x.md",
        "./notes.md",
        "img/a.png",
    ]
    assert relative_links("no links at all") == []
    with pytest.raises(TypeError, match="markdown must be"):
        relative_links(None)
