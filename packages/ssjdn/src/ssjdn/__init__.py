"""SSJDN: remote-sensing image-text retrieval with scale and semantic decoupling.

A reconstruction of the Scale-Semantic Joint Decoupling Network (Zheng et al., arXiv 2212.05752):
multi-scale salience extraction and suppression chains (SFE/SGS, bidirectional), label-supervised
semantic heads (LSD) and a semantic-guided triplet loss (STL), with vectorised retrieval metrics, a
procedural scene + caption generator and loaders for the RSICD/RSITMD/UCM/Sydney JSON files.
"""

from ssjdn.amfmn import AMFMNStyle, amfmn_config
from ssjdn.baselines import ABLATION_LADDER, VARIANTS, ablation_config, dual_encoder_config
from ssjdn.data import RetrievalData
from ssjdn.datasets import (
    KarpathyEntry,
    image_files,
    label_from_filename,
    load_image_folder,
    load_karpathy_dataset,
    load_karpathy_json,
    load_precomp_dataset,
    load_precomp_split,
)
from ssjdn.metrics import retrieval_metrics, retrieval_ranks
from ssjdn.models import GRUTextEncoder, ResNetBackbone, SmallCNN, TransformerTextEncoder
from ssjdn.scenes import SCENE_CLASSES, make_multiscale_scenes, make_scenes
from ssjdn.ssjdn import (
    SFE,
    SSJDN,
    BidirectionalScaleDecoupling,
    SemanticDecoupling,
    SemanticGuidedTripletLoss,
    SSJDNConfig,
    local_contrast_salience,
    salience_suppression,
)
from ssjdn.train import TrainHistory, evaluate_retrieval, train_retrieval
from ssjdn.vocabulary import Vocabulary, tokenize

__version__ = "0.1.0"

__all__ = [
    "ABLATION_LADDER",
    "AMFMNStyle",
    "SCENE_CLASSES",
    "SFE",
    "SSJDN",
    "BidirectionalScaleDecoupling",
    "GRUTextEncoder",
    "KarpathyEntry",
    "ResNetBackbone",
    "RetrievalData",
    "SSJDNConfig",
    "SemanticDecoupling",
    "SemanticGuidedTripletLoss",
    "SmallCNN",
    "TrainHistory",
    "TransformerTextEncoder",
    "VARIANTS",
    "Vocabulary",
    "__version__",
    "ablation_config",
    "amfmn_config",
    "dual_encoder_config",
    "evaluate_retrieval",
    "image_files",
    "label_from_filename",
    "load_image_folder",
    "load_karpathy_dataset",
    "load_karpathy_json",
    "load_precomp_dataset",
    "load_precomp_split",
    "local_contrast_salience",
    "make_multiscale_scenes",
    "make_scenes",
    "retrieval_metrics",
    "retrieval_ranks",
    "salience_suppression",
    "tokenize",
    "train_retrieval",
]
