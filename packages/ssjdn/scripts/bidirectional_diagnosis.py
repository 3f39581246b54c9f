"""Issue 19, session 34: why the bidirectional rung does not add, on USED validation seeds (no rule
decided here, no fresh seed).

The rung: ``+bidirectional centered`` (B, ``sgs="both"``) against the row below it,
``+SGS (one direction) centered`` (A, ``sgs="fine_to_coarse"``). B adds a second SFE chain, the
coarse->fine pass (its guide the image's local contrast on the coarsest grid, multiplied onto the
three finer scales, each delivering its centred kept feature), and the fusion layer reads both
passes, v = W_f f^fwd + W_b f^bwd + b (8 d inputs instead of 4 d). It has no loss of its own: the
retrieval loss trains it.

Two parts:

- ``--committed`` (no compute): the bench's committed validation runs of both rows on every used
  seed that has both (60..74 and 80..89, N = 25), paired B - A with the bench's bootstrap CI
  (`maskloop.report.paired_difference`): mR, image->text and text->image recall (mean of R@1/5/10,
  and each R@K), small-object queries, hard split, the final training loss, and the probes the
  bench records; and the full model against the full model less the second pass (60..74, N = 15).
- ``--seeds S ...`` (under the lock, two models a seed, about a minute each): A and B retrained
  exactly as the bench trains them (`ssjdn.bench.train_rung`, ``val`` split; their mR is checked
  against the committed run's and written), then read per query: text->image recall of large-
  and small-object captions, image->text recall of images with and without a small-object group,
  how many queries B ranks better or worse than A; the per-query oracle best-of(A, B); a post-hoc
  weight alpha on the second pass's contribution, v = W_f f^fwd + alpha W_b f^bwd + b (alpha = 1
  is B as trained, 0 the first pass alone); each model's mR on its own training draw; how far
  each part's parameters moved from initialisation; hubness and spread of the embeddings
  (`geometry`); and the retrieval loss's gradient norm on
  each pass's SFE units and fusion block on one fixed training batch.

Run, e.g.

    .nox/workspace/bin/python packages/ssjdn/scripts/bidirectional_diagnosis.py --committed \\
        --out docs/benchmarks/ssjdn_bidirectional_s34_diagnosis.json
    flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python \\
        packages/ssjdn/scripts/bidirectional_diagnosis.py --seeds 65 \\
        --out docs/benchmarks/ssjdn_bidirectional_s34_diagnosis.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from maskloop.report import paired_difference
from ssjdn.bench import BenchSettings, bench_data, build_method, cache_stem, train_rung
from ssjdn.metrics import retrieval_metrics, retrieval_ranks
from ssjdn.train import PairBatches, evaluate_retrieval

A, B = "+SGS (one direction) centered", "+bidirectional centered"
FULL, FULL_ONE = "BSD centered", "BSD centered - bidirectional"
USED_SEEDS = (*range(60, 75), *range(80, 90))
FULL_SEEDS = tuple(range(60, 75))
ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0)
METRICS = (
    "mR",
    "i2t",
    "t2i",
    "i2t_R@1",
    "i2t_R@5",
    "i2t_R@10",
    "t2i_R@1",
    "t2i_R@5",
    "t2i_R@10",
    "small_mR",
    "hard_mR",
    "hard_small_mR",
    "final_train_loss",
    "probe_img_acc",
    "probe_txt_acc_large",
    "probe_txt_acc_small",
)
B_PROBES = (
    "pass_r2_c2f_from_f2c",
    "pass_r2_f2c_from_c2f",
    "mR_without_c2f",
    "mR_without_f2c",
    "pass_feat_cos",
    "pass_contrib_cos",
    "keep_small_p0",
    "keep_small_p1",
    "guide_z_p0",
    "guide_z_p1",
)
CACHE = Path("docs/benchmarks/cache")


def _value(run: dict[str, Any], key: str) -> float:
    m = run["metrics"]
    if key in ("i2t", "t2i"):
        return float(np.mean([m[f"{key}_R@{k}"] for k in (1, 5, 10)]))
    if key == "final_train_loss":
        return float(run["loss"][-1])
    return float(m[key])


def _load(cache: Path, name: str, seed: int) -> dict[str, Any]:
    folder = cache / "val" / BenchSettings.quick().key()
    return json.loads((folder / f"{cache_stem(name, seed)}.json").read_text())


def _pair(cache: Path, new: str, old: str, seeds: tuple[int, ...], keys) -> dict[str, Any]:
    out: dict[str, Any] = {"new": new, "old": old, "seeds": list(seeds)}
    for key in keys:
        a = [_value(_load(cache, old, s), key) for s in seeds]
        b = [_value(_load(cache, new, s), key) for s in seeds]
        d = paired_difference(b, a)
        out[key] = {
            "old_mean": float(np.mean(a)),
            "old_std": float(np.std(a, ddof=1)),
            "new_mean": float(np.mean(b)),
            "new_std": float(np.std(b, ddof=1)),
            "delta": [d.mean, d.low, d.high],
            "per_seed_delta": [round(y - x, 4) for x, y in zip(a, b)],
        }
    return out


def committed(cache: Path) -> dict[str, Any]:
    """Paired B - A and full - (full less the second pass) from the committed runs."""
    rung = _pair(cache, B, A, USED_SEEDS, METRICS)
    probes, tracks = {}, {}
    delta = np.asarray(rung["mR"]["per_seed_delta"])
    for key in B_PROBES:
        v = [_value(_load(cache, B, s), key) for s in USED_SEEDS]
        probes[key] = [float(np.mean(v)), float(np.std(v, ddof=1))]
        # does the probe track the per-seed rung? (Pearson r over the seeds)
        both_vary = np.std(v) > 0 and np.std(delta) > 0
        tracks[key] = float(np.corrcoef(v, delta)[0, 1]) if both_vary else 0.0
    rung["b_probes"] = probes
    rung["b_probe_r_with_rung"] = tracks
    keys = [k for k in METRICS if not k.startswith("probe_")]
    full = _pair(cache, FULL, FULL_ONE, FULL_SEEDS, keys)
    return {"rung": rung, "full": full}


def _mean_r(ranks: np.ndarray) -> float:
    """Mean of R@1, R@5, R@10 (percent) of 1-based ranks."""
    return float(np.mean([100.0 * (ranks <= k).mean() for k in (1, 5, 10)]))


@torch.no_grad()
def _sims(model, data) -> torch.Tensor:
    model.eval()
    return model.similarity_of(
        model.encode_images(data.images), model.encode_texts(data.flat_captions)
    )


@torch.no_grad()
def alpha_sweep(model, data) -> dict[str, float]:
    """mR with the second pass's block of the fusion weight scaled by alpha (bias unchanged):
    v = W_f f^fwd + alpha W_b f^bwd + b; the weight is restored afterwards."""
    fuse = model.bsd.fuse
    half = fuse.weight.shape[1] // 2
    saved = fuse.weight.detach().clone()
    out = {}
    try:
        for alpha in ALPHAS:
            fuse.weight[:, half:] = alpha * saved[:, half:]
            out[str(alpha)] = retrieval_metrics(_sims(model, data), data.caption_image)["mR"]
    finally:
        fuse.weight.copy_(saved)
    return out


def _rel_move(after: torch.nn.Module, before: torch.nn.Module) -> float:
    num = sum(float((p - q).pow(2).sum()) for p, q in zip(after.parameters(), before.parameters()))
    den = sum(float(q.pow(2).sum()) for q in before.parameters())
    return (num / max(den, 1e-12)) ** 0.5


@torch.no_grad()
def movement(model, init) -> dict[str, float]:
    """||theta_T - theta_0|| / ||theta_0|| per part; the fusion layer per pass block."""
    out = {
        "backbone": _rel_move(model.backbone, init.backbone),
        "proj": _rel_move(model.proj, init.proj),
        "text": _rel_move(model.text, init.text),
    }
    for k, chain in enumerate(model.bsd.chains):
        out[f"sfe_pass{k}"] = _rel_move(chain, init.bsd.chains[k])
    w, w0 = model.bsd.fuse.weight.detach(), init.bsd.fuse.weight.detach()
    n = len(model.bsd.chains)
    step = w.shape[1] // n
    for k in range(n):
        blk, blk0 = w[:, k * step : (k + 1) * step], w0[:, k * step : (k + 1) * step]
        out[f"fuse_pass{k}_rel_move"] = float((blk - blk0).norm() / blk0.norm())
        out[f"fuse_pass{k}_norm"] = float(blk.norm())
    return out


def gradients(model, train, settings: BenchSettings) -> dict[str, float]:
    """The retrieval loss's gradient norm on each pass's SFE units and fusion block, on one fixed
    training batch (generator seed 0), on a copy of the model in training mode (so the model's
    own batch-norm statistics are untouched)."""
    model = copy.deepcopy(model)
    ids, mask = model.text.tokenize(train.flat_captions)
    gen = torch.Generator().manual_seed(0)
    batch = next(iter(PairBatches(train, ids, mask, settings.batch_size, gen)))
    model.train()
    model.zero_grad()
    out = model(*batch[:3])
    model.loss(out, batch[3], batch[4]).mean().backward()
    g = model.bsd.fuse.weight.grad
    n = len(model.bsd.chains)
    step = g.shape[1] // n
    res: dict[str, float] = {}
    for k, chain in enumerate(model.bsd.chains):
        res[f"grad_sfe_pass{k}"] = float(
            sum(p.grad.pow(2).sum() for p in chain.parameters() if p.grad is not None) ** 0.5
        )
        res[f"grad_fuse_pass{k}"] = float(g[:, k * step : (k + 1) * step].norm())
    res["grad_backbone"] = float(
        sum(p.grad.pow(2).sum() for p in model.backbone.parameters() if p.grad is not None) ** 0.5
    )
    return res


def _skew(x: np.ndarray) -> float:
    x = x.astype(np.float64)
    sd = x.std()
    return float(((x - x.mean()) ** 3).mean() / sd**3) if sd > 0 else 0.0


def geometry(model, data, k: int = 10) -> dict[str, float]:
    """Hubness and spread of the embeddings on ``data``: the skewness of the k-occurrence N_k (how
    many queries hold a gallery item in their top k) of images (text->image) and of captions
    (image->text), the share of queries whose top-1 is one of the 5 % most frequent top-1 answers,
    and the mean pairwise cosine of the image and of the caption embeddings."""
    model.eval()
    with torch.no_grad():
        img = model.encode_images(data.images)
        txt = model.encode_texts(data.flat_captions)
    s = model.similarity_of(img, txt).numpy()
    n_img, n_cap = s.shape
    top_img = np.argsort(-s, axis=0)[:k]  # (k, n_cap): each caption's top-k images
    top_cap = np.argsort(-s, axis=1)[:, :k]  # (n_img, k): each image's top-k captions
    nk_img = np.bincount(top_img.ravel(), minlength=n_img)
    nk_cap = np.bincount(top_cap.ravel(), minlength=n_cap)
    t1_img = np.bincount(top_img[0], minlength=n_img)
    t1_cap = np.bincount(top_cap[:, 0], minlength=n_cap)
    h_img = max(1, int(round(0.05 * n_img)))
    h_cap = max(1, int(round(0.05 * n_cap)))

    def mean_cos(e: torch.Tensor) -> float:
        e = torch.nn.functional.normalize(e, dim=-1)
        g = e @ e.T
        n = g.shape[0]
        return float((g.sum() - g.diagonal().sum()) / (n * (n - 1)))

    return {
        f"skew_N{k}_images": _skew(nk_img),
        f"skew_N{k}_captions": _skew(nk_cap),
        "t2i_top1_share_of_top5pct_images": float(np.sort(t1_img)[::-1][:h_img].sum() / n_cap),
        "i2t_top1_share_of_top5pct_captions": float(np.sort(t1_cap)[::-1][:h_cap].sum() / n_img),
        "mean_cos_images": mean_cos(img),
        "mean_cos_captions": mean_cos(txt),
    }


def per_query(sa: torch.Tensor, sb: torch.Tensor, data) -> dict[str, Any]:
    """Recall by query kind for A and B, who ranks which query better, and the best-of oracle."""
    cap = np.asarray(data.caption_image)
    ai, at = retrieval_ranks(sa, cap)
    bi, bt = retrieval_ranks(sb, cap)
    small_c = np.asarray(data.caption_small, dtype=bool)
    small_i = np.asarray(data.image_small, dtype=bool)
    out: dict[str, Any] = {"n_captions_small": int(small_c.sum()), "n_captions": int(cap.size)}
    kinds = {
        "t2i_large_captions": (at, bt, ~small_c),
        "t2i_small_captions": (at, bt, small_c),
        "t2i_all": (at, bt, np.ones_like(small_c)),
        "i2t_images_with_small": (ai, bi, small_i),
        "i2t_images_without_small": (ai, bi, ~small_i),
        "i2t_all": (ai, bi, np.ones_like(small_i)),
    }
    for name, (ra, rb, m) in kinds.items():
        out[name] = {
            "n": int(m.sum()),
            "A_meanR": _mean_r(ra[m]),
            "B_meanR": _mean_r(rb[m]),
            "B_better": float((rb[m] < ra[m]).mean() * 100),
            "B_worse": float((rb[m] > ra[m]).mean() * 100),
            "median_rank_A": float(np.median(ra[m])),
            "median_rank_B": float(np.median(rb[m])),
            "oracle_meanR": _mean_r(np.minimum(ra[m], rb[m])),
        }
    best_i, best_t = np.minimum(ai, bi), np.minimum(at, bt)
    out["oracle_best_of_mR"] = float(np.mean([_mean_r(best_i), _mean_r(best_t)]))
    return out


def one(seed: int, settings: BenchSettings, cache: Path) -> dict[str, Any]:
    train, val, _ = bench_data(settings, seed, "val")
    rec: dict[str, Any] = {"seed": seed}
    models = {}
    for name in (A, B):
        t0 = time.perf_counter()
        model, hist = train_rung(name, train, val, settings, seed)
        r: dict[str, Any] = {"train_s": time.perf_counter() - t0, "mR": hist.metrics[-1]["mR"]}
        r["mR_cached"] = _load(cache, name, seed)["metrics"]["mR"]
        r["val"] = evaluate_retrieval(model, val)
        r["train_draw"] = evaluate_retrieval(model, train)
        r["movement"] = movement(model, build_method(name, train, seed))
        r["geometry"] = geometry(model, val)
        r["gradients"] = gradients(model, train, settings)
        if name == B:
            r["alpha_sweep"] = alpha_sweep(model, val)
        rec[name] = r
        models[name] = model
    rec["per_query"] = per_query(_sims(models[A], val), _sims(models[B], val), val)
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--committed", action="store_true", help="the committed runs' part (no compute)")
    p.add_argument("--seeds", type=int, nargs="*", default=[])
    p.add_argument("--cache", type=Path, default=CACHE)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    doc = json.loads(a.out.read_text()) if a.out.is_file() else {"retrained": []}
    if a.committed:
        doc["committed"] = committed(a.cache)
        a.out.write_text(json.dumps(doc, indent=1))
    have = {r["seed"] for r in doc["retrained"]}
    for seed in a.seeds:
        if seed in have:
            continue
        rec = one(seed, BenchSettings.quick(), a.cache)
        doc["retrained"].append(rec)
        a.out.write_text(json.dumps(doc, indent=1))
        print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
