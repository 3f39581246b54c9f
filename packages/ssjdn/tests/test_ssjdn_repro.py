"""Reproducibility across processes: torch seeds its global RNG randomly at start-up, so the first
model a process builds must not depend on it (the bench's dual-encoder-at-seed-0 bug)."""

import json
import subprocess
import sys

import torch
from ssjdn import SSJDN, SSJDNConfig, make_scenes

_SCRIPT = """
import json, torch
torch.set_num_threads(1)
from ssjdn import make_scenes
from ssjdn.bench import BenchSettings, train_rung
s = BenchSettings(n_train=24, n_test=12, image_size=32, epochs=2, batch_size=8)
train, test = make_scenes(24, 32, seed=1), make_scenes(12, 32, seed=2)
_, hist = train_rung(
    "{name}", train, test, s, 0, embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8)
)
print("RESULT", json.dumps({{"loss": hist.loss, "metrics": hist.metrics}}))
"""


def _run_pair(name: str) -> tuple[dict, dict]:
    """Run the script in two fresh interpreters at once; their parsed results."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _SCRIPT.format(name=name)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err[-2000:]
        line = next(x for x in out.splitlines() if x.startswith("RESULT "))
        results.append(json.loads(line[len("RESULT ") :]))
    return results[0], results[1]


def test_two_fresh_processes_give_identical_metrics() -> None:
    a, b = _run_pair("dual-encoder")
    assert a == b
    assert len(a["metrics"]) == 2 and a["metrics"][-1]["mR"] >= 0


def test_from_data_seed_fixes_init_and_keeps_global_rng() -> None:
    data = make_scenes(12, image_size=32, seed=0)
    cfg = SSJDNConfig(embed_dim=16, proj_dim=8, small_channels=(4, 8, 8, 8))
    torch.manual_seed(123)
    m1 = SSJDN.from_data(data, cfg, seed=5)
    after = torch.rand(1)
    torch.manual_seed(999)
    m2 = SSJDN.from_data(data, cfg, seed=5)
    m3 = SSJDN.from_data(data, cfg, seed=6)
    s1, s2, s3 = m1.state_dict(), m2.state_dict(), m3.state_dict()
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)
    torch.manual_seed(123)
    assert torch.equal(torch.rand(1), after)  # the global RNG was not consumed
