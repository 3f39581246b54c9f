"""Host audit s34: date the rows behind each current goal verdict and map them to a host.

Stdlib only; reads committed files and git history, trains nothing. Run from the repo root:
``python3 docs/benchmarks/host_audit_s34.py [--write]`` (``--write`` rewrites
``docs/benchmarks/host_audit_s34.json``; without it the script checks that the committed JSON
matches what it derives and exits 1 if not).

Dating (what it assumes):
1. A *report* JSON under docs/benchmarks with ``environment.platform`` and ``created`` names the
   host that wrote it (``fc-vNNN`` of the kernel string; the ``-gpu`` device runs are left out).
2. A *row* (a cache/jsonl line, a cdhm cache entry, a report record, a cache file) carries no host;
   it is dated by the first commit whose version of the file contains it (exact text / value).
3. Commits are grouped into sessions (a gap > 30 min between consecutive commits starts a new one);
   a session's host is the platform of the reports created inside it. A row's host is its first
   commit's session host; a session with no report takes the host of its neighbours when the
   previous and the next session with reports agree, else "unknown". One host per session is
   assumed (the platform strings change only across sessions in the committed reports).
4. Commits and reports after CUTOFF (the audit's snapshot) are ignored, so that later work in the
   repository does not change the derived JSON.
"""

from __future__ import annotations

import argparse
import datetime as dt
import glob
import json
import os
import re
import subprocess
import sys

BENCH = "docs/benchmarks"
GAP_S = 1800
# Audit snapshot: commits and reports after this time are ignored, so the JSON re-derives unchanged
CUTOFF = "2026-12-06T00:30:00+00:00"
OUT = os.path.join(BENCH, "host_audit_s34.json")


def git(*args: str) -> str:
    return subprocess.run(["git", *args], check=True, capture_output=True, text=True).stdout


def ts(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("+0000", "+00:00"))


def host_of_platform(platform: str) -> str | None:
    m = re.search(r"fc-(v\d+)(-gpu)?", platform)
    if not m or m.group(2):
        return None
    return m.group(1)


def reports() -> list[tuple[dt.datetime, str, str]]:
    out = []
    for path in glob.glob(os.path.join(BENCH, "**", "*.json"), recursive=True):
        try:
            with open(path) as fh:
                d = json.load(fh)
        except (OSError, ValueError):
            continue
        env = d.get("environment") if isinstance(d, dict) else None
        if isinstance(env, dict) and "platform" in env and d.get("created"):
            host = host_of_platform(env["platform"])
            if host:
                out.append((ts(d["created"]), host, path))
    return sorted(out)


class Hosts:
    def __init__(self) -> None:
        cut = ts(CUTOFF)
        times = sorted(
            t for t in (ts(x) for x in git("log", "--all", "--format=%cI").split()) if t <= cut
        )
        self.sessions: list[list[dt.datetime]] = []
        for t in times:
            if self.sessions and (t - self.sessions[-1][-1]).total_seconds() <= GAP_S:
                self.sessions[-1].append(t)
            else:
                self.sessions.append([t])
        self.hosts: list[set[str]] = [set() for _ in self.sessions]
        for created, host, _ in reports():
            if created > cut:
                continue
            i = self.index(created, created_time=True)
            if i is not None:
                self.hosts[i].add(host)

    def index(self, t: dt.datetime, created_time: bool = False) -> int | None:
        for i, s in enumerate(self.sessions):
            start = s[0] - dt.timedelta(seconds=GAP_S if created_time else 0)
            if start <= t <= s[-1]:
                return i
        return None

    def host(self, t: dt.datetime) -> str:
        i = self.index(t)
        if i is None:
            return "unknown"
        if len(self.hosts[i]) == 1:
            return next(iter(self.hosts[i]))
        if len(self.hosts[i]) > 1:
            return "ambiguous:" + "/".join(sorted(self.hosts[i]))
        prev = next((self.hosts[j] for j in range(i - 1, -1, -1) if self.hosts[j]), set())
        nxt = next((self.hosts[j] for j in range(i + 1, len(self.hosts)) if self.hosts[j]), set())
        if len(prev) == 1 and prev == nxt:
            return next(iter(prev)) + "(neighbours)"
        return "unknown"


