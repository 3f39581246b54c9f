"""Shared fixtures of the ted-prune tests."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture
def made_up_rows():
    """Made-up validation rows for the session-25 study rules (`scripts/*_validation.py`):
    `rows(arms, seeds)` with `arms` = {arm: (clean delta, noise20 delta)} gives, per arm, setting
    and seed, accuracy = base(setting, seed) + delta, plus a seed-dependent wobble for the arms
    with a non-zero delta so paired CIs have width; every row keeps `min_class` of each class."""

    def rows(
        arms: dict[str, tuple[float, float]], seeds: list[int], min_class: float = 0.5
    ) -> list[dict[str, Any]]:
        out = []
        for arm, (clean, noise) in arms.items():
            for setting, d in (("clean", clean), ("noise20", noise)):
                for i, s in enumerate(seeds):
                    acc = (
                        80.0 - 10 * (setting == "noise20") + i + d + (0.2 * (-1) ** i if d else 0.0)
                    )
                    out.append({"arm": arm, "setting": setting, "seed": s, "val_accuracy": acc,
                                "min_class_kept": min_class})  # fmt: skip
        return out

    return rows
