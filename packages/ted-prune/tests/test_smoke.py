"""Smoke test: ted_prune's public names."""

PUBLIC = [
    "DataPruner",
    "EL2N",
    "Forgetting",
    "FullData",
    "GraNd",
    "InfoBatch",
    "ProgressiveSchedule",
    "PrunerCallback",
    "RandomDynamic",
    "RandomSizes",
    "RandomStatic",
    "SPEC_READING",
    "ScheduledPruner",
    "TED",
    "TEDPruner",
    "__version__",
    "alignment_full",
    "alignment_last_layer",
    "indexed",
    "keep_for_budget",
    "last_layer_factors",
    "per_sample_grads",
    "predicted_igd",
    "static_keep_for_budget",
]


def test_public_api_is_pinned() -> None:
    """`__all__` is the method, its config and its integrations; a change to it is deliberate."""
    import ted_prune

    assert sorted(ted_prune.__all__) == PUBLIC
    assert all(hasattr(ted_prune, name) for name in PUBLIC)
