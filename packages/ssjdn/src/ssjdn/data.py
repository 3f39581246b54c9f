"""The dataset container of image-text retrieval: images, their captions and class labels.

The built-in procedural scenes live in `ssjdn.scenes`, the readers of the real datasets' files
(RSICD, RSITMD, UCM-Captions, Sydney-Captions; Karpathy JSON or AMFMN precomp) in `ssjdn.datasets`,
the tokenizer and vocabulary in `ssjdn.vocabulary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ssjdn.vocabulary import tokenize

__all__ = ["UNLABELLED", "RetrievalData"]

UNLABELLED = -1


@dataclass
class RetrievalData:
    """Images with their captions and class labels.

    images: float tensor (N, 3, H, W) in [0, 1]; captions: N lists of caption strings (usually 5);
    labels: long tensor (N,), -1 where unlabelled; class_names: label id -> name.
    caption_small: optional boolean array over the flattened captions, True for captions that only
    mention small objects (used for the small-object mR); image_small likewise per image.
    """

    images: torch.Tensor
    captions: list[list[str]]
    labels: torch.Tensor
    class_names: list[str]
    caption_small: np.ndarray | None = None
    image_small: np.ndarray | None = None
    filenames: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor, got {type(self.images).__name__}")
        if self.images.ndim != 4 or self.images.shape[1] != 3:
            raise ValueError(f"images must have shape (N, 3, H, W), got {tuple(self.images.shape)}")
        n = self.images.shape[0]
        if n == 0:
            raise ValueError("images must not be empty")
        if not self.images.is_floating_point():
            raise TypeError(f"images must be a float tensor in [0, 1], got {self.images.dtype}")
        finite = torch.isfinite(self.images).flatten(1).all(1)
        if not bool(finite.all()):
            bad = torch.nonzero(~finite).flatten()[:10].tolist()
            raise ValueError(f"images hold NaN or inf values (images {bad}); pixels must be finite")
        if len(self.captions) != n:
            raise ValueError(
                f"captions must hold one list per image: {len(self.captions)} lists for {n} images"
            )
        for i, caps in enumerate(self.captions):
            if isinstance(caps, str) or len(caps) == 0:
                raise ValueError(f"captions[{i}] must be a non-empty list of strings, got {caps!r}")
            for j, c in enumerate(caps):
                if not isinstance(c, str) or not tokenize(c):
                    raise ValueError(f"captions[{i}][{j}] is empty ({c!r}); captions need words")
        labels = torch.as_tensor(self.labels, dtype=torch.long)
        if labels.shape != (n,):
            raise ValueError(f"labels must have shape ({n},), got {tuple(labels.shape)}")
        if labels.numel() and (labels.min() < -1 or labels.max() >= len(self.class_names)):
            raise ValueError(
                f"labels must lie in [-1, {len(self.class_names) - 1}] (-1 = unlabelled), "
                f"got range [{int(labels.min())}, {int(labels.max())}]"
            )
        self.labels = labels

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def flat_captions(self) -> list[str]:
        """All captions in image order."""
        return [c for caps in self.captions for c in caps]

    @property
    def caption_image(self) -> np.ndarray:
        """Image index of each flattened caption."""
        return np.repeat(np.arange(len(self)), [len(c) for c in self.captions])

    def subset(self, idx: Sequence[int] | np.ndarray) -> RetrievalData:
        """The images ``idx`` with their captions and flags."""
        idx = np.asarray(idx, dtype=np.int64)
        cap_img = self.caption_image
        cap_sel = np.concatenate([np.flatnonzero(cap_img == i) for i in idx]) if len(idx) else []
        return RetrievalData(
            images=self.images[torch.as_tensor(idx)],
            captions=[self.captions[i] for i in idx],
            labels=self.labels[torch.as_tensor(idx)],
            class_names=list(self.class_names),
            caption_small=None if self.caption_small is None else self.caption_small[cap_sel],
            image_small=None if self.image_small is None else self.image_small[idx],
            filenames=[self.filenames[i] for i in idx] if self.filenames else [],
        )
