"""The training policy over a real store file: when a run is due, retries, new episodes, the rows of a run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from daemon.daemon_settings import DaemonSettings
from daemon.loop import runs
from daemon.loop.jobs import check_drift
from daemon.loop.registry_actions import rebaseline_drift
from daemon.loop.store import ensure_schemas
from daemon.loop.submission import submit_run
from daemon.loop.training import launch, split_window
from daemon.settings import Settings
from drift.events import DriftEvent
from drift.monitor import DriftMonitor
from drift.settings import DriftSettings
from drift.store import load_monitor, save_monitor
from ingest import history
from registry.candidates import CandidateFiles, Lineage
from registry.registry import Registry
from registry.settings import RegistrySettings
from tests.daemon.loop_helpers import records, store_records
from tests.registry.conftest import build_tiny_model, evaluation

FEEDBACK = DriftSettings(stream="feedback")  # these runs follow feedback rows
POLICY = DaemonSettings(min_new_rows=100, max_training_attempts=2)


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    store_records({"DRIFTLOOP_HOME": str(tmp_path)}, "start.jsonl", records(0, 300, 0))
    connection = duckdb.connect(str(tmp_path / "driftloop.duckdb"))
    ensure_schemas(connection)
    yield connection
    connection.close()


def drift_event(con: duckdb.DuckDBPyConnection, row_id: int, first_row_id: int) -> None:
    """An event stored as the drift job stores one (with the monitor's state)."""
    monitor: DriftMonitor = load_monitor(con, FEEDBACK)
    save_monitor(con, monitor, [DriftEvent(row_id, first_row_id, 1, 10, ("error",), ())])


def test_no_event_no_run_and_too_few_rows_wait(con: duckdb.DuckDBPyConnection) -> None:
    assert runs.next_drift_run(con, POLICY) is None
    drift_event(con, row_id=280, first_row_id=250)  # 51 rows from 250 on: fewer than min_new_rows
    assert runs.next_drift_run(con, POLICY) is None
    drift_event(con, row_id=290, first_row_id=150)
    plan = runs.next_drift_run(con, POLICY)
    assert plan is not None
    assert (plan.drift_row_id, plan.episode, plan.attempt, plan.first_row_id, plan.last_row_id) == (290, 1, 1, 150, 300)


def test_a_failed_run_is_retried_until_the_attempts_are_used(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    drift_event(con, row_id=200, first_row_id=101)
    first = runs.open_run(con, runs.next_drift_run(con, POLICY) or pytest.fail("due"), "v1", tmp_path / "runs")
    assert first.out_dir == str(tmp_path / "runs" / "run-1" / "candidate")
    assert runs.next_drift_run(con, POLICY) is None, "one run at a time"
    runs.end_run(con, first.id, status="interrupted", reason="shutdown")
    again = runs.next_drift_run(con, POLICY)
    assert again is not None
    assert again.attempt == 1, "an interrupted run does not use up an attempt"
    second = runs.open_run(con, again, "v1", tmp_path / "runs")
    runs.end_run(con, second.id, status="failed", reason="boom")
    third_plan = runs.next_drift_run(con, POLICY)
    assert third_plan is not None
    assert (third_plan.attempt, third_plan.episode) == (2, 1)
    third = runs.open_run(con, third_plan, "v1", tmp_path / "runs")
    runs.end_run(con, third.id, status="aborted", reason="killed")
    assert runs.next_drift_run(con, POLICY) is None, "two counted attempts: no more"
    assert [run.status for run in runs.list_runs(con)] == ["aborted", "failed", "interrupted"]
    assert runs.get_run(con, first.id).ended_at is not None
    assert runs.runs_by_status(con) == {"aborted": 1, "failed": 1, "interrupted": 1}


def test_a_new_event_opens_the_next_episode(con: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    drift_event(con, row_id=120, first_row_id=101)
    first = runs.open_run(con, runs.next_drift_run(con, POLICY) or pytest.fail("due"), "v1", tmp_path / "runs")
    runs.end_run(con, first.id, status="submitted")
    assert runs.next_drift_run(con, POLICY) is None
    drift_event(con, row_id=260, first_row_id=180)
    plan = runs.next_drift_run(con, POLICY)
    assert plan is not None
    assert (plan.episode, plan.first_row_id) == (2, 180)
    runs.open_run(con, plan, "v2", tmp_path / "runs")
    window, earlier = split_window(history.training_rows(con, plan.last_row_id), plan.first_row_id)
    assert len(window) == 121
    assert {row.episode for row in window} == {2}
    assert [sum(row.episode == e for row in earlier) for e in (0, 1)] == [100, 79]
    assert history.episode_starts(con) == {1: 101, 2: 180}


def test_a_run_that_cannot_start_for_any_reason_ends_failed_with_it(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> None:
        raise RuntimeError("a bug in row selection")

    monkeypatch.setattr("daemon.loop.training.select_rows", broken)
    drift_event(con, row_id=200, first_row_id=101)
    plan = runs.next_drift_run(con, POLICY) or pytest.fail("due")

    assert launch(con, Settings(home=tmp_path), plan, None) is None
    (run,) = runs.list_runs(con)
    assert (run.status, run.reason) == ("failed", "the run could not start: RuntimeError: a bug in row selection")
    assert run.ended_at is not None


def test_a_run_registered_before_a_restart_is_not_registered_again(
    con: duckdb.DuckDBPyConnection, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    registry = Registry(con, RegistrySettings(task="t", gate_bootstrap_samples=200), tmp_path / "bentoml")
    drift_event(con, row_id=200, first_row_id=101)
    run = runs.open_run(con, runs.next_drift_run(con, POLICY) or pytest.fail("due"), None, tmp_path / "runs")
    runs.end_run(con, run.id, status="succeeded")
    lineage = Lineage(training_run={"id": run.id, "directory": str(Path(run.out_dir).parent)})
    first = registry.submit(CandidateFiles(build_tiny_model(tmp_path / "model", 0)), evaluation({1: 0.8}), None,
                            lineage)  # fmt: skip
    # the daemon stopped here, before it marked the run `submitted`; on the next start the gate job finds it again

    again = submit_run(con, registry, runs.get_run(con, run.id), latency_samples=1, drift=FEEDBACK)

    assert again is not None
    assert again.version == first.version
    assert [model.version for model in registry.models()] == [first.version]
    assert (runs.get_run(con, run.id).status, runs.get_run(con, run.id).candidate_version) == ("submitted", "v1")


def test_the_first_models_drift_reference_starts_after_the_bootstrap_set_and_later_ones_cool_down(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    bootstrap = runs.open_run(con, runs.bootstrap_run(con), None, tmp_path / "runs")
    runs.end_run(con, bootstrap.id, status="submitted")
    rebaseline_drift(con, FEEDBACK)  # the first approval, --force after a failed gate included
    first = load_monitor(con, FEEDBACK)
    assert (first.last_row_id, first.status().phase) == (300, "warmup")

    check_drift(con, FEEDBACK)  # nothing new after row 300; a later promotion cools down
    rebaseline_drift(con, FEEDBACK)
    assert load_monitor(con, FEEDBACK).status().phase == "cooldown"
