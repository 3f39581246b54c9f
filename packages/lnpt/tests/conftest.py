"""Shared fixtures for lnpt's tests."""

import pytest
import torch
from lnpt.bench import MODELS
from lnpt.cli import main
from lnpt.data import DigitsSplit
from maskloop import Callback
from torch import nn


@pytest.fixture(scope="module")
def tiny_mlp_split():
    """One thread, seed 0, the MLP spec and a small random split (3 x 128 samples of 64 features):
    yields (spec, data); each test module builds its teachers and init from the global RNG after it.
    The thread count is restored afterwards, so later tests keep theirs."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 128, 64, generator=g)
    y = torch.randint(0, 10, (3, 128), generator=g)
    yield (
        MODELS["mlp"],
        DigitsSplit(x[0], y[0], x[1], y[1], x[2], y[2]),
    )  # small: the tests stay fast
    torch.set_num_threads(threads)


class _LrLog(Callback):
    """Records every parameter group's lr at each step, after the schedules have set it."""

    order = 10  # after the schedule (order -10) has set this step's lr

    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_after_backward(self, state) -> None:
        self.lrs.append([g["lr"] for g in state.optimizer.param_groups])


def _tiny_lr_fit(n: int = 12, batch: int = 4) -> tuple[nn.Module, torch.utils.data.DataLoader]:
    torch.manual_seed(0)
    x = torch.randn(n, 3, dtype=torch.float64)
    y = torch.arange(n) % 2
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch)
    model = nn.Linear(3, 2).double()
    return model, data


@pytest.fixture
def lr_log():
    """`lr_log()`: a fresh callback whose `.lrs` lists each step's lrs (one list per step)."""
    return _LrLog


@pytest.fixture
def tiny_lr_fit():
    """`tiny_lr_fit(n=12, batch=4)`: a float64 `nn.Linear(3, 2)` and a DataLoader of `n` random
    samples in batches of `batch` (3 steps an epoch by default), seeded 0, for lr-schedule tests."""
    return _tiny_lr_fit


@pytest.fixture
def bench_refuses(capsys, tmp_path):
    """`bench_refuses(argv, says)`: `lnpt bench *argv` exits with argparse's usage error (code 2),
    its message contains `says`, and it writes nothing (its `--out` folder is never created)."""

    def check(argv: list[str], says: str) -> None:
        out = tmp_path / "never-written"
        with pytest.raises(SystemExit) as exc:
            main(["bench", *argv, "--out", str(out)])
        assert exc.value.code == 2 and says in capsys.readouterr().err
        assert not out.exists()

    return check
