"""Caption text: the word tokenizer of the Karpathy JSON files and the vocabulary of the GRU encoder."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch

__all__ = ["Vocabulary", "tokenize"]

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens (letters and digits), the tokenisation of the Karpathy JSON files."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    return _TOKEN.findall(text.lower())


class Vocabulary:
    """Word <-> id map built from captions; id 0 is padding, id 1 is the unknown word."""

    PAD, UNK = "<pad>", "<unk>"

    def __init__(self, words: Sequence[str]) -> None:
        self.itos: list[str] = [
            self.PAD,
            self.UNK,
            *[w for w in words if w not in (self.PAD, self.UNK)],
        ]
        self.stoi: dict[str, int] = {w: i for i, w in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("words must not repeat")

    @classmethod
    def build(cls, captions: Iterable[str], min_count: int = 1) -> Vocabulary:
        """Vocabulary of every token seen at least ``min_count`` times (most frequent first)."""
        if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
            raise ValueError(f"min_count must be a positive int, got {min_count!r}")
        counts = Counter(tok for c in captions for tok in tokenize(c))
        if not counts:
            raise ValueError("captions must contain at least one word")
        words = sorted(
            (w for w, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w)
        )
        return cls(words)

    def __len__(self) -> int:
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (unknown words -> 1)."""
        return [self.stoi.get(t, 1) for t in tokenize(text)]

    def batch(self, texts: Sequence[str], max_len: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded ids (B, L) and a boolean mask of real tokens; empty texts raise ValueError."""
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, not a single str")
        ids = [self.encode(t)[:max_len] for t in texts]
        for i, x in enumerate(ids):
            if not x:
                raise ValueError(
                    f"caption {i} ({texts[i]!r}) has no words; captions must not be empty"
                )
        L = max(len(x) for x in ids)
        out = torch.zeros(len(ids), L, dtype=torch.long)
        for i, x in enumerate(ids):
            out[i, : len(x)] = torch.tensor(x)
        return out, out != 0

    def state_dict(self) -> dict[str, list[str]]:
        """JSON-able form."""
        return {"itos": list(self.itos)}

    @classmethod
    def from_state_dict(cls, state: dict[str, list[str]]) -> Vocabulary:
        """Inverse of ``state_dict``."""
        return cls(state["itos"][2:])
