"""LNPT: label-free pruning before training guided by a teacher's learning gap.

A reconstruction of Xiao et al., "LNPT: Label-free Network Pruning and Training" (arXiv 2403.12690):
the learning gap on penultimate features, LG-based connection sensitivity at initialisation on
unlabeled batches, label-free training against an online teacher, the baselines (random, magnitude,
SNIP, GraSP, SynFlow) and the learning-gap diagnostic. Masks are `maskloop.WeightMask`s.
"""

from lnpt.baselines import BASELINES, baseline_mask, synflow_prune
from lnpt.data import DigitsSplit, InputsOnly, load_digits_split, load_mnist1d_split
from lnpt.diagnostic import LearningGapDiagnostic, spearman
from lnpt.features import Adaptor, FeatureExtractor
from lnpt.learning_gap import (
    DegenerateTeacherWarning,
    LearningGap,
    density_schedule,
    head_pattern,
    normalize_scores,
    prune,
    score,
    select_mask,
)
from lnpt.models import MLP, CNN1d, SmallCNN, SmallResNet
from lnpt.training import AdaptorSync, DynamicMask, LabelFreeObjective, LabelFreeTrainer

__version__ = "0.1.0"

__all__ = [
    "BASELINES",
    "MLP",
    "CNN1d",
    "Adaptor",
    "AdaptorSync",
    "DegenerateTeacherWarning",
    "DigitsSplit",
    "DynamicMask",
    "FeatureExtractor",
    "InputsOnly",
    "LabelFreeObjective",
    "LabelFreeTrainer",
    "LearningGap",
    "LearningGapDiagnostic",
    "SmallCNN",
    "SmallResNet",
    "__version__",
    "baseline_mask",
    "density_schedule",
    "head_pattern",
    "load_digits_split",
    "load_mnist1d_split",
    "normalize_scores",
    "prune",
    "score",
    "select_mask",
    "spearman",
    "synflow_prune",
]
