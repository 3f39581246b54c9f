"""The workspace as a whole: every package imports beside the others and depends only on maskloop."""

import importlib
import importlib.metadata
import re
from pathlib import Path

import pytest
from maskloop.testing import relative_links

ROOT = Path(__file__).resolve().parents[2]
_READMES = [ROOT / "shared" / "maskloop" / "README.md", *sorted(ROOT.glob("packages/*/README.md"))]

PACKAGES = {
    "ted-prune": "ted_prune",
    "lnpt": "lnpt",
    "seven-prune": "seven_prune",
    "lrcnn": "lrcnn",
    "cdhm": "cdhm",
    "ssjdn": "ssjdn",
}


@pytest.mark.parametrize("dist", sorted(PACKAGES))
def test_method_packages_depend_on_maskloop_never_on_each_other(dist: str) -> None:
    requires = importlib.metadata.requires(dist) or []
    names = {re.split(r"[ ;<>=!~\[]", r, maxsplit=1)[0].lower() for r in requires}
    assert "maskloop" in names
    assert not names & (set(PACKAGES) - {dist})
    module = importlib.import_module(PACKAGES[dist])
    assert module.__version__ == importlib.metadata.version(dist)


@pytest.mark.parametrize("readme", sorted(str(p.relative_to(ROOT)) for p in _READMES))
def test_package_readme_links_are_absolute(readme: str) -> None:
    """A README shipped to PyPI has no links relative to the repository (they break there)."""
    assert relative_links((ROOT / readme).read_text()) == [], readme
