"""maskloop: the minimal core shared by the method packages.

Weight masks (`WeightMask`, `MaskedTraining`), data selections (`Selection`), schedules, the training
loop (`fit` with a pluggable objective, `evaluate`, `Callback`, `Checkpoint`), a feature hook, and benchmark reporting (`report`).
It depends on torch, numpy, safetensors and tqdm only.
"""

from maskloop import checks, distributed, objectives, report, schedules, scores
from maskloop.checkpoint import Checkpoint
from maskloop.features import FeatureHook, last_linear
from maskloop.loop import (
    Callback,
    History,
    LoopState,
    NonFiniteLossError,
    accuracy,
    evaluate,
    evaluate_objective,
    fit,
    seed_everything,
    split_batch,
)
from maskloop.masks import MaskedTraining, WeightMask, filter_names, prunable_parameters
from maskloop.objectives import Objective, classification
from maskloop.selection import IndexedDataset, Selection, SelectionSampler

__version__ = "0.1.0"

__all__ = [
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
    "checks",
    "distributed",
    "accuracy",
    "classification",
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
