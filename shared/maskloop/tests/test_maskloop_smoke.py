"""Smoke test: maskloop's public names."""

PUBLIC = [
    "Callback",
    "Checkpoint",
    "FeatureHook",
    "History",
    "IndexedDataset",
    "LoopState",
    "MaskedTraining",
    "NonFiniteLossError",
    "Objective",
    "Selection",
    "SelectionSampler",
    "WeightMask",
    "__version__",
    "accuracy",
    "checks",
    "classification",
    "distributed",
    "evaluate",
    "evaluate_objective",
    "filter_names",
    "fit",
    "last_linear",
    "objectives",
    "prunable_parameters",
    "report",
    "schedules",
    "scores",
    "seed_everything",
    "split_batch",
]


def test_public_api_is_pinned() -> None:
    """`__all__` is the method, its config and its integrations; a change to it is deliberate."""
    import maskloop

    assert sorted(maskloop.__all__) == PUBLIC
    assert all(hasattr(maskloop, name) for name in PUBLIC)
