"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import seven_prune


def test_version_matches_metadata() -> None:
    assert seven_prune.__version__ == importlib.metadata.version("seven-prune")
