"""Bad inputs raise clear errors naming the argument."""

import pytest
import torch
from maskloop import FeatureHook
from ted_prune import InfoBatch, PrunerCallback, TEDPruner
from torch import nn
from torch.utils.data import TensorDataset


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.5, float("nan")])
def test_keep_outside_unit_interval(keep):
    with pytest.raises(ValueError, match="keep"):
        TEDPruner(10, epochs=5, keep=keep)


def test_keep_wrong_type():
    with pytest.raises(TypeError, match="keep"):
        TEDPruner(10, epochs=5, keep="0.5")


@pytest.mark.parametrize("epochs", [0, -3])
def test_epochs_below_one(epochs):
    with pytest.raises(ValueError, match="epochs"):
        TEDPruner(10, epochs=epochs)


def test_bad_options():
    with pytest.raises(ValueError, match="target"):
        TEDPruner(10, epochs=5, target="test")
    with pytest.raises(ValueError, match="grads"):
        TEDPruner(10, epochs=5, grads="hessian")
    with pytest.raises(ValueError, match="beta"):
        TEDPruner(10, epochs=5, beta=1.0)
    with pytest.raises(ValueError, match="exactly one"):
        InfoBatch(10, epochs=5, keep=0.5, prune_ratio=0.5)


def test_model_without_readable_features():
    model = nn.Sequential(nn.Conv1d(1, 2, 3), nn.Flatten())
    with pytest.raises(ValueError, match="nn.Linear"):
        FeatureHook(model)
    p = TEDPruner(4, epochs=2)
    with pytest.raises(ValueError, match="features"):
        p.observe(torch.arange(4), torch.randn(4, 3), None, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="features"):
        p.observe(torch.arange(4), torch.randn(4, 3), torch.randn(4, 2, 2), torch.zeros(4).long())


def test_callback_rejects_model_without_linear_head():
    from maskloop import IndexedDataset, fit
    from torch.utils.data import DataLoader

    ds = TensorDataset(torch.randn(8, 1, 6), torch.zeros(8, dtype=torch.long))
    model = nn.Sequential(nn.Conv1d(1, 2, 5), nn.Flatten())
    p = TEDPruner(ds, epochs=1)
    with pytest.raises(ValueError, match="nn.Linear"):
        fit(
            model,
            DataLoader(IndexedDataset(ds), sampler=p.sampler, batch_size=4),
            epochs=1,
            optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
            loss_fn=lambda o, t: nn.functional.cross_entropy(o, t, reduction="none"),
            callbacks=[PrunerCallback(p)],
            progress=False,
        )


def test_mismatched_dataset_length():
    ds = TensorDataset(torch.randn(8, 3), torch.zeros(8, dtype=torch.long))
    p = TEDPruner(10, epochs=2)
    with pytest.raises(ValueError, match="10"):
        PrunerCallback(p, ds)
    with pytest.raises(ValueError, match="indices"):
        p.observe(
            torch.tensor([3, 12]), torch.randn(2, 2), torch.randn(2, 4), torch.zeros(2).long()
        )
    with pytest.raises(TypeError, match="dataset"):
        TEDPruner(object(), epochs=2)


def test_resume_into_different_pruner_fails():
    a = TEDPruner(10, epochs=4)
    b = TEDPruner(12, epochs=4)
    with pytest.raises(ValueError, match="n="):
        b.load_state_dict(a.state_dict())
