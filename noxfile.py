"""Sessions for the monorepo: lint, isolated package tests, integration, demo, bench, build, docs.

`nox` alone runs lint, every `tests(<package>)`, `integration` and `build`. Each `tests(<package>)`
syncs only that member (`uv sync --package <pkg> --group test`) into its own environment, so an
import of a sibling package fails there, as it would for a user who installed one package alone.
Where isolation is not the point (integration, demo, bench, build, docs, slow, stress) the sessions
share ONE environment, `.nox/workspace`, synced once with every package, extra and group.
`reliability` needs no environment: it reads the tests with `ast` and writes docs/reliability.md.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import nox

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: nox runs on the interpreter `./dev` was called with
    tomllib = None

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests", "hf", "integration", "build"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

CORE = "maskloop"
METHODS = ["ted-prune", "lnpt", "seven-prune", "lrcnn", "cdhm", "ssjdn"]
PATHS = {CORE: ROOT / "shared" / "maskloop", **{p: ROOT / "packages" / p for p in METHODS}}
MODULES = {p: p.replace("-", "_") for p in PATHS}
SHARED = ROOT / ".nox" / "workspace"
DEMO_SECONDS = 60  # each package's demo must finish within this on 2 cores


def _sync(session: nox.Session, *args: str) -> None:
    """`uv sync` into the session's own environment (no lock file is committed; uv writes one)."""
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run_install("uv", "sync", "--python", session.virtualenv.location, *args, env=env)


def _pytest(session: nox.Session, *paths: str, marker: str = "not slow") -> None:
    session.run("python", "-m", "pytest", *paths, "-m", marker, "--durations=5", *session.posargs)


def _shared(session: nox.Session) -> dict[str, str]:
    """Sync the shared environment (every package, extra and group); return the env to run in it.

    Sessions using it are declared with `venv_backend="none"`; `_run` calls its executables.
    """
    env = {"UV_PROJECT_ENVIRONMENT": str(SHARED)}
    session.run_install(
        "uv", "sync", "--python", sys.executable,
        "--all-packages", "--all-extras", "--all-groups", env=env, external=True,
    )  # fmt: skip
    path = os.pathsep.join([str(SHARED / "bin"), os.environ.get("PATH", "")])
    return {"VIRTUAL_ENV": str(SHARED), "PATH": path}


def _run(session: nox.Session, env: dict[str, str], program: str, *args: str, **kw):
    """Run `program` from the shared environment's bin/ (console scripts, python, mkdocs)."""
    return session.run(str(SHARED / "bin" / program), *args, env=env, external=True, **kw)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(tags=["isolated"])
@nox.parametrize("package", [nox.param(p, id=p) for p in PATHS])
def tests(session: nox.Session, package: str) -> None:
    """One package's tests in an environment holding only that package and its dependencies."""
    _sync(session, "--package", package, "--group", "test", "--no-default-groups")
    _pytest(session, str(PATHS[package].relative_to(ROOT) / "tests"))


HF_TESTS = {  # pytest arguments selecting each package's Hugging Face tests
    "ted-prune": ("packages/ted-prune/tests/test_ted_prune_hf.py",),
    "seven-prune": ("packages/seven-prune/tests/test_seven_prune_integrations.py", "-k", "hf"),
}


@nox.session(tags=["isolated"])
@nox.parametrize("transformers", ["lowest", "newest"])
@nox.parametrize("package", [nox.param(p, id=p) for p in HF_TESTS])
def hf(session: nox.Session, package: str, transformers: str) -> None:
    """A package's Hugging Face tests under the lowest and the newest transformers it allows.

    "lowest" is the lower bound of its `hf` extra (read from its pyproject.toml), installed over
    the isolated package environment with the workspace's torch pin; "newest" is what the
    workspace resolves (`exclude-newer`).
    """
    _sync(session, "--package", package, "--group", "test", "--no-default-groups")
    if transformers == "lowest":
        text = (PATHS[package] / "pyproject.toml").read_text()
        low = re.search(r'"transformers\[torch\]>=([0-9.]+)"', text)
        if low is None:
            session.error(f"{package}'s pyproject.toml declares no transformers[torch]>= bound")
        torch_pin = re.search(r'"(torch==[^"]+)"', (ROOT / "pyproject.toml").read_text())
        session.install(f"transformers[torch]=={low.group(1)}", *torch_pin.groups())
    session.run(
        "python", "-c", "import transformers; print('transformers', transformers.__version__)"
    )
    _pytest(session, *HF_TESTS[package])


