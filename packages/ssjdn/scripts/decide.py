"""Issue 19: a pre-registered decision read from the bench's validation cache, its checks given as
arguments (or by a rule's name), so that each session's rule needs no script of its own.

Every ``--check TAG TEST A B`` is the paired Δ mR ``A`` - ``B`` over ``--seeds`` with the bench's
bootstrap 95 % CI (`maskloop.report.paired_difference`); ``TEST`` is ``above0`` (CI lower bound
> 0: a rung that must add), ``not_worse`` (mean >= 0 and CI lower bound > -0.5: a full model
that must not lose), ``mean_ge0`` (mean >= 0: a reading at least level with today's) or
``no_harm`` (CI upper bound >= 0: not shown to lose). The
checks are read in order and the first partial (a method lacks seeds) or failing one decides;
the option is adopted on validation iff all pass. ``--report LABEL A B`` rows are printed and
decide nothing; ``--probes`` are printed as each ``--probe-methods`` method's mean over the
cached seeds. ``--metric hard_mR`` prints the same rows on the hard split
and no decision. ``--summary PATH`` also writes, for mR and hard mR, every row's paired Δ
(n, mean, CI, per-seed differences) as JSON and prints each method's per-seed values and mean ±
std (what ``summarize_s31b.py`` printed and wrote until 2026-12-05). Writes nothing else. A new
session's rule is one more entry of `RULES`; the rows of a rule whose readings were retired are
still found (`ssjdn.retired.RETIRED_METHODS` keeps their cache keys). Run (seconds, reads JSON
only), e.g. the twenty-fifth session's rule (``docs/benchmarks/ssjdn_validation_s25_rule.md``):

    .venv/bin/python packages/ssjdn/scripts/decide.py --rule s25 [--metric hard_mR]
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from maskloop.report import PairedDifference, paired_difference
from ssjdn.bench import BenchSettings, cache_stem

FULL, DUAL = "+STL (full SSJDN)", "dual-encoder"
SGS, BI = "+SGS (one direction)", "+bidirectional"
LSD_PROBES = (
    "lsd_img_acc",
    "lsd_txt_acc_large",
    "lsd_txt_acc_small",
    "sem_var_share",
    "mR_residual_only",
    "mR_semantic_only",
)
PASS_PROBES = ("pass_feat_cos", "pass_r2_c2f_from_f2c", "pass_r2_f2c_from_c2f", "sgs_damp_overlap")


def load(cache: Path, name: str, metric: str, seeds: Sequence[int]) -> dict[int, float]:
    """Finished runs of ``name`` on ``seeds``: seed -> ``metric`` (runs lacking it are left out)."""
    out = {}
    for seed in seeds:
        f = cache / f"{cache_stem(name, seed)}.json"
        if f.is_file():
            m = json.loads(f.read_text())["metrics"]
            if metric in m:
                out[seed] = float(m[metric])
    return out


def contrast(
    runs: dict[str, dict[int, float]], a: str, b: str, seeds: Sequence[int]
) -> PairedDifference | None:
    """Paired Δ a - b over ``seeds`` (None unless both finished every seed)."""
    if not all(s in runs[a] and s in runs[b] for s in seeds):
        return None
    return paired_difference([runs[a][s] for s in seeds], [runs[b][s] for s in seeds])


def not_worse(d: PairedDifference) -> bool:
    """The full model is not worse: mean >= 0 and CI lower bound > -0.5."""
    return d.mean >= 0 and d.low > -0.5


def decide(
    checks: list[tuple[str, PairedDifference | None, Callable[[PairedDifference], bool], str]],
    adopted: str,
) -> str:
    """The pre-registered sequential rule: each check (tag, Δ or None while partial, test, what a
    failure means) is read only if the earlier ones pass; the first partial or failing check
    decides."""
    passed: list[str] = []
    for tag, d, ok, failure in checks:
        before = f"{', '.join(passed)} pass; " if passed else ""
        if d is None:
            return f"{before}partial ({tag} lacks seeds)"
        if not ok(d):
            return f"{before}{tag} fails ({failure}); not adopted"
        passed.append(tag)
    return adopted


def print_probes(
    cache: Path,
    methods: tuple[str, ...],
    keys: tuple[str, ...],
    seeds: Sequence[int],
    label: str,
    width: int,
) -> None:
    """Print, per probe key, each method's mean over the cached seeds ('-' where none is cached)."""
    for key in keys:
        vals = {m: load(cache, m, key, seeds) for m in methods}
        print(
            f"{label} {key:{width}s} "
            + "  ".join(
                f"{m}: {sum(v.values()) / len(v):.3f}" if v else f"{m}: -" for m, v in vals.items()
            )
        )


