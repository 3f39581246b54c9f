"""An AMFMN-style peer: multiscale visual self-attention guiding the text representation.

AMFMN (Yuan et al., "Exploring a Fine-Grained Multiscale Method for Cross-Modal Remote Sensing Image
Retrieval", IEEE TGRS 2021, the RSITMD paper's own model) encodes the image with a multiscale visual
self-attention module (MVSA) and lets the visual feature guide the text representation (VGMF).
This is a **reconstruction on SSJDN's backbone, projections and text encoder** (same budget), so the
bench compares the two remote-sensing designs and not two code bases:

    U   = sum_i resize(P_i, size of P_2)                  multiscale fusion of the projected maps
    A   = softmax_hw(conv1x1(relu(conv3x3(U))))            visual self-attention over positions
    v   = W_v [sum_hw A U ; mean_hw P_1 ; ... ; mean_hw P_4]
    g_i = sigmoid(W_g v_i)                                  visual guidance of image i
    s_ij = cos(v_i, t_j * g_i)                              the caption as seen through image i's gate

Because ``||t_j * g_i||^2 = (g_i^2) . (t_j^2)``, the whole n_images x n_captions similarity is two
matrix products, so evaluation stays as cheap as a dual encoder's. The loss is the VSE++ hinge with
the hardest negative (AMFMN's dynamic-margin variant is not reproduced).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ssjdn.ssjdn import SSJDN, SSJDNConfig

__all__ = ["AMFMNStyle", "amfmn_config", "guided_similarity"]


def guided_similarity(v: torch.Tensor, g: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """s_ij = <v_i, t_j * g_i> / (||v_i|| ||t_j * g_i||) for all pairs, as two matrix products."""
    v = F.normalize(v, dim=-1)
    num = (v * g) @ t.T
    den = ((g * g) @ (t * t).T).clamp(min=1e-12).sqrt()
    return num / den


class MVSA(nn.Module):
    """Multiscale visual self-attention over the projected maps P_1..P_4 (fine -> coarse)."""

    def __init__(self, dim: int, out_dim: int, num_scales: int = 4) -> None:
        super().__init__()
        self.att = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(dim, 1, 1)
        )
        self.fuse = nn.Linear(dim * (num_scales + 1), out_dim)

    def forward(self, projected: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Image vector v (B, out_dim) and the attention map A (B, 1, h, w)."""
        size = projected[min(1, len(projected) - 1)].shape[2:]
        u = sum(
            F.interpolate(p, size=size, mode="bilinear", align_corners=False) for p in projected
        )
        logits = self.att(u)
        a = F.softmax(logits.flatten(1), dim=1).view_as(logits)
        pooled = [(a * u).sum((2, 3))] + [p.mean((2, 3)) for p in projected]
        return self.fuse(torch.cat(pooled, dim=1)), a


def amfmn_config(**overrides: object) -> SSJDNConfig:
    """The config AMFMNStyle is built from: SSJDN's backbone/text settings, no SGS/LSD/STL."""
    base = {"multiscale": True, "sfe": False, "sgs": "none", "lsd": False, "stl": False}
    return SSJDNConfig(**{**base, **overrides})  # type: ignore[arg-type]


class AMFMNStyle(SSJDN):
    """The AMFMN-style peer on SSJDN's backbone, projections and text encoder (see module docs).

    Built like SSJDN (`AMFMNStyle.from_data(train, amfmn_config(), seed=0)`) and trained by the same
    `train_retrieval`; its similarity is image-conditioned (`guided_similarity`), so use
    `similarity` (or `evaluate_retrieval`) rather than a dot product of the two encodings.
    """

    def __init__(self, config: SSJDNConfig, text_encoder: nn.Module) -> None:
        if config.lsd or config.sgs != "none" or not config.multiscale:
            raise ValueError("AMFMNStyle needs multiscale=True, sgs='none' and lsd=False")
        super().__init__(config, text_encoder)
        self.bsd = None
        self.mvsa = MVSA(config.proj_dim, config.embed_dim, len(self.scales))
        self.gate = nn.Linear(config.embed_dim, config.embed_dim)

    @property
    def embedding_dim(self) -> int:
        """Width of `encode_images` (v and the gate g side by side) and `encode_texts`."""
        return self.config.embed_dim

    def image_features(self, images: torch.Tensor) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """Image vector v and the MVSA attention map."""
        self._check_images(images)
        feats = self.backbone(images)
        projected = [self.proj[k](feats[i]) for k, i in enumerate(self.scales)]
        v, a = self.mvsa(projected)
        return v, [[a]]

    def forward(
        self, images: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``img`` (v), ``gate`` (g) and ``txt`` (t) for a batch of pairs."""
        v = self._paired_image_features(images, ids)
        return {"img": v, "gate": torch.sigmoid(self.gate(v)), "txt": self.text(ids, mask)}

    def loss(
        self,
        out: dict[str, torch.Tensor],
        labels: torch.Tensor | None,
        image_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-pair VSE++ hinge on the guided similarity."""
        s = guided_similarity(out["img"], out["gate"], out["txt"])
        return self.criterion.from_similarity(s, labels, image_ids)

    def _embed_image_batch(self, images: torch.Tensor) -> torch.Tensor:
        """[v ; g] per image (B, 2 d): the vector and its text gate (`encode_images` rows)."""
        v, _ = self.image_features(images)
        return torch.cat([v, torch.sigmoid(self.gate(v))], dim=1)

    def _embed_text_batch(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Caption vectors t (B, d), un-normalised: the image's gate acts on them first."""
        return self.text(ids, mask)

    def similarity_of(self, img: torch.Tensor, txt: torch.Tensor) -> torch.Tensor:
        """Guided cosine similarity (n_images, n_captions) of `encode_images` and `encode_texts`
        outputs (`similarity` encodes and calls this)."""
        d = self.config.embed_dim
        return guided_similarity(img[:, :d], img[:, d:], txt)
