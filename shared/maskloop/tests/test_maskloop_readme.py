"""The README's usage example runs as written and keeps every layer alive (issue 20, point 1)."""

import math
import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_keeps_every_layer_with_exact_sparsity(tmp_path, monkeypatch) -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    torch.manual_seed(0)
    ns: dict = {}
    with pytest.warns(UserWarning, match=r"would have emptied '2\.weight'"):
        exec(compile(code, str(README), "exec"), ns)  # noqa: S102 - our own README
    mask, model = ns["mask"], ns["model"]
    assert all(m.any() for _, m in mask.items())  # no layer collapsed
    assert mask.num_pruned == math.floor(0.9 * mask.numel + 0.5)
    params = dict(model.named_parameters())
    assert all(torch.all(params[n][~m] == 0) for n, m in mask.items())
    assert len(ns["history"]) == 3 and (tmp_path / "mask.safetensors").is_file()
