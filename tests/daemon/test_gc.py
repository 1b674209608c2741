"""`driftloop gc` over a real store and BentoML home: run folders and store versions retention lets go of are
deleted, the rest (production, the rollback target, pending, live runs, the feedback) stays; a dry run lists the
same plan and deletes nothing; the command works with and without a running daemon, and housekeeping runs it."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner

from daemon.cli import cli, register_commands
from daemon.daemon_settings import DaemonSettings
from daemon.loop import runs
from daemon.loop.access import StoreAccess
from daemon.loop.admin import daemon_lock
from daemon.loop.operations import call
from daemon.loop.retention import collect_garbage, plan_gc
from daemon.loop.runs import TrainingRun
from daemon.loop.runtime import Daemon
from daemon.loop.store import bentoml_home, open_store
from daemon.loop.training import runs_dir
from daemon.settings import Settings
from ingest.summary import store_summary
from registry.candidates import CandidateFiles, Lineage
from registry.evaluation import Evaluation
from registry.registry import Registry
from registry.settings import RegistrySettings
from tests.daemon.loop_helpers import records, store_records
from tests.registry.conftest import build_tiny_model, evaluation

OPTIONS = ["--set", "registry.task=t", "--set", "registry.gc_keep_retired=0", "--set",
           "registry.gc_rejected_after_days=0", "--set", "daemon.gc_runs_after_days=0"]  # fmt: skip


@dataclass(frozen=True)
class Built:
    settings: Settings
    runs: dict[str, TrainingRun]  # by what became of them

    def folder(self, name: str) -> Path:
        return Path(self.runs[name].out_dir).parent


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Built:
    """Stored feedback (one record rejected) and runs: `production` (v2), `rollback` (v1, retired, the rollback
    target), `rejected` (v3), `failed`, `pending` (v4), `running` and `succeeded` (its candidate waits for the gate)."""
    home = tmp_path / "home"
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    settings = Settings(
        home=home,
        registry=RegistrySettings(task="t", gate_bootstrap_samples=200, gc_keep_retired=0, gc_rejected_after_days=0),
        daemon=DaemonSettings(gc_runs_after_days=0),
    )
    store_records({"DRIFTLOOP_HOME": str(home)}, "start.jsonl", [*records(0, 300, 0), {"id": "bad", "text": "x"}])
    model_dir = build_tiny_model(tmp_path / "model", 0)
    made: dict[str, TrainingRun] = {}
    with open_store(settings) as store:
        con, registry = store.con, StoreAccess(store.con, settings).registry()
        for name in ("rollback", "production", "rejected", "failed", "pending", "running", "succeeded"):
            made[name] = runs.open_run(con, runs.bootstrap_run(con), None, runs_dir(settings))
            Path(made[name].out_dir).mkdir(parents=True)
            (Path(made[name].out_dir) / "model.safetensors").write_bytes(bytes(4096))
        register(con, registry, made["rollback"], model_dir, evaluation({1: 0.8}), None)
        registry.approve("v1", "ann")
        register(con, registry, made["production"], model_dir, evaluation({1: 0.8}), evaluation({1: 0.8}))
        registry.approve("v2", "ann", "a test of gc, not of the gate", force=True)
        register(con, registry, made["rejected"], model_dir, evaluation({1: 0.8}), evaluation({1: 0.8}))
        registry.reject("v3", "ann", "not wanted")
        runs.end_run(con, made["failed"].id, "failed", reason="boom")
        better, before = evaluation({1: 0.8, 2: 0.9}), evaluation({1: 0.8, 2: 0.6})
        register(con, registry, made["pending"], model_dir, better, before)
        runs.end_run(con, made["succeeded"].id, "succeeded")
        assert [(m.version, m.stage) for m in registry.models()] == [
            ("v1", "retired"), ("v2", "production"), ("v3", "rejected"), ("v4", "pending")]  # fmt: skip
    return Built(settings, made)


def register(con: duckdb.DuckDBPyConnection, registry: Registry, record: TrainingRun, model_dir: Path,
             candidate: Evaluation, production: Evaluation | None) -> None:  # fmt: skip
    lineage = Lineage(training_run={"id": record.id, "directory": str(Path(record.out_dir).parent)})
    model = registry.submit(CandidateFiles(model_dir), candidate, production, lineage)
    runs.end_run(con, record.id, "submitted", candidate_version=model.version)


def expected_targets(built: Built) -> list[str]:
    return ["driftloop-t:v3", "driftloop-t-production:v1-p1", str(built.folder("rejected")),
            str(built.folder("failed"))]  # fmt: skip


def store_versions(settings: Settings) -> dict[str, list[str]]:
    with open_store(settings) as store:
        registry = StoreAccess(store.con, settings).registry()
        return {name: [m.version for m in registry.store.versions(name)]
                for name in (settings.registry.model_name(), settings.registry.production_name())}  # fmt: skip


def test_a_dry_run_lists_the_plan_and_gc_deletes_exactly_it_and_nothing_else(built: Built) -> None:
    settings = built.settings
    before = store_versions(settings)
    with open_store(settings) as store:
        access = StoreAccess(store.con, settings)
        feedback = store_summary(store.con, settings.kafka.topic, settings.kafka.predictions_topic)
        dry = collect_garbage(access, dry_run=True, actor="ann")
        assert [item.target for item in dry.deleted] == expected_targets(built)
        assert all(built.folder(name).is_dir() for name in built.runs), "a dry run deletes nothing"
        assert store_versions(settings) == before

        done = collect_garbage(access, dry_run=False, actor="ann")

        assert (done.deleted, done.total_bytes, done.failed) == (dry.deleted, dry.total_bytes, ())
        assert done.total_bytes > 2 * 4096
        assert store_summary(store.con, settings.kafka.topic, settings.kafka.predictions_topic) == feedback, (
            "the stored feedback is never touched"
        )
        assert (feedback.rows, feedback.rejected) == (300, 1)
        assert len(runs.list_runs(store.con)) == len(built.runs), "the runs' records stay"
        assert collect_garbage(access, dry_run=True, actor="ann").deleted == ()
    assert sorted(name for name in built.runs if built.folder(name).is_dir()) == [
        "pending", "production", "rollback", "running", "succeeded"]  # fmt: skip
    assert store_versions(settings) == {"driftloop-t": ["v1", "v2", "v4"], "driftloop-t-production": ["v2-p2"]}


def test_a_run_folder_is_kept_until_its_days_are_over(built: Built) -> None:
    daemon = built.settings.daemon.model_copy(update={"gc_runs_after_days": 7.0})
    settings = built.settings.model_copy(update={"daemon": daemon})
    with open_store(settings) as store:
        access = StoreAccess(store.con, settings)
        now = datetime.now(UTC)
        folders = [item.target for item in plan_gc(access, now).deletions if item.kind == "run"]
        later = [item.target for item in plan_gc(access, now + timedelta(days=8)).deletions if item.kind == "run"]
    assert (folders, later) == ([], [str(built.folder("rejected")), str(built.folder("failed"))])


def gc_cli(home: Path, *args: str, ok: bool = True) -> str:
    register_commands()
    result = CliRunner().invoke(cli, ["--home", str(home), *OPTIONS, *args])
    assert (result.exit_code == 0) == ok, result.output
    return result.stdout  # the log lines go to stderr


def test_the_command_prints_one_line_per_item_and_a_total_and_records_store_deletions(built: Built) -> None:
    home = built.settings.home
    dry = gc_cli(home, "gc", "--dry-run").splitlines()
    assert [line.split()[:4] for line in dry[:-1]] == [
        ["would", "delete", kind, target] for kind, target in zip(
            ("candidate", "production", "run", "run"), expected_targets(built), strict=True)]  # fmt: skip
    assert dry[2].endswith("): run 3 ended submitted, model v3, over 0 days ago (daemon.gc_runs_after_days)")
    assert dry[-1].startswith("would delete 4 items, ")
    assert [item["target"] for item in json.loads(gc_cli(home, "gc", "--dry-run", "--json"))["deleted"]] == (
        expected_targets(built)
    )
    assert built.folder("failed").is_dir()

    done = gc_cli(home, "gc", "--actor", "ann").splitlines()

    assert [line.replace("would delete", "deleted") for line in dry] == done
    assert not built.folder("failed").is_dir()
    assert gc_cli(home, "gc") == "deleted 0 items, 0 B in all\n"
    assert "gc v3 by ann (- -> -): deleted driftloop-t:v3 (" in gc_cli(home, "show", "v3")
    assert f'"directory": "{built.folder("rejected")}"' in gc_cli(home, "lineage", "v3"), "the records stay readable"


def test_through_the_running_daemon_and_in_its_housekeeping(
    built: Built, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = built.settings
    with daemon_lock(settings.home):
        daemon = Daemon(settings, threading.Event())
        daemon.admin.start()
        try:
            monkeypatch.setattr("daemon.loop.operations.open_store", _no_store)
            planned = call(settings, "gc", dry_run=True, actor="ann")["deleted"]  # the CLI's call, not its logging
            monkeypatch.setattr("daemon.loop.runtime.collect_garbage", _failing_gc)
            with caplog.at_level(logging.ERROR, logger="daemon.loop.runtime"):
                daemon.housekeeping_job()
            assert "housekeeping: gc failed" in caplog.text
            assert all(Path(item["target"]).is_dir() for item in planned if item["kind"] == "run")
            monkeypatch.undo()
            with caplog.at_level(logging.INFO, logger="daemon.loop.retention"):
                daemon.housekeeping_job()
        finally:
            daemon.admin.stop()
            daemon.store.close()
    assert planned, "the daemon found something to delete"
    assert not [item for item in planned if item["kind"] == "run" and Path(item["target"]).exists()]
    assert f"gc: deleted {len(planned)} items" in caplog.text
    assert not (bentoml_home(settings) / "models" / "driftloop-t" / "v3").exists()


def _no_store(*_: object, **__: object) -> None:
    raise AssertionError("the CLI opened the store itself instead of asking the running daemon")


def _failing_gc(*_: object, **__: object) -> None:
    raise RuntimeError("a bug in gc")
