"""Where a 2:4 product's fixed cost goes on a GPU: host-side per call, or in the kernel.

`semi_structured_gpu.py` found each cuSPARSELt 2:4 product costing ~0.5 ms whatever its size. This
script times one layer four ways, each as the median of `--repeats` samples of `--inner` products
between two synchronisations, half precision:

- `dense`: `F.linear(x, W)`;
- `subclass`: `F.linear(x, W24)` with W24 = `to_sparse_semi_structured(W)` (torch's tensor subclass);
- `direct`: `torch._cslt_sparse_mm(W24.packed, x.T)`, the subclass's kernel without its dispatch;
- `graph`: the `subclass` product captured once in a CUDA graph and replayed, which removes every
  host-side cost (Python dispatch, plan set-up) and leaves the GPU's own time.

If `graph` is much faster than `subclass`, the fixed cost is on the host, and a user who captures the
pruned model in a CUDA graph (or compiles it) keeps the kernel's speed. Needs CUDA, compute
capability >= 8.0. With `--forward` it also times the whole inference forward of the MiniLM-L6- and
BERT-base-shaped models of `semi_structured_gpu.py` (pruned there to exact 2:4 by SEVEN), dense vs
2:4, each replayed from a CUDA graph. Usage: `python semi_structured_call_cost.py --out call_cost.json`.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F


def timed(fn, repeats: int, inner: int) -> float:
    """Median milliseconds per call of `fn` over `repeats` samples of `inner` back-to-back calls."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    samples = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        torch.cuda.synchronize()
        samples.append(start.elapsed_time(end) / inner)
    return statistics.median(samples)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="384x384,1536x384,768x768,3072x768,4096x4096,8192x8192")
    ap.add_argument("--tokens", default="2048,16384")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--inner", type=int, default=20)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--forward", default="32x128,128x128", help="BxL for the graph forwards ('' skips)"
    )
    args = ap.parse_args()
    from torch.sparse import to_sparse_semi_structured

    if not torch.cuda.is_available() or torch.cuda.get_device_capability()[0] < 8:
        raise SystemExit("needs a CUDA GPU of compute capability >= 8.0")
    dev = torch.device("cuda")
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": []}
    print(f"device: {out['device']}, torch {torch.__version__}")
    for shape in args.shapes.split(","):
        o, i = (int(v) for v in shape.split("x"))
        gen = torch.Generator().manual_seed(o + i)
        w = torch.randn(o, i, generator=gen)
        keep = torch.zeros(o * i // 4, 4, dtype=torch.bool)
        keep.scatter_(1, torch.rand(o * i // 4, 4, generator=gen).topk(2, dim=1).indices, True)
        w = (w * keep.reshape(o, i)).half().to(dev)
        w24 = to_sparse_semi_structured(w)
        for tokens in (int(t) for t in args.tokens.split(",")):
            x = torch.randn(tokens, i, generator=gen).half().to(dev)
            row = {"shape": [o, i], "tokens": tokens}
            row["dense_ms"] = timed(lambda x=x, w=w: F.linear(x, w), args.repeats, args.inner)
            row["subclass_ms"] = timed(
                lambda x=x, w24=w24: F.linear(x, w24), args.repeats, args.inner
            )
            xt = x.t().contiguous()
            try:
                row["direct_ms"] = timed(
                    lambda w24=w24, xt=xt: torch._cslt_sparse_mm(w24.packed, xt),
                    args.repeats,
                    args.inner,
                )
            except (RuntimeError, TypeError) as err:
                row["direct_error"] = str(err).splitlines()[0]
            static_x = x.clone()
            graph = torch.cuda.CUDAGraph()
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream):
                for _ in range(3):
                    F.linear(static_x, w24)
            torch.cuda.current_stream().wait_stream(stream)
            try:
                with torch.cuda.graph(graph):
                    static_y = F.linear(static_x, w24)
                row["graph_ms"] = timed(graph.replay, args.repeats, args.inner)
                dense_graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(dense_graph):
                    F.linear(static_x, w)
                row["dense_graph_ms"] = timed(dense_graph.replay, args.repeats, args.inner)
                row["graph_max_abs_diff"] = float((static_y - F.linear(x, w)).abs().max())
            except RuntimeError as err:
                row["graph_error"] = str(err).splitlines()[0]
            out["rows"].append(row)
            print(
                f"{shape} @ {tokens}: "
                + ", ".join(f"{k[:-3]} {v:.3f} ms" for k, v in row.items() if k.endswith("_ms"))
                + "".join(f"; {k}: {v}" for k, v in row.items() if k.endswith("error"))
            )
            if args.out:
                with open(args.out, "w") as fh:
                    json.dump(out, fh, indent=1)
    if args.forward:
        forward_rows(out, args)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)


def graph_of(fn) -> torch.cuda.CUDAGraph:
    """`fn` captured in a CUDA graph after three warm-up calls on a side stream."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        fn()
    return graph


def forward_rows(out: dict, args) -> None:
    """Whole inference forwards, dense vs 2:4, eager and replayed from a CUDA graph."""
    import copy
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from semi_structured_gpu import SHAPES, build, prune_2_4
    from seven_prune.semi_structured import to_semi_structured

    dev = torch.device("cuda")
    out["forward"] = []
    for name in SHAPES:
        model = build(name, dev)
        pruner = prune_2_4(model, dev, 12)
        dense = model.half().eval()
        sparse = copy.deepcopy(dense)
        for pname in pruner.mask:
            mod = sparse.get_submodule(pname.rsplit(".", 1)[0])
            mod.weight = torch.nn.Parameter(
                to_semi_structured(mod.weight.detach(), "cusparselt"), requires_grad=False
            )
        for bl in args.forward.split(","):
            b, length = (int(v) for v in bl.split("x"))
            ids = torch.randint(0, 30522, (b, length), generator=torch.Generator().manual_seed(1))
            ids = ids.to(dev)
            row = {"model": name, "batch": bl}
            with torch.no_grad():
                for label, m in (("dense", dense), ("sparse", sparse)):
                    row[f"{label}_eager_ms"] = timed(lambda m=m, ids=ids: m(input_ids=ids), 10, 5)
                    try:
                        g = graph_of(lambda m=m, ids=ids: m(input_ids=ids))
                        row[f"{label}_graph_ms"] = timed(g.replay, args.repeats, 5)
                    except RuntimeError as err:
                        row[f"{label}_graph_error"] = str(err).splitlines()[0]
            out["forward"].append(row)
            print(
                f"forward {name} {bl}: "
                + ", ".join(f"{k[:-3]} {v:.3f} ms" for k, v in row.items() if k.endswith("_ms"))
                + "".join(f"; {k}: {v}" for k, v in row.items() if k.endswith("error"))
            )
        del model, dense, sparse, pruner
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
