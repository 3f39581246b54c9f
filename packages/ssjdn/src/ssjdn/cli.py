"""Command line (the shared `maskloop.cli` layout): `ssjdn demo` (about a minute, built-in scenes)
and `ssjdn bench [--quick] [--out DIR] [--resume]` plus ssjdn's own bench options (`--seeds`,
`--split`, `--methods`, `--time-limit`, `--cache`, `--full`, `--quiet`); `--seed` and `--threads` on
both."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def demo(
    out: str | None = None,
    summary_json: str | None = None,
    progress: bool = True,
    seed: int = 0,
    threads: int = 2,
) -> dict[str, float]:
    """Train the dual-encoder baseline and full SSJDN briefly on the built-in scenes; print R@K/mR.

    ``seed`` seeds both models' initialisation and their training (the scenes are fixed draws);
    ``threads`` is the torch CPU thread count."""
    import torch
    from maskloop.report import markdown_table, write_demo_summary

    from ssjdn.baselines import LADDER, ablation_config
    from ssjdn.scenes import make_scenes
    from ssjdn.ssjdn import SSJDN
    from ssjdn.train import train_retrieval

    t0 = time.perf_counter()
    torch.set_num_threads(threads)
    train = make_scenes(400, 48, seed=1)
    test = make_scenes(150, 48, seed=2)
    rows, finals = [], {}
    full = LADDER[-1]  # the full model on today's defaults: ablation_config(full) == SSJDNConfig()
    for name in ("dual-encoder", full):
        model = SSJDN.from_data(train, ablation_config(name), seed=seed)
        hist = train_retrieval(model, train, epochs=6, eval_data=test, seed=seed, progress=progress)
        m = hist.metrics[-1]
        finals[name] = m["mR"]
        rows.append(
            [
                name,
                *(
                    f"{m[k]:.1f}"
                    for k in ("i2t_R@1", "i2t_R@5", "t2i_R@1", "t2i_R@5", "mR", "small_mR")
                ),
                f"{hist.seconds:.0f}",
            ]
        )
    table = markdown_table(
        ["model", "i2t R@1", "i2t R@5", "t2i R@1", "t2i R@5", "mR", "small mR", "s"], rows
    )
    print(f"SSJDN demo: 400 training / 150 test procedural scenes (48px), 6 epochs, seed {seed}")
    print(table)
    seconds = time.perf_counter() - t0
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "ssjdn_demo.md").write_text(table)
    beat = finals[full] > finals["dual-encoder"]
    headline = f"mR {finals[full]:.1f} (SSJDN) vs {finals['dual-encoder']:.1f} (dual encoder)" + (
        "" if beat else ": SSJDN did NOT beat the dual encoder in this run"
    )
    if summary_json is not None:
        write_demo_summary(
            summary_json,
            "ssjdn",
            "image-text retrieval on procedural remote-sensing scenes",
            headline,
            seconds,
            baseline="dual-encoder",
            beat_baseline=beat,
        )
    print(f"{headline}; {seconds:.0f} s")
    return finals


def _demo(args: argparse.Namespace) -> int:
    demo(args.demo_out, args.summary_json, seed=args.seed, threads=args.threads)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from ssjdn.bench import run_bench

    if args.quick and args.full:
        raise SystemExit("ssjdn bench: --quick and --full exclude each other")
    cmd = "ssjdn bench" + (" --full" if args.full else "") + f" --seeds {args.seeds}"
    cmd += f" --seed {args.seed}" if args.seed else ""
    cmd += " --split val" if args.split == "val" else ""
    cmd += f" --epochs {args.epochs}" if args.epochs is not None else ""
    if args.methods:
        cmd += " --methods " + " ".join(f"'{m}'" for m in args.methods)
    try:
        run_bench(
            args.out,
            quick=not args.full,
            seeds=args.seeds,
            methods=args.methods,
            command=cmd,
            progress=not args.quiet,
            split=args.split,
            resume=args.resume,
            time_limit=args.time_limit,
            cache_dir=args.cache,
            first_seed=args.seed,
            threads=args.threads,
            epochs=args.epochs,
            report_name=args.report_name,
        )
    except ValueError as err:
        raise SystemExit(f"ssjdn bench: {err}") from None
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `ssjdn` parser: the shared `maskloop.cli` layout plus ssjdn's own bench options."""
    from maskloop.cli import build_parser as shared_parser
    from maskloop.cli import positive_float, positive_int

    from ssjdn import __version__

    parser = shared_parser(
        "ssjdn",
        description=__doc__,
        demo_help="train the dual encoder and full SSJDN briefly on built-in scenes (about a minute)",
        bench_help="the ablation ladder + AMFMN-style peer on multiscale scenes (resumable in chunks)",
    )
    parser.add_argument("--version", action="version", version=__version__)
    demo_p = parser.subcommands["demo"]
    demo_p.add_argument(
        "--out", dest="demo_out", default=None, metavar="DIR", help="folder for the demo table"
    )
    demo_p.add_argument("--summary-json", default=None, help="write a one-line JSON summary here")
    bench = parser.subcommands["bench"]
    bench.add_argument(
        "--full",
        action="store_true",
        help="larger run (2,000 training images, 25 epochs) instead of the committed 600/12 size "
        "(which --quick and the default both run)",
    )
    bench.add_argument(
        "--seeds",
        type=positive_int,
        default=5,
        help="number of seeds, --seed, --seed+1, ... (default 5)",
    )
    bench.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        metavar="N",
        help="training epochs of every method (default: the run size's, 12 --quick / 25 --full); "
        "cached separately per budget",
    )
    bench.add_argument(
        "--report-name",
        default=None,
        metavar="STEM",
        help="file stem of the report in OUT (default ssjdn, ssjdn_validation for --split val, "
        "+ _e<N> for --epochs N)",
    )
    bench.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="'val' trains/evaluates on the validation draws that choose the defaults (default test)",
    )
    bench.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="ladder rungs, 'AMFMN-style' or variants to run (default: all)",
    )
    bench.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="folder of the per-run cache (default OUT/cache)",
    )
    bench.add_argument(
        "--time-limit",
        type=positive_float,
        default=None,
        metavar="S",
        help="stop starting new runs after this many seconds (the rest: --resume later)",
    )
    bench.add_argument(
        "--quiet", action="store_true", help="no per-epoch progress bar (per-run lines stay)"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ssjdn` console script (the shared `maskloop.cli` layout)."""
    from maskloop.cli import run

    return run(argv, package="ssjdn", demo=_demo, bench=_bench, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