def load_runs(
    cache_root: str, methods: list[str], metric: str, seeds: Sequence[int]
) -> tuple[Path, dict[str, dict[int, float]]]:
    """The quick settings' validation cache under ``cache_root``, and its runs: method -> seed ->
    ``metric``; prints each method's finished seeds."""
    cache = Path(cache_root) / "val" / BenchSettings.quick().key()
    runs = {m: load(cache, m, metric, seeds) for m in methods}
    for m in methods:
        print(f"{m:30s} seeds {sorted(runs[m])}")
    return cache, runs


def summary(
    cache_root: str, rows: Sequence[tuple[str, str]], seeds: Sequence[int]
) -> dict[str, dict[str, Any]]:
    """For mR and hard mR: each method's per-seed values and mean ± std printed, and each row
    ``(a, b)``'s paired Δ a - b over the seeds both finished (at least 2) as ``{metric: {"a -
    b": {"n", "mean", "low", "high", "per_seed": {seed: Δ rounded to 0.01}}}}``."""
    cache = Path(cache_root) / "val" / BenchSettings.quick().key()
    methods = list(dict.fromkeys(m for row in rows for m in row))
    out: dict[str, dict[str, Any]] = {}
    for metric in ("mR", "hard_mR"):
        runs = {m: load(cache, m, metric, seeds) for m in methods}
        for m, v in runs.items():
            vals = list(v.values())
            spread = (
                f"{statistics.mean(vals):.2f} ± {statistics.stdev(vals):.2f}"
                if len(vals) > 1
                else ""
            )
            print(metric, m, {s: round(x, 2) for s, x in v.items()}, spread)
        for a, b in rows:
            common = [s for s in seeds if s in runs[a] and s in runs[b]]
            if len(common) < 2:
                continue
            d = paired_difference([runs[a][s] for s in common], [runs[b][s] for s in common])
            per = [round(runs[a][s] - runs[b][s], 2) for s in common]
            print(metric, f"{a} - {b}: N={len(common)} {d.format()} per seed {per}")
            out.setdefault(metric, {})[f"{a} - {b}"] = {
                "n": len(common),
                "mean": d.mean,
                "low": d.low,
                "high": d.high,
                "per_seed": dict(zip(common, per)),
            }
    return out


TESTS = {
    "above0": (lambda d: d.low > 0, "the CI is not above 0"),
    "not_worse": (not_worse, "not shown to be no worse (mean >= 0, CI lower bound > -0.5)"),
    "mean_ge0": (lambda d: d.mean >= 0, "the mean is below 0"),
    "no_harm": (lambda d: d.high >= 0, "the CI is below 0 (harm)"),
}

