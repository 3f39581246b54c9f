"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import cdhm


def test_version_matches_metadata() -> None:
    assert cdhm.__version__ == importlib.metadata.version("cdhm")


PUBLIC = [
    "ABLATIONS",
    "AlignedCNNClassifier",
    "BEARING_6205_ORDERS",
    "BearingData",
    "CDHMClassifier",
    "CDHMNet",
    "CLASSES_10",
    "CLASSES_4",
    "CWRU_FILES",
    "DOMAIN_TIERS",
    "DomainAdaptiveClassifier",
    "DomainSpec",
    "FRONT_ENDS",
    "PhysicsReference",
    "SegmentEncoder",
    "__version__",
    "apply_front_end",
    "coral_loss",
    "cwru_transfer_tasks",
    "envelope_order_spectrum",
    "ganin_lambda",
    "grad_reverse",
    "load_cwru",
    "make_ablation",
    "mk_mmd",
    "order_envelope_segments",
    "segment_windows",
    "simulate_domain",
    "simulate_recording",
    "split_by_recording",
    "transfer_tasks",
]


def test_public_api_is_pinned() -> None:
    """`__all__` is the method, its config and its integrations; a change to it is deliberate."""
    import cdhm

    assert sorted(cdhm.__all__) == PUBLIC
    assert all(hasattr(cdhm, name) for name in PUBLIC)
