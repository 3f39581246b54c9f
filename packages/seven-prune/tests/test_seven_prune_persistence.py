"""Persistence (issue 20 point 4): the pruner state and mask through safetensors + JSON metadata,
reloaded in a fresh process to identical outputs."""

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from seven_prune import MovementPruner, SanhMovementPruner, SevenPruner
from seven_prune.models import tiny_bert

X = torch.arange(48).reshape(6, 8) % 64
Y = torch.tensor([0, 1, 0, 1, 1, 0])


def _train(model, pruner, steps):
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(steps):
        opt.zero_grad()
        model(input_ids=X, labels=Y).loss.backward()
        opt.step()
        pruner.step()


CLASSES = {"SevenPruner": SevenPruner, "MovementPruner": MovementPruner,
           "SanhMovementPruner": SanhMovementPruner}  # fmt: skip

SCRIPT = textwrap.dedent(
    """
    import sys, torch, warnings
    warnings.simplefilter("ignore")
    from safetensors.torch import load_file, save_file
    from seven_prune import SevenPruner, MovementPruner, SanhMovementPruner
    from seven_prune.models import tiny_bert
    torch.set_num_threads(1)
    X = torch.arange(48).reshape(6, 8) % 64
    Y = torch.tensor([0, 1, 0, 1, 1, 0])
    for name, folder in zip(sys.argv[1::2], sys.argv[2::2]):
        cls = {
            "SevenPruner": SevenPruner,
            "MovementPruner": MovementPruner,
            "SanhMovementPruner": SanhMovementPruner,
        }[name]
        model = tiny_bert(seed=7)
        pruner = cls(model, 0.6, start=1, window=8, delta_t=2)
        model.load_state_dict(load_file(folder + "/model.safetensors"))
        pruner.load(folder + "/pruner.safetensors")
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        for _ in range(5):
            opt.zero_grad()
            model(input_ids=X, labels=Y).loss.backward()
            opt.step()
            pruner.step()
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=X).logits
        masks = {"mask/" + n: m.to(torch.uint8) for n, m in pruner.mask.items()}
        save_file({"logits": logits, **masks}, folder + "/child.safetensors")
    """
)


@pytest.fixture(scope="module")
def resumed(tmp_path_factory):
    """Each pruner class trained 4 steps, saved, and resumed for 5 more in ONE fresh process
    (one interpreter start for the three classes; each class in its own folder)."""
    root = tmp_path_factory.mktemp("resume")
    args = []
    for name, cls in CLASSES.items():
        folder = root / name
        folder.mkdir()
        model = tiny_bert(seed=7)
        half = cls(model, 0.6, start=1, window=8, delta_t=2)
        _train(model, half, 4)  # stop mid-window
        save_file(
            {k: v.contiguous() for k, v in model.state_dict().items()},
            str(folder / "model.safetensors"),
        )
        half.save(folder / "pruner.safetensors")
        args += [name, str(folder)]
    subprocess.run([sys.executable, "-c", SCRIPT, *args], check=True, timeout=180)
    return root


@pytest.mark.parametrize("name", list(CLASSES))
def test_pruner_state_reloads_in_a_fresh_process_to_identical_outputs(resumed, name) -> None:
    """Pruner.save/load: a run resumed in a new process ends with the same mask and logits."""
    full_model = tiny_bert(seed=7)
    full = CLASSES[name](full_model, 0.6, start=1, window=8, delta_t=2)
    _train(full_model, full, 9)
    child = load_file(str(resumed / name / "child.safetensors"))
    full_model.eval()
    with torch.no_grad():
        logits = full_model(input_ids=X).logits
    torch.testing.assert_close(child["logits"], logits, rtol=0, atol=0)
    assert child.keys() - {"logits"} == {"mask/" + n for n in full.mask}
    for n, m in full.mask.items():
        assert torch.equal(child["mask/" + n].bool(), m), n


def test_pruner_file_with_bad_entries_reports_them_all(tmp_path) -> None:
    """Pruner.load: a file with a missing mask and a wrong-size state names both entries."""
    model = tiny_bert(seed=7)
    pruner = SevenPruner(model, 0.6, start=0, window=8)
    _train(model, pruner, 2)
    path = pruner.save(tmp_path / "p.safetensors")
    tensors = load_file(str(path))
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
    first = next(iter(pruner.names))
    del tensors[f"mask/{first}"]
    tensors["state/S"] = tensors["state/S"][:10].clone()
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(ValueError, match=rf"mask/{first}.*missing.*state/S.*10 values"):
        SevenPruner(tiny_bert(seed=7), 0.6, start=0, window=8).load(tmp_path / "bad.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        pruner.load(tmp_path / "junk.safetensors")
    meta2 = dict(meta, config=json.dumps({"class": "Other"}))
    save_file(load_file(str(path)), str(tmp_path / "other.safetensors"), metadata=meta2)
    with pytest.raises(ValueError, match="differently configured"):
        pruner.load(tmp_path / "other.safetensors")
