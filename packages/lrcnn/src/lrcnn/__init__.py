"""LR-CNN: row-centric CNN training with exact gradients and far less activation memory.

``RowCentric`` wraps a CNN so the early, high-resolution part of its convolutional trunk trains in
horizontal row strips (forward and backward), ``plan`` predicts peak activation memory from shapes
and picks strip counts for a budget; ``StepInBackward`` fuses the optimizer step into backward so
the whole training step does not hold every gradient at once.
"""

from lrcnn.graph import Residual, TrunkGraph, find_trunk
from lrcnn.planner import POLICIES, Plan, Strip, plan
from lrcnn.rowcentric import RowCentric
from lrcnn.stepping import StepInBackward

__version__ = "0.1.0"
__all__ = [
    "POLICIES",
    "Plan",
    "Residual",
    "RowCentric",
    "StepInBackward",
    "Strip",
    "TrunkGraph",
    "__version__",
    "find_trunk",
    "plan",
]
