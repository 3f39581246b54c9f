"""TED: dynamic data pruning during training by Internal Generalization Distance."""

__version__ = "0.1.0"
__all__ = ["__version__"]
