"""A row-centric model trains in `maskloop.fit` like any module: same weights as plain training, and
a run stopped and resumed from a `maskloop.Checkpoint` ends where an uninterrupted one does."""

from __future__ import annotations

import lrcnn
import torch
from lrcnn.models import small_cnn
from maskloop import Checkpoint, fit
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def _data() -> DataLoader:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 3, 16, 16, generator=g, dtype=torch.float64)
    y = torch.randint(0, 10, (8,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=4)  # fixed order: no shuffling


def _ce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(logits, y, reduction="none")


def _run(epochs: int, wrap: bool, ckpt=None) -> nn.Module:
    torch.manual_seed(0)
    model = small_cnn(width=4, batch_norm=False).double()
    run = lrcnn.RowCentric(model, rows=3, depth=5) if wrap else model
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    cbs = [Checkpoint(ckpt)] if ckpt is not None else []
    fit(run, _data(), epochs=epochs, optimizer=opt, loss_fn=_ce, callbacks=cbs, progress=False)
    return model


def test_rowcentric_in_fit_matches_plain_and_resumes(tmp_path) -> None:
    plain = _run(2, wrap=False)
    full = _run(2, wrap=True)
    _run(1, wrap=True, ckpt=tmp_path / "ck")  # interrupted after one epoch
    resumed = _run(2, wrap=True, ckpt=tmp_path / "ck")
    for (name, p), q, r in zip(plain.named_parameters(), full.parameters(), resumed.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=1e-12, msg=name)  # float64 strips
        assert torch.equal(r, q), name
