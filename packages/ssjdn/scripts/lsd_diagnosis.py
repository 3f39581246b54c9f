"""Issue 19, session 33: why LSD does not add, on USED validation seeds (no rule decided here).

For each (row, seed) the model is trained exactly as the bench trains it (`ssjdn.bench.train_rung`
on the ``val`` split's draws, so its mR equals the committed cached run's; checked and written)
and then read:

- **Does the label head learn the categories?** LSD's own head (`label_accuracy`) on the
  training draw and on the validation draw: images, large- and small-object captions.
- **Does the semantic part reach the retrieval embedding?** The cosine of the concatenated
  embedding is (s_res + w^2 s_sem) / (1 + w^2) (``lsd_mix`` = w); the validation mR ranking by
  s_res + a s_sem for a post-hoc a = w^2 in ``MIX_SQUARED`` (a = 0.0625 is the model as trained),
  the semantic part alone, and the variance share of a s_sem (`semantic_reach`).
- **Could category labels matter at all on these scenes?** The oracle: the residual score plus
  alpha times the *true* category agreement 1[c_i = c_j] (perfect category knowledge for both
  images and captions), mR for alpha in ``ORACLE``; and the share of top-1 retrieval errors whose
  wrong answer has the query's category (errors that no category knowledge can fix).
- **Is the loss weight such that it cannot matter?** On one fixed training batch of the trained
  model, `loss_gradients`: the retrieval loss's and lambda L_LSD's gradient norms on the heads
  and the encoders (0 on the encoders with ``lsd_detach=True``), and the loss values.

Run under the lock (about 45 s a run), e.g.

    flock /tmp/heavy.lock nice -n 5 .nox/workspace/bin/python packages/ssjdn/scripts/lsd_diagnosis.py \
        --seeds 65 66 --out docs/benchmarks/ssjdn_lsd_s33_diagnosis.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from ssjdn.bench import BenchSettings, bench_data, cache_stem, train_rung
from ssjdn.diagnostics import label_accuracy, loss_gradients, semantic_reach
from ssjdn.metrics import retrieval_metrics
from ssjdn.ssjdn import SemanticDecoupling
from ssjdn.train import PairBatches, evaluate_retrieval

ROWS = ("BSD centered", "+LSD centered")
MIX_SQUARED = (0.0, 0.0156, 0.0625, 0.25, 1.0, 4.0)
ORACLE = (0.0, 0.05, 0.1, 0.2, 0.5, 1.0)
CACHE = Path("docs/benchmarks/cache/val")


@torch.no_grad()
def reach_and_oracle(model, data) -> dict:
    """The post-hoc semantic weight sweep, the true-category oracle and the same-class errors."""
    model.eval()
    img, txt = model.encode_images(data.images), model.encode_texts(data.flat_captions)
    d = img.shape[1] // 2
    w2 = model.lsd.mix**2
    # undo the embedding's 1 / sqrt(1 + w^2) and w: unit residual and unit semantic parts
    scale = (1 + w2) ** 0.5
    res = (img[:, :d] * scale) @ (txt[:, :d] * scale).T
    sem = (img[:, d:] * scale / model.lsd.mix) @ (txt[:, d:] * scale / model.lsd.mix).T
    cap = torch.as_tensor(data.caption_image)
    same = (data.labels[:, None] == data.labels[cap][None, :]).to(res.dtype)
    out: dict = {"mix_sweep": {}, "oracle": {}}
    for a in MIX_SQUARED:
        out["mix_sweep"][str(a)] = retrieval_metrics(res + a * sem, cap)["mR"]
    out["mix_sweep"]["semantic_only"] = retrieval_metrics(sem, cap)["mR"]
    for a in ORACLE:
        out["oracle"][str(a)] = retrieval_metrics(res + a * same, cap)["mR"]
    full = res + w2 * sem
    # top-1 errors: image -> caption and caption -> image; share whose answer has the right class
    i2t = full.argmax(1)
    wrong_i = cap[i2t] != torch.arange(len(data.images))
    t2i = full.argmax(0)
    wrong_t = t2i != cap
    lab = data.labels
    out["top1_err_same_class_i2t"] = float((lab[cap[i2t]] == lab)[wrong_i].float().mean() * 100)
    out["top1_err_same_class_t2i"] = float((lab[t2i] == lab[cap])[wrong_t].float().mean() * 100)
    out["top1_err_rate_i2t"] = float(wrong_i.float().mean() * 100)
    out["top1_err_rate_t2i"] = float(wrong_t.float().mean() * 100)
    return out


def one(name: str, seed: int, settings: BenchSettings) -> dict:
    train, val, _ = bench_data(settings, seed, "val")
    t0 = time.perf_counter()
    model, hist = train_rung(name, train, val, settings, seed)
    rec: dict = {"row": name, "seed": seed, "train_s": time.perf_counter() - t0}
    rec["mR"] = hist.metrics[-1]["mR"]
    cached = CACHE / settings.key() / f"{cache_stem(name, seed)}.json"
    if cached.is_file():
        rec["mR_cached"] = json.loads(cached.read_text())["metrics"]["mR"]
    rec["head_train"] = label_accuracy(model, train)
    rec["head_val"] = label_accuracy(model, val)
    rec["reach"] = semantic_reach(model, val)
    rec.update(reach_and_oracle(model, val))
    ids, mask = model.text.tokenize(train.flat_captions)
    gen = torch.Generator().manual_seed(0)
    batch = next(iter(PairBatches(train, ids, mask, settings.batch_size, gen)))
    rec["gradients"] = loss_gradients(model, batch)
    model.eval()
    with torch.no_grad():
        out = model(*batch[:3])
        stl = model.criterion(out["img"], out["txt"], batch[3], batch[4]).mean()
        ce = SemanticDecoupling.loss(out["v_logits"], out["t_logits"], batch[3]).mean()
    rec["loss_stl"], rec["loss_ce"] = float(stl), float(ce)
    rec["lsd_weight"] = model.config.lsd_weight
    rec["check_mR"] = evaluate_retrieval(model, val)["mR"]
    return rec


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", required=True)
    p.add_argument("--rows", nargs="+", default=list(ROWS))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    settings = BenchSettings.quick()
    done = json.loads(a.out.read_text()) if a.out.is_file() else []
    have = {(r["row"], r["seed"]) for r in done}
    for seed in a.seeds:
        for name in a.rows:
            if (name, seed) in have:
                continue
            rec = one(name, seed, settings)
            done.append(rec)
            a.out.write_text(json.dumps(done, indent=1))
            print(json.dumps(rec), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