def history(path: str) -> list[tuple[str, dt.datetime]]:
    lines = git("log", "--reverse", "--format=%H %cI", "--", path).split("\n")
    return [(h, ts(t)) for h, t in (ln.split() for ln in lines if ln.strip())]


_FIRST: dict[str, dict[str, dt.datetime]] = {}


def first_seen(path: str) -> dict[str, dt.datetime]:
    """Row text -> the commit time of the first version of ``path`` that holds it."""
    if path in _FIRST:
        return _FIRST[path]
    seen: dict[str, dt.datetime] = {}
    for sha, t in history(path):
        try:
            text = git("show", f"{sha}:{path}")
        except subprocess.CalledProcessError:
            continue
        for row in rows_of(path, text):
            seen.setdefault(row, t)
    _FIRST[path] = seen
    return seen


def rows_of(path: str, text: str) -> list[str]:
    """Canonical row texts of one file version (jsonl lines, cdhm cache entries, report records)."""
    if path.endswith(".jsonl"):
        return [ln for ln in text.split("\n") if ln.strip()]
    d = json.loads(text)
    if path.endswith("_cache.json"):  # cdhm: {config: {"task|seed": {method: value}}}
        return [
            json.dumps([cfg, ts_, m, v], sort_keys=True)
            for cfg, per in d.items()
            for ts_, methods in per.items()
            for m, v in methods.items()
        ]
    if isinstance(d, dict) and isinstance(d.get("records"), list):
        return [json.dumps(r, sort_keys=True) for r in d["records"]]
    return [json.dumps(d, sort_keys=True)]  # whole file is one row


def select(path: str, keep) -> list[tuple[str, dt.datetime, dict]]:
    out = []
    with open(path) as fh:
        current = rows_of(path, fh.read())
    seen = first_seen(path)
    for row in current:
        obj = json.loads(row)
        if keep(obj):
            out.append((row, seen[row], obj))
    return out


def side(hosts: Hosts, parts: list[tuple[str, object]]) -> dict:
    """parts: (glob pattern, row filter). Hosts and first-commit range of the selected rows."""
    found, dates, per_seed = set(), [], {}
    files = []
    for pattern, keep in parts:
        for path in sorted(glob.glob(pattern)):
            rows = select(path, keep)
            if rows:
                files.append(path)
            for _, t, obj in rows:
                h = hosts.host(t)
                found.add(h)
                dates.append(t)
                seed = seed_of(obj, path)
                if seed is not None:
                    per_seed.setdefault(seed, set()).add(h)
    return {
        "files": files,
        "n_rows": len(dates),
        "hosts": sorted(found),
        "first_commit": [min(dates).isoformat(), max(dates).isoformat()] if dates else None,
        "per_seed": {k: sorted(v) for k, v in sorted(per_seed.items())},
    }


def seed_of(obj, path: str):
    if isinstance(obj, dict) and "seed" in obj:
        return str(obj["seed"])
    if isinstance(obj, list) and len(obj) == 4:  # cdhm entry: task|seed
        return obj[1]
    m = re.search(r"seed(\d+)", os.path.basename(path))
    return m.group(1) if m else None


def ted(method, setting, f, arm=None):
    def keep(r):
        return (
            r.get("stage") == "test"
            and r.get("method") == method
            and r.get("setting") == setting
            and (f is None or r.get("f_target") == f)
            and (arm is None or r.get("arm") == arm)
        )

    return keep


def key_is(prefix):
    return lambda r: r.get("key") == prefix


def cdhm(method):
    return lambda r: r[2] == method


def seven(method, sparsity, task="rotten_tomatoes_epoch"):
    def keep(r):
        st = r.get("setting") or {}
        return (
            r.get("method") == method and st.get("sparsity") == sparsity and st.get("task") == task
        )

    return keep


