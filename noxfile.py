"""Sessions for the monorepo: lint, isolated package tests, integration, demo, bench, build, docs.

`nox` alone runs lint, every `tests(<package>)`, `integration` and `build`. Each `tests(<package>)`
syncs only that member (`uv sync --package <pkg> --group test`) into its own environment, so an
import of a sibling package fails there, as it would for a user who installed one package alone.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import nox
import tomllib

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "tests", "integration", "build"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_external_run = True

CORE = "maskloop"
METHODS = ["ted-prune", "lnpt", "seven-prune", "lrcnn", "cdhm", "ssjdn"]
PATHS = {CORE: ROOT / "shared" / "maskloop", **{p: ROOT / "packages" / p for p in METHODS}}
MODULES = {p: p.replace("-", "_") for p in PATHS}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _sync(session: nox.Session, *args: str) -> None:
    """`uv sync` into the session's own environment (no lock file is committed; uv writes one)."""
    env = {"UV_PROJECT_ENVIRONMENT": session.virtualenv.location}
    session.run_install("uv", "sync", "--python", session.virtualenv.location, *args, env=env)


def _pytest(session: nox.Session, *paths: str, marker: str = "not slow") -> None:
    session.run("python", "-m", "pytest", *paths, "-m", marker, *session.posargs)


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


@nox.session
def slow(session: nox.Session) -> None:
    """Tests marked slow (kept out of the default run), every package installed."""
    _sync(session, "--all-packages", "--all-extras", "--all-groups")
    _pytest(session, *(str(p.relative_to(ROOT) / "tests") for p in PATHS.values()), marker="slow")


@nox.session
def integration(session: nox.Session) -> None:
    """Cross-package tests: several methods composed through maskloop, every package installed."""
    _sync(session, "--all-packages", "--all-extras", "--all-groups")
    _pytest(session, "tests/integration")


def _has_command(session: nox.Session, package: str, command: str) -> bool:
    """Whether `<package> <command> --help` succeeds (skeleton CLIs reject the sub-command)."""
    out = session.run(package, command, "--help", silent=True, success_codes=[0, 1, 2])
    return f"usage: {package} {command}" in str(out)


@nox.session
def demo(session: nox.Session) -> None:
    """Run every package's `demo`; print one summary table and write demo-report/README.md."""
    _sync(session, "--all-packages", "--all-extras")
    out = ROOT / "demo-report"
    out.mkdir(exist_ok=True)
    rows = []
    for package in METHODS:
        if not _has_command(session, package, "demo"):
            session.log(f"{package}: no demo command yet, skipped")
            continue
        summary = out / f"{package}.json"
        summary.unlink(missing_ok=True)
        start = time.perf_counter()
        session.run(package, "demo", "--out", str(out / package), "--summary-json", str(summary))
        seconds = time.perf_counter() - start
        doc = json.loads(summary.read_text()) if summary.is_file() else {}
        rows.append(
            (
                package,
                doc.get("what", "?"),
                doc.get("headline", "(no summary written)"),
                f"{seconds:.1f}",
            )
        )
    lines = ["| package | what ran | headline | seconds |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    table = "\n".join(lines)
    (out / "README.md").write_text(f"# Demo summary\n\nProduced by `uvx nox -s demo`.\n\n{table}\n")
    print("\n" + table + "\n")
    session.log(f"report written to {out / 'README.md'}")


@nox.session
def bench(session: nox.Session) -> None:
    """Every package's benchmark, written to docs/benchmarks/ (pass `-- --quick` for CI-sized runs)."""
    _sync(session, "--all-packages", "--all-extras")
    dest = ROOT / "docs" / "benchmarks"
    if not session.posargs or session.posargs[0] != "maskloop-only":
        for package in METHODS:
            if not _has_command(session, package, "bench"):
                session.log(f"{package}: no bench command yet, skipped")
                continue
            session.run(package, "bench", "--out", str(dest), *session.posargs)
    session.run("python", "-m", "maskloop.bench", "--out", str(dest))


def _constraints(tmp: Path) -> tuple[Path, str]:
    uv = PYPROJECT["tool"]["uv"]
    path = tmp / "constraints.txt"
    path.write_text("\n".join(uv.get("constraint-dependencies", [])) + "\n")
    return path, uv["exclude-newer"]


@nox.session
def build(session: nox.Session) -> None:
    """Build every wheel from its own metadata, twine-check them, install each method package alone."""
    session.install("twine>=5")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        dist = tmp / "dist"
        session.run("uv", "build", "--all-packages", "--no-sources", "--out-dir", str(dist))
        artifacts = sorted([*dist.glob("*.whl"), *dist.glob("*.tar.gz")])
        session.run("twine", "check", "--strict", *map(str, artifacts))
        constraints, exclude_newer = _constraints(tmp)
        core = next(dist.glob("maskloop-*.whl"))
        for package in METHODS:
            wheel = next(dist.glob(f"{MODULES[package]}-*.whl"))
            venv = tmp / f"venv-{package}"
            session.run("uv", "venv", "--quiet", "--python", sys.executable, str(venv))
            py = str(venv / "bin" / "python")
            session.run(
                "uv", "pip", "install", "--quiet", "--python", py, str(wheel), str(core),
                "--constraint", str(constraints), "--exclude-newer", exclude_newer,
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


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site with mkdocs in strict mode."""
    _sync(session, "--all-packages", "--all-extras", "--group", "docs")
    session.run(
        "mkdocs", "build", "--strict", "--site-dir", os.fspath(ROOT / "site"),
        env={"NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
