"""Command line: `lnpt demo` (under a minute) and `lnpt bench [--quick] [--out DIR] [--resume]
[--seeds N]`, each with `--seed` and `--threads` (the shared `maskloop.cli`)."""

from __future__ import annotations

import argparse
import copy
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    from lnpt.runtime import flush_denormal

    with flush_denormal():  # lnpt's run set-up (`lnpt.runtime`)
        return _demo_run(args)


def _demo_run(args: argparse.Namespace) -> int:
    import torch
    from maskloop import MaskedTraining, evaluate, fit, report, seed_everything

    from lnpt.baselines import baseline_mask
    from lnpt.data import load_digits_split
    from lnpt.learning_gap import head_pattern, prune
    from lnpt.models import MLP
    from lnpt.training import LabelFreeTrainer

    start = time.perf_counter()
    data = load_digits_split(0)  # the data split stays fixed; --seed draws the models and batches
    seed_everything(1 + args.seed)
    teacher = MLP()
    opt = torch.optim.Adam(teacher.parameters(), lr=1e-2)
    ce = torch.nn.CrossEntropyLoss(reduction="none")
    fit(
        teacher,
        data.loader("teacher", 64, shuffle=True),
        epochs=30,
        optimizer=opt,
        loss_fn=ce,
        progress=False,
    )
    teacher.eval()
    seed_everything(args.seed)
    init = MLP()
    unlabeled = data.loader("student", 128, labels=False)
    rows = [["teacher (dense, labels, other half)", "0.00", f"{_acc(teacher, data, evaluate):.2f}"]]
    sparsity = 0.95
    head = head_pattern(init)  # both masks leave the classifier dense, as in the benchmark
    for name in ("snip", "lnpt"):
        if name == "lnpt":
            mask = prune(init, teacher, unlabeled, sparsity, exclude=head)
        else:
            mask = baseline_mask(
                "snip", init, sparsity, data=data.loader("student", 128), exclude=head
            )
        student = copy.deepcopy(init)
        mask.apply_(student)
        if name == "lnpt":
            LabelFreeTrainer(student, teacher, mask, lr=1e-2).fit(
                data.loader("student", 64, shuffle=True, labels=False), 30, progress=False
            )
            label = "LNPT mask + label-free training (no labels)"
        else:
            opt = torch.optim.Adam(student.parameters(), lr=1e-2)
            fit(  # the mask reaches training one way: a MaskedTraining callback of fit
                student,
                data.loader("student", 64, shuffle=True),
                epochs=30,
                optimizer=opt,
                loss_fn=ce,
                callbacks=[MaskedTraining(student, mask, opt)],
                progress=False,
            )
            label = "SNIP mask + supervised training"
        rows.append([label, f"{mask.sparsity:.2f}", f"{_acc(student, data, evaluate):.2f}"])
    seconds = time.perf_counter() - start
    print(report.markdown_table(["student (digits MLP)", "sparsity", "test accuracy (%)"], rows))
    print(f"({seconds:.1f} s)")
    lnpt_acc, snip_acc = float(rows[2][2]), float(rows[1][2])
    beat = lnpt_acc >= snip_acc
    headline = (
        f"LNPT without labels {lnpt_acc:.2f}% vs SNIP with labels {snip_acc:.2f}% at 95% sparsity"
        + ("" if beat else " (LNPT did not beat SNIP in this run)")
    )
    print(headline)
    if args.summary_json:
        report.write_demo_summary(
            args.summary_json,
            "lnpt",
            "label-free pruning at 95% sparsity of a digits MLP, guided by a teacher",
            headline,
            seconds,
            baseline="SNIP mask + supervised training",
            beat_baseline=beat,
        )
    return 0


def _acc(model, data, evaluate) -> float:  # noqa: ANN001
    return 100 * evaluate(model, data.loader("test", 256))["accuracy"]


