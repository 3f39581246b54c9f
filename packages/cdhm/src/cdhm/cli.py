"""Command line: ``cdhm demo`` (one simulated transfer task, < 1 min) and
``cdhm bench [--quick] [--out DIR] [--resume]`` (the shared ``maskloop.cli`` flags, with ``--seed``
and ``--threads``) plus cdhm's own bench options (``--cwru``: the CWRU load-transfer tasks on
CWRU-format files read through ``load_cwru``)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def demo(
    out: str | None = None, summary_json: str | None = None, seed: int = 0
) -> dict[str, float]:
    """One hard-tier transfer task (A -> C), one seed: CDHM vs the source-only CNN.

    The caller sets the torch thread count (`cdhm demo --threads`, default 2).
    """
    from maskloop.report import markdown_table, write_demo_summary

    from cdhm.baselines import AlignedCNNClassifier
    from cdhm.causal_hmm import CDHMClassifier
    from cdhm.data import DOMAIN_TIERS, apply_front_end, simulate_domain, split_by_recording

    t0 = time.perf_counter()
    a, c = DOMAIN_TIERS["hard"][0], DOMAIN_TIERS["hard"][2]
    kw = {"recordings_per_class": 6, "windows_per_recording": 6, "window": 8192}
    T = 4
    # The order-envelope front end (per-segment log envelope order spectra), as in the bench.
    s_tr, s_te = (
        apply_front_end(d, "order-envelope", T)
        for d in split_by_recording(simulate_domain(a, 0, **kw))
    )
    t_tr, t_te = (
        apply_front_end(d, "order-envelope", T)
        for d in split_by_recording(simulate_domain(c, 1, **kw))
    )
    rows, acc = [], {}
    for name, est in (
        ("CDHM (MK-MMD on s)", CDHMClassifier(n_segments=T, epochs=40, seed=seed)),
        ("source-only CNN", AlignedCNNClassifier(None, n_segments=T, epochs=40, seed=seed)),
    ):
        t1 = time.perf_counter()
        est.fit(s_tr.x, s_tr.y, t_tr.x, s_tr.domain, t_tr.domain)
        acc[name] = est.score(t_te.x, t_te.y)
        rows.append(
            [
                name,
                f"{100 * est.score(s_te.x, s_te.y):.1f}",
                f"{100 * acc[name]:.1f}",
                f"{time.perf_counter() - t1:.1f}",
            ]
        )
        if out is not None and isinstance(est, CDHMClassifier):
            est.save(Path(out) / "cdhm_model")
    print(
        f"Simulated 6205-2RS bearing, task {a.name} ({a.rpm:.0f} rpm) -> {c.name} "
        f"({c.rpm:.0f} rpm), 4 classes, split by recording, {len(t_te)} target test windows, "
        "order-envelope front end"
    )
    print(markdown_table(["method", "source acc %", "target acc %", "train s"], rows))
    secs = time.perf_counter() - t0
    if summary_json:
        cd, so = acc["CDHM (MK-MMD on s)"], acc["source-only CNN"]
        verdict = "beats" if cd > so else "does NOT beat"
        write_demo_summary(
            summary_json,
            "cdhm",
            "CDHM vs source-only CNN on one simulated bearing transfer task",
            f"CDHM {verdict} the source-only CNN: target accuracy {100 * cd:.1f} % vs "
            f"{100 * so:.1f} %",
            secs,
            baseline="source-only CNN",
            beat_baseline=bool(cd > so),
        )
    return acc


def _demo(args: argparse.Namespace) -> int:
    demo(args.demo_out, args.summary_json, seed=args.seed)
    return 0


def _bench_cwru(args: argparse.Namespace, seeds: list[int]) -> int:
    """`cdhm bench --cwru`: the CWRU load-transfer tasks through `load_cwru` (issue 18)."""
    from cdhm.bench_cwru import CWRU_QUICK_TASKS, CWRUBenchConfig, run_cwru_bench

    if args.select or args.validate or args.tier != "hard":
        print(
            "cdhm bench: --cwru cannot be combined with --select, --validate or --tier",
            file=sys.stderr,
        )
        return 2
    config = CWRUBenchConfig(seeds=seeds, front_end=args.front_end, root=args.cwru_root)
    cmd = "cdhm bench --cwru" + (" --quick" if args.quick else "")
    if args.quick:
        config.tasks = list(CWRU_QUICK_TASKS)
    if args.cwru_root:
        cmd += f" --cwru-root {args.cwru_root}"
    cmd += (f" --seed {args.seed}" if args.seed else "") + (
        f" --seeds {args.seeds}" if args.seeds != 5 else ""
    )
    if args.front_end != "order-envelope":
        cmd += f" --front-end {args.front_end}"
    if args.methods:
        config = CWRUBenchConfig(
            seeds=config.seeds,
            tasks=config.tasks,
            front_end=config.front_end,
            root=config.root,
            methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        )
        cmd += f" --methods '{args.methods}'"
    _, text = run_cwru_bench(
        config=config,
        out=args.out,
        command=cmd,
        progress=not args.quiet,
        resume=args.resume,
        max_minutes=args.max_minutes,
        threads=args.threads,
    )
    print(text)
    return 0


def _bench(args: argparse.Namespace) -> int:
    from cdhm.bench import (
        DEFAULT_LADDER,
        DEV_SEEDS,
        VALIDATION_SEEDS,
        BenchConfig,
        run_bench,
        validation_tasks,
    )
    from cdhm.data import DOMAIN_TIERS, transfer_tasks

    seeds = list(range(args.seed, args.seed + args.seeds))
    if args.val_seeds != len(VALIDATION_SEEDS) and not args.validate:
        print("cdhm bench: --val-seeds needs --validate", file=sys.stderr)
        return 2
    if args.val_tasks != "s18" and not args.validate:
        print("cdhm bench: --val-tasks needs --validate", file=sys.stderr)
        return 2
    if args.val_seed_start is not None and not args.validate:
        print("cdhm bench: --val-seed-start needs --validate", file=sys.stderr)
        return 2
    if args.val_seed_start is not None and args.val_seed_start < VALIDATION_SEEDS[0]:
        print(
            f"cdhm bench: --val-seed-start must be >= {VALIDATION_SEEDS[0]} (lower seeds are "
            f"the test protocol's recordings), got {args.val_seed_start}",
            file=sys.stderr,
        )
        return 2
    if args.validate and (args.select or args.quick or args.seed or args.seeds != 5):
        print(
            "cdhm bench: --validate runs its own seeds (100-102) and tasks; it cannot be combined "
            "with --select, --quick, --seed or --seeds",
            file=sys.stderr,
        )
        return 2
    if args.cwru or args.cwru_root:
        if args.segments != BenchConfig.n_segments:
            print("cdhm bench: --segments is for the simulated bench, not --cwru", file=sys.stderr)
            return 2
        return _bench_cwru(args, seeds)
    cmd = (
        "cdhm bench"
        + (" --quick" if args.quick else "")
        + (" --select" if args.select else "")
        + (f" --seed {args.seed}" if args.seed and not args.select else "")
        + (f" --seeds {args.seeds}" if args.seeds != 5 else "")
        + (f" --front-end {args.front_end}" if args.front_end != "order-envelope" else "")
        + (f" --tier {args.tier}" if args.tier != "hard" else "")
    )
    config = BenchConfig(seeds=seeds, tier=args.tier, front_end=args.front_end)
    if not args.quick:
        config.tasks = transfer_tasks(len(DOMAIN_TIERS[args.tier]))
    if args.select:
        config = BenchConfig(
            seeds=list(DEV_SEEDS),
            tier=args.tier,
            front_end=args.front_end,
            methods=("CDHM", "CDHM-no-temporal", "MK-MMD"),
            ablations=False,
            variants=True,
        )
    name = "cdhm_select" if args.select else "cdhm"
    if args.validate:
        start = VALIDATION_SEEDS[0] if args.val_seed_start is None else args.val_seed_start
        val_seeds = list(range(start, start + args.val_seeds))
        config = BenchConfig(
            seeds=val_seeds,
            tasks=validation_tasks(args.val_tasks),
            tier=args.tier,
            front_end=args.front_end,
            methods=DEFAULT_LADDER,
            ablations=False,
        )
        cmd = cmd.replace(" --quick", "") + " --validate"
        if args.val_seeds != len(VALIDATION_SEEDS):
            cmd += f" --val-seeds {args.val_seeds}"
        if args.val_seed_start is not None:
            cmd += f" --val-seed-start {args.val_seed_start}"
        if args.val_tasks != "s18":
            cmd += f" --val-tasks {args.val_tasks}"
        name = "cdhm_validate"
    if args.methods:
        chosen = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        config.methods, config.ablations, config.variants = chosen, False, False
        cmd += f" --methods '{args.methods}'"
    if args.segments != BenchConfig.n_segments:
        if config.window % args.segments:
            print(
                f"cdhm bench: --segments must divide the window length {config.window}, "
                f"got {args.segments}",
                file=sys.stderr,
            )
            return 2
        config.n_segments = args.segments
        cmd += f" --segments {args.segments}"
    if args.name is not None:
        if not args.name or any(ch in args.name for ch in "/\\ ") or args.name.startswith("."):
            print(
                f"cdhm bench: --name must be a plain file name stem, got {args.name!r}",
                file=sys.stderr,
            )
            return 2
        name = args.name
        cmd += f" --name {args.name}"
    _, text = run_bench(
        quick=args.quick,
        out=args.out,
        seeds=args.seeds,
        command=cmd,
        config=config,
        progress=not args.quiet,
        resume=args.resume,
        max_minutes=args.max_minutes,
        name=name,
        threads=args.threads,
    )
    print(text)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `cdhm` parser: the shared `maskloop.cli` layout plus cdhm's own bench options."""
    from maskloop.cli import build_parser as shared_parser
    from maskloop.cli import positive_int

    from cdhm import __version__

    parser = shared_parser(
        "cdhm",
        description=__doc__,
        demo_help="one simulated transfer task, CDHM vs the source-only CNN (< 1 min)",
        bench_help="hard-tier transfer benchmark -> <out>/cdhm.{md,json,png} (resumable)",
    )
    parser.add_argument("--version", action="version", version=__version__)
    p_demo = parser.subcommands["demo"]
    p_demo.add_argument(
        "--out", dest="demo_out", default=None, help="directory to save the fitted CDHM model"
    )
    p_demo.add_argument("--summary-json", default=None, help="write a one-line JSON summary here")
    p_bench = parser.subcommands["bench"]
    p_bench.add_argument(
        "--seeds",
        type=positive_int,
        default=5,
        help="number of seeds, --seed to --seed + N - 1 (default: 5; --select always uses the "
        "dev seeds 100 and 101)",
    )
    p_bench.add_argument(
        "--front-end",
        default="order-envelope",
        choices=["order-envelope", "raw"],
        help="input of every neural method (default: per-segment log envelope order spectra)",
    )
    p_bench.add_argument(
        "--select",
        action="store_true",
        help="the ablation ladder of CDHM variants on the dev seeds (100, 101), never the "
        "evaluation recordings -> <out>/cdhm_select.*",
    )
    p_bench.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop starting new task-seed jobs after this many minutes (continue with --resume)",
    )
    p_bench.add_argument(
        "--tier",
        default="hard",
        choices=["mild", "hard", "field"],
        help="simulator tier (field: fan/drive-end sensor, load-dependent speed, interference)",
    )
    p_bench.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods to run (default: all baselines, ablations and, with "
        "--select, the CDHM variants)",
    )
    p_bench.add_argument(
        "--validate",
        action="store_true",
        help="the library default's bench row and its three ablation rungs (or --methods) on fresh "
        "recordings (dev seeds 100-102, see --val-seeds) of pseudo-target tasks A->B, B->C, "
        "D->B, D->C (the quick suite's test targets excluded; the full grid holds these "
        "domain pairs, never these recordings) -> <out>/cdhm_validate.*",
    )
    p_bench.add_argument(
        "--val-seeds",
        type=positive_int,
        default=3,
        help="with --validate: number of validation seeds, 100 to 99 + N (default 3: 100-102; "
        "fresh recordings that no test run simulates)",
    )
    p_bench.add_argument(
        "--val-seed-start",
        type=int,
        default=None,
        metavar="S",
        help="with --validate: first validation seed, so --val-seeds N runs S to S + N - 1 "
        "(default 100; >= 100, a fresh draw for a confirmation, e.g. 106 after 100-105)",
    )
    p_bench.add_argument(
        "--val-tasks",
        default="s18",
        choices=["s18", "0db"],
        help="with --validate: the pseudo-target task set (default s18: A->B, B->C, D->B, D->C; "
        "0db: those and A->D, the one protocol pair whose pseudo-target is the 0 dB domain D)",
    )
    p_bench.add_argument(
        "--cwru",
        action="store_true",
        help="the CWRU load-transfer tasks i->j (loads 0-3 hp, all 12; --quick: 0->1, 0->3, "
        "3->0) on CWRU-format .mat files written per seed by cdhm.cwru.write_cwru_files and read "
        "back with load_cwru; CDHM, source-only, DANN, MK-MMD, Deep CORAL -> <out>/cdhm_cwru.*",
    )
    p_bench.add_argument(
        "--cwru-root",
        default=None,
        metavar="DIR",
        help="with --cwru (implied): read the real CWRU 12 kHz drive-end files <number>.mat "
        "from DIR instead of generating them (the same files for every seed)",
    )
    p_bench.add_argument(
        "--name",
        default=None,
        help="base name of the report and cache files <out>/<name>.{md,json,png}, "
        "<name>_cache.json (default: cdhm, cdhm_select or cdhm_validate)",
    )
    p_bench.add_argument(
        "--segments",
        type=positive_int,
        default=4,
        metavar="T",
        help="segments per window, the sequence length of every neural method (default 4; must "
        "divide the 8192-sample window). More segments are finer time steps for the Markov "
        "chains (issue 18's progressive disentanglement), each with fewer shaft revolutions, so "
        "a coarser order spectrum: it assumes the fault orders stay resolved (T = 8: about 2-3 "
        "revolutions a segment). Part of the cache key: runs of another T are never reused",
    )
    p_bench.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `cdhm` console script (the shared `maskloop.cli` layout)."""
    from maskloop.cli import run

    return run(argv, package="cdhm", demo=_demo, bench=_bench, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
