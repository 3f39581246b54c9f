"""CDHM: a Pyro causal-disentanglement HMM for bearing fault diagnosis with domain adaptation."""

__version__ = "0.1.0"
__all__ = ["__version__"]
