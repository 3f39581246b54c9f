"""SSJDN: remote-sensing image-text retrieval with scale and semantic decoupling."""

__version__ = "0.1.0"
__all__ = ["__version__"]
