"""The tail path of main before session ted-30 (`1c1dbf5`), kept as the paired timing's "old" arm
(`scripts/s30_wallclock.py`, arm `TED_s29@old`) and as the reference of the exactness tests
(`tests/test_ted_prune_s30_exact.py`).

Session 30 changed two things of the default's suspect tail (`tail=0.2`), each keeping every
mask, split, selection and score bit for bit: `_tail_mask` finds each group's top-tau losses by a
selection (`sampling.group_top_quantile`) instead of the rank quantiles of a full sort
(`group_quantiles`), and `_split_tail` reads the split ids from one `bincount` instead of
`torch.unique` (a sort). `OldPathTED` is a `TEDPruner` with main's two methods, verbatim but for
the class, so one process can time and compare both paths in turn.
"""

from __future__ import annotations

import torch
from ted_prune.sampling import group_quantiles, stable_group_argsort
from ted_prune.ted import TEDPruner

__all__ = ["OldPathTED"]


class OldPathTED(TEDPruner):
    """`TEDPruner` with main's (`1c1dbf5`) `_split_tail` and `_tail_mask`."""

    def _split_tail(
        self,
        gid: torch.Tensor,
        counts: torch.Tensor,
        quota: torch.Tensor,
        members: torch.Tensor | None = None,  # unused by main's code (today's call passes it)
    ) -> tuple[torch.Tensor, ...]:
        tail = self._tail_mask(gid, counts)
        split = gid * 2 + tail.long()
        ids, sgid, scounts = torch.unique(split, return_inverse=True, return_counts=True)
        parent, is_tail = ids // 2, ids % 2 == 1
        size = counts.index_select(0, parent).double()
        q = quota.index_select(0, parent)
        tail_quota = torch.round(q.double() * scounts.double() / size).long()
        if self.tail_rate != 1.0:  # the tail at tail_rate x its ratio, the rest the remainder
            tail_quota = torch.round(self.tail_rate * q.double() * scounts.double() / size).long()
            tail_size = torch.zeros(counts.numel(), dtype=torch.long)
            tail_size.index_add_(0, parent[is_tail], scounts[is_tail])
            rest_size = counts.index_select(0, parent) - tail_size.index_select(0, parent)
            tail_quota = torch.maximum(tail_quota, q - rest_size)  # the rest holds at most its size
        tail_of = torch.zeros(counts.numel(), dtype=torch.long)
        tail_of.index_add_(0, parent[is_tail], tail_quota[is_tail])
        squota = torch.where(is_tail, tail_quota, q - tail_of.index_select(0, parent))
        return sgid, scounts, squota, stable_group_argsort(sgid), is_tail

    def _tail_mask(
        self, gid: torch.Tensor, counts: torch.Tensor, members: torch.Tensor | None = None
    ) -> torch.Tensor:
        obs = self._obs
        obs.flush()
        if obs.labels is None or obs.probs is None:  # nothing observed yet: no sample is suspect
            return torch.zeros(self.n, dtype=torch.bool)
        seen = (obs.labels >= 0) & self.has_score
        y = obs.labels.clamp_min(0)
        if self.tail == "misclassified":
            return (obs.probs.argmax(1) != y) & seen
        py = obs.probs.gather(1, y[:, None]).squeeze(1).double()
        q = group_quantiles(-py, gid, counts)  # the lowest p(label) of a group -> 1
        return (q > 1.0 - float(self.tail)) & seen
