"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import cdhm


def test_version_matches_metadata() -> None:
    assert cdhm.__version__ == importlib.metadata.version("cdhm")
