"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import lrcnn


def test_version_matches_metadata() -> None:
    assert lrcnn.__version__ == importlib.metadata.version("lrcnn")