def _all_tests() -> list[str]:
    return [str(p.relative_to(ROOT) / "tests") for p in PATHS.values()] + ["tests/integration"]


@nox.session(venv_backend="none")
def slow(session: nox.Session) -> None:
    """Tests marked slow (kept out of the default run), every package installed."""
    env = _shared(session)
    _run(session, env, "python", "-m", "pytest", *_all_tests(), "-m", "slow", *session.posargs)


@nox.session(venv_backend="none")
def integration(session: nox.Session) -> None:
    """Cross-package tests: several methods composed through maskloop, every package installed."""
    env = _shared(session)
    _run(session, env, "python", "-m", "pytest", "tests/integration", "-m", "not slow",
         "--durations=5", *session.posargs)  # fmt: skip


@nox.session(venv_backend="none")
def stress(session: nox.Session) -> None:
    """Repeat the tests marked `numerical` N times, each in a fresh process: `nox -s stress -- 5`.

    The marker is set for the files listed in the root conftest.py (tolerance-based comparisons).
    Extra posargs after N go to pytest. Fails on the first repetition with a failure.
    """
    args = list(session.posargs)
    repeats = int(args.pop(0)) if args and args[0].isdigit() else 5
    tree = ast.parse((ROOT / "conftest.py").read_text())
    listed = next(
        ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == "NUMERICAL"
    )
    present = {p.name for d in _all_tests() for p in (ROOT / d).glob("test_*.py")}
    if missing := sorted(listed - present):
        session.error(f"conftest.py NUMERICAL lists files that do not exist: {missing}")
    env = _shared(session)
    for i in range(1, repeats + 1):
        session.log(f"stress: repetition {i}/{repeats}")
        _run(session, env, "python", "-m", "pytest", *_all_tests(), "-m", "numerical and not slow",
             "-q", "-p", "no:cacheprovider", *args)  # fmt: skip
    session.log(f"stress: {repeats}/{repeats} repetitions passed")


def _has_command(session: nox.Session, env: dict[str, str], package: str, command: str) -> bool:
    """Whether `<package> <command> --help` succeeds (skeleton CLIs reject the sub-command)."""
    out = _run(session, env, package, command, "--help", silent=True, success_codes=[0, 1, 2])
    return f"usage: {package} {command}" in str(out)


def _children_cpu() -> float:
    """CPU seconds used so far by finished child processes (a demo's cost, whatever the load)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _beat(doc: dict) -> str:
    """The demo table's verdict: did the method beat its baseline in this run?"""
    beat, baseline = doc.get("beat_baseline"), doc.get("baseline")
    if beat is None:
        return "n/a"
    verdict = "**yes**" if beat else "**no**"
    return f"{verdict} (vs {baseline})" if baseline else verdict


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """Run every package's `demo`; print one summary table and write demo-report/README.md."""
    env = _shared(session)
    if _run(session, env, "python", "-c", "", silent=True) is None:
        return  # --install-only: the environment is synced, nothing else to do
    out = ROOT / "demo-report"
    out.mkdir(exist_ok=True)
    rows = []
    for package in METHODS:
        if not _has_command(session, env, package, "demo"):
            session.log(f"{package}: no demo command yet, skipped")
            continue
        summary = out / f"{package}.json"
        summary.unlink(missing_ok=True)
        start, cpu = time.perf_counter(), _children_cpu()
        _run(session, env, package, "demo", "--out", str(out / package), "--summary-json",
             str(summary))  # fmt: skip
        seconds, cpu = time.perf_counter() - start, _children_cpu() - cpu
        doc = json.loads(summary.read_text()) if summary.is_file() else {}
        over = f" (over {DEMO_SECONDS} s)" if seconds > DEMO_SECONDS else ""
        rows.append(
            (
                package,
                doc.get("what", "?"),
                doc.get("headline", "(no summary written)"),
                _beat(doc),
                f"{seconds:.1f}{over}",
                f"{cpu:.1f}",
            )
        )
    lines = [
        "| package | what ran | headline | beat its baseline? | wall s | CPU s |",
        "|---|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    table = "\n".join(lines)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    note = (
        f"Produced by `./dev -s demo` (= `uvx nox -s demo`); load average at the end: {load}.\n"
        f"*wall s* is the demo's wall time (target < {DEMO_SECONDS} s on 2 idle cores), *CPU s* its\n"
        "CPU time, which machine load does not inflate."
    )
    (out / "README.md").write_text(f"# Demo summary\n\n{note}\n\n{table}\n")
    print("\n" + table + "\n")
    session.log(f"report written to {out / 'README.md'}")


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Every package's benchmark, written to docs/benchmarks/ (pass `-- --quick` for CI-sized runs).

    `--out docs/benchmarks` is passed explicitly: the package CLIs default to `./<package>-bench/`.
    """
    env = _shared(session)
    dest = "docs/benchmarks"
    if not session.posargs or session.posargs[0] != "maskloop-only":
        for package in METHODS:
            if not _has_command(session, env, package, "bench"):
                session.log(f"{package}: no bench command yet, skipped")
                continue
            _run(session, env, package, "bench", "--out", dest, *session.posargs)
    _run(session, env, "python", "-m", "maskloop.bench", "--out", dest)


def _uv_pins() -> tuple[list[str], str]:
    """The root pyproject's `[tool.uv]` constraint-dependencies and exclude-newer."""
    text = (ROOT / "pyproject.toml").read_text()
    if tomllib is not None:
        uv = tomllib.loads(text)["tool"]["uv"]
        return list(uv.get("constraint-dependencies", [])), uv["exclude-newer"]
    # Python 3.10 has no tomllib: both settings are one-line entries of the root pyproject.
    pins = re.search(r"^constraint-dependencies\s*=\s*\[([^\]]*)\]", text, re.M)
    newer = re.search(r'^exclude-newer\s*=\s*"([^"]+)"', text, re.M)
    if newer is None:
        raise RuntimeError("pyproject.toml: [tool.uv] exclude-newer not found")
    return (re.findall(r'"([^"]+)"', pins.group(1)) if pins else []), newer.group(1)


