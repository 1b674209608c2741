"""One owner per table: only the package that creates a table (or sequence) holds SQL naming it, and a package's
tests name only its own tables (they use the owners' functions for the rest, never hand-built copies)."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "daemon", "ingest", "drift", "trainer", "registry")
CREATED = re.compile(
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMP\s+|TEMPORARY\s+)?(?:TABLE|SEQUENCE)\s+(?:IF\s+NOT\s+EXISTS\s+)?\"?(\w+)"
)
NAMED = re.compile(r"""(?:\b(?:FROM|JOIN|INTO|UPDATE|TABLE|SEQUENCE|EXISTS)\s+"?|nextval\(')(\w+)""")


def sql_strings(source: str) -> Iterator[str]:
    """Every string literal of a module (f-strings by their literal parts), docstrings left out."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def tables_created(source: str) -> set[str]:
    return {name for text in sql_strings(source) for name in CREATED.findall(text)}


def tables_named(source: str) -> set[str]:
    return {name for text in sql_strings(source) for name in NAMED.findall(text)}


def package_sources(folder: Path) -> dict[Path, str]:
    return {path: path.read_text() for path in sorted(folder.rglob("*.py"))}


def owners() -> dict[str, str]:
    found: dict[str, str] = {}
    for package in PACKAGES:
        for path, source in package_sources(ROOT / package).items():
            for table in tables_created(source):
                assert found.setdefault(table, package) == package, f"{table} is created in {found[table]} and {path}"
    return found


def foreign_tables(package: str, sources: dict[Path, str], owner: dict[str, str]) -> list[str]:
    """'path: table (owner)' for every table `package`'s sources name that another package owns."""
    return [
        f"{path.relative_to(ROOT)}: {table} (owned by {owner[table]})"
        for path, source in sources.items()
        for table in sorted(tables_named(source))
        if table in owner and owner[table] != package
    ]


def test_the_tables_the_design_names_have_owners() -> None:
    owner = owners()
    assert {table: owner[table] for table in ("feedback", "rejected", "kafka_offsets", "episodes")} == dict.fromkeys(
        ("feedback", "rejected", "kafka_offsets", "episodes"), "ingest"
    )
    assert (owner["drift_events"], owner["detector_state"]) == ("drift", "drift")
    assert (owner["models"], owner["promotions"], owner["lineage"]) == ("registry", "registry", "registry")
    assert owner["training_runs"] == "daemon"


@pytest.mark.parametrize("package", PACKAGES)
def test_only_the_owner_names_its_tables_in_sql(package: str) -> None:
    assert foreign_tables(package, package_sources(ROOT / package), owners()) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_a_packages_tests_name_only_its_tables(package: str) -> None:
    tests = ROOT / "tests" / package
    sources = package_sources(tests) if tests.is_dir() else {}
    owner = owners()
    hand_built = [f"{path.relative_to(ROOT)}: {table}" for path, source in sources.items()
                  for table in sorted(tables_created(source)) if table in owner]  # fmt: skip
    assert hand_built == []
    assert foreign_tables(package, sources, owner) == []


def test_the_check_sees_sql_in_strings_and_f_strings_but_not_docstrings() -> None:
    source = '''
def f(con, where):
    """Reads FROM feedback, in words."""
    con.execute(f"SELECT * FROM models JOIN \\"promotions\\" ON true WHERE {where}")
    con.execute("INSERT INTO drift_events SELECT nextval('training_run_ids')")
'''
    assert tables_named(source) == {"models", "promotions", "drift_events", "training_run_ids"}
    assert foreign_tables("drift", {ROOT / "x.py": source}, owners()) == [
        "x.py: models (owned by registry)",
        "x.py: promotions (owned by registry)",
        "x.py: training_run_ids (owned by daemon)",
    ]