#: LNPT's scoring flags of `lnpt bench`: (flag, argparse dest, `lnpt_options` key, the value that
#: leaves it out), in the order they enter `lnpt_options` and a report's command
SCORING_FLAGS = (
    ("--score-epochs", "score_epochs", "score_epochs", 0),
    ("--score-rounds", "score_rounds", "rounds", None),
    ("--score-allocation", "score_allocation", "allocation", "global"),
    ("--score-standardize", "score_standardize", "standardize", False),
    ("--score-average", "score_average", "average", "gradient"),
    ("--score-norm", "score_norm", "score_norm", None),
    ("--score-gap", "score_gap", "gap", "squared"),
    ("--score-checkpoints", "score_checkpoints", "checkpoints", 1),
    ("--score-path", "score_path", "path_term", None),
)


def _bench(args: argparse.Namespace) -> int:
    from lnpt.bench import BenchConfig, parse_epochs, run_bench

    if args.seeds is not None and args.seeds < 1:
        args._parser.error(f"--seeds must be >= 1, got {args.seeds}")
    try:
        epochs = parse_epochs(args.epochs or ())
    except ValueError as exc:
        args._parser.error(str(exc))
    if not args.report or any(c in args.report for c in "/\\") or args.report.startswith("."):
        args._parser.error(f"--report must be a plain file stem such as lnpt, got {args.report!r}")
    modes = {"--ablation": args.ablation, "--training-ablation": args.training_ablation,
             "--timing": args.timing, "--anatomy": args.anatomy,
             "--protocol-check": args.protocol_check,
             "--teacher-check": args.teacher_check,
             "--student-lr-check": args.student_lr_check}  # fmt: skip
    needs = {"--variants": ("--ablation", args.variants),
             "--ablation-training": ("--ablation", args.ablation_training),
             "--training-variants": ("--training-ablation", args.training_variants),
             "--epoch-budgets": ("--protocol-check", args.epoch_budgets),
             "--student-lrs": ("--student-lr-check", args.student_lrs),
             "--student-recipes": ("--student-lr-check", args.student_recipes),
             "--student-lr-arms": ("--student-lr-check", args.student_lr_arms),
             "--first-seed": ("--student-lr-check", args.first_seed is not None),
             "--prefix-epochs": ("--student-lr-check", args.prefix_epochs)}  # fmt: skip
    for flag, (mode, value) in needs.items():
        if value and not modes[mode]:
            args._parser.error(f"{flag} only applies with {mode}")
    if args.score_epochs < 0:
        args._parser.error(f"--score-epochs must be an int >= 0, got {args.score_epochs}")
    if args.score_rounds is not None and args.score_rounds < 1:
        args._parser.error(f"--score-rounds must be an int >= 1, got {args.score_rounds}")
    if args.score_checkpoints < 1:
        args._parser.error(f"--score-checkpoints must be an int >= 1, got {args.score_checkpoints}")
    scoring: dict[str, object] = {}
    scoring_flags = ""  # the scoring flags given, as they appear in a report's command
    for flag, dest, key, off in SCORING_FLAGS:
        value = getattr(args, dest)
        if value != off:
            scoring[key] = value
            scoring_flags += f" {flag}" + ("" if value is True else f" {value}")
    if scoring and any(v for m, v in modes.items() if m != "--student-lr-check"):
        on = ", ".join(m for m, v in modes.items() if v)
        args._parser.error(
            f"{scoring_flags.split()[0]} applies to the test benchmark and --student-lr-check, "
            f"not {on}"
        )
    if args.sparsities and any(modes.values()):
        on = ", ".join(m for m, v in modes.items() if v)
        args._parser.error(f"--sparsities only applies to the test benchmark, not with {on}")
    if epochs and any(modes.values()):
        on = ", ".join(m for m, v in modes.items() if v)
        args._parser.error(f"--epochs only applies to the test benchmark, not with {on}")
    if args.report != "lnpt" and any(modes.values()):
        on = ", ".join(m for m, v in modes.items() if v)
        args._parser.error(f"--report names the test benchmark's report; {on} write their own")
    for flag, value in (("--variants", args.variants), ("--models", args.models),
                        ("--training-variants", args.training_variants), ("--arms", args.arms),
                        ("--epoch-budgets", args.epoch_budgets),
                        ("--student-lr-arms", args.student_lr_arms),
                        ("--prefix-epochs", args.prefix_epochs),
                        ("--sparsities", args.sparsities)):  # fmt: skip
        twice = sorted({v for v in value or () if list(value).count(v) > 1})
        if twice:
            args._parser.error(f"{flag} lists {', '.join(map(str, twice))} more than once")
    out = str(args.out).rstrip("/")
    start = time.perf_counter()
    if args.timing:
        import json
        from pathlib import Path

        from lnpt.bench import resnet18_scoring_time

        t = resnet18_scoring_time(threads=args.threads)
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "lnpt_resnet18_timing.json").write_text(json.dumps(t, indent=1) + "\n")
        print(json.dumps(t))
        return 0
    if args.teacher_check:
        from lnpt.teachers import TeacherCheckConfig, teacher_check

        models = args.models or ["cnn"]
        if len(models) != 1:
            args._parser.error("--teacher-check takes one model (--models MODEL)")
        tc = TeacherCheckConfig(model=models[0], seeds=args.seeds or 10)
        command = (
            "lnpt bench --teacher-check"
            + (f" --seeds {args.seeds}" if args.seeds else "")
            + (f" --models {models[0]}" if args.models else "")
            + (f" --threads {args.threads}" if args.threads != 2 else "")
        )
        _, chosen = teacher_check(
            tc, out, command, resume=args.resume, budget_s=args.budget_s, threads=args.threads
        )
        print(f"{out}/lnpt_teacher_{models[0]}.md: chosen {chosen}")
        print(f"took {time.perf_counter() - start:.0f} s")
        return 0
    if args.student_lr_check:
        from lnpt.student_lr import (
            StudentLrCheckConfig,
            parse_lrs,
            parse_recipes,
            student_lr_check,
        )

        models = args.models or ["cnn"]
        if len(models) != 1:
            args._parser.error("--student-lr-check takes one model (--models MODEL)")
        if args.student_lrs and args.student_recipes:
            args._parser.error("--student-lrs and --student-recipes: give one of them")
        sc = StudentLrCheckConfig(model=models[0], seeds=args.seeds or 10)
        sc.bench.lnpt_options = dict(scoring)
        try:
            if args.student_lrs:
                sc.lrs = parse_lrs(args.student_lrs)
            if args.student_recipes:
                sc.recipes = parse_recipes(args.student_recipes)
            if args.student_lr_arms:
                sc.arms = tuple(args.student_lr_arms)
            if args.first_seed is not None:
                sc.first_seed = args.first_seed
            if args.prefix_epochs:
                sc.prefix_epochs = tuple(args.prefix_epochs)
            sc.check()
        except (TypeError, ValueError) as exc:
            args._parser.error(str(exc).replace("first_seed", "--first-seed").replace(
                "prefix_epochs", "--prefix-epochs"))  # fmt: skip
        command = (
            "lnpt bench --student-lr-check"
            + (f" --seeds {args.seeds}" if args.seeds else "")
            + (f" --first-seed {args.first_seed}" if args.first_seed is not None else "")
            + (f" --models {models[0]}" if args.models else "")
            + (f" --student-lrs {' '.join(args.student_lrs)}" if args.student_lrs else "")
            + (
                f" --student-recipes {' '.join(args.student_recipes)}"
                if args.student_recipes
                else ""
            )
            + (
                f" --student-lr-arms {' '.join(args.student_lr_arms)}"
                if args.student_lr_arms
                else ""
            )
            + (
                f" --prefix-epochs {' '.join(map(str, args.prefix_epochs))}"
                if args.prefix_epochs
                else ""
            )
            + scoring_flags
            + (f" --threads {args.threads}" if args.threads != 2 else "")
        )
        _, chosen = student_lr_check(
            sc, out, command, resume=args.resume, budget_s=args.budget_s, threads=args.threads
        )
        print(f"{out}/{sc.report_name}.md: chosen {chosen.name if chosen else None}")
        print(f"took {time.perf_counter() - start:.0f} s")
        return 0
    if args.protocol_check:
        from lnpt.protocol import ProtocolConfig, protocol_check

        models = args.models or ["cnn"]
        if len(models) != 1:
            args._parser.error("--protocol-check takes one model (--models MODEL)")
        pcfg = ProtocolConfig(model=models[0], seeds=args.seeds or 5)
        if args.epoch_budgets:
            pcfg.budgets = tuple(args.epoch_budgets)
            try:
                pcfg.check()
            except ValueError as exc:
                args._parser.error(f"--epoch-budgets: {exc}")
        command = (
            "lnpt bench --protocol-check"
            + (f" --seeds {args.seeds}" if args.seeds else "")
            + (f" --models {models[0]}" if args.models else "")
            + (f" --epoch-budgets {' '.join(map(str, pcfg.budgets))}" if args.epoch_budgets else "")
            + (f" --threads {args.threads}" if args.threads != 2 else "")
        )
        protocol_check(
            pcfg, out, command, resume=args.resume, budget_s=args.budget_s, threads=args.threads
        )
        print(f"{out}/lnpt_protocol_{models[0]}*.md; took {time.perf_counter() - start:.0f} s")
        return 0
    if args.training_ablation:
        from lnpt.training_ablation import TrainingAblationConfig, run_training_ablation

        tcfg = TrainingAblationConfig(seeds=args.seeds or 3)
        if args.models:
            tcfg.models = tuple(args.models)
        if args.training_variants:
            tcfg.variants = tuple(args.training_variants)
        command = (
            "lnpt bench --training-ablation"
            + (f" --seeds {args.seeds}" if args.seeds else "")
            + (f" --models {' '.join(args.models)}" if args.models else "")
            + (
                f" --training-variants {' '.join(args.training_variants)}"
                if args.training_variants
                else ""
            )
        )
        _, chosen = run_training_ablation(
            tcfg, out, command, resume=args.resume, budget_s=args.budget_s, threads=args.threads
        )
        print(f"{out}/lnpt_training_ablation.md: chosen training {chosen}")
        print(f"took {time.perf_counter() - start:.0f} s")
        return 0
    if args.ablation or args.anatomy:
        from lnpt.ablation import AblationConfig, anatomy, anatomy_markdown, run_ablation

        if args.anatomy:
            for model in args.models or ("cnn",):
                doc = anatomy(model, out, resume=args.resume, threads=args.threads)
                print(anatomy_markdown(doc))
        if args.ablation:
            previous = args.ablation_training == "previous"
            acfg = AblationConfig.previous_training() if previous else AblationConfig()
            if args.seeds:
                acfg.seeds = args.seeds
            if args.models:
                acfg.models = tuple(args.models)
            if args.variants:
                acfg.variants = tuple(args.variants)
            if acfg.rule == "paired" and acfg.incumbent not in acfg.variants:
                args._parser.error(
                    f"--variants must include the current default {acfg.incumbent} (the paired "
                    "rule measures every variant against it)"
                )
            try:
                acfg.check()
            except ValueError as e:
                args._parser.error(str(e))
            command = (
                "lnpt bench --ablation"
                + (" --ablation-training previous" if previous else "")
                + (f" --seeds {args.seeds}" if args.seeds else "")
                + (f" --models {' '.join(args.models)}" if args.models else "")
                + (f" --variants {' '.join(args.variants)}" if args.variants else "")
            )
            _, chosen = run_ablation(
                acfg, out, command, resume=args.resume, budget_s=args.budget_s, threads=args.threads
            )
            print(f"{out}/{acfg.report}.md: chosen variant {chosen}")
        print(f"took {time.perf_counter() - start:.0f} s")
        return 0
    seeds = args.seeds if args.seeds is not None else 5
    cfg = BenchConfig.quick(seeds) if args.quick else BenchConfig(seeds=seeds)
    if args.models:
        cfg.models = tuple(args.models)
    if args.arms:
        cfg.arms = tuple(args.arms)
    if args.sparsities:
        if any(not 0.0 < v < 1.0 for v in args.sparsities):
            args._parser.error(f"--sparsities must be in (0, 1), got {args.sparsities}")
        cfg.sparsities = tuple(args.sparsities)
    if epochs:
        cfg = cfg.with_epochs(epochs)
    cfg.lnpt_options = {**cfg.lnpt_options, **scoring}
    command = (
        "lnpt bench"
        + (" --quick" if args.quick else "")
        + (f" --seeds {args.seeds}" if args.seeds is not None else "")
        + (f" --models {' '.join(args.models)}" if args.models else "")
        + (f" --arms {' '.join(args.arms)}" if args.arms else "")
        + (f" --sparsities {' '.join(map(str, args.sparsities))}" if args.sparsities else "")
        + (f" --epochs {' '.join(f'{m}={n}' for m, n in epochs.items())}" if epochs else "")
        + scoring_flags
        + (f" --report {args.report}" if args.report != "lnpt" else "")
    )
    run_bench(
        cfg,
        out,
        command,
        resume=args.resume,
        budget_s=args.budget_s,
        threads=args.threads,
        name=args.report,
    )
    print(f"{out}/{args.report}.md")
    with open(f"{out}/{args.report}.md") as f:
        print(f.read())
    print(f"bench took {time.perf_counter() - start:.0f} s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `lnpt` parser: the shared `maskloop.cli` layout plus this package's bench options."""
    from maskloop.cli import build_parser as shared_parser

    from lnpt import __version__
    from lnpt.ablation import CURRENT_VARIANTS, PREVIOUS_VARIANTS, VARIANTS
    from lnpt.bench import ARMS, DEFAULT_ARMS
    from lnpt.student_lr import DEFAULT_STUDENT_LR_ARMS, STUDENT_LR_ARMS
    from lnpt.training_ablation import DEFAULT_TRAINING_VARIANTS, TRAINING_VARIANTS

    parser = shared_parser(
        "lnpt",
        description=__doc__,
        demo_help="prune a digits MLP at 95%% without labels and compare with SNIP (< 1 minute)",
        bench_help="the benchmark on digits and MNIST-1D (resumable: --resume, --budget-s)",
    )
    parser.add_argument("--version", action="version", version=__version__)
    demo = parser.subcommands["demo"]
    demo.add_argument(
        "--out",
        dest="demo_out",
        default=None,
        help="accepted for a uniform CLI (the demo writes no files besides --summary-json)",
    )
    demo.add_argument(
        "--summary-json", default=None, help="write a one-line JSON summary of the demo here"
    )
    bench = parser.subcommands["bench"]
    for action in bench._actions:  # the shared --quick, in this benchmark's terms
        if action.dest == "quick":
            action.help = "the CI-sized grid: every factor, fewer training epochs"
    bench.add_argument(
        "--seeds",
        type=int,
        default=None,
        help="paired seeds (default 5; --training-ablation and --ablation-training previous 3)",
    )
    bench.add_argument(
        "--models",
        nargs="+",
        choices=("mlp", "cnn", "cnn1d", "resnet"),
        default=None,
        help="students to run (default: all four)",
    )
    bench.add_argument(
        "--budget-s",
        type=float,
        default=None,
        help="start no new unit of work after this many seconds; rerun with --resume",
    )
    bench.add_argument(
        "--ablation",
        action="store_true",
        help="instead: compare LNPT scoring variants on a validation split, students trained "
        "with the current label-free objective (lnpt_ablation_kd.md; models mlp cnn cnn1d, "
        "5 seeds)",
    )
    bench.add_argument(
        "--ablation-training",
        choices=("current", "previous"),
        default=None,
        help="with --ablation: 'previous' regenerates the first ablation (lnpt_ablation.md: the "
        "previous label-free objective pinned, 3 seeds, best-mean rule); default current",
    )
    bench.add_argument(
        "--variants",
        nargs="+",
        choices=tuple(VARIANTS),
        default=None,
        metavar="VARIANT",
        help="with --ablation: the LNPT variants to compare (default: "
        f"{', '.join(CURRENT_VARIANTS)}; with --ablation-training previous: "
        f"{', '.join(PREVIOUS_VARIANTS)})",
    )
    bench.add_argument(
        "--training-ablation",
        action="store_true",
        help="instead: compare label-free training objectives on a validation split "
        "(lnpt_training_ablation.md; default models mlp cnn cnn1d, 3 seeds)",
    )
    bench.add_argument(
        "--training-variants",
        nargs="+",
        choices=tuple(TRAINING_VARIANTS),
        default=None,
        metavar="VARIANT",
        help="with --training-ablation: the training objectives to compare (default: "
        f"{', '.join(DEFAULT_TRAINING_VARIANTS)})",
    )
    bench.add_argument(
        "--arms",
        nargs="+",
        choices=ARMS,
        default=None,
        metavar="MASK+TRAINING",
        help=f"mask x training arms to run (default: {' '.join(DEFAULT_ARMS)})",
    )
    bench.add_argument(
        "--epochs",
        nargs="+",
        default=None,
        metavar="MODEL=N",
        help="the test benchmark at another student training budget, e.g. cnn=30 (default: "
        "mlp=40 cnn=480 cnn1d=10 resnet=15; the digits CNN's was 30, then 120, then 240, before "
        "the validation rules chose 120, 240 and then 480; the committed 240-epoch runs are "
        "--epochs cnn=240); part of the cache key, so --resume never mixes budgets; pair it with its "
        "own --report",
    )
    bench.add_argument(
        "--score-epochs",
        type=int,
        default=0,
        metavar="E",
        help="score LNPT's mask after E epochs of the student's own dense label-free training, "
        "then apply it at init (`lnpt_options={'score_epochs': E}`, session 18's reading; test "
        "benchmark and --student-lr-check; default 0: at init, the cache keys of every run before)",
    )
    bench.add_argument(
        "--score-rounds",
        type=int,
        default=None,
        metavar="K",
        help="LNPT's mask in K scoring rounds instead of the default 10 (`lnpt_options={'rounds': "
        "K}`; test benchmark and --student-lr-check; unset keeps every cache key)",
    )
    bench.add_argument(
        "--score-allocation",
        choices=("global", "mass", "synflow"),
        default="global",
        help="how LNPT's mask splits its budget over layers each round: global top-k (default), "
        "each layer's share of the score mass (`lnpt_options={'allocation': 'mass'}`, session 19's "
        "reading) or iterative SynFlow's per-layer counts with the gap ranking within each layer "
        "(`lnpt_options={'allocation': 'synflow'}`, session 22's reading); test benchmark and "
        "--student-lr-check",
    )
    bench.add_argument(
        "--score-standardize",
        action="store_true",
        help="LNPT's gap on per-feature standardised penultimate features of teacher and student "
        "(`lnpt_options={'standardize': True}`, session 19's reading; test benchmark and "
        "--student-lr-check; unset keeps every cache key)",
    )
    bench.add_argument(
        "--score-average",
        choices=("gradient", "scores"),
        default="gradient",
        help="how LNPT's score combines its scoring batches: the score of the mean gradient "
        "(default) or the mean of each batch's own score (`lnpt_options={'average': 'scores'}`, "
        "session 19's reading; test benchmark and --student-lr-check)",
    )
    bench.add_argument(
        "--score-norm",
        choices=("mean", "sum"),
        default=None,
        help="per-layer normalisation of LNPT's scores before each round's global top-k: every "
        "tensor's scores over their mean or their sum (`lnpt_options={'score_norm': ...}`, "
        "session 20's reading; test benchmark and --student-lr-check; unset: none, every cache "
        "key kept)",
    )
    bench.add_argument(
        "--score-gap",
        choices=("squared", "norm"),
        default="squared",
        help="LNPT's per-sample gap to the teacher: its square (default) or its magnitude "
        "(`lnpt_options={'gap': 'norm'}`, session 20's reading; test benchmark and "
        "--student-lr-check)",
    )
    bench.add_argument(
        "--score-checkpoints",
        type=int,
        default=1,
        metavar="K",
        help="score LNPT's mask against K evenly spaced snapshots of the teacher's run, the scores "
        "averaged (`lnpt_options={'checkpoints': K}`, session 21's reading; the students still "
        "train against the final teacher; test benchmark and --student-lr-check; default 1: the "
        "final teacher only, every cache key kept)",
    )
    bench.add_argument(
        "--score-path",
        choices=("synflow",),
        default=None,
        help="rank LNPT's gap score times SynFlow's data-free path score of the student at the "
        "current mask, every round (`lnpt_options={'path_term': 'synflow'}`, session 22's reading; "
        "test benchmark and --student-lr-check; unset: the gap score alone, every cache key kept)",
    )
    bench.add_argument(
        "--report",
        default="lnpt",
        help="file stem of the benchmark report under --out (default lnpt: lnpt.md/.json/.png)",
    )
    bench.add_argument(
        "--timing",
        action="store_true",
        help="instead: time LNPT scoring of torchvision resnet18 at 32x32 on 512 inputs",
    )
    bench.add_argument(
        "--anatomy",
        action="store_true",
        help="instead: per-layer density / effective density of every mask (lnpt_layers_*.png)",
    )
    bench.add_argument(
        "--protocol-check",
        action="store_true",
        help="instead: the validation and the test protocol of one model side by side, seed by "
        "seed, with epoch budgets and mask anatomy (lnpt_protocol_<model>.md; default cnn, 5 seeds)",
    )
    bench.add_argument(
        "--sparsities",
        nargs="+",
        type=float,
        default=None,
        metavar="S",
        help="the test benchmark at these sparsities only (fractions removed, in (0, 1); default "
        "0.9 0.95 0.98); part of the cache key; pair it with its own --report",
    )
    bench.add_argument(
        "--teacher-check",
        action="store_true",
        help="instead: the teacher trained at Adam lr 1e-2 / 3e-3 / 1e-3 for 40 / 80 epochs, read "
        "on a validation split (lnpt_teacher_<model>.md; default cnn, 10 seeds)",
    )
    bench.add_argument(
        "--student-lr-check",
        action="store_true",
        help="instead: every arm's students trained at several Adam lrs at 95%% sparsity, read on "
        "a validation split (lnpt_student_lr_<model>.md; default cnn, 10 seeds, lrs 1e-2 3e-3)",
    )
    bench.add_argument(
        "--student-lrs",
        nargs="+",
        default=None,
        metavar="LR",
        help="with --student-lr-check: the candidate student learning rates (default 1e-2 3e-3)",
    )
    bench.add_argument(
        "--student-recipes",
        nargs="+",
        default=None,
        metavar="LR[,epochs=N][,warmup=W][,schedule=S][,teacher_lr=LR][,teacher_epochs=N]"
        "[,teacher_warmup=W]",
        help="with --student-lr-check, instead of --student-lrs: candidate student recipes, an "
        "Adam lr with optional epochs (default the benchmark's), linear lr warm-up epochs and lr "
        "schedule after it (constant, the default, or cosine: decayed to 0 by the end), "
        "and optionally the teacher's Adam lr, epochs and warm-up (default the benchmark's "
        "teacher), e.g. 1e-2 1e-2,warmup=5 3e-3,epochs=240 1e-2,warmup=5,schedule=cosine "
        "1e-2,warmup=5,teacher_lr=1e-2,teacher_epochs=120,teacher_warmup=5 "
        "(report lnpt_student_recipe_<model>.md)",
    )
    bench.add_argument(
        "--student-lr-arms",
        nargs="+",
        choices=STUDENT_LR_ARMS,
        default=None,
        metavar="ARM",
        help="with --student-lr-check: the arms trained (default "
        f"{' '.join(DEFAULT_STUDENT_LR_ARMS)}; also "
        f"{' '.join(a for a in STUDENT_LR_ARMS if a not in DEFAULT_STUDENT_LR_ARMS)})",
    )
    bench.add_argument(
        "--first-seed",
        type=int,
        default=None,
        metavar="S",
        help="with --student-lr-check: run seeds S .. S + --seeds - 1 (default 0), e.g. fresh "
        "validation seeds 7-13 with --first-seed 7 --seeds 7; each seed is cached as in any range",
    )
    bench.add_argument(
        "--prefix-epochs",
        nargs="+",
        type=int,
        default=None,
        metavar="E",
        help="with --student-lr-check: also read every student at these earlier epochs of its own "
        "run, as the same recipe's student at that budget (constant-lr recipes only; "
        "`StudentLrCheckConfig.prefix_epochs`), e.g. 240 beside 1e-2,epochs=480,warmup=5",
    )
    bench.add_argument(
        "--epoch-budgets",
        nargs="+",
        type=int,
        default=None,
        metavar="E",
        help="with --protocol-check: the epochs at which the validation-protocol students are "
        "read, one run per arm and seed (default 30 60; must include the benchmark's budget)",
    )
    bench.set_defaults(_parser=bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `lnpt` console script (the shared `maskloop.cli` layout)."""
    from maskloop.cli import run

    return run(argv, package="lnpt", demo=_demo, bench=_bench, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
