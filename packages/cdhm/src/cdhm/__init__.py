"""CDHM: a Pyro causal-disentanglement HMM for bearing fault diagnosis with domain adaptation.

The model (reconstructed from arXiv 2308.03027 and the causal HMM of Li et al., CVPR 2021) splits
each step of a segmented vibration window into a fault-relevant latent s_t and a fault-irrelevant
latent z_t, and aligns only s between working conditions.
"""

from cdhm.baselines import ABLATIONS, AlignedCNNClassifier, PhysicsReference, make_ablation
from cdhm.causal_hmm import CDHMClassifier, CDHMNet
from cdhm.data import (
    BEARING_6205_ORDERS,
    CLASSES_4,
    CLASSES_10,
    CWRU_FILES,
    DOMAIN_TIERS,
    FRONT_ENDS,
    BearingData,
    DomainSpec,
    apply_front_end,
    cwru_transfer_tasks,
    envelope_order_spectrum,
    load_cwru,
    order_envelope_segments,
    segment_windows,
    simulate_domain,
    simulate_recording,
    split_by_recording,
    transfer_tasks,
)
from cdhm.estimator import DomainAdaptiveClassifier
from cdhm.models import SegmentEncoder, coral_loss, ganin_lambda, grad_reverse, mk_mmd

__version__ = "0.1.0"

__all__ = [
    "ABLATIONS",
    "BEARING_6205_ORDERS",
    "CLASSES_4",
    "CLASSES_10",
    "CWRU_FILES",
    "DOMAIN_TIERS",
    "FRONT_ENDS",
    "AlignedCNNClassifier",
    "BearingData",
    "CDHMClassifier",
    "CDHMNet",
    "DomainAdaptiveClassifier",
    "DomainSpec",
    "PhysicsReference",
    "SegmentEncoder",
    "__version__",
    "apply_front_end",
    "coral_loss",
    "cwru_transfer_tasks",
    "envelope_order_spectrum",
    "ganin_lambda",
    "grad_reverse",
    "load_cwru",
    "make_ablation",
    "mk_mmd",
    "order_envelope_segments",
    "segment_windows",
    "simulate_domain",
    "simulate_recording",
    "split_by_recording",
    "transfer_tasks",
]
