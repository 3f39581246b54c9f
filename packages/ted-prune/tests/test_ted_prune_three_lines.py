"""The three-line integration `ted_prune.TED` and the README example that shows it."""

import re
from pathlib import Path

import pytest
import ted_prune
import torch
from ted_prune.data import digits
from ted_prune.models import DigitsMLP
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_runs():
    """README: the first python block (the three-line integration) runs and spends the budget."""
    block = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    assert "ted_prune.TED(" in block and "sampler=data.sampler" in block
    assert "data.update(" in block
    torch.set_num_threads(1)
    scope: dict = {}
    exec(compile(block, str(README), "exec"), scope)  # noqa: S102 - the package's own README
    data, acc = scope["data"], scope["acc"]
    assert data.budget()["f"] == pytest.approx(0.7, abs=0.02)
    assert data.pruner.epoch == data.pruner.epochs  # every epoch closed
    assert acc > 0.85  # digits MLP, 10 epochs at 70% of the sample-gradients


def _run(data, model, epochs, drop_last=False):
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    loader = DataLoader(data, batch_size=32, sampler=data.sampler, drop_last=drop_last)
    for _ in range(epochs):
        for x, y in loader:
            loss = data.update(F.cross_entropy(model(x), y, reduction="none"))
            opt.zero_grad()
            loss.backward()
            opt.step()


def test_three_lines_match_the_explicit_pruner_selection():
    """TED(...) gives the same per-epoch selections as TEDPruner driven by hand (same options)."""
    train, _, _ = digits(seed=0)
    torch.manual_seed(0)
    model = DigitsMLP(hidden=32)
    data = ted_prune.TED(train, epochs=4, budget=0.6, warmup=1, ramp=1)
    _run(data, model, 4)
    log = data.pruner.log
    assert len(log) == 4 and [r["selected"] for r in log] == [
        float(s) for s in data.pruner.planned_sizes()
    ]
    assert all(r["trained"] == r["selected"] for r in log)
    assert data.pruner.has_score.all()  # every sample got a score from the training pass


def test_drop_last_and_explicit_model_with_rescoring():
    """drop_last leaves an epoch open until the next one starts; model= enables re-scoring."""
    train, _, _ = digits(seed=1)
    torch.manual_seed(0)
    model = DigitsMLP(hidden=32)
    data = ted_prune.TED(train, epochs=4, budget=0.7, model=model, warmup=1, ramp=1,
                         rescore_every=1)  # fmt: skip
    _run(data, model, 4, drop_last=True)
    assert data.pruner.epoch == 3  # the last epoch stays open with drop_last
    data._close()
    assert sum(r["scored"] for r in data.pruner.log) > 0


def test_model_without_linear_head_names_the_option():
    """update(): a model with no nn.Linear gives an error naming model= and layer=."""
    x = torch.randn(40, 1, 8, 8)
    y = torch.randint(0, 4, (40,))
    conv = nn.Sequential(nn.Conv2d(1, 4, 8), nn.Flatten())  # logits from a conv: no Linear head
    data = ted_prune.TED(TensorDataset(x, y), epochs=2, budget=0.9)
    xb, yb = next(iter(DataLoader(data, batch_size=8, sampler=data.sampler)))
    with pytest.raises(ValueError, match="model= and layer="):
        data.update(F.cross_entropy(conv(xb), yb, reduction="none"))
    data.close()


def test_update_rejects_reduced_or_nan_losses():
    """update(): a reduced (scalar) loss or NaN losses are refused."""
    train, _, _ = digits(seed=0)
    data = ted_prune.TED(train, epochs=2, budget=0.9)
    with pytest.raises(ValueError, match="per-sample"):
        data.update(torch.tensor(1.0))
    with pytest.raises(ValueError, match="NaN"):
        data.update(torch.tensor([1.0, float("nan")]))
    data.close()
