"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import ssjdn


def test_version_matches_metadata() -> None:
    assert ssjdn.__version__ == importlib.metadata.version("ssjdn")


PUBLIC = {
    # the method, its config and parts
    "SSJDN", "SSJDNConfig", "SFE", "BidirectionalScaleDecoupling", "SemanticDecoupling",
    "SemanticGuidedTripletLoss", "salience_suppression", "local_contrast_salience",
    # baselines, ladder and the AMFMN-style peer
    "ABLATION_LADDER", "VARIANTS", "ablation_config", "dual_encoder_config", "AMFMNStyle",
    "amfmn_config",
    # encoders a user brings (torchvision ResNet, transformers) and the built-in ones
    "ResNetBackbone", "SmallCNN", "GRUTextEncoder", "TransformerTextEncoder", "Vocabulary",
    "tokenize",
    # training (maskloop.fit) and evaluation
    "train_retrieval", "TrainHistory", "evaluate_retrieval", "retrieval_metrics", "retrieval_ranks",
    # data: container, built-in scenes, loaders of the real datasets
    "RetrievalData", "SCENE_CLASSES", "make_scenes", "make_multiscale_scenes", "KarpathyEntry",
    "image_files", "label_from_filename", "load_image_folder", "load_karpathy_dataset",
    "load_karpathy_json", "load_precomp_dataset", "load_precomp_split",
    "__version__",
}  # fmt: skip


def test_public_names_are_pinned() -> None:
    assert set(ssjdn.__all__) == PUBLIC
    assert all(hasattr(ssjdn, n) for n in ssjdn.__all__)
    assert not hasattr(ssjdn, "utils")
