"""Issue 19, session 26: why the bidirectional and LSD rungs add nothing on today's default
(``sgs_pool="centered"``). A post-hoc probe on one trained model of each rung.

Trains ``+bidirectional centered`` and ``+LSD centered`` on the validation training draw of one
old bench seed (default 45; the fresh seeds 50.. stay untouched) with the benchmark's budget and
evaluates on that seed's validation draw:

- bidirectional: mR with each of the fusion layer's eight slots (four scales x two passes)
  replaced by its mean over the images (what each slot is worth), the held-out R^2 of each of
  the coarse->fine pass's slots from all of the fine->coarse pass's (`linear_r2`), and each
  slot's norm relative to the pass's guiding-scale slot;
- LSD: head accuracy (`label_accuracy`) against a ridge probe of the embeddings
  (`label_probe`), the gradients of the two losses (`loss_gradients`, on one training batch:
  ``grad_cos_heads`` < 0 means the hinge and the cross-entropy pull LSD's heads apart),
  `semantic_reach`, and the share of same-class images among the hardest negatives;
- for both: mR of a post-hoc score s_res + alpha * s_sem, s_res the model's own cosine (for
  LSD its residual part) and s_sem the cosine of label predictions (a ridge probe fit on the
  training draw's embeddings for ``+bidirectional centered``; LSD's own heads' class
  probabilities for ``+LSD centered``): would a label-supervised semantic score that never
  entered the hinge add to the residual ranking?

Run (about 1.5 min on 2 idle cores, under the lock):
``flock /tmp/heavy.lock nice -n 5 .venv/bin/python packages/ssjdn/scripts/probe_s26.py --seed 45
--out docs/benchmarks``. Writes ``<out>/ssjdn_s26_probe.json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
import torch.nn.functional as F
from ssjdn.bench import BenchSettings, bench_data, build_method, train_with_settings
from ssjdn.diagnostics import (
    label_accuracy,
    label_probe,
    linear_r2,
    loss_gradients,
    semantic_reach,
)
from ssjdn.metrics import retrieval_metrics
from ssjdn.train import PairBatches, evaluate_retrieval

ALPHAS = (0.0, 0.02, 0.05, 0.1, 0.2, 0.5)


def probe_batch(model, train, seed: int) -> tuple[torch.Tensor, ...]:
    ids, mask = model.text.tokenize(train.flat_captions)
    gen = torch.Generator().manual_seed(10_000 + seed)
    return next(iter(PairBatches(train, ids, mask, 128, gen)))


@torch.no_grad()
def slots(model, images) -> list[torch.Tensor]:
    bsd = model.bsd
    feats, _ = bsd.pass_features(model.bsd_inputs(images), images)
    return [f for chain in bsd.delivered(feats) for f in chain]


@torch.no_grad()
def slot_ablation(model, data) -> dict[str, float]:
    model.eval()
    xs = slots(model, data.images)
    txt = model.encode_texts(data.flat_captions)
    out = {}
    for k in range(-1, len(xs)):
        cur = [x if j != k else x.mean(0, keepdim=True).expand_as(x) for j, x in enumerate(xs)]
        v = model.bsd.fuse(torch.cat(cur, dim=1))
        img = F.normalize(v, dim=-1)
        mr = retrieval_metrics(img @ txt.T, data.caption_image)["mR"]
        out["mR_all" if k < 0 else f"mR_without_slot_p{k // 4}_s{k % 4 + 1}"] = mr
    n = len(xs) // 2
    f2c = torch.cat(xs[:n], dim=1)
    for j in range(n):
        out[f"r2_c2f_s{j + 1}_from_f2c"] = linear_r2(f2c, xs[n + j])
    for p in range(2):
        guide = 0 if p == 0 else n - 1
        ref = xs[p * n + guide].norm(dim=1).mean()
        for j in range(n):
            out[f"norm_ratio_p{p}_s{j + 1}"] = float(xs[p * n + j].norm(dim=1).mean() / ref)
    return out


def ridge_fit(x: torch.Tensor, y: torch.Tensor, k: int, ridge: float = 1e-2) -> torch.Tensor:
    x = torch.cat([x, torch.ones_like(x[:, :1])], 1).double()
    target = F.one_hot(y.clamp(min=0), k).double()
    eye = torch.eye(x.shape[1], dtype=x.dtype)
    return torch.linalg.solve(x.T @ x + ridge * len(x) * eye, x.T @ target)


def ridge_predict(w: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([x, torch.ones_like(x[:, :1])], 1).double() @ w


@torch.no_grad()
def semantic_add(res: torch.Tensor, sem: torch.Tensor, cap_img, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}mR_alpha_{a:g}": retrieval_metrics((res + a * sem).float(), cap_img)["mR"]
        for a in ALPHAS
    }


@torch.no_grad()
def hardest_same_class(model, batch) -> dict[str, float]:
    """Share of same-class images among each caption's hardest negative image (and vice versa)
    on one training batch, by the model's retrieval similarity."""
    model.eval()
    images, ids, mask, labels, image_ids = batch
    out = model(images, ids, mask)
    s = out["img"] @ out["txt"].T
    neg = image_ids[:, None] == image_ids[None, :]
    s = s.masked_fill(neg, -9.0)
    same = labels[:, None] == labels[None, :]
    i2t = same[torch.arange(len(s)), s.argmax(1)].float().mean()
    t2i = same[s.argmax(0), torch.arange(len(s))].float().mean()
    return {"hardest_neg_same_class_i2t": float(i2t), "hardest_neg_same_class_t2i": float(t2i)}