def _constraints(tmp: Path) -> tuple[Path, str]:
    pins, exclude_newer = _uv_pins()
    path = tmp / "constraints.txt"
    path.write_text("\n".join(pins) + "\n")
    return path, exclude_newer


@nox.session(venv_backend="none")
def build(session: nox.Session) -> None:
    """Build every wheel from its own metadata, twine-check them, install each method package alone."""
    env = _shared(session)  # only for twine; each method package installs into a fresh venv below
    (ROOT / ".nox").mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / ".nox", prefix="build-") as tmpdir:
        tmp = Path(tmpdir)
        dist = tmp / "dist"
        session.run("uv", "build", "--all-packages", "--no-sources", "--out-dir", str(dist),
                    external=True)  # fmt: skip
        artifacts = sorted([*dist.glob("*.whl"), *dist.glob("*.tar.gz")])
        _run(session, env, "twine", "check", "--strict", *map(str, artifacts))
        constraints, exclude_newer = _constraints(tmp)
        core = next(dist.glob("maskloop-*.whl"))
        for package in METHODS:
            wheel = next(dist.glob(f"{MODULES[package]}-*.whl"))
            venv = tmp / f"venv-{package}"
            session.run(
                "uv", "venv", "--quiet", "--python", sys.executable, str(venv), external=True
            )
            py = str(venv / "bin" / "python")
            session.run(
                "uv", "pip", "install", "--quiet", "--python", py, str(wheel), str(core),
                "--constraint", str(constraints), "--exclude-newer", exclude_newer, external=True,
            )  # fmt: skip
            module = MODULES[package]
            session.run(
                py, "-c",
                f"import importlib, {module}; "
                f"[getattr({module}, n) for n in getattr({module}, '__all__', [])]; "
                f"importlib.import_module('{module}.cli'); print('{package}', {module}.__version__)",
                external=True,
            )  # fmt: skip
            session.run(str(venv / "bin" / package), "--help", silent=True, external=True)
            session.log(f"{package}: installs and imports alone from its wheel")


