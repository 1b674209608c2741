"""Publish (through the daemon's call), then approve, reject, roll back and trace lineage through the CLI."""

from __future__ import annotations

import getpass
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from daemon.cli import cli, register_commands
from registry.registry import Registry
from registry.settings import RegistrySettings
from registry.store import ModelStore
from tests.registry.conftest import evaluation, files, lineage_for


@pytest.fixture
def home(tmp_path: Path, tiny_models: tuple[Path, ...], bentoml_home: Path) -> Path:
    """v1 (first model), v2 (better than v1), v3 (forgets episode 1: gate fails) registered by the daemon's call."""
    home = tmp_path / "home"
    settings = RegistrySettings(task="news", gate_bootstrap_samples=200)
    home.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(home / "driftloop.duckdb")) as con:
        registry = Registry(con, settings, bentoml_home)
        first = evaluation({1: 0.8})
        registry.submit(files(tiny_models[0]), first, None, lineage_for("run-1"))
        second = evaluation({1: 0.8, 2: 0.9})
        registry.submit(files(tiny_models[1]), second, evaluation({1: 0.8, 2: 0.6}), lineage_for("run-2"), "v1")
        third = evaluation({1: 0.5, 2: 0.95})
        registry.submit(files(tiny_models[2]), third, evaluation({1: 0.8, 2: 0.9}), lineage_for("run-3"), "v2")
    return home


def run(home: Path, *args: str, ok: bool = True) -> str:
    register_commands()
    result = CliRunner().invoke(cli, ["--home", str(home), "--set", "registry.task=news", *args])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def test_approve_reject_rollback_and_lineage(home: Path, bentoml_home: Path) -> None:
    listing = run(home, "models")
    assert [line.split()[:2] for line in listing.splitlines()] == [["v1", "pending"], ["v2", "pending"],
                                                                   ["v3", "gate_failed"]]  # fmt: skip
    assert "approved v1: now serving as driftloop-news-production:v1-p1" in run(home, "approve", "v1", "--actor", "ann")
    assert "now serving as driftloop-news-production:v2-p2" in run(home, "approve", "v2", "--reason", "better on ep 2")
    assert run(home, "models", "--stage", "production").split()[0] == "v2"

    refused = run(home, "approve", "v3", ok=False)
    assert refused.startswith("driftloop: error: v3 failed the gate: Forgets: macro_f1 on earlier episode 1")
    assert refused.count("\n") == 1
    assert "--force --reason" in refused
    assert "needs --reason" in run(home, "approve", "v3", "--force", ok=False)

    shown = run(home, "show", "v3")
    assert "gate FAILED" in shown
    assert "[no] Forgets" in shown
    assert "episode   2: candidate 0.9" in shown

    assert "rejected v3" in run(home, "reject", "v3", "--reason", "forgets", "--actor", "ann")
    assert "rolled back v2 -> v1: serving driftloop-news-production:v1-p4" in run(home, "rollback", "--actor", "bob")
    assert "v3 is rejected" in run(home, "approve", "v3", "--force", "--reason", "x", ok=False)
    assert "can only roll back" in run(home, "rollback", "--to", "v3", ok=False)

    trace = run(home, "lineage", "v1")
    assert "kafka     feedback[0] offsets 0..99 (100 rows)" in trace
    assert '"run": "run-1"' in trace
    assert '"signal": "error"' in trace
    assert "approve v1 by ann (- -> v1)" in trace
    assert "rollback v1 by bob (v2 -> v1)" in trace

    store = ModelStore(bentoml_home)
    production = store.versions("driftloop-news-production")
    assert [m.version for m in production] == ["v1-p1", "v2-p2", "v1-p4"], "history is never deleted"
    assert store.get("driftloop-news-production:latest").metadata["source"] == "driftloop-news:v1"
    with duckdb.connect(str(home / "driftloop.duckdb")) as con:
        log = con.execute("SELECT action, version, actor, forced FROM promotions ORDER BY id").fetchall()
    assert log == [("approve", "v1", "ann", False), ("approve", "v2", getpass.getuser(), False),
                   ("reject", "v3", "ann", False), ("rollback", "v1", "bob", False)]  # fmt: skip


def test_a_forced_approval_is_recorded(home: Path) -> None:
    output = run(home, "approve", "v3", "--force", "--reason", "ops override: episode 1 is obsolete")
    assert "(forced)" in output
    assert "approve FORCED v3" in run(home, "show", "v3")


def test_unknown_versions_and_empty_rollbacks_are_one_line(home: Path) -> None:
    assert run(home, "show", "v9", ok=False) == (
        "driftloop: error: no model 'v9' for task 'news' (latest: v1, v2, v3); see `driftloop models`\n"
    )
    assert "no production model" in run(home, "rollback", ok=False)
    run(home, "approve", "v1")
    assert "nothing to roll back to" in run(home, "rollback", ok=False)


def test_auto_approve_promotes_a_passing_candidate(tmp_path: Path, tiny_models: tuple[Path, ...], bentoml_home: Path
                                                   ) -> None:  # fmt: skip
    settings = RegistrySettings(task="auto", auto_approve=True)
    with duckdb.connect(str(tmp_path / "auto.duckdb")) as con:
        registry = Registry(con, settings, bentoml_home)
        model = registry.submit(files(tiny_models[0]), evaluation({1: 0.8}), None, lineage_for("run-a"))
        assert model.stage == "production"
        assert [(p.action, p.actor) for p in registry.promotions()] == [("auto_approve", "driftloop:auto-approve")]
