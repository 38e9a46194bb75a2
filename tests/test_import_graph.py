"""The import graph of slimserve, read from the source with ``ast`` (nothing is imported):

- no cycles among module-level ``slimserve.*`` imports (imports inside functions and under
  ``if TYPE_CHECKING:`` run later or never, so they cannot make a module see a half-initialised
  one);
- the rooms stay apart: ``handler/`` (it runs in Lambda) imports neither ``slimserve.build`` nor
  ``slimserve.infra``, and ``infra/`` does not import ``slimserve.build``, anywhere in a file.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from repo import REPO_ROOT

ROOMS = ("handler", "build", "infra")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["slimserve", *parts])


def source_modules() -> dict[str, Path]:
    return {module_name(path): path for room in ROOMS for path in sorted((REPO_ROOT / room).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> Iterator[str]:
    """Every dotted name an import statement may load: ``import a.b`` -> ``a.b``;
    ``from a import b`` -> ``a`` and ``a.b`` (``b`` may be a submodule); relative imports resolved."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
    else:
        base = node.module or ""
    yield base
    yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def imports(path: Path, module: str, *, module_level_only: bool) -> set[str]:
    """slimserve modules ``path`` imports: at module level (class bodies, ``if``/``try`` blocks
    included; functions and ``if TYPE_CHECKING:`` excluded), or anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for statement in statements:
            if isinstance(statement, (ast.Import, ast.ImportFrom)):
                found.update(_imported_names(statement, module, is_package))
            elif isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            elif isinstance(statement, ast.If) and _is_type_checking(statement.test):
                visit(statement.orelse)
            else:
                for field in ("body", "orelse", "finalbody", "handlers"):
                    children = getattr(statement, field, None)
                    if isinstance(children, list):
                        visit([child for child in children if isinstance(child, ast.stmt)])
                for handler in getattr(statement, "handlers", []):
                    visit(handler.body)
                for case in getattr(statement, "cases", []):
                    visit(case.body)

    if module_level_only:
        visit(tree.body)
    else:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                found.update(_imported_names(node, module, is_package))
    return {name for name in found if name == "slimserve" or name.startswith("slimserve.")}


def import_graph() -> dict[str, set[str]]:
    """module -> the slimserve modules loading it runs first. Importing ``a.b.c`` also runs the
    packages ``a.b`` and ``a`` (except the importer's own packages, already running)."""
    modules = source_modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        own_packages = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        targets: set[str] = set()
        for name in imports(path, module, module_level_only=True):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                prefix = ".".join(parts[:i])
                if prefix in modules and prefix not in own_packages and prefix != module:
                    targets.add(prefix)
        graph[module] = targets
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path = [start]
        stack = [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_slimserve_imports() -> None:
    graph = import_graph()
    assert len(graph) > 50
    assert "slimserve.build.errors" in graph["slimserve.build.gate.evaluate"]
    assert "slimserve.handler.manifest_file" in graph["slimserve.handler.model"]


def test_find_cycle_names_the_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"x": {"x"}}) == ["x", "x"]


def test_module_level_imports_only(tmp_path: Path) -> None:
    source = tmp_path / "sample.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "import slimserve.build.errors\n"
        "from slimserve.handler import manifest\n"
        "from . import sibling\n"
        "if TYPE_CHECKING:\n    from slimserve.build.config import BuildConfig\n"
        "else:\n    import slimserve.handler.errors\n"
        "try:\n    import slimserve.handler.model\nexcept ImportError:\n    import slimserve.handler.app\n"
        "class A:\n    import slimserve.handler.settings\n"
        "def f():\n    import slimserve.infra.app\n",
        encoding="utf-8",
    )
    found = imports(source, "slimserve.build.gate.sample", module_level_only=True)
    assert found == {
        "slimserve.build.errors", "slimserve.handler", "slimserve.handler.manifest", "slimserve.build.gate",
        "slimserve.build.gate.sibling", "slimserve.handler.errors", "slimserve.handler.model",
        "slimserve.handler.app", "slimserve.handler.settings",
    }
    everywhere = imports(source, "slimserve.build.gate.sample", module_level_only=False)
    assert {"slimserve.build.config", "slimserve.infra.app"} <= everywhere


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize(
    "room,forbidden",
    [("handler", ("slimserve.build", "slimserve.infra")), ("infra", ("slimserve.build",))],
)
def test_rooms_do_not_import_each_other(room: str, forbidden: tuple[str, ...]) -> None:
    offenders = [
        f"{path.relative_to(REPO_ROOT)} imports {name}"
        for module, path in source_modules().items()
        if module.startswith(f"slimserve.{room}")
        for name in sorted(imports(path, module, module_level_only=False))
        if any(name == prefix or name.startswith(prefix + ".") for prefix in forbidden)
    ]
    assert offenders == []
