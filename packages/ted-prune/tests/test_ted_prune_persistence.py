"""TEDPruner state saved through safetensors + JSON reloads in a fresh process to the same scores
and the same next selection; malformed files are refused with the file and entry named."""

import json
import subprocess
import sys

import pytest
import torch
from ted_prune import TEDPruner


def _trained_pruner(n=60, epochs=6):
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(n, 5, generator=g)
    logits = torch.randn(n, 3, generator=g)
    y = torch.randint(0, 3, (n,), generator=g)
    p = TEDPruner(n, epochs=epochs, keep=0.5, warmup=1, ramp=1, rescore_every=0, seed=4)
    for _ in range(3):
        idx = p.select().indices
        p.observe(idx, logits[idx], feats[idx], y[idx])
        p.end_epoch()
        logits = logits + 0.1 * torch.randn(n, 3, generator=g)
    return p


def test_saved_pruner_reloads_identically_in_a_fresh_process(tmp_path):
    """TEDPruner.save/load: a subprocess gets the same scores, weights and next selection."""
    p = _trained_pruner()
    p.save(tmp_path / "ted")
    sel = p.select()
    code = f"""
import json, torch
from ted_prune import TEDPruner
q = TEDPruner(60, epochs=6, keep=0.5, warmup=1, ramp=1, rescore_every=0, seed=4)
q.load({str(tmp_path / "ted")!r})
s = q.select()
print(json.dumps({{"idx": s.indices.tolist(), "scores": q.scores.tolist(),
                   "w": q.weights(s.indices).tolist(), "epoch": q.epoch}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["epoch"] == p.epoch == 3
    assert got["idx"] == sel.indices.tolist()
    assert got["scores"] == p.scores.tolist()
    assert got["w"] == p.weights(sel.indices).tolist()


def test_load_truncated_safetensors_names_the_file(tmp_path):
    """TEDPruner.load: a truncated .safetensors file is refused, naming it."""
    p = _trained_pruner()
    st, _ = p.save(tmp_path / "ted")
    st.write_bytes(st.read_bytes()[:20])
    with pytest.raises(ValueError, match="ted.safetensors"):
        TEDPruner(60, epochs=6, keep=0.5, warmup=1, ramp=1, rescore_every=0).load(tmp_path / "ted")


def test_load_json_missing_entries_names_them(tmp_path):
    """TEDPruner.load: a JSON without the state's entries lists what is missing."""
    p = _trained_pruner()
    _, js = p.save(tmp_path / "ted")
    doc = json.loads(js.read_text())
    del doc["state"]["log"], doc["state"]["epoch"]
    js.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"missing entries \['epoch', 'log'\]"):
        TEDPruner(60, epochs=6, keep=0.5, warmup=1, ramp=1, rescore_every=0).load(tmp_path / "ted")


def test_load_into_a_different_pruner_is_refused(tmp_path):
    """TEDPruner.load: a state for another dataset size is refused."""
    p = _trained_pruner()
    p.save(tmp_path / "ted")
    with pytest.raises(ValueError, match="n=60"):
        TEDPruner(61, epochs=6, keep=0.5).load(tmp_path / "ted")
