"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import ted_prune


def test_version_matches_metadata() -> None:
    assert ted_prune.__version__ == importlib.metadata.version("ted-prune")
