"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import ssjdn


def test_version_matches_metadata() -> None:
    assert ssjdn.__version__ == importlib.metadata.version("ssjdn")