# the sessions' rules: the same arguments the command line takes
RULES: dict[str, dict[str, Any]] = {
    "s22": {
        "seeds": (25, 29),
        "option": "sgs_fusion='mean'",
        "check": [
            ("B1", "above0", "+bidirectional mean", SGS),
            ("B2", "not_worse", "BSD mean", FULL),
        ],
        "report": [
            ("today rung", BI, SGS),
            ("mean-concat", "+bidirectional mean", BI),
            ("goal +10", FULL, DUAL),
            ("goal +10", "BSD mean", DUAL),
        ],
        "probe_methods": (BI, "+bidirectional mean", FULL, "BSD mean"),
        "probes": PASS_PROBES,
    },
    "s23": {
        "seeds": (30, 34),
        "option": "sgs_guide_c2f='complement'",
        "check": [
            ("B1", "above0", "+bidirectional complement", SGS),
            ("B2", "not_worse", "BSD complement", FULL),
        ],
        "report": [
            ("today rung", BI, SGS),
            ("compl-today", "+bidirectional complement", BI),
            ("goal +10", FULL, DUAL),
            ("goal +10", "BSD complement", DUAL),
        ],
        "probe_methods": (BI, "+bidirectional complement", FULL, "BSD complement"),
        "probes": (
            *PASS_PROBES,
            "sgs_map_corr",
            "sgs_damp_mean_p0",
            "sgs_damp_mean_p1",
            "keep_small_p0",
            "keep_small_p1",
            "sgs_dir_cos_p1",
            "pass_contrib_cos",
            "mR_without_f2c",
            "mR_without_c2f",
        ),
    },
    "s24": {
        "seeds": (35, 39),
        "option": "sgs_pass_scales='split'",
        "check": [
            ("B1", "above0", "+bidirectional split", SGS),
            ("B2", "not_worse", "BSD split", FULL),
        ],
        "report": [
            ("today rung", BI, SGS),
            ("split-today", "+bidirectional split", BI),
            ("goal +10", FULL, DUAL),
            ("goal +10", "BSD split", DUAL),
            ("goal peer+2", FULL, "AMFMN-style"),
            ("goal peer+2", "BSD split", "AMFMN-style"),
        ],
        "probe_methods": (BI, "+bidirectional split", FULL, "BSD split"),
        "probes": (
            *PASS_PROBES,
            "pass_r2_fine_from_coarse",
            "pass_contrib_cos",
            "mR_without_f2c",
            "mR_without_c2f",
        ),
    },
    "s24b": {
        "seeds": (40, 44),
        "option": "sgs_proj='per_pass_half'",
        "check": [
            ("B1", "above0", "+bidirectional per-pass half proj", SGS),
            ("B2", "not_worse", "BSD per-pass half proj", FULL),
        ],
        "report": [
            ("today rung", BI, SGS),
            ("half-today", "+bidirectional per-pass half proj", BI),
            ("goal +10", FULL, DUAL),
            ("goal +10", "BSD per-pass half proj", DUAL),
        ],
        "probe_methods": (
            BI,
            "+bidirectional per-pass half proj",
            FULL,
            "BSD per-pass half proj",
        ),
        "probes": (
            *PASS_PROBES,
            "pass_r2_fine_from_coarse",
            "pass_contrib_cos",
            "mR_without_f2c",
            "mR_without_c2f",
        ),
    },
    "s25": {
        "seeds": (45, 49),
        "option": "sgs_pool='centered'",
        "check": [
            ("B1", "above0", "+bidirectional centered", SGS),
            ("B2", "not_worse", "BSD centered", FULL),
        ],
        "report": [
            ("today rung", BI, SGS),
            ("centered-today", "+bidirectional centered", BI),
            ("goal +10", FULL, DUAL),
            ("goal +10", "BSD centered", DUAL),
        ],
        "probe_methods": (BI, "+bidirectional centered", FULL, "BSD centered"),
        "probes": (
            *PASS_PROBES,
            "pass_r2_fine_from_coarse",
            "pass_contrib_cos",
            "mR_without_f2c",
            "mR_without_c2f",
        ),
    },
    # session 26 (docs/benchmarks/ssjdn_validation_s26_rule.md): one rule per candidate; the
    # first check is the rung under the reading, the last the full model (stage 2)
    "s26_bsd": {
        "seeds": (50, 54),
        "option": "sgs_slot_norm='l2'",
        "check": [
            ("B1", "above0", "+bidirectional slot norm", "+SGS (one direction) slot norm"),
            ("B2", "not_worse", "+bidirectional slot norm", "+bidirectional centered"),
            ("B3", "not_worse", "BSD slot norm", "BSD centered"),
        ],
        "report": [
            ("today rung", "+bidirectional centered", "+SGS (one direction) centered"),
            ("one dir", "+SGS (one direction) slot norm", "+SGS (one direction) centered"),
        ],
        "probe_methods": ("+bidirectional centered", "+bidirectional slot norm"),
        "probes": (*PASS_PROBES, "pass_contrib_cos", "mR_without_f2c", "mR_without_c2f"),
    },
    "s26_lsd": {
        "seeds": (50, 54),
        "option": "lsd_supervision='labels'",
        "check": [
            ("L1", "above0", "+LSD labels only", "+bidirectional centered"),
            ("L3", "not_worse", "BSD labels only", "BSD centered"),
        ],
        "report": [("today rung", "+LSD centered", "+bidirectional centered")],
        "probe_methods": ("+LSD labels only", "+LSD centered", "BSD labels only", "BSD centered"),
        "probes": LSD_PROBES,
    },
    "s26_lsd_prior": {
        "seeds": (50, 54),
        "option": "lsd_supervision='labels', lsd_combine='prior'",
        "check": [
            ("L2", "above0", "+LSD labels only prior", "+bidirectional centered"),
            ("L4", "not_worse", "BSD labels only prior", "BSD centered"),
        ],
        "report": [("L2-L1", "+LSD labels only prior", "+LSD labels only")],
        "probe_methods": ("+LSD labels only prior", "BSD labels only prior"),
        "probes": LSD_PROBES,
    },
    # session 26b (docs/benchmarks/ssjdn_validation_s26b_rule.md): L2 at lsd_mix 0.14, fresh
    # validation seeds 55..59; the full model (M2) only if M1 passes
    "s26b_lsd_prior_mix": {
        "seeds": (55, 59),
        "option": "lsd_supervision='labels', lsd_combine='prior', lsd_mix=0.14",
        "check": [
            ("M1", "above0", "+LSD labels only prior mix 0.14", "+bidirectional centered"),
            ("M2", "not_worse", "BSD labels only prior mix 0.14", "BSD centered"),
        ],
        "report": [],
        "probe_methods": ("+LSD labels only prior mix 0.14",),
        "probes": LSD_PROBES,
    },
    # session 27 (docs/benchmarks/ssjdn_validation_s27_rule.md): the label prior on the LSD rung
    # only (`lsd_without_stl="labels_prior"`; the full model trains as "BSD centered"), fresh
    # validation seeds 60..64; Q1 the LSD rung, Q2 the STL rung above it; today's rungs and the
    # full model less one part are reported
    "s27_lsd": {
        "seeds": (60, 64),
        "option": "lsd_without_stl='labels_prior'",
        "check": [
            ("Q1", "above0", "+LSD labels prior without STL", "+bidirectional centered"),
            ("Q2", "above0", "BSD centered", "+LSD labels prior without STL"),
        ],
        "report": [
            ("bi rung", "+bidirectional centered", "+SGS (one direction) centered"),
            ("LSD rung", "+LSD centered", "+bidirectional centered"),
            ("STL rung", "BSD centered", "+LSD centered"),
            ("full-LSD", "BSD centered", "BSD centered - LSD"),
            ("full-bi", "BSD centered", "BSD centered - bidirectional"),
        ],
        "probe_methods": (
            "+LSD labels prior without STL",
            "+LSD centered",
            "BSD centered",
        ),
        "probes": LSD_PROBES,
    },
    # session 30 (docs/benchmarks/ssjdn_validation_s30_rule.md): LSD's residual part with the
    # predicted category's centroid taken out (`lsd_combine="decouple"`), fresh validation seeds
    # 75..79; D1 the LSD rung with it, D2 (run only if D1 passes) the full model with it
    "s30_lsd_decouple": {
        "seeds": (75, 79),
        "option": "lsd_combine='decouple'",
        "check": [
            ("D1", "above0", "+LSD decouple", "+bidirectional centered"),
            ("D2", "not_worse", "BSD decouple", "BSD centered"),
        ],
        "report": [],
        "probe_methods": ("+LSD decouple", "+bidirectional centered"),
        "probes": ("probe_img_acc", "probe_txt_acc_large", "probe_txt_acc_small", *LSD_PROBES),
    },
    # session 31b (docs/benchmarks/ssjdn_validation_s31b_rule.md): the coarse->fine pass guided
    # by the complement of the fine->coarse guide on today's centred pooling, fresh validation
    # seeds 80..84; K1 the bidirectional rung with it, K2 it against today's bidirectional row
    "s31b_complement": {
        "seeds": (80, 84),
        "option": "sgs_guide_c2f='complement' (as the bidirectional default; the lead decides)",
        "check": [
            (
                "K1",
                "above0",
                "+bidirectional centered complement",
                "+SGS (one direction) centered",
            ),
            ("K2", "mean_ge0", "+bidirectional centered complement", "+bidirectional centered"),
        ],
        "report": [("today rung", "+bidirectional centered", "+SGS (one direction) centered")],
        "probe_methods": ("+bidirectional centered", "+bidirectional centered complement"),
        "probes": (
            *PASS_PROBES,
            "sgs_map_corr",
            "sgs_damp_mean_p1",
            "keep_small_p0",
            "keep_small_p1",
            "pass_contrib_cos",
            "mR_without_f2c",
            "mR_without_c2f",
        ),
    },
    # session 32 (docs/benchmarks/ssjdn_validation_s32_rule.md): the coarse->fine pass guided by
    # the finest grid's contrast max-pooled onto its coarsest grid (`sgs_guide_c2f="fine_max"`),
    # fresh validation seeds 85..89; F1 the bidirectional rung with it, F2 it against today's
    # bidirectional row, F3 (stage 2, run only if F1 and F2 pass) the full model with it
    "s32_fine_max": {
        "seeds": (85, 89),
        "option": "sgs_guide_c2f='fine_max' (the default candidate; the lead decides a test read)",
        "check": [
            (
                "F1",
                "above0",
                "+bidirectional centered fine-max c2f",
                "+SGS (one direction) centered",
            ),
            ("F2", "mean_ge0", "+bidirectional centered fine-max c2f", "+bidirectional centered"),
            ("F3", "not_worse", "BSD centered fine-max c2f", "BSD centered"),
        ],
        "report": [("today rung", "+bidirectional centered", "+SGS (one direction) centered")],
        "probe_methods": ("+bidirectional centered", "+bidirectional centered fine-max c2f"),
        "probes": (
            "pass_r2_c2f_from_f2c",
            "sgs_map_corr",
            "sgs_damp_overlap",
            "keep_small_p1",
            "mR_without_c2f",
            "mR_without_f2c",
        ),
    },
    # session 33b (docs/benchmarks/ssjdn_validation_s33b_rule.md): LSD's heads at 10x the
    # training lr (`lsd_head_lr=10`), fresh validation seeds 90..94; H1 the LSD rung with it
    # against the rung without LSD, H2 / H3 no harm in either cell the default would change
    # (the LSD rung, stage 1; the full model, stage 2, run only if H1 and H2 pass)
    "s33b_head_lr": {
        "seeds": (90, 94),
        "option": "lsd_head_lr=10 (the default candidate; the lead switches it, pinning old rows)",
        "check": [
            ("H1", "above0", "+LSD centered head lr 10", "+bidirectional centered"),
            ("H2", "no_harm", "+LSD centered head lr 10", "+LSD centered"),
            ("H3", "no_harm", "BSD centered head lr 10", "BSD centered"),
        ],
        "report": [
            ("today's LSD rung", "+LSD centered", "+bidirectional centered"),
            ("full, not_worse reading", "BSD centered head lr 10", "BSD centered"),
        ],
        "probe_methods": ("+LSD centered", "+LSD centered head lr 10"),
        "probes": ("probe_img_acc", "probe_txt_acc_large", "probe_txt_acc_small", *LSD_PROBES),
    },
}


