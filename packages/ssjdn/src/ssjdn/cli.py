"""Command line: `ssjdn demo` (about a minute, built-in scenes) and `ssjdn bench [--quick]`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def demo(
    out: str | None = None, summary_json: str | None = None, progress: bool = True
) -> dict[str, float]:
    """Train the dual-encoder baseline and full SSJDN briefly on the built-in scenes; print R@K/mR."""
    import torch
    from maskloop.report import markdown_table, write_demo_summary

    from ssjdn.baselines import ablation_config
    from ssjdn.scenes import make_scenes
    from ssjdn.ssjdn import SSJDN
    from ssjdn.train import train_retrieval

    t0 = time.perf_counter()
    torch.set_num_threads(2)
    train = make_scenes(400, 48, seed=1)
    test = make_scenes(150, 48, seed=2)
    rows, finals = [], {}
    for name in ("dual-encoder", "+STL (full SSJDN)"):
        model = SSJDN.from_data(train, ablation_config(name), seed=0)
        hist = train_retrieval(model, train, epochs=6, eval_data=test, seed=0, progress=progress)
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
    print("SSJDN demo: 400 training / 150 test procedural scenes (48px), 6 epochs, seed 0")
    print(table)
    seconds = time.perf_counter() - t0
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "ssjdn_demo.md").write_text(table)
    beat = finals["+STL (full SSJDN)"] > finals["dual-encoder"]
    headline = (
        f"mR {finals['+STL (full SSJDN)']:.1f} (SSJDN) vs {finals['dual-encoder']:.1f} (dual encoder)"
        + ("" if beat else ": SSJDN did NOT beat the dual encoder in this run")
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


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `ssjdn` console script."""
    parser = argparse.ArgumentParser(prog="ssjdn", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="cmd")
    p_demo = sub.add_parser("demo", help="a one-minute demo on the built-in scenes")
    p_demo.add_argument("--out", default=None, help="folder for the demo table")
    p_demo.add_argument("--summary-json", default=None, help="write a one-line JSON summary here")
    p_bench = sub.add_parser("bench", help="the ablation ladder + AMFMN-style peer benchmark")
    p_bench.add_argument(
        "--quick",
        action="store_true",
        help="the committed run size (600 training images, 12 epochs); the default, kept for nox",
    )
    p_bench.add_argument(
        "--full",
        action="store_true",
        help="larger run (2,000 training images, 25 epochs) instead of the committed 600/12 size",
    )
    p_bench.add_argument(
        "--out",
        default="ssjdn-bench",
        help="results folder (default ./ssjdn-bench; the repository's nox session passes docs/benchmarks)",
    )
    p_bench.add_argument("--seeds", type=int, default=5, help="number of seeds (default 5)")
    p_bench.add_argument(
        "--split",
        choices=("test", "val"),
        default="test",
        help="'val' trains/evaluates on the validation draws that choose the defaults (default test)",
    )
    p_bench.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="ladder rungs, 'AMFMN-style' or variants to run (default: all)",
    )
    p_bench.add_argument(
        "--resume", action="store_true", help="reuse finished runs cached under OUT/cache"
    )
    p_bench.add_argument(
        "--cache", default=None, help="folder of the per-run cache (default OUT/cache)"
    )
    p_bench.add_argument(
        "--time-limit",
        type=float,
        default=None,
        help="stop starting new runs after this many seconds (the rest: --resume later)",
    )
    p_bench.add_argument(
        "--quiet", action="store_true", help="no per-epoch progress bar (per-run lines stay)"
    )
    args = parser.parse_args(argv)
    if args.version:
        from ssjdn import __version__

        print(__version__)
        return 0
    if args.cmd == "demo":
        demo(args.out, args.summary_json)
        return 0
    if args.cmd == "bench":
        from ssjdn.bench import run_bench

        if args.seeds < 1:
            parser.error(f"--seeds must be >= 1, got {args.seeds}")
        if args.quick and args.full:
            parser.error("--quick and --full exclude each other")
        if args.time_limit is not None and not args.time_limit > 0:
            parser.error(f"--time-limit must be > 0 seconds, got {args.time_limit}")
        cmd = "ssjdn bench" + (" --full" if args.full else "") + f" --seeds {args.seeds}"
        cmd += " --split val" if args.split == "val" else ""
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
            )
        except ValueError as err:
            parser.error(str(err))
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