ANY = lambda r: True  # noqa: E731
B = BENCH
G = f"{B}/ted-prune-mnist1d-runs.jsonl"
S26 = f"{B}/ted-prune-tail-s26/test/test-runs.jsonl"
S29N = f"{B}/ted-prune-s29/test/test-runs.jsonl"
S29C = f"{B}/ted-prune-s29/test/test-runs-clean.jsonl"
MLP = f"{B}/cache/mlp-seed*-2cea280fb19f115a.partial.jsonl"
C1D = f"{B}/cache/cnn1d-seed*-88503d026bf2f606.partial.jsonl"
CNN = f"{B}/cache/cnn-seed*-45a10c5591024187.partial.jsonl"
CNN98 = f"{B}/cache/cnn-seed*-f4edb992bc4bea4f.partial.jsonl"
S33 = f"{B}/lnpt_s33_rule/current/cache/student-lr-cnn-seed*-5e066fc188e3ef3d.jsonl"
SEV = f"{B}/seven-prune-epoch.json"
CD = f"{B}/cdhm-next/cdhm_test_adda_cache.json"
SJ = f"{B}/cache/val/fa79b0b744"
NEW = "CDHM+adda+stickyz0.25+optcarry+sskip+sar1"


def sj(name, lo, hi):
    return [(f"{SJ}/{name}__*__seed{s}.json", ANY) for s in range(lo, hi + 1)]


def s33(arm):
    return lambda r: r.get("key", "").endswith("/" + arm)


def wall(path):
    return [(path, ANY)]


def sjt(method):
    """Old test table: the cache/test files whose mR equals ssjdn.json's rows of ``method``."""
    with open(f"{B}/ssjdn.json") as fh:
        recs = json.load(fh)["records"]
    values = {r["metrics"]["mR"] for r in recs if r["method"] == method}
    slug = re.sub(r"[^A-Za-z0-9]+", "_", method).strip("_")
    pattern = f"{B}/cache/test/fa79b0b744/{slug}__*__seed*.json"
    return [(pattern, lambda r: r.get("metrics", {}).get("mR") in values)]


def sev0(method, sparsity):
    return [(f"{B}/seven-prune.json", seven(method, sparsity, "rotten_tomatoes"))]


CDO = f"{B}/cdhm-next/cdhm_cache.json"
STOP = "stop note"
T15 = "ted README goals table (not in the stop note)"
T16 = "lnpt README goals table (not in the stop note)"
T17 = "seven README 'Goals (issue)' list (80-step grid, older than the stop note's one-epoch grid)"
T18 = "cdhm README 'Goals of the issue' table (session-12 ladder, superseded by the session-28 test read)"
T19 = "ssjdn README 'Goals' table (2026-12-02 test ladder, superseded by the validation rungs)"

