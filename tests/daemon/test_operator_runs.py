"""Operators steer training: `driftloop train` queues a run on the current episode's rows, `driftloop cancel` ends a
queued one or stops a running one; refusals, the supervisor's order (a queued run before drift), no retry after a
cancel, and once through a running daemon with a tiny model."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner

from daemon.cli import cli, register_commands
from daemon.daemon_settings import DaemonSettings
from daemon.errors import RunRefused
from daemon.loop import runs
from daemon.loop.access import StoreAccess
from daemon.loop.operations import perform
from daemon.loop.operator_runs import plan_operator_run
from daemon.loop.retention import run_folders
from daemon.loop.runs import PlannedRun
from daemon.loop.store import ensure_schemas, open_store
from daemon.loop.training import ParentModel, TrainingSupervisor, runs_dir
from daemon.settings import Settings
from drift.settings import DriftSettings
from ingest.settings import KafkaSettings
from registry.candidates import CandidateFiles, Lineage
from registry.settings import RegistrySettings
from tests.daemon import loop_helpers as loop
from tests.daemon.test_runs import drift_event
from tests.registry.conftest import build_tiny_model, evaluation
from trainer.errors import TrainingCancelled

POLICY = DaemonSettings(min_new_rows=100, max_training_attempts=2)
register_commands()


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """300 stored rows (ids 1 to 300) and the bootstrap run that opened episode 0 at row 1."""
    loop.store_records({"DRIFTLOOP_HOME": str(tmp_path)}, "start.jsonl", loop.records(0, 300, 0))
    connection = duckdb.connect(str(tmp_path / "driftloop.duckdb"))
    ensure_schemas(connection)
    bootstrap = runs.open_run(connection, runs.bootstrap_run(connection), None, tmp_path / "runs")
    runs.end_run(connection, bootstrap.id, status="submitted", candidate_version="v1")
    yield connection
    connection.close()


def queue(con: duckdb.DuckDBPyConnection, tmp_path: Path, actor: str = "alice", reason: str = "new labels") -> int:
    return runs.queue_run(con, plan_operator_run(con, POLICY, actor, reason), tmp_path / "runs").id


def test_a_request_is_queued_on_the_rows_since_the_current_episode_began(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    drift_run = runs.open_run(con, PlannedRun("drift", 200, 1, 1, 101, "a shift", 200), "v1", tmp_path / "runs")
    runs.end_run(con, drift_run.id, status="submitted", candidate_version="v2")

    queued = runs.get_run(con, queue(con, tmp_path))

    assert (queued.trigger, queued.status, queued.episode, queued.first_row_id, queued.last_row_id) == (
        "operator", "queued", 1, 101, 300)  # fmt: skip
    assert (queued.actor, queued.why, queued.reason) == ("alice", "requested by alice: new labels", None)
    assert runs.runs_by_status(con) == {"submitted": 2, "queued": 1}
    planned = runs.next_queued_run(con)
    assert planned is not None
    assert (planned.run_id, planned.trigger, planned.episode, planned.first_row_id) == (queued.id, "operator", 1, 101)
    with pytest.raises(RunRefused, match=f"^run {queued.id} is already queued; .*`driftloop cancel {queued.id}`"):
        plan_operator_run(con, POLICY, "bob", None)


def test_a_request_is_refused_while_a_run_runs_or_with_too_few_rows(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    late = runs.open_run(con, PlannedRun("drift", 290, 1, 1, 250, "a late shift", 300), "v1", tmp_path / "runs")
    with pytest.raises(RunRefused, match=f"^run {late.id} is already running; "):
        plan_operator_run(con, POLICY, "alice", None)
    runs.end_run(con, late.id, status="submitted", candidate_version="v2")
    expected = "only 51 rows since episode 1 began at row 250; a run needs daemon.min_new_rows = 100 "
    with pytest.raises(RunRefused, match=f"^{re.escape(expected)}"):
        plan_operator_run(con, POLICY, "alice", None)
    assert plan_operator_run(con, DaemonSettings(min_new_rows=51), "alice", None).first_row_id == 250


def test_cancel_ends_a_queued_run_and_refuses_others(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    run_id = queue(con, tmp_path)

    cancelled = runs.cancel_stored(con, run_id, "cancelled by bob: wrong rows")

    assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled by bob: wrong rows")
    assert cancelled.ended_at is not None
    assert runs.next_queued_run(con) is None
    with pytest.raises(RunRefused, match=f"^run {run_id} has already ended cancelled \\(cancelled by bob: wrong "):
        runs.cancel_stored(con, run_id, "again")
    with pytest.raises(RunRefused, match="^run 1 has already ended submitted; only a queued or running run"):
        runs.cancel_stored(con, 1, "too late")
    with pytest.raises(RunRefused, match=f"^no training run 99; the newest is {run_id}$"):
        runs.cancel_stored(con, 99, "none")
    running = runs.open_run(con, PlannedRun("drift", 290, 1, 1, 150, "a shift", 300), "v1", tmp_path / "runs")
    with pytest.raises(RunRefused, match=f"^run {running.id} is recorded running, but no daemon trains it"):
        runs.cancel_stored(con, running.id, "no daemon")
    assert runs.get_run(con, running.id).status == "running"


def test_without_a_production_model_the_request_is_refused(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    with pytest.raises(RunRefused, match="^no model is in production to continue from; .*`driftloop bootstrap`"):
        perform(StoreAccess(con, Settings(home=tmp_path)), "train", {"actor": "alice", "reason": None})
    assert runs.runs_by_status(con) == {"submitted": 1}


def test_the_old_table_gains_the_actor_and_why_columns(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "old.duckdb")) as old:
        old.execute(runs.SCHEMA.replace(",\n    actor VARCHAR,\n    why VARCHAR", ""))
        old.execute("INSERT INTO training_runs (id, trigger, episode, attempt, status, out_dir, first_row_id, "
                    "last_row_id, started_at) VALUES (1, 'drift', 1, 1, 'failed', 'x', 1, 2, now())")  # fmt: skip
        runs.ensure_schema(old)
        runs.ensure_schema(old)  # twice: a second start changes nothing
        (found,) = runs.list_runs(old)
    assert (found.id, found.status, found.actor, found.why) == (1, "failed", None, None)


def test_gc_deletes_the_folder_of_a_cancelled_run(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    started = runs.open_run(con, PlannedRun("drift", 290, 1, 1, 150, "a shift", 300), "v1", tmp_path / "runs")
    Path(started.out_dir).parent.mkdir(parents=True)
    runs.end_run(con, started.id, status="cancelled", reason="cancelled by bob")
    settings = Settings(home=tmp_path, daemon=DaemonSettings(gc_runs_after_days=0))
    found = run_folders(con, settings, {}, datetime.now(UTC) + timedelta(seconds=5))
    assert [item.target for item in found] == [str(Path(started.out_dir).parent)]


class FakeProcess:
    """A training process at the seam: it reports one step, then waits until cancelled."""

    def __init__(self) -> None:
        self.popen = SimpleNamespace(pid=424242)
        self.stopped = threading.Event()

    def wait(self, on_progress: Callable[[dict[str, Any]], None]) -> None:
        on_progress({"event": "progress", "epoch": 1, "step": 1})
        assert self.stopped.wait(30), "cancelled within 30 s"
        raise TrainingCancelled("training run cancelled: training process exited with code 3")

    def cancel(self) -> None:
        self.stopped.set()


@pytest.fixture
def supervisor(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TrainingSupervisor]:
    monkeypatch.setattr("daemon.loop.training.start", lambda *_: FakeProcess())
    adapter = tmp_path / "v1-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    settings = Settings(home=tmp_path, daemon=POLICY, drift=DriftSettings(stream="feedback"))
    supervisor = TrainingSupervisor(settings, con.cursor, lambda: ParentModel("v1", adapter))
    yield supervisor
    supervisor.stop()


def test_the_supervisor_starts_a_queued_run_before_drift_and_a_cancel_stops_it(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, supervisor: TrainingSupervisor
) -> None:
    drift_event(con, row_id=290, first_row_id=150)
    assert runs.next_drift_run(con, POLICY) is not None, "drift calls for a run too"
    run_id = queue(con, tmp_path)

    supervisor.check()

    active = supervisor.status()
    assert active is not None
    assert (active["run"], active["pid"], active["progress"]["event"]) == (run_id, 424242, "progress")
    started = runs.get_run(con, run_id)
    assert (started.status, started.trigger, started.parent_version, started.episode) == ("running", "operator", "v1",
                                                                                          0)  # fmt: skip
    assert started.pid == 424242
    ended = supervisor.cancel(run_id, "cancelled by bob: wrong data")
    assert (ended.status, ended.reason) == ("cancelled", "cancelled by bob: wrong data")
    assert supervisor.status() is None

    supervisor.check()  # the slot is free: now the drift run starts
    active = supervisor.status()
    assert active is not None
    drift_run = runs.get_run(con, active["run"])
    assert (drift_run.trigger, drift_run.episode, drift_run.first_row_id) == ("drift", 1, 150)
    assert supervisor.cancel(drift_run.id, "cancelled by bob").status == "cancelled"
    assert runs.next_drift_run(con, POLICY) is None, "a cancelled drift run is not retried"
    assert runs.runs_by_status(con) == {"submitted": 1, "cancelled": 2}


def test_a_stopped_daemon_interrupts_an_operator_run_without_a_retry(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, supervisor: TrainingSupervisor
) -> None:
    run_id = queue(con, tmp_path)
    supervisor.check()
    supervisor.stop()
    stopped = runs.get_run(con, run_id)
    assert (stopped.status, stopped.reason) == ("interrupted", "the daemon shut down during the run; it is not retried")
    supervisor.check()
    assert supervisor.status() is None


def test_the_cli_queues_shows_and_cancels_without_a_daemon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("BENTOML_HOME", str(home / "bentoml"))
    settings = Settings(home=home, registry=RegistrySettings(task="t", gate_bootstrap_samples=200))
    loop.store_records({"DRIFTLOOP_HOME": str(home)}, "start.jsonl", loop.records(0, 300, 0))
    with open_store(settings) as store:
        bootstrap = runs.open_run(store.con, runs.bootstrap_run(store.con), None, runs_dir(settings))
        registry = StoreAccess(store.con, settings).registry()
        lineage = Lineage(training_run={"id": bootstrap.id})
        registry.submit(CandidateFiles(build_tiny_model(tmp_path / "model", 0)), evaluation({0: 0.8}), None, lineage)
        registry.approve("v1", "ann")
        runs.end_run(store.con, bootstrap.id, status="submitted", candidate_version="v1")

    def driftloop(*arguments: str) -> Any:
        return CliRunner().invoke(cli, ["--home", str(home), "--set", "registry.task=t",
                                        "--set", "daemon.min_new_rows=100", *arguments])  # fmt: skip

    queued = driftloop("train", "--reason", "new labels", "--actor", "alice")
    assert queued.exit_code == 0, queued.output
    assert queued.stdout.splitlines() == [
        "run 2 queued: requested by alice: new labels",
        "  episode 0, rows from 1 on; no daemon runs: the next `driftloop run` starts it",
    ]
    refused = driftloop("train")
    assert (refused.exit_code, refused.stderr.splitlines()[-1]) == (
        1, "driftloop: error: run 2 is already queued; wait for it to end, or `driftloop cancel 2` it")  # fmt: skip
    shown = driftloop("status").stdout
    assert "training: run 2 (operator by alice, episode 0) queued: requested by alice: new labels" in shown
    cancelled = driftloop("cancel", "2", "--reason", "wrong rows", "--actor", "bob")
    assert (cancelled.exit_code, cancelled.stdout) == (0, "run 2 cancelled: cancelled by bob: wrong rows\n")
    again = driftloop("cancel", "2")
    assert again.exit_code == 1
    assert again.stderr.splitlines()[-1].startswith(
        "driftloop: error: run 2 has already ended cancelled (cancelled by bob: wrong rows); only a queued or running"
    )
    shown = driftloop("status").stdout
    assert "training: last run 2 (operator by alice, episode 0) cancelled: cancelled by bob: wrong rows" in shown


@pytest.mark.kafka
@pytest.mark.slow
def test_train_and_cancel_through_a_running_daemon(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    base = loop.tiny_base(tmp_path / "base")
    env = loop.environment(tmp_path / "home", base, kafka_settings, KAFKA_REQUEST_TIMEOUT_MS="5000")
    loop.cli(env, "bootstrap", "--data", str(loop.write_jsonl(tmp_path / "v1.jsonl", loop.records(0, 600, 0))))
    long = {**env, "DRIFTLOOP_TRAINER_MAX_EPOCHS": "400", "DRIFTLOOP_TRAINER_PATIENCE": "400"}  # still training
    with loop.daemon(long, tmp_path / "daemon.log") as running:
        queued = loop.cli(env, "train", "--reason", "labels fixed", "--actor", "alice").stdout
        assert queued.splitlines() == [
            "run 2 queued: requested by alice: labels fixed",
            "  episode 0, rows from 1 on; the daemon starts it within 1 s (daemon.training_check_interval_s)",
        ]

        def stepping() -> bool:
            live = loop.live_status(env)
            active = None if live is None else live["training"]["active"]
            return active is not None and active["progress"].get("event") in ("progress", "validation")

        running.wait_until(stepping, 120, "the operator's run to train")
        pid = (loop.live_status(env) or {})["training"]["active"]["pid"]
        cancelled = loop.cli(env, "cancel", "2", "--reason", "wrong data", "--actor", "bob").stdout
        assert cancelled == "run 2 cancelled: cancelled by bob: wrong data\n"
        assert not Path(f"/proc/{pid}").exists(), "the training process has ended"
        time.sleep(2)  # training checks run every second: none may start the cancelled run again
        shown = loop.cli(env, "status").stdout
        assert "training: last run 2 (operator by alice, episode 0) cancelled: cancelled by bob: wrong data" in shown
        answered = loop.status(env)["training"]
        assert (answered["active"], answered["runs_by_status"]) == (None, {"submitted": 1, "cancelled": 1})
        last = answered["last_run"]
        assert (last["trigger"], last["actor"], last["why"]) == (
            "operator",
            "alice",
            "requested by alice: labels fixed",
        )
        assert running.stop() == 0, running.tail()
