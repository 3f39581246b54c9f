"""Persistence: a trained SSJDN saves as safetensors + JSON and reloads in a fresh process with
identical outputs (GRU with its vocabulary; the bundled MiniLM with its tokenizer)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from ssjdn import SSJDN, SSJDNConfig, make_scenes, train_retrieval

_RELOAD = """
import json, sys, torch
torch.set_num_threads(1)
from ssjdn import SSJDN, make_scenes
data = make_scenes(6, 32, seed=9)
for folder in sys.argv[1:]:
    model = SSJDN.load(folder)
    sims = model.similarity(data.images, data.flat_captions[:7])
    print("RESULT", folder, json.dumps(sims.double().tolist()))
"""


def _reload_in_fresh_process(*folders: Path) -> dict[str, torch.Tensor]:
    """Each saved model's similarities, reloaded in ONE fresh interpreter (one start for all)."""
    out = subprocess.run(
        [sys.executable, "-c", _RELOAD, *map(str, folders)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    sims = {}
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            _, folder, values = line.split(" ", 2)
            sims[folder] = torch.tensor(json.loads(values), dtype=torch.float64)
    assert set(sims) == set(map(str, folders)), out.stdout[-2000:]
    return sims


def _sims_here(model: SSJDN) -> torch.Tensor:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = make_scenes(6, 32, seed=9)
        return model.similarity(data.images, data.flat_captions[:7]).double()
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, tuple[SSJDN, Path, torch.Tensor]]:
    """A trained GRU model and a MiniLM model, saved, and reloaded together in one fresh process:
    name -> (model, its folder, the fresh process's similarities)."""
    root = tmp_path_factory.mktemp("persist")
    train = make_scenes(16, 32, seed=0)
    gru = SSJDN.from_data(
        train, SSJDNConfig(embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8)), seed=0
    )
    train_retrieval(gru, train, epochs=1, batch_size=8, progress=False)
    minilm_cfg = SSJDNConfig(
        embed_dim=16,
        proj_dim=8,
        small_channels=(4, 8, 8, 8),
        text="transformer",
        text_model="minilm",
        max_len=16,
    )
    minilm = SSJDN.from_data(make_scenes(8, 32, seed=0), minilm_cfg, seed=0)
    models = {"gru": gru, "minilm": minilm}
    for name, model in models.items():
        model.save(root / name)
    there = _reload_in_fresh_process(*(root / name for name in models))
    return {name: (m, root / name, there[str(root / name)]) for name, m in models.items()}


def test_trained_gru_model_reloads_identically_in_a_fresh_process(saved) -> None:
    model, folder, there = saved["gru"]
    files = sorted(p.name for p in folder.iterdir())
    assert files == ["config.json", "model.safetensors", "vocabulary.json"]
    assert torch.equal(_sims_here(model), there)
    # the reload carries the config and the vocabulary
    loaded = SSJDN.load(folder)
    assert loaded.config == model.config
    assert loaded.text.vocab.itos == model.text.vocab.itos


def test_minilm_model_reloads_identically_in_a_fresh_process(saved) -> None:
    model, folder, there = saved["minilm"]
    assert (folder / "text_encoder" / "config.json").is_file()
    assert torch.equal(_sims_here(model), there)
