"""Bad input to the public entry points raises ValueError/TypeError naming the argument or file."""

import pytest
import ted_prune
import torch
from ted_prune import InfoBatch, RandomSizes, TEDPruner
from ted_prune.cli import main
from torch.utils.data import TensorDataset


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("direction", "both"),
        ("target", "test"),
        ("rank", "median"),
        ("curvature", "kfac"),
        ("selection", "greedy"),
        ("balance", "yes"),
        ("stale", "drop"),
        ("precision", "float16"),
    ],
    ids=lambda v: str(v),
)
def test_ted_pruner_unknown_reading(option, value):
    """TEDPruner: an unknown value of a reading option names the option."""
    with pytest.raises(ValueError, match=option):
        TEDPruner(10, epochs=5, **{option: value})


@pytest.mark.parametrize(
    ("option", "value"), [("floor", 1.5), ("floor", float("nan")), ("damping", 0.0),
                          ("max_weight", 0.5)], ids=str,
)  # fmt: skip
def test_ted_pruner_out_of_range_number(option, value):
    """TEDPruner: floor / damping / max_weight out of range name the option."""
    with pytest.raises(ValueError, match=option):
        TEDPruner(10, epochs=5, **{option: value})


def test_ted_pruner_number_of_wrong_type():
    """TEDPruner: floor given as a string is a TypeError naming it."""
    with pytest.raises(TypeError, match="floor"):
        TEDPruner(10, epochs=5, floor="0.1")


def test_infobatch_ratio_cap_out_of_range():
    """InfoBatch: max_ratio >= 1 is refused."""
    with pytest.raises(ValueError, match="max_ratio"):
        InfoBatch(10, 5, keep=0.5, max_ratio=1.0)


def test_infobatch_prune_ratio_wrong_type():
    """InfoBatch: prune_ratio given as a string is a TypeError."""
    with pytest.raises(TypeError, match="prune_ratio"):
        InfoBatch(10, 5, keep=None, prune_ratio="0.5")


def test_random_sizes_wrong_length():
    """RandomSizes: sizes of the wrong length name the mismatch."""
    with pytest.raises(ValueError, match="sizes has 2 entries"):
        RandomSizes(10, 3, [5, 5])


def test_random_sizes_not_numbers():
    """RandomSizes: sizes that are not ints are a TypeError."""
    with pytest.raises(TypeError, match="sizes"):
        RandomSizes(10, 2, ["a", "b"])


def test_ted_wrapper_empty_dataset():
    """TED: an empty dataset is refused."""
    with pytest.raises(ValueError, match="at least one sample"):
        ted_prune.TED(TensorDataset(torch.zeros(0, 2), torch.zeros(0)), epochs=3)


def test_ted_wrapper_model_not_a_module():
    """TED: model= that is not an nn.Module is a TypeError."""
    ds = TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="model"):
        ted_prune.TED(ds, epochs=3, model="resnet")


def test_ted_wrapper_layer_name_without_model():
    """TED: layer given by name without model= says to pass the model."""
    ds = TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="model="):
        ted_prune.TED(ds, epochs=3, layer="head")


def test_ted_wrapper_update_before_iterating():
    """TED.update: called before the sampler started an epoch."""
    ds = TensorDataset(torch.zeros(4, 2), torch.zeros(4, dtype=torch.long))
    data = ted_prune.TED(ds, epochs=3)
    with pytest.raises(RuntimeError, match="sampler"):
        data.update(torch.ones(2))
    data.close()


def test_pruner_load_not_json(tmp_path):
    """DataPruner.load: a .json that is not JSON names the file."""
    (tmp_path / "s.safetensors").write_bytes(b"x")
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(ValueError, match="s.json"):
        TEDPruner(10, epochs=3).load(tmp_path / "s")


def test_pruner_load_missing_file(tmp_path):
    """DataPruner.load: missing files are named."""
    with pytest.raises(ValueError, match="no such file"):
        TEDPruner(10, epochs=3).load(tmp_path / "nothing")


def test_mnist1d_splits_bad_sizes():
    """mnist1d_splits: num_samples below 100 and val_size out of range are refused."""
    from ted_prune.mnist1d import mnist1d_splits

    with pytest.raises(ValueError, match="num_samples"):
        mnist1d_splits(50)
    with pytest.raises(ValueError, match="val_size"):
        mnist1d_splits(200, val_size=500)


@pytest.mark.parametrize("flag", ["--epochs", "--num-samples", "--threads", "--seeds"])
def test_cli_bench_non_positive_numbers(flag, capsys):
    """ted-prune bench: --epochs / --num-samples / --threads / --seeds below 1 exit (usage error,
    code 2) with the flag named."""
    with pytest.raises(SystemExit) as exc:
        main(["bench", flag, "0"])
    assert exc.value.code == 2
    assert f"argument {flag}" in capsys.readouterr().err
