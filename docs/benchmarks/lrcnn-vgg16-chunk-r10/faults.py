"""Per whole step on VGG-16 224x224 batch 8: wall, user and system CPU seconds and minor page faults
of plain, overlap-8+fused and overlap-8+fused+chunk16, in the bench's steady allocator state
(1 thread). Explains why the time ratio to plain depends on the host (output: faults.log).

Run: flock /tmp/heavy.lock sh -c 'MALLOC_MMAP_THRESHOLD_=65536 OMP_NUM_THREADS=1 nice -n 5
.venv/bin/python docs/benchmarks/lrcnn-vgg16-chunk-r10/faults.py'. A fresh StepInBackward each
step (its momentum buffers are new pages every step: more faults for the fused rows only).
"""

import resource
import time

import torch
from lrcnn.bench import _build, _malloc_steady, _wrap
from lrcnn.stepping import StepInBackward
from torch import nn

torch.set_num_threads(1)
model = _build("vgg16").train()
shape = (8, 3, 224, 224)
gen = torch.Generator().manual_seed(1)
x = torch.randn(shape, generator=gen)
y = torch.randint(0, 1000, (8,), generator=gen)
base = {"model": "vgg16", "res": 224, "batch": 8}
cfgs = [
    {**base, "method": "plain"},
    {**base, "method": "overlap", "rows": 8, "fused": True},
    {**base, "method": "overlap", "rows": 8, "fused": True, "chunk_mib": 16},
]
runs = [(c, _wrap(model, c, shape)[0]) for c in cfgs]
sgd = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
_malloc_steady()


def step(c: dict, run: nn.Module) -> None:
    h = None
    if c.get("fused"):
        kw = dict(lr=1e-4, momentum=0.9, chunk_mib=c.get("chunk_mib"))
        h = StepInBackward(model, torch.optim.SGD, **kw)
    nn.functional.cross_entropy(run(x), y).backward()
    if h is None:
        sgd.step()
    else:
        h.remove()
    model.zero_grad(set_to_none=True)


for c, run in runs:  # warm-up
    step(c, run)
for _ in range(2):
    for c, run in runs:
        r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        step(c, run)
        r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        name = c["method"] + ("+fused" if c.get("fused") else "")
        name += "+chunk16" if c.get("chunk_mib") else ""
        print(
            f"{name}: wall {t1 - t0:.2f} user {r1.ru_utime - r0.ru_utime:.2f} "
            f"sys {r1.ru_stime - r0.ru_stime:.2f} minflt {r1.ru_minflt - r0.ru_minflt}",
            flush=True,
        )