# (issue, source, goal, figure, side A parts, side B parts or None for a single-arm / within-run figure)
VERDICTS = [
    (
        "#15",
        STOP,
        "clean f=0.7 TED - random-dynamic",
        "+0.08 [-0.24, +0.56] missed",
        [(S26, ted("TED_s26", "clean", 0.7, "new")), (S29C, ted("TED_s29", "clean", 0.7, "new"))],
        [(G, ted("random_dynamic", "clean", 0.7))],
    ),
    (
        "#15",
        STOP,
        "clean f=0.7 TED - full data (within 0.3)",
        "-2.24 [-2.58, -1.86] missed",
        [(S26, ted("TED_s26", "clean", 0.7, "new")), (S29C, ted("TED_s29", "clean", 0.7, "new"))],
        [(G, ted("full", "clean", None))],
    ),
    (
        "#15",
        STOP,
        "clean f=0.5 TED - InfoBatch",
        "+9.10 [+6.54, +11.64] met",
        [(S26, ted("TED_s26", "clean", 0.5, "new")), (S29C, ted("TED_s29", "clean", 0.5, "new"))],
        [(G, ted("InfoBatch", "clean", 0.5))],
    ),
    (
        "#15",
        STOP,
        "clean f=0.5 TED - EL2N",
        "+6.44 [+4.98, +8.04] met",
        [(S26, ted("TED_s26", "clean", 0.5, "new")), (S29C, ted("TED_s29", "clean", 0.5, "new"))],
        [(G, ted("EL2N", "clean", 0.5))],
    ),
    (
        "#15",
        STOP,
        "noise20 f=0.5 TED - InfoBatch",
        "+5.16 [+4.16, +6.18] met",
        [(S29N, ted("TED_s29", "noise20", 0.5, "new"))],
        [(G, ted("InfoBatch", "noise20", 0.5))],
    ),
    (
        "#15",
        STOP,
        "noise20 f=0.3 TED - InfoBatch",
        "-14.98 [-19.14, -11.00] missed",
        [
            (S26, ted("TED_s26", "noise20", 0.3, "new")),
            (S29N, ted("TED_s29", "noise20", 0.3, "new")),
        ],
        [(G, ted("InfoBatch", "noise20", 0.3))],
    ),
    (
        "#15",
        STOP,
        "no class drops out (TED rows only)",
        "min kept class 0.093 met",
        [
            (S26, lambda r: r.get("arm") == "new"),
            (S29N, lambda r: r.get("arm") == "new"),
            (S29C, lambda r: r.get("arm") == "new"),
        ],
        None,
    ),
    (
        "#15",
        STOP,
        "wall-clock TED / full (within-run ratios, pooled)",
        "0.754x [0.687, 0.830] missed",
        wall(f"{B}/ted-prune-s30/wallclock/runs.jsonl")
        + wall(f"{B}/ted-prune-s32/wallclock/runs.jsonl")
        + wall(f"{B}/ted-prune-s33/wallclock/runs.jsonl"),
        None,
    ),
    (
        "#15",
        STOP,
        "scoring share of a full-data epoch (within-run)",
        "0.0420 [0.0413, 0.0426] met",
        wall(f"{B}/ted-prune-s30/wallclock/runs.jsonl"),
        None,
    ),
    (
        "#15",
        T15,
        "noise20 f=0.7 TED - InfoBatch",
        "+2.72 [+1.74, +3.72] met",
        [(S29N, ted("TED_s29", "noise20", 0.7, "new"))],
        [(G, ted("InfoBatch", "noise20", 0.7))],
    ),
    (
        "#15",
        T15,
        "noise20 f=0.7 TED - random-dynamic",
        "+6.84 [+2.44, +11.22] met",
        [(S29N, ted("TED_s29", "noise20", 0.7, "new"))],
        [(G, ted("random_dynamic", "noise20", 0.7))],
    ),
    (
        "#15",
        T15,
        "noise20 f=0.7 TED - full data (within 0.3)",
        "+1.16 [-2.24, +4.60] met",
        [(S29N, ted("TED_s29", "noise20", 0.7, "new"))],
        [(G, ted("full", "noise20", None))],
    ),
    (
        "#15",
        T15,
        "noise20 f=0.5 TED - EL2N (README figure is the pre-s29 default's)",
        "+21.40 [+15.42, +27.38] met (today's default's rows: +28.60)",
        [(S29N, ted("TED_s29", "noise20", 0.5, "new"))],
        [(G, ted("EL2N", "noise20", 0.5))],
    ),
    (
        "#16",
        STOP,
        "digits MLP 95% LNPT label-free - SNIP supervised (10 seeds)",
        "+0.19 [-0.36, +0.78] met",
        [(MLP, key_is("0.95/lnpt"))],
        [(MLP, key_is("0.95/snip"))],
    ),
    (
        "#16",
        STOP,
        "MNIST-1D BN CNN 95% LNPT label-free - SNIP supervised",
        "+4.40 [+3.62, +5.44] met",
        [(C1D, key_is("0.95/lnpt"))],
        [(C1D, key_is("0.95/snip"))],
    ),
    (
        "#16",
        STOP,
        "digits CNN 480 ep 95% LNPT label-free - SNIP supervised",
        "-0.81 [-1.58, -0.11] missed",
        [(CNN, key_is("0.95/lnpt"))],
        [(CNN, key_is("0.95/snip"))],
    ),
    (
        "#16",
        STOP,
        "digits CNN 480 ep 95% LNPT label-free - dense",
        "-2.08 [-2.67, -1.53] missed",
        [(CNN, key_is("0.95/lnpt"))],
        [(CNN, key_is("references"))],
    ),
    (
        "#16",
        STOP,
        "same pair on validation seeds 24-28 (rule s33)",
        "-2.00 [-2.89, -1.17]",
        [(S33, s33("lnpt+label-free"))],
        [(S33, s33("snip+supervised"))],
    ),
    (
        "#16",
        T16,
        "digits MLP 95% LNPT label-free - dense (within 2, 10 seeds)",
        "-1.08 [-1.64, -0.58] met",
        [(MLP, key_is("0.95/lnpt"))],
        [(MLP, key_is("references"))],
    ),
    (
        "#16",
        T16,
        "MNIST-1D BN CNN 95% LNPT label-free - dense (within 2)",
        "-0.94 [-2.06, +0.16] met",
        [(C1D, key_is("0.95/lnpt"))],
        [(C1D, key_is("references"))],
    ),
    (
        "#16",
        T16,
        "digits CNN 480 ep 98% LNPT label-free - random label-free (>= 20)",
        "+46.75 [+30.58, +64.67] met",
        [(CNN98, key_is("0.98/lnpt"))],
        [(CNN98, key_is("0.98/random"))],
    ),
    (
        "#17",
        STOP,
        "SEVEN_dyn within 2 of dense at 0.8",
        "-1.63 [-1.88, -1.50] met",
        [(SEV, seven("SEVEN_dyn", 0.8))],
        [(SEV, seven("dense", 0.0))],
    ),
    (
        "#17",
        STOP,
        "SEVEN_dyn - PLATON at 0.8",
        "-1.00 [-1.50, -0.63] missed",
        [(SEV, seven("SEVEN_dyn", 0.8))],
        [(SEV, seven("PLATON", 0.8))],
    ),
    (
        "#17",
        STOP,
        "SEVEN_dyn - gradual magnitude at 0.8 (>= 3)",
        "+2.92 [+2.38, +3.75] missed",
        [(SEV, seven("SEVEN_dyn", 0.8))],
        [(SEV, seven("magnitude (GMP)", 0.8))],
    ),
    (
        "#17",
        STOP,
        "SEVEN_dyn - PLATON at 0.9",
        "-0.46 [-1.13, -0.13] missed",
        [(SEV, seven("SEVEN_dyn", 0.9))],
        [(SEV, seven("PLATON", 0.9))],
    ),
    (
        "#17",
        STOP,
        "SEVEN_dyn 2:4 - dense (within 2)",
        "-1.75 [-2.88, -1.13] met",
        [(SEV, seven("SEVEN_dyn 2:4", 0.5))],
        [(SEV, seven("dense", 0.0))],
    ),
    (
        "#17",
        STOP,
        "pruner overhead (within-run)",
        "4.68 % [4.51, 5.00] met",
        [(f"{B}/seven-prune-overhead-s33/read/run*/seven-prune-overhead.json", ANY)],
        None,
    ),
    (
        "#17",
        T17,
        "SEVEN_dyn - magnitude at 0.8 (>= 4)",
        "+25.17 [+22.00, +28.12] met",
        sev0("SEVEN_dyn", 0.8),
        sev0("magnitude", 0.8),
    ),
    (
        "#17",
        T17,
        "SEVEN_dyn - Taylor (per step) at 0.8",
        "+2.58 [+1.62, +3.12] met",
        sev0("SEVEN_dyn", 0.8),
        sev0("Taylor (per step)", 0.8),
    ),
    (
        "#17",
        T17,
        "SEVEN_dyn - PLATON at 0.8",
        "+0.58 [-0.75, +2.38] met (CI includes 0)",
        sev0("SEVEN_dyn", 0.8),
        sev0("PLATON", 0.8),
    ),
    (
        "#17",
        T17,
        "SEVEN_dyn - SNIP at 0.8",
        "+13.42 [+9.38, +17.38] met",
        sev0("SEVEN_dyn", 0.8),
        sev0("SNIP", 0.8),
    ),
    (
        "#17",
        T17,
        "SEVEN_dyn within 3 of dense at 0.8",
        "gap 2.96 met",
        sev0("SEVEN_dyn", 0.8),
        sev0("dense", 0.0),
    ),
    (
        "#17",
        T17,
        "SEVEN_pre - magnitude / Taylor / PLATON / SNIP / dense at 0.8",
        "+17.46 met / -5.12 missed / -7.12 missed / +5.71 met / gap 10.67 missed",
        sev0("SEVEN_pre (recon.)", 0.8),
        sev0("magnitude", 0.8)
        + sev0("Taylor (per step)", 0.8)
        + sev0("PLATON", 0.8)
        + sev0("SNIP", 0.8)
        + sev0("dense", 0.0),
    ),
    (
        "#18",
        STOP,
        "headline CDHM default - MK-MMD+evidence-all",
        "+3.80 [+0.74, +7.99] met",
        [(CD, cdhm(NEW))],
        [(CD, cdhm("MK-MMD+evidence-all"))],
    ),
    (
        "#18",
        STOP,
        "disentanglement rung",
        "+0.62 [-0.81, +2.08] missed",
        [(CD, cdhm(NEW))],
        [(CD, cdhm("CDHM-entangled+adda+optcarry+sskip+sar1"))],
    ),
    (
        "#18",
        STOP,
        "temporal prior rung",
        "+0.30 [-0.39, +0.88] missed",
        [(CD, cdhm(NEW))],
        [(CD, cdhm("CDHM-no-temporal+adda+optcarry+sskip"))],
    ),
    (
        "#18",
        STOP,
        "alignment rung",
        "-0.05 [-0.62, +0.72] missed",
        [(CD, cdhm(NEW))],
        [(CD, cdhm("CDHM-no-align+adda+stickyz0.25+optcarry+sskip+sar1"))],
    ),
    (
        "#18",
        T18,
        "CDHM - MK-MMD (best of three)",
        "+0.67 [-1.50, +2.38] missed",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("MK-MMD"))],
    ),
    (
        "#18",
        T18,
        "CDHM - MK-MMD+evidence-all",
        "-1.41 [-4.68, +3.47] missed",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("MK-MMD+evidence-all"))],
    ),
    (
        "#18",
        T18,
        "CDHM - DSAN (control)",
        "+1.81 [-1.32, +4.56] missed",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("DSAN"))],
    ),
    (
        "#18",
        T18,
        "CDHM - CDHM-entangled",
        "+1.27 [-1.53, +3.89] missed",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("CDHM-entangled"))],
    ),
    (
        "#18",
        T18,
        "CDHM - CDHM-no-temporal",
        "+0.97 [+0.28, +1.62] met",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("CDHM-no-temporal"))],
    ),
    (
        "#18",
        T18,
        "CDHM - CDHM-no-align",
        "+8.10 [+6.06, +9.91] met",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("CDHM-no-align"))],
    ),
    (
        "#18",
        T18,
        "CDHM - CDHM-no-cond-head (ladder)",
        "-0.42 [-1.50, +0.51] missed",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("CDHM-no-cond-head"))],
    ),
    (
        "#18",
        T18,
        "CDHM - CDHM-dann (ladder)",
        "+4.77 [+2.31, +7.31] met",
        [(CDO, cdhm("CDHM"))],
        [(CDO, cdhm("CDHM-dann"))],
    ),
    (
        "#19",
        STOP,
        "bidirectional rung (validation seeds 65-74, rule s28)",
        "-0.63 [-1.68, +0.41] missed",
        sj("bidirectional_centered", 65, 74),
        sj("SGS_one_direction_centered", 65, 74),
    ),
    (
        "#19",
        STOP,
        "LSD rung (validation seeds 65-74, rule s28)",
        "+0.05 [-0.70, +0.76] missed",
        sj("LSD_centered", 65, 74),
        sj("bidirectional_centered", 65, 74),
    ),
    (
        "#19",
        STOP,
        "LSD rung (fresh validation seeds 90-94, rule s33b)",
        "-0.38 [-0.87, +0.07]",
        sj("LSD_centered", 90, 94),
        sj("bidirectional_centered", 90, 94),
    ),
    (
        "#19",
        T19,
        "+SFE - dual-encoder",
        "+4.53 [+3.73, +5.75] met",
        sjt("+SFE"),
        sjt("dual-encoder"),
    ),
    (
        "#19",
        T19,
        "+SGS (one direction) - +SFE",
        "+0.73 [-0.01, +1.46] missed",
        sjt("+SGS (one direction)"),
        sjt("+SFE"),
    ),
    (
        "#19",
        T19,
        "+bidirectional - +SGS (one direction)",
        "+0.20 [-0.49, +0.77] missed",
        sjt("+bidirectional"),
        sjt("+SGS (one direction)"),
    ),
    (
        "#19",
        T19,
        "+LSD - +bidirectional",
        "+0.20 [-0.03, +0.56] missed",
        sjt("+LSD"),
        sjt("+bidirectional"),
    ),
    (
        "#19",
        T19,
        "+STL (full SSJDN) - +LSD",
        "+3.56 [+2.85, +4.27] met",
        sjt("+STL (full SSJDN)"),
        sjt("+LSD"),
    ),
    (
        "#19",
        T19,
        "full SSJDN - dual-encoder (>= 10)",
        "+9.21 [+8.25, +10.17] missed",
        sjt("+STL (full SSJDN)"),
        sjt("dual-encoder"),
    ),
    (
        "#19",
        T19,
        "full SSJDN - AMFMN-style (>= 2)",
        "+5.90 [+4.99, +6.82] met",
        sjt("+STL (full SSJDN)"),
        sjt("AMFMN-style"),
    ),
]