@nox.session(venv_backend="none")
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs in strict mode."""
    env = {**_shared(session), "NO_MKDOCS_2_WARNING": "1"}
    _run(session, env, "mkdocs", "build", "--strict", "--site-dir", os.fspath(ROOT / "site"))


# --- reliability: the bad-input table, generated from the tests themselves ---------------------

BAD_INPUT_FILES = ("*bad_input*", "*errors*", "*inputs*")


def _param_ids(decorator: ast.expr) -> list[str]:
    """The ids of one `@pytest.mark.parametrize(...)` (explicit ids, pytest.param ids or values)."""
    if not (
        isinstance(decorator, ast.Call) and ast.unparse(decorator.func).endswith("parametrize")
    ):
        return []
    for kw in decorator.keywords:
        if kw.arg == "ids" and isinstance(kw.value, ast.List | ast.Tuple):
            return [ast.unparse(e).strip("'\"") for e in kw.value.elts]
    values = decorator.args[1] if len(decorator.args) > 1 else None
    if not isinstance(values, ast.List | ast.Tuple):
        return [ast.unparse(values)] if values is not None else []
    ids = []
    for element in values.elts:
        if isinstance(element, ast.Call) and ast.unparse(element.func).endswith("param"):
            given = [k.value for k in element.keywords if k.arg == "id"]
            element = given[0] if given else ast.Tuple(elts=element.args)
        text = ast.unparse(element)
        ids.append(text.strip("'\"") if isinstance(element, ast.Constant) else text)
    return ids


def _raises(func: ast.FunctionDef) -> list[str]:
    """`pytest.raises(E, match=...)` calls in a test, as 'E: pattern'."""
    found = []
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "pytest.raises" and node.args:
            what = ast.unparse(node.args[0])
            if not re.search(r"Error\b", what):  # SystemExit, KeyboardInterrupt: not bad input
                continue
            match = [k.value for k in node.keywords if k.arg == "match"]
            if match and isinstance(match[0], ast.Constant):
                what += f" ~ `{match[0].value}`"
            found.append(what)
    return list(dict.fromkeys(found))


def _cell(text: str, limit: int = 160) -> str:
    text = " ".join(text.split()).replace("|", "\\|")
    if len(text) <= limit:
        return text
    text = text[: limit - 1]
    return text + ("`…" if text.count("`") % 2 else "…")  # never leave a code span open


def reliability_rows(root: Path = ROOT) -> dict[str, list[tuple[str, str, str]]]:
    """Per package: (case, expected error, test) for every test that checks a bad input.

    A test counts when its file is named like a bad-input file (`test_*bad_input*.py`,
    `test_*errors*.py`, `test_*inputs*.py`) or its body calls `pytest.raises`.
    """
    table: dict[str, list[tuple[str, str, str]]] = {}
    for package, path in PATHS.items():
        rows = table.setdefault(package, [])
        for file in sorted((path / "tests").glob("test_*.py")):
            named = any(file.match(f"{pattern}.py") for pattern in BAD_INPUT_FILES)
            tree = ast.parse(file.read_text(), filename=str(file))
            for node in tree.body:
                if not (isinstance(node, ast.FunctionDef) and node.name.startswith("test")):
                    continue
                raises = _raises(node)
                if not (named or raises):
                    continue
                doc = (ast.get_docstring(node) or "").strip().splitlines()
                case = doc[0] if doc else node.name.removeprefix("test_").replace("_", " ")
                ids = [i for d in node.decorator_list for i in _param_ids(d)]
                if ids:
                    case += " — " + ", ".join(f"`{i}`" for i in ids)
                test = f"`{file.relative_to(root).as_posix()}::{node.name}`"
                rows.append((_cell(case, 200), _cell("; ".join(raises) or "(see test)"), test))
    return table


@nox.session(venv_backend="none")
def reliability(session: nox.Session) -> None:
    """Regenerate docs/reliability.md: every bad-input case per package and the test covering it."""
    table = reliability_rows()
    lines = [
        "# Reliability: bad input, per package",
        "",
        "Every public entry point rejects bad input with a `ValueError`/`TypeError` that names the",
        "argument or the file and entry, before doing any work where possible. This table lists the",
        "cases and the test that covers each. It is generated from the tests by `uvx nox -s reliability`",
        "(do not edit by hand): a row is a test in a `test_*bad_input*.py`, `test_*errors*.py` or",
        "`test_*inputs*.py` file, or any test that calls `pytest.raises`; the case is the test's",
        "first docstring line (or its name) with its parametrized cases, and the expected error is",
        "the exception and the message pattern the test requires.",
        "",
        "| package | case | expected error | test |",
        "|---|---|---|---|",
    ]
    total = 0
    for package, rows in table.items():
        total += len(rows)
        lines += [f"| {package} | {case} | {raises} | {test} |" for case, raises, test in rows]
    counts = ", ".join(f"{p} {len(r)}" for p, r in table.items())
    lines += ["", f"{total} tests ({counts})."]
    out = ROOT / "docs" / "reliability.md"
    out.write_text("\n".join(lines) + "\n")
    session.log(f"{out.relative_to(ROOT)}: {total} bad-input tests ({counts})")
