"""TED: dynamic data pruning during training by Internal Generalization Distance.

`TEDPruner` gives one `maskloop.Selection` per epoch from EMA alignment scores
a_i = <g_target, g_i> (a reconstruction of the paper's mask-Taylor IGD estimate), with a progressive
keep-ratio schedule and budget accounting. Baselines (`ted_prune.baselines`) share the interface.
Every loop draws the selection from one `maskloop.SelectionSampler`, `pruner.sampler`:
`PrunerCallback` (maskloop.fit), `DataPruner.update` / `end_epoch` (your own loop),
`ted_prune.hf.PrunedTrainer` (Hugging Face Trainer; needs the `hf` extra).
"""

from ted_prune.baselines import (
    EL2N,
    Forgetting,
    FullData,
    GraNd,
    InfoBatch,
    RandomDynamic,
    RandomSizes,
    RandomStatic,
    static_keep_for_budget,
)
from ted_prune.callbacks import PrunerCallback, indexed
from ted_prune.pruner import DataPruner, ProgressiveSchedule, ScheduledPruner, keep_for_budget
from ted_prune.ted import (
    SPEC_READING,
    TEDPruner,
    alignment_full,
    alignment_last_layer,
    last_layer_factors,
    per_sample_grads,
    predicted_igd,
)
from ted_prune.wrap import TED

__version__ = "0.1.0"

__all__ = [
    "EL2N",
    "DataPruner",
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
    "TED",
    "ScheduledPruner",
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
