"""LR-CNN: row-centric CNN training with exact gradients and far less activation memory."""

__version__ = "0.1.0"
__all__ = ["__version__"]
