"""The SSJDN benchmark: the ablation ladder on the built-in scenes, several seeds, via maskloop.report.

For every seed a fresh train/test draw of the procedural scenes is made and every rung of
`ABLATION_LADDER` is trained on it with the same budget. Recorded per run: R@1/5/10 both ways, mR,
mR restricted to small-object queries (``small_mR``), the first epoch reaching 90% of the final mR
(``epochs_to_90``) and training time. Outputs: ``ssjdn.md``/``.json`` (tables), ``ssjdn.png`` (mR per
epoch, mean ± std over seeds) and ``ssjdn_retrievals.png`` (query captions with their top-5 images).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssjdn.baselines import ABLATION_LADDER, VARIANTS, ablation_config
from ssjdn.data import RetrievalData
from ssjdn.metrics import retrieval_metrics
from ssjdn.scenes import make_scenes
from ssjdn.ssjdn import SSJDN
from ssjdn.train import TrainHistory, train_retrieval

__all__ = ["BenchSettings", "evaluation_seconds", "plot_retrievals", "run_bench", "train_rung"]

BASELINE = "dual-encoder"
FULL = "+STL (full SSJDN)"


@dataclass(frozen=True)
class BenchSettings:
    """Sizes and budget of one benchmark run."""

    n_train: int
    n_test: int
    image_size: int
    epochs: int
    batch_size: int = 128
    lr: float = 2e-3

    @classmethod
    def quick(cls) -> BenchSettings:
        """CI-sized (about 10 minutes on 2 cores)."""
        return cls(n_train=800, n_test=250, image_size=48, epochs=15)

    @classmethod
    def full(cls) -> BenchSettings:
        """The default run."""
        return cls(n_train=2000, n_test=500, image_size=64, epochs=25)


def evaluation_seconds(n_images: int = 1000, n_captions: int = 5000, repeats: int = 3) -> float:
    """Best-of-``repeats`` wall time of `retrieval_metrics` on a random n_images x n_captions matrix."""
    rng = np.random.default_rng(0)
    sims = rng.normal(size=(n_images, n_captions)).astype(np.float32)
    cap_img = np.repeat(np.arange(n_images), int(np.ceil(n_captions / n_images)))[:n_captions]
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        retrieval_metrics(sims, cap_img)
        best = min(best, time.perf_counter() - t)
    return best


def train_rung(
    name: str,
    train: RetrievalData,
    test: RetrievalData | None,
    settings: BenchSettings,
    seed: int,
    progress: bool = False,
    **overrides: Any,
) -> tuple[SSJDN, TrainHistory]:
    """Build rung/variant ``name`` with its initialisation seeded by ``seed`` and train it with the
    benchmark's budget (evaluating on ``test`` after every epoch when given). The result depends
    only on the arguments, not on what the process ran before."""
    model = SSJDN.from_data(train, ablation_config(name, **overrides), seed=seed)
    hist = train_retrieval(
        model,
        train,
        epochs=settings.epochs,
        batch_size=settings.batch_size,
        lr=settings.lr,
        eval_data=test,
        seed=seed,
        progress=progress,
    )
    return model, hist


def plot_retrievals(
    model: SSJDN, data: RetrievalData, path: str | Path, n_queries: int = 4, seed: int = 0
) -> Path:
    """Figure: query captions (half about small objects) and their top-5 images; the right image is
    framed green, wrong ones red."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    caps = data.flat_captions
    cap_img = data.caption_image
    small = data.caption_small if data.caption_small is not None else np.zeros(len(caps), bool)
    pool_small, pool_big = np.flatnonzero(small), np.flatnonzero(~small)
    k_small = min(n_queries // 2, len(pool_small))
    queries = [
        *rng.choice(pool_small, k_small, replace=False).tolist(),
        *rng.choice(pool_big, min(n_queries - k_small, len(pool_big)), replace=False).tolist(),
    ]
    sims = model.encode_images(data.images) @ model.encode_texts([caps[q] for q in queries]).T
    fig, axes = plt.subplots(len(queries), 5, figsize=(10, 2.3 * len(queries)), squeeze=False)
    for r, q in enumerate(queries):
        top = torch.argsort(sims[:, r], descending=True)[:5].tolist()
        for c, i in enumerate(top):
            ax = axes[r][c]
            ax.imshow(data.images[i].permute(1, 2, 0).numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            colour = "tab:green" if i == cap_img[q] else "tab:red"
            for s in ax.spines.values():
                s.set_edgecolor(colour)
                s.set_linewidth(4)
            if c == 0:
                ax.set_title(f"“{caps[q]}”", loc="left", fontsize=8)
    fig.suptitle(
        "SSJDN text→image: top-5 images per query (green = the captioned image)", fontsize=9
    )
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _rk_table(results: Any, methods: list[str]) -> str:
    from maskloop.report import markdown_table, mean_std

    keys = ["i2t_R@1", "i2t_R@5", "i2t_R@10", "t2i_R@1", "t2i_R@5", "t2i_R@10", "mR", "small_mR"]
    rows = []
    for m in methods:
        row: list[Any] = [m]
        for k in keys:
            mu, sd = mean_std(results.values(k, m).values())
            row.append(f"{mu:.1f} ± {sd:.1f}")
        rows.append(row)
    return markdown_table(["method", *keys], rows)


def run_bench(
    out: str | Path = "docs/benchmarks",
    quick: bool = False,
    seeds: int = 3,
    settings: BenchSettings | None = None,
    methods: list[str] | None = None,
    command: str | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Run the ablation ladder and write ``ssjdn.md``/``.json``/``.png`` (+ retrieval figure) to ``out``.

    Returns the Results object, the table text and the goal checks.
    """
    from maskloop import report

    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"seeds must be a positive int, got {seeds!r}")
    methods = list(methods) if methods is not None else [*ABLATION_LADDER, *VARIANTS]
    bad = [m for m in methods if m not in ABLATION_LADDER and m not in VARIANTS]
    if bad:
        raise ValueError(
            f"methods must be rungs of the ladder {list(ABLATION_LADDER)} or variants "
            f"{list(VARIANTS)}, got {bad}"
        )
    ladder = [m for m in methods if m in ABLATION_LADDER]
    if not ladder:
        raise ValueError("methods must include at least one rung of the ladder")
    s = settings or (BenchSettings.quick() if quick else BenchSettings.full())
    out = Path(out)
    torch.set_num_threads(2)
    cmd = command or f"ssjdn bench{' --quick' if quick else ''} --seeds {seeds}"
    res = report.Results("ssjdn", cmd, config={**s.__dict__, "seeds": seeds, "methods": methods})
    curves = report.Results("ssjdn", cmd)
    example: tuple[SSJDN, RetrievalData] | None = None
    t_start = time.perf_counter()
    for seed in range(seeds):
        train = make_scenes(s.n_train, s.image_size, seed=1000 + seed)
        test = make_scenes(s.n_test, s.image_size, seed=2000 + seed)
        for name in methods:
            model, hist = train_rung(name, train, test, s, seed, progress=progress)
            final = hist.metrics[-1]
            res.add(
                name,
                seed,
                {**final, "epochs_to_90": hist.epochs_to_fraction(0.9), "train_s": hist.seconds},
            )
            for e, m in enumerate(hist.metrics, 1):
                curves.add(name, seed, {"mR": m["mR"]}, epoch=e)
            print(
                f"seed {seed} {name:22s} mR {final['mR']:5.1f} small {final.get('small_mR', 0):5.1f} "
                f"({hist.seconds:.0f}s)",
                flush=True,
            )
            if seed == 0 and name == (FULL if FULL in methods else ladder[-1]):
                example = (model, test)
    total = time.perf_counter() - t_start
    eval_s = evaluation_seconds()
    base = BASELINE if BASELINE in methods else ladder[0]
    mr_table = res.table("mR", baseline=base, setting_keys=[])
    small_table = res.table("small_mR", baseline=base, setting_keys=[])
    conv_table = res.table("epochs_to_90", setting_keys=[], digits=1)
    rk = _rk_table(res, methods)
    means = {m: float(np.mean(list(res.values("mR", m).values()))) for m in methods}
    smeans = {m: float(np.mean(list(res.values("small_mR", m).values()))) for m in methods}
    top = FULL if FULL in methods else ladder[-1]
    gain = means[top] - means[base]
    sgain = smeans[top] - smeans[base]
    steps = [means[b] - means[a] for a, b in zip(ladder[:-1], ladder[1:])]
    goals = {
        f"{top} ahead of {base} by >= 5 mR": (gain >= 5.0, f"{gain:+.2f} mR"),
        "each component adds on the ladder": (
            all(d > 0 for d in steps),
            ", ".join(f"{b}: {d:+.2f}" for b, d in zip(ladder[1:], steps)),
        ),
        "larger (positive) gain on small-object queries": (
            sgain > max(gain, 0.0),
            f"small {sgain:+.2f} vs all {gain:+.2f}",
        ),
        "evaluation of 1,000 x 5,000 under 5 s": (eval_s < 5.0, f"{eval_s:.3f} s"),
    }
    goal_rows = [[g, "met" if ok else "missed", v] for g, (ok, v) in goals.items()]
    goal_table = report.markdown_table(["goal", "status", "measured"], goal_rows)
    out.mkdir(parents=True, exist_ok=True)
    png = report.plot_metric(
        curves,
        "mR",
        "epoch",
        out / "ssjdn.png",
        title="SSJDN ladder: test mR per epoch (mean ± std over seeds)",
        ylabel="mR (%)",
    )
    figs = [png.name]
    if example is not None:
        figs.append(plot_retrievals(example[0], example[1], out / "ssjdn_retrievals.png").name)
    sections = [
        f"Built-in procedural scenes: {s.n_train} training / {s.n_test} test images ({s.image_size}px, "
        f"5 captions each, 10 classes), {s.epochs} epochs, batch {s.batch_size}, Adam lr {s.lr}, "
        f"seeds 0..{seeds - 1} (fresh scenes per seed). Total wall time {total / 60:.1f} min.",
        "## mR (mean of R@1/5/10 both ways), paired Δ against the dual encoder\n\n" + mr_table,
        "## mR on small-object queries (captions/images whose objects are all small; full gallery)\n\n"
        + small_table,
        "## R@K (mean ± std over seeds)\n\n" + rk,
        "## Epochs to 90% of the final mR (convergence)\n\n" + conv_table,
        "## Goals\n\n" + goal_table,
        "## Figures\n\n" + "\n\n".join(f"![{f}]({f})" for f in figs),
    ]
    report.write_report(out / "ssjdn.md", "SSJDN benchmark (ablation ladder)", sections, res)
    text = "\n".join([mr_table, small_table, rk, conv_table, goal_table])
    print(text)
    return {"results": res, "curves": curves, "table": text, "goals": goals, "seconds": total}