OLD = {"v669", "v857", "v1045", "v1098"}
NEWH = {"v1252", "v1272"}


def base(h: str) -> str:
    return h.split("(")[0]


def classify(a: dict, b: dict | None) -> str:
    """same host / mixed / cannot tell, per seed pair where both sides carry seeds."""
    ha = {base(h) for h in a["hosts"]}
    hb = {base(h) for h in b["hosts"]} if b else set()
    every = ha | hb
    if not every or any(h.startswith(("unknown", "ambiguous")) for h in every):
        return "cannot tell"
    if b is None:
        kind = "single-arm / within-run"
        return f"{kind}, one host" if len(every) == 1 else f"{kind}, several hosts"
    common = [s for s in a["per_seed"] if s in b["per_seed"]]
    pairs = [{base(h) for h in a["per_seed"][s] + b["per_seed"][s]} for s in common] or [every]
    if all(len(p) == 1 for p in pairs):
        where = "old host" if every <= OLD else "new host"
        several = ", seeds on " + "/".join(sorted(every)) if len(every) > 1 else ""
        return f"same host within every seed pair ({where}{several})"
    if any(p & OLD and p & NEWH for p in pairs):
        return "mixed old/new (cross-machine pair)"
    if all(p <= NEWH for p in pairs):
        return "mixed v1252/v1272 (new/new)"
    return "mixed old/old"


