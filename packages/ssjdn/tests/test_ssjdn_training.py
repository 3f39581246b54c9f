"""Training runs through maskloop.fit: an interrupted run resumes from a Checkpoint to identical weights."""

from pathlib import Path

import torch
from maskloop import Callback, Checkpoint, LoopState
from ssjdn import SSJDN, SSJDNConfig, make_multiscale_scenes, train_retrieval

TINY = {"embed_dim": 16, "proj_dim": 8, "small_channels": (4, 8, 8, 8)}


class _StopAfter(Callback):
    """Interrupt the run after `n` epochs (before the Checkpoint, which saves on stop)."""

    order = 50

    def __init__(self, n: int) -> None:
        self.n = n

    def on_epoch_end(self, state: LoopState) -> None:
        if state.epoch >= self.n:
            state.stop_training = True


def _run(data, tmp: Path | None, stop: int | None) -> tuple[SSJDN, list[float]]:
    model = SSJDN.from_data(data, SSJDNConfig(**TINY), seed=0)
    cbs: list[Callback] = []
    if stop is not None:
        cbs.append(_StopAfter(stop))
    if tmp is not None:
        cbs.append(Checkpoint(tmp))
    hist = train_retrieval(
        model, data, epochs=3, batch_size=6, seed=3, progress=False, callbacks=cbs
    )
    return model, hist.loss


def test_checkpoint_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    data = make_multiscale_scenes(14, 32, seed=0)
    full, full_loss = _run(data, None, None)
    _, part_loss = _run(data, tmp_path / "ck", stop=1)
    assert len(part_loss) == 1
    resumed, resumed_loss = _run(data, tmp_path / "ck", None)
    assert resumed_loss == full_loss  # the history carries on from the checkpoint
    a, b = full.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.criterion.negatives == "hardest"  # the warm-up's "sum" is undone at the end
