"""SEVEN's 2:4 mode on a GPU: does the pruned transformer run faster? (issue 17, deliverable 4)

Builds MiniLM-L6-shaped and BERT-base-shaped classifiers (Hugging Face `BertForSequenceClassification`
from their published configurations, random weights: the kernels' time depends on the shapes and
the 2:4 pattern, not on the values), prunes each to exact 2:4 with `SevenPruner(pattern="2:4")`
over a short run of AdamW steps on random token batches, then measures in half precision

1. every pruned Linear alone, dense vs its `torch.sparse` semi-structured form, for each of the
   cuSPARSELt and CUTLASS kernels (`seven_prune.semi_structured.semi_structured_speed`), at
   several token counts;
2. the whole model's inference forward, dense vs with every pruned weight swapped for its
   semi-structured form, and the largest logit difference between the two;
3. single large layers with a random 2:4 mask (where, on this GPU, 2:4 kernels pay at all).

Without a CUDA GPU of compute capability >= 8.0 it prunes, checks the pattern and stops (exit 0),
so the command works unchanged on a CPU. Usage:

    python packages/seven-prune/scripts/semi_structured_gpu.py --out semi_structured_gpu.json
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time

import torch
from seven_prune import SevenPruner
from seven_prune.semi_structured import is_n_m, semi_structured_speed, to_semi_structured

#: published configurations (hidden, layers, heads, intermediate); vocabulary 30522 for both
SHAPES = {
    "minilm-l6": (384, 6, 12, 1536),
    "bert-base": (768, 12, 12, 3072),
}


def build(name: str, device: torch.device) -> torch.nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    hidden, layers, heads, inter = SHAPES[name]
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=inter,
        num_labels=2,
    )
    torch.manual_seed(0)
    return BertForSequenceClassification(cfg).to(device)


def prune_2_4(model: torch.nn.Module, device: torch.device, steps: int) -> SevenPruner:
    """`steps` AdamW steps on random batches of 16 x 64 tokens, SEVEN_dyn to exact 2:4."""
    pruner = SevenPruner(model, 0.5, start=0, window=max(steps - 2, 1), pattern="2:4")
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        x = torch.randint(0, 30522, (16, 64), generator=gen).to(device)
        y = torch.randint(0, 2, (16,), generator=gen).to(device)
        opt.zero_grad(set_to_none=True)
        model(input_ids=x, labels=y).loss.backward()
        opt.step()
        pruner.step()
    return pruner


def forward_ms(model: torch.nn.Module, ids: torch.Tensor, repeats: int) -> float:
    with torch.inference_mode():
        for _ in range(3):
            model(input_ids=ids)
        ts = []
        for _ in range(repeats):
            torch.cuda.synchronize()
            tic = time.perf_counter()
            model(input_ids=ids)
            torch.cuda.synchronize()
            ts.append(time.perf_counter() - tic)
    return statistics.median(ts) * 1000


def random_2_4(rows: int, cols: int, device: torch.device) -> tuple[dict, dict]:
    """A random weight and a random exact 2:4 mask of that shape (for the large-layer rows)."""
    gen = torch.Generator().manual_seed(rows * 7 + cols)
    w = torch.randn(rows, cols, generator=gen).to(device)
    scores = torch.rand(rows * cols // 4, 4, generator=gen)
    keep = torch.zeros_like(scores, dtype=torch.bool)
    keep.scatter_(1, scores.topk(2, dim=1).indices, True)
    name = f"{rows}x{cols}"
    return {name: keep.reshape(rows, cols).to(device)}, {name: w}


def layer_rows(mask, params, tokens: int, backend: str, repeats: int, inner: int) -> dict:
    rows = semi_structured_speed(
        mask, params, tokens=tokens, backend=backend, repeats=repeats, inner=inner
    )
    dense = sum(r["dense_ms"] for r in rows)
    sparse = sum(r["sparse_ms"] for r in rows)
    by_shape: dict[str, list[float]] = {}
    for r in rows:
        by_shape.setdefault("x".join(map(str, r["shape"])), []).append(r["speedup"])
    return {
        "sum_dense_ms": dense,
        "sum_sparse_ms": sparse,
        "speedup_of_sum": dense / sparse,
        "median_speedup_by_shape": {k: statistics.median(v) for k, v in by_shape.items()},
        "max_abs_diff": max(r["max_abs_diff"] for r in rows),
    }


def show(label: str, r: dict) -> None:
    print(
        f"  {label}: dense {r['sum_dense_ms']:.3f} ms, 2:4 {r['sum_sparse_ms']:.3f} ms, "
        f"speedup {r['speedup_of_sum']:.2f}x; by shape "
        + ", ".join(f"{k} {v:.2f}x" for k, v in r["median_speedup_by_shape"].items())
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="write the measurements here as JSON")
    ap.add_argument("--steps", type=int, default=12, help="AdamW steps while pruning (>= 3)")
    ap.add_argument("--tokens", default="2048,16384", help="token counts for the per-layer times")
    ap.add_argument("--batch", default="32x128,128x128", help="BxL inputs for the forward times")
    ap.add_argument("--backends", default="cusparselt,cutlass", help="semi-structured kernels")
    ap.add_argument("--large", default="4096x4096,8192x8192,16384x4096",
                    help="extra single layers (out x in) with a random 2:4 mask")  # fmt: skip
    ap.add_argument("--repeats", type=int, default=10, help="timed samples per layer")
    ap.add_argument("--inner", type=int, default=10, help="products per timed sample")
    args = ap.parse_args()
    if args.steps < 3:
        raise SystemExit("--steps must be >= 3")
    backends = args.backends.split(",")
    tokens_list = [int(t) for t in args.tokens.split(",")]
    cuda = torch.cuda.is_available() and torch.cuda.get_device_capability()[0] >= 8
    device = torch.device("cuda" if cuda else "cpu")
    out: dict = {
        "device": torch.cuda.get_device_name() if cuda else "cpu (timing skipped)",
        "torch": torch.__version__,
        "command": "python packages/seven-prune/scripts/semi_structured_gpu.py "
        + " ".join(sys.argv[1:]),
        "models": {},
        "large": {},
    }
    print(f"device: {out['device']}, torch {torch.__version__}")
    if cuda:
        # a kernel this GPU lacks (CUTLASS's 2:4 kernels are built for compute capability 8.x
        # only) is recorded with torch's message and skipped, so the other rows still run
        out["unsupported"] = {}
        mask, params = random_2_4(128, 128, device)
        for backend in list(backends):
            try:
                semi_structured_speed(mask, params, tokens=64, backend=backend, repeats=1, inner=1)
            except RuntimeError as err:
                out["unsupported"][backend] = str(err).splitlines()[0]
                backends.remove(backend)
                print(f"  {backend}: not supported here ({out['unsupported'][backend]})")
        if not backends:
            raise SystemExit("no semi-structured backend runs on this GPU")

    def save() -> None:
        if args.out:
            with open(args.out, "w") as fh:
                json.dump(out, fh, indent=1)

    for name in SHAPES:
        model = build(name, device)
        pruner = prune_2_4(model, device, args.steps)
        ok = all(is_n_m(pruner.mask).values())
        rec: dict = {"exact_2_4": ok, "sparsity": pruner.achieved_sparsity, "layers": {}}
        out["models"][name] = rec
        print(f"{name}: exact 2:4 {ok}, sparsity {pruner.achieved_sparsity:.4f}")
        if not ok:
            raise SystemExit(f"{name}: the pruned mask is not exact 2:4")
        if not cuda:
            continue
        for backend in backends:
            for tokens in tokens_list:
                r = layer_rows(
                    pruner.mask, pruner.params, tokens, backend, args.repeats, args.inner
                )
                rec["layers"][f"{backend}@{tokens}"] = r
                show(f"{backend}, linears at {tokens} tokens", r)
            save()
        # whole forward: the dense half-precision model vs copies with semi-structured weights
        dense_model = model.half().eval()
        probe = torch.randint(0, 30522, (8, 64), generator=torch.Generator().manual_seed(2))
        with torch.inference_mode():
            logits_dense = dense_model(input_ids=probe.to(device)).logits.float()
        rec["forward"] = {}
        inputs = {}
        for bl in args.batch.split(","):
            b, length = (int(v) for v in bl.split("x"))
            gen = torch.Generator().manual_seed(1)
            inputs[bl] = torch.randint(0, 30522, (b, length), generator=gen).to(device)
            rec["forward"][f"dense@{bl}"] = forward_ms(dense_model, inputs[bl], 20)
        for backend in backends:
            sparse_model = copy.deepcopy(dense_model)
            for pname, _ in pruner.mask.items():
                mod = sparse_model.get_submodule(pname.rsplit(".", 1)[0])
                w = to_semi_structured(mod.weight.detach(), backend)
                mod.weight = torch.nn.Parameter(w, requires_grad=False)
            with torch.inference_mode():
                logits = sparse_model(input_ids=probe.to(device)).logits.float()
            rec[f"forward_max_logit_diff_{backend}"] = float((logits_dense - logits).abs().max())
            for bl, ids in inputs.items():
                ms = forward_ms(sparse_model, ids, 20)
                dense = rec["forward"][f"dense@{bl}"]
                rec["forward"][f"{backend}@{bl}"] = ms
                print(
                    f"  forward {bl}, {backend}: dense {dense:.2f} ms, 2:4 {ms:.2f} ms, "
                    f"speedup {dense / ms:.2f}x (largest logit difference "
                    f"{rec[f'forward_max_logit_diff_{backend}']:.1e})"
                )
            del sparse_model
            save()
        del model, dense_model, pruner
        torch.cuda.empty_cache()
    if cuda:
        for shape in args.large.split(","):
            r_, c_ = (int(v) for v in shape.split("x"))
            mask, params = random_2_4(r_, c_, device)
            for backend in backends:
                for tokens in tokens_list:
                    r = layer_rows(mask, params, tokens, backend, args.repeats, args.inner)
                    out["large"][f"{shape}:{backend}@{tokens}"] = r
                    show(f"{shape} alone, {backend}, {tokens} tokens", r)
            save()
    save()


if __name__ == "__main__":
    main()