def ted_repro() -> dict:
    """The ted 5,000 x 20 grid's random-dynamic rows against the s26c re-run of the same units."""
    grid, rerun = {}, {}
    with open(G) as fh:
        for ln in fh:
            r = json.loads(ln)
            if r["stage"] == "test" and r["method"] == "random_dynamic":
                grid[(r["setting"], r["f_target"], r["seed"])] = r["metrics"]["accuracy"]
    with open(S26) as fh:
        for ln in fh:
            r = json.loads(ln)
            if r["arm"] == "rd_rerun":
                rerun[(r["setting"], r["f_target"], r["seed"])] = r["metrics"]["accuracy"]
    keys = sorted(k for k in rerun if k in grid)
    diff = [round(rerun[k] - grid[k], 2) for k in keys]
    return {
        "what": "random_dynamic test units of the grid (first commit 2026-12-01, v857) re-run in "
        "s26c (test-runs.jsonl arm rd_rerun, first commit 2026-12-05, v1252), same code path",
        "units": len(keys),
        "equal": sum(abs(x) < 1e-9 for x in diff),
        "rerun_minus_grid_range": [min(diff), max(diff)] if diff else None,
    }


def fingerprint(hosts: Hosts) -> list[dict]:
    """Host fingerprint: full-size (25,000 x 30) clean seed-0 accuracy of full data and of
    random-dynamic f = 0.7, in every committed ted file that holds them, with each row's host."""
    pats = [f"{B}/ted-prune-mnist1d-full/ted-prune-mnist1d-runs.jsonl"] + sorted(
        glob.glob(f"{B}/ted-prune-*wallclock*/**/*runs.jsonl", recursive=True)
        + glob.glob(f"{B}/ted-prune-*wallclock*-runs.jsonl")
        + glob.glob(f"{B}/ted-prune-s3*/wallclock/runs.jsonl")
        + glob.glob(f"{B}/ted-prune-score-rows/**/wallclock/*runs.jsonl", recursive=True)
    )
    out = []
    for path in pats:
        rows = select(
            path,
            lambda r: (
                r.get("seed") == 0
                and r.get("setting", "clean") == "clean"
                and (r.get("config") or {}).get("num_samples", 25000) == 25000
                and r.get("stage", "test") in ("test", "wallclock")
                and (r.get("method"), r.get("f_target")) in {("full", 1.0), ("random_dynamic", 0.7)}
            ),
        )
        vals: dict[str, set] = {}
        found = set()
        for _, t, obj in rows:
            vals.setdefault(obj["method"], set()).add(obj["metrics"]["accuracy"])
            found.add(hosts.host(t))
        if rows:
            out.append(
                {
                    "file": path,
                    "hosts": sorted(found),
                    "accuracy": {k: sorted(v) for k, v in vals.items()},
                }
            )
    return out


