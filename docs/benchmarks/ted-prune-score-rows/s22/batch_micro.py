"""Session 22: the MNIST-1D CNN's no-grad forward over 17,500 samples in batches of several sizes
(one thread, random weights): best of 3 wall times, and whether every batch size gives the same
bits as 256. Run: `.venv/bin/python docs/benchmarks/ted-prune-score-rows/s22/batch_micro.py`."""

import time

import torch
from ted_prune.mnist1d import MNIST1DCNN

torch.set_num_threads(1)
torch.manual_seed(0)
model = MNIST1DCNN().eval()
x = torch.randn(17500, 1, 40)
ref = None
for bs in (256, 64, 128, 192, 384, 512, 768, 1024, 17500):
    best = 1e9
    for _ in range(3):
        t0 = time.perf_counter()
        with torch.inference_mode():
            outs = [model(x[i : i + bs]) for i in range(0, 17500, bs)]
        best = min(best, time.perf_counter() - t0)
    out = torch.cat(outs)
    ref = out if ref is None else ref
    print(bs, f"{best * 1e3:.1f} ms", "bit-equal to 256:", torch.equal(out, ref))
