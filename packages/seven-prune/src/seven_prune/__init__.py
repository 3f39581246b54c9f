"""SEVEN: transformer weight pruning that keeps consistently sensitive weights ("sentinels").

`SevenPruner` (SEVEN_dyn as in the official code; SEVEN_pre, a reconstruction), its baselines with the
same interface, a Hugging Face `Trainer` callback (`SevenCallback`, which never imports the Trainer), data loaders,
reference models and the benchmark behind `seven-prune bench`.
"""

from seven_prune.baselines import (
    PRUNERS,
    GradualMagnitudePruner,
    GraspPruner,
    MagnitudePruner,
    MovementPruner,
    PlatonPruner,
    RandomPruner,
    SanhMovementPruner,
    SevenNoConsistencyPruner,
    SnipPruner,
    TaylorPruner,
    make_pruner,
)
from seven_prune.hf import SevenCallback
from seven_prune.pruning import (
    DEFAULT_TARGETS,
    GradualPruner,
    OneShotPruner,
    Pruner,
    batch_loss,
    layer_type,
    select_global,
    sparsity_by_layer_type,
    target_parameters,
)
from seven_prune.seven import SevenPruner

__version__ = "0.1.0"

__all__ = [
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
