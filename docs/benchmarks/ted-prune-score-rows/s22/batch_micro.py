import time, torch
from ted_prune.mnist1d import MNIST1DCNN
torch.set_num_threads(1); torch.manual_seed(0)
m=MNIST1DCNN().eval(); x=torch.randn(17500,1,40)
ref=None
for bs in (256,64,128,192,384,512,768,1024):
    best=1e9
    for rep in range(3):
        t0=time.perf_counter()
        with torch.inference_mode():
            outs=[m(x[i:i+bs]) for i in range(0,17500,bs)]
        best=min(best,time.perf_counter()-t0)
    out=torch.cat(outs)
    if ref is None: ref=out
    print(bs, f"{best*1e3:.1f} ms", "bit-equal to 256:", torch.equal(out,ref))
