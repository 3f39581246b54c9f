"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import lnpt


def test_version_matches_metadata() -> None:
    assert lnpt.__version__ == importlib.metadata.version("lnpt")
