"""Persistence: a trained SSJDN saves as safetensors + JSON and reloads in a fresh process with
identical outputs (GRU with its vocabulary; the bundled MiniLM with its tokenizer)."""

import json
import subprocess
import sys
from pathlib import Path

import torch
from ssjdn import SSJDN, SSJDNConfig, make_scenes, train_retrieval

_RELOAD = """
import json, sys, torch
torch.set_num_threads(1)
from ssjdn import SSJDN, make_scenes
model = SSJDN.load(sys.argv[1])
data = make_scenes(6, 32, seed=9)
sims = model.similarity(data.images, data.flat_captions[:7])
print("RESULT", json.dumps(sims.double().tolist()))
"""


def _reload_in_fresh_process(folder: Path) -> torch.Tensor:
    out = subprocess.run(
        [sys.executable, "-c", _RELOAD, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT "))
    return torch.tensor(json.loads(line[len("RESULT ") :]), dtype=torch.float64)


def _sims_here(model: SSJDN) -> torch.Tensor:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = make_scenes(6, 32, seed=9)
        return model.similarity(data.images, data.flat_captions[:7]).double()
    finally:
        torch.set_num_threads(threads)


def test_trained_gru_model_reloads_identically_in_a_fresh_process(tmp_path: Path) -> None:
    train = make_scenes(16, 32, seed=0)
    cfg = SSJDNConfig(embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8))
    model = SSJDN.from_data(train, cfg, seed=0)
    train_retrieval(model, train, epochs=1, batch_size=8, progress=False)
    model.save(tmp_path / "m")
    files = sorted(p.name for p in (tmp_path / "m").iterdir())
    assert files == ["config.json", "model.safetensors", "vocabulary.json"]
    here = _sims_here(model)
    there = _reload_in_fresh_process(tmp_path / "m")
    assert torch.equal(here, there)
    # the reload carries the config and the vocabulary
    loaded = SSJDN.load(tmp_path / "m")
    assert loaded.config == model.config
    assert loaded.text.vocab.itos == model.text.vocab.itos


def test_minilm_model_reloads_identically_in_a_fresh_process(tmp_path: Path) -> None:
    train = make_scenes(8, 32, seed=0)
    cfg = SSJDNConfig(
        embed_dim=16,
        proj_dim=8,
        small_channels=(4, 8, 8, 8),
        text="transformer",
        text_model="minilm",
        max_len=16,
    )
    model = SSJDN.from_data(train, cfg, seed=0)
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "text_encoder" / "config.json").is_file()
    here = _sims_here(model)
    there = _reload_in_fresh_process(tmp_path / "m")
    assert torch.equal(here, there)
