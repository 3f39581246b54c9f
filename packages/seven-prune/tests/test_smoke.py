"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import seven_prune


def test_version_matches_metadata() -> None:
    assert seven_prune.__version__ == importlib.metadata.version("seven-prune")


def test_public_names_are_pinned() -> None:
    """seven_prune.__all__: the method, its baselines, the callback and the selection helpers."""
    assert sorted(seven_prune.__all__) == sorted(
        [
            "DEFAULT_TARGETS",
            "PRUNERS",
            "GradualMagnitudePruner",
            "GradualPruner",
            "GraspPruner",
            "MagnitudePruner",
            "MovementPruner",
            "OneShotPruner",
            "PlatonPruner",
            "Pruner",
            "RandomPruner",
            "SanhMovementPruner",
            "SevenCallback",
            "SevenNoConsistencyPruner",
            "SevenPruner",
            "SnipPruner",
            "TaylorPruner",
            "__version__",
            "batch_loss",
            "layer_type",
            "make_pruner",
            "select_global",
            "sparsity_by_layer_type",
            "target_parameters",
        ]
    )
    for name in seven_prune.__all__:
        assert hasattr(seven_prune, name), name