def ted_new_new() -> dict:
    """TED_s26 rows (s26c, v1252) against TED_s29 rows (s29 clean re-read, v1272), clean cells."""

    def acc(path, method):
        with open(path) as fh:
            rows = [json.loads(ln) for ln in fh if ln.strip()]
        return {
            (r["f_target"], r["seed"]): r["metrics"]["accuracy"]
            for r in rows
            if r["arm"] == "new" and r["setting"] == "clean" and r["method"] == method
        }

    a, b = acc(S26, "TED_s26"), acc(S29C, "TED_s29")
    keys = [k for k in a if k in b]
    return {"units": len(keys), "equal": sum(a[k] == b[k] for k in keys)}


def derive() -> dict:
    hosts = Hosts()
    timeline = []
    for i, s in enumerate(hosts.sessions):
        if s[0] >= dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc):
            timeline.append([s[0].isoformat(), s[-1].isoformat(), sorted(hosts.hosts[i])])
    rows = []
    for issue, source, goal, figure, pa, pb in VERDICTS:
        a = side(hosts, pa)
        b = side(hosts, pb) if pb else None
        seeds_mixed = None
        if b:
            seeds_mixed = sorted(
                s
                for s in a["per_seed"]
                if s in b["per_seed"] and a["per_seed"][s] != b["per_seed"][s]
            )
        rows.append(
            {
                "issue": issue,
                "source": source,
                "goal": goal,
                "figure": figure,
                "side_a": a,
                "side_b": b,
                "seeds_with_hosts_differing": seeds_mixed,
                "class": classify(a, b),
            }
        )
    return {
        "sessions_since_2026_12_01": timeline,
        "evidence": {
            "ted_grid_rerun_5000x20": ted_repro(),
            "ted_clean_s26c_v1252_vs_s29_v1272": ted_new_new(),
            "ted_full_size_seed0_fingerprint": fingerprint(hosts),
        },
        "verdicts": rows,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="rewrite the committed JSON")
    args = ap.parse_args()
    data = derive()
    text = json.dumps(data, indent=1, sort_keys=True) + "\n"
    if args.write:
        with open(OUT, "w") as fh:
            fh.write(text)
        return 0
    with open(OUT) as fh:
        same = fh.read() == text
    print("reproduces" if same else "DIFFERS from " + OUT)
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
