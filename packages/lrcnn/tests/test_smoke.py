"""Smoke test: the package imports alone, with only maskloop beside it."""

import importlib.metadata

import lrcnn


def test_version_matches_metadata() -> None:
    assert lrcnn.__version__ == importlib.metadata.version("lrcnn")


def test_no_import_cycle() -> None:
    """The package's modules import each other without a cycle (also inside functions)."""
    import ast
    from pathlib import Path

    src = Path(lrcnn.__file__).parent
    deps: dict[str, set[str]] = {}
    for f in src.glob("*.py"):
        mod = f.stem
        deps[mod] = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lrcnn"):
                target = node.module.split(".")[1] if "." in node.module else "__init__"
                if target != mod:
                    deps[mod].add(target)
    deps["__init__"].discard("__init__")
    state: dict[str, int] = {}

    def visit(m: str, path: list[str]) -> None:
        if state.get(m) == 1:
            raise AssertionError(f"import cycle: {' -> '.join(path + [m])}")
        if state.get(m) == 2:
            return
        state[m] = 1
        for d in sorted(deps.get(m, ())):
            if d != "__init__":
                visit(d, path + [m])
        state[m] = 2

    for m in sorted(deps):
        visit(m, [])
    assert "rowcentric" not in deps["planner"]


def test_readme_usage_runs() -> None:
    """The README's usage example runs as written."""
    import re
    from pathlib import Path

    readme = Path(__file__).parents[1] / "README.md"
    block = re.search(r"## Usage\n\n```python\n(.*?)```", readme.read_text(), re.S)
    assert block is not None
    exec(compile(block.group(1), str(readme), "exec"), {})


PUBLIC = [
    "POLICIES",
    "Plan",
    "Residual",
    "RowCentric",
    "StepInBackward",
    "Strip",
    "TrunkGraph",
    "__version__",
    "find_trunk",
    "plan",
]


def test_public_api_is_pinned() -> None:
    """`__all__` is the method, its config and its integrations; a change to it is deliberate."""
    import lrcnn

    assert sorted(lrcnn.__all__) == PUBLIC
    assert all(hasattr(lrcnn, name) for name in PUBLIC)
