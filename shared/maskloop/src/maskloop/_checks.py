"""Deprecated alias of `maskloop.checks` (kept so older imports keep working)."""

from maskloop.checks import *  # noqa: F403
from maskloop.checks import __all__  # noqa: F401