def parser() -> argparse.ArgumentParser:
    """The command line: a rule's name or its parts (``--seeds``, ``--check``, ``--report``, ...)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rule", choices=sorted(RULES), help="a session's rule (its arguments)")
    p.add_argument("--cache", default="docs/benchmarks/cache", help="the bench's cache root")
    p.add_argument("--metric", default="mR", help="mR (deciding) or hard_mR (reported)")
    p.add_argument("--seeds", nargs=2, type=int, metavar=("FIRST", "LAST"), help="seed range")
    p.add_argument("--option", help="what is adopted if every check passes (printed)")
    p.add_argument(
        "--check",
        nargs=4,
        action="append",
        metavar=("TAG", "TEST", "A", "B"),
        help="a deciding check: TEST (above0, not_worse or mean_ge0) of the paired Δ A - B; repeatable",
    )
    p.add_argument(
        "--report",
        nargs=3,
        action="append",
        metavar=("LABEL", "A", "B"),
        help="a reported Δ A - B; repeatable",
    )
    p.add_argument("--probe-methods", nargs="*", default=None, help="methods whose probes print")
    p.add_argument("--probes", nargs="*", default=None, help="probe keys of the cached runs")
    p.add_argument("--summary", help="write every row's paired Δ (mR and hard mR) to this JSON")
    return p


def resolve(args: argparse.Namespace) -> dict[str, Any]:
    """The rule's arguments: ``--rule``'s, each overridden by one given on the command line."""
    rule = dict(RULES[args.rule]) if args.rule else {}
    for key in ("seeds", "option", "check", "report", "probe_methods", "probes"):
        value = getattr(args, key)
        if value is not None:
            rule[key] = value
    if not rule.get("seeds") or not rule.get("check"):
        raise ValueError("give --rule or at least --seeds and one --check")
    for tag, test, _, _ in rule["check"]:
        if test not in TESTS:
            raise ValueError(f"--check {tag}: TEST must be one of {sorted(TESTS)}, got {test!r}")
    rule.setdefault("option", "the option")
    rule.setdefault("report", [])
    rule.setdefault("probe_methods", ())
    rule.setdefault("probes", ())
    return rule


def main(argv: Sequence[str] | None = None) -> int:
    """Print every Δ the rule names and, for ``--metric mR``, its decision."""
    p = parser()
    args = p.parse_args(argv)
    try:
        rule = resolve(args)
    except ValueError as e:
        p.error(str(e))
    first, last = rule["seeds"]
    seeds = range(first, last + 1)
    rows = [(tag, a, b) for tag, _, a, b in rule["check"]] + list(rule["report"])
    methods = list(dict.fromkeys(m for _, a, b in rows for m in (a, b)))
    cache, runs = load_runs(args.cache, methods, args.metric, seeds)
    deltas: dict[tuple[str, str], PairedDifference | None] = {
        (a, b): contrast(runs, a, b, seeds) for _, a, b in rows
    }
    for tag, a, b in rows:
        d = deltas[(a, b)]
        print(f"{tag:11s} {a} - {b}:".ljust(60) + f" {args.metric}: " + (d.format() if d else "-"))
    if rule["probes"] and rule["probe_methods"]:
        print_probes(cache, tuple(rule["probe_methods"]), tuple(rule["probes"]), seeds, "probe", 22)
    if args.summary:
        pairs = [(a, b) for _, a, b in rows]
        text = json.dumps(summary(args.cache, pairs, seeds), indent=1) + "\n"
        Path(args.summary).write_text(text)
    if args.metric != "mR":
        return 0
    checks = [
        (tag, deltas[(a, b)], TESTS[test][0], f"{a} - {b}: {TESTS[test][1]}")
        for tag, test, a, b in rule["check"]
    ]
    tags = " and ".join(tag for tag, *_ in rule["check"])
    verdict = decide(checks, f"ADOPTED on validation: {tags} pass")
    print(f"decision: {rule['option']}; {verdict}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