def run_bi(seed: int, settings: BenchSettings) -> dict:
    train, val, hard = bench_data(settings, seed, "val")
    model = build_method("+bidirectional centered", train, seed)
    train_with_settings(model, train, None, settings, seed)
    model.eval()
    rec = {
        "mR": evaluate_retrieval(model, val)["mR"],
        "hard_mR": evaluate_retrieval(model, hard)["mR"],
    }
    rec.update(slot_ablation(model, val))
    rec.update(label_probe(model, train, val))
    rec.update(hardest_same_class(model, probe_batch(model, train, seed)))
    k = max(2, len(train.class_names))
    cap_train = train.labels[torch.as_tensor(train.caption_image)]
    wi = ridge_fit(model.encode_images(train.images), train.labels, k)
    wt = ridge_fit(model.encode_texts(train.flat_captions), cap_train, k)
    img, txt = model.encode_images(val.images), model.encode_texts(val.flat_captions)
    pi = F.normalize(ridge_predict(wi, img), dim=-1)
    pt = F.normalize(ridge_predict(wt, txt), dim=-1)
    rec.update(semantic_add(img.double() @ txt.double().T, pi @ pt.T, val.caption_image, "ridge_"))
    return rec


def run_lsd(seed: int, settings: BenchSettings) -> dict:
    train, val, hard = bench_data(settings, seed, "val")
    model = build_method("+LSD centered", train, seed)
    train_with_settings(model, train, None, settings, seed)
    model.eval()
    batch = probe_batch(model, train, seed)
    rec = {
        "mR": evaluate_retrieval(model, val)["mR"],
        "hard_mR": evaluate_retrieval(model, hard)["mR"],
    }
    rec.update(label_accuracy(model, val))
    rec.update(label_probe(model, train, val))
    rec.update(semantic_reach(model, val))
    rec.update(loss_gradients(model, batch))
    rec.update(hardest_same_class(model, batch))
    with torch.no_grad():
        v, _ = model.image_features(val.images)
        ids, mask = model.text.tokenize(val.flat_captions)
        t = model.text(ids, mask)
        res = F.normalize(v, dim=-1).double() @ F.normalize(t, dim=-1).double().T
        pv = model.lsd.classifier(model.lsd.mlp_v(v)).softmax(-1).double()
        pt = model.lsd.classifier(model.lsd.mlp_t(t)).softmax(-1).double()
        sem = F.normalize(pv, dim=-1) @ F.normalize(pt, dim=-1).T
    rec.update(semantic_add(res, sem, val.caption_image, "heads_"))
    return rec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=45)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    settings = BenchSettings.quick()
    res = {
        "seed": args.seed,
        "+bidirectional centered": run_bi(args.seed, settings),
        "+LSD centered": run_lsd(args.seed, settings),
    }
    for name in ("+bidirectional centered", "+LSD centered"):
        print(f"== {name}")
        for k, v in res[name].items():
            print(f"  {k:40s} {v:.3f}")
    if args.out:
        Path(args.out, "ssjdn_s26_probe.json").write_text(json.dumps(res, indent=1) + "\n")


if __name__ == "__main__":
    main()
