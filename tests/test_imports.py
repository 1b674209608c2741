"""The import rules: no circle among the project's modules, the leaves import no other leaf (nor daemon), and
`driftloop --help`, the ingest path and the daemon's side of the trainer never import torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "daemon", "ingest", "drift", "trainer", "registry")
LEAVES = ("ingest", "drift", "trainer", "registry")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))}


def imported(path: Path, known: set[str]) -> set[str]:
    """The project modules a module imports anywhere in it (functions included), except under TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    type_only = {
        id(child)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
        for statement in node.body
        for child in ast.walk(statement)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
    return {name for name in found if name in known}


def import_graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imported(path, set(found)) - {name} for name, path in found.items()}


def reachable(graph: dict[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = list(graph[start])
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Groups of modules that import each other, directly or through others."""
    reach = {node: reachable(graph, node) for node in graph}
    groups = {
        tuple(sorted(other for other in reach[node] if node in reach[other])) for node in graph if node in reach[node]
    }
    return sorted(list(group) for group in groups)


def test_no_module_imports_itself_through_others() -> None:
    assert circles(import_graph()) == []


def test_the_circle_check_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("leaf", LEAVES)
def test_a_leaf_imports_only_itself_and_common(leaf: str) -> None:
    allowed = (leaf, "common")
    outside = {
        f"{name} imports {target}"
        for name, targets in import_graph().items()
        if name.split(".")[0] == leaf
        for target in targets
        if target.split(".")[0] not in allowed
    }
    assert outside == set()


def test_common_imports_nothing_outside_common() -> None:
    outside = {name: {target for target in targets if not target.startswith("common")}
               for name, targets in import_graph().items() if name.startswith("common")}  # fmt: skip
    assert {name: targets for name, targets in outside.items() if targets} == {}


@pytest.mark.parametrize(
    "imports",
    [
        "from daemon.cli import register_commands; register_commands()",
        "import ingest.consumer, ingest.store, daemon.loop.runtime",
        "import trainer.process, trainer.data, trainer.settings",
    ],
)
def test_no_torch(imports: str) -> None:
    code = f"import sys; {imports}; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
