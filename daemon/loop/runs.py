"""Training runs and episodes in the store: which run is due, the rows it trains on, and what became of it.

Every decision is read from DuckDB, so a restart or a missed check is harmless: a drift event that no run has
handled yet is still pending, an operator's `queued` run is still queued, a run left `running` by a dead daemon is
found and marked `aborted`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import duckdb

from daemon.daemon_settings import DaemonSettings
from daemon.errors import RunRefused
from drift.store import DEFAULT_MONITOR, SERVED_MONITOR, events_after
from ingest import history
from ingest.prediction_log import prediction_time

log = logging.getLogger(__name__)

SCHEMA = """
CREATE SEQUENCE IF NOT EXISTS training_run_ids START 1;
CREATE TABLE IF NOT EXISTS training_runs (
    id BIGINT PRIMARY KEY,
    trigger VARCHAR NOT NULL,
    drift_row_id BIGINT,
    episode INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    status VARCHAR NOT NULL,
    parent_version VARCHAR,
    out_dir VARCHAR NOT NULL,
    first_row_id BIGINT NOT NULL,
    last_row_id BIGINT NOT NULL,
    data JSON,
    pid INTEGER,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    reason VARCHAR,
    candidate_version VARCHAR,
    actor VARCHAR,
    why VARCHAR
);
"""
# A store made before operators could start runs lacks the last two columns: who asked, and why the run started.
MIGRATION = """
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS actor VARCHAR;
ALTER TABLE training_runs ADD COLUMN IF NOT EXISTS why VARCHAR;
"""
Trigger = Literal["drift", "bootstrap", "operator"]
# Ended without a verdict on the data: tried again without using up an attempt.
NOT_COUNTED = ("interrupted",)
# Ended badly: tried again while fewer than `max_training_attempts` of these were made for the same event.
COUNTED = ("failed", "aborted")
# How a run ended for good (a `cancelled` one is never retried); `queued`, `running` and `succeeded` (its candidate
# waits for the gate) are live.
ENDED = ("submitted", "failed", "aborted", "interrupted", "cancelled")
RUN_COLUMNS = (
    "id, trigger, drift_row_id, episode, attempt, status, parent_version, out_dir, first_row_id, last_row_id, "
    "data, pid, started_at, ended_at, reason, candidate_version, actor, why"
)


@dataclass(frozen=True)
class PlannedRun:
    """A run that is due: its rows start at `first_row_id` (the new episode) and end at `last_row_id`
    (-1 while planned); `actor` is the operator who asked for it, `run_id` its record while it waits `queued`."""

    trigger: Trigger
    drift_row_id: int | None
    episode: int
    attempt: int
    first_row_id: int
    why: str
    last_row_id: int = -1
    actor: str | None = None
    run_id: int | None = None


@dataclass(frozen=True)
class TrainingRun:
    """A row of `training_runs`: one run, from `running` to how it ended."""

    id: int
    trigger: str
    drift_row_id: int | None
    episode: int
    attempt: int
    status: str
    parent_version: str | None
    out_dir: str
    first_row_id: int
    last_row_id: int
    data: dict[str, Any] | None
    pid: int | None
    started_at: Any
    ended_at: Any
    reason: str | None
    candidate_version: str | None
    actor: str | None
    why: str | None

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "started_at": str(self.started_at), "ended_at": _text(self.ended_at)}


def retried_when_interrupted(record: TrainingRun) -> bool:
    """Whether an interrupted run is tried again: a drift run is (`next_drift_run`), no other is."""
    return record.trigger == "drift"


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)
    con.execute(MIGRATION)


def list_runs(
    con: duckdb.DuckDBPyConnection, status: str | None = None, trigger: Trigger | None = None, limit: int = 2**31
) -> list[TrainingRun]:
    """Runs, newest first; only those with `status` and `trigger` when given."""
    found = con.execute(
        f"SELECT {RUN_COLUMNS} FROM training_runs WHERE (? IS NULL OR status = ?) AND (? IS NULL OR trigger = ?) "
        "ORDER BY id DESC LIMIT ?",
        [status, status, trigger, trigger, limit],
    )
    return [_record(row) for row in found.fetchall()]


def get_run(con: duckdb.DuckDBPyConnection, run_id: int) -> TrainingRun:
    found = con.execute(f"SELECT {RUN_COLUMNS} FROM training_runs WHERE id = ?", [run_id]).fetchall()
    if not found:
        newest = list_runs(con, limit=1)
        raise RunRefused(f"no training run {run_id}; " + (f"the newest is {newest[0].id}" if newest else "none yet"))
    return _record(found[0])


def runs_by_status(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {str(status): int(count) for status, count in
            con.execute("SELECT status, count(*) FROM training_runs GROUP BY status").fetchall()}  # fmt: skip


def bootstrap_end(con: duckdb.DuckDBPyConnection) -> int | None:
    """The last row the bootstrap run trained on (the drift monitor starts after it), or None."""
    found = con.execute("SELECT max(last_row_id) FROM training_runs WHERE trigger = 'bootstrap'").fetchall()
    return None if found[0][0] is None else int(found[0][0])


def next_queued_run(con: duckdb.DuckDBPyConnection) -> PlannedRun | None:
    """The oldest run an operator queued (only operators queue runs), to start now on its episode's rows up to the
    newest stored row."""
    queued = list_runs(con, status="queued")
    if not queued:
        return None
    run = queued[-1]
    stored = history.row_range(con)
    last = run.last_row_id if stored is None else max(stored[1], run.last_row_id)
    return PlannedRun("operator", None, run.episode, run.attempt, run.first_row_id, run.why or "", last, run.actor,
                      run.id)  # fmt: skip


def next_drift_run(
    con: duckdb.DuckDBPyConnection, settings: DaemonSettings, monitor: str = DEFAULT_MONITOR
) -> PlannedRun | None:
    """The run the events of `monitor` (the watched stream's) call for now, or None (nothing pending, a run active,
    or too few new rows)."""
    newest = list_runs(con, trigger="drift", limit=1)
    if newest and newest[0].status == "running":
        return None
    pending = events_after(con, newest[0].drift_row_id if newest else None, monitor)
    if pending is not None:
        start = max(feedback_row(con, monitor, pending.first_row_id), history.current_episode_start(con) + 1)
        seen = "served prediction" if monitor == SERVED_MONITOR else "row"
        why = (
            f"{pending.count} drift event(s) up to {seen} {pending.last_row_id}, "
            f"the shift estimated to start at row {start}"
        )
        plan = PlannedRun("drift", pending.last_row_id, history.next_episode(con), 1, start, why)
        return _when_enough_rows(con, settings, plan)
    if newest and _may_retry(con, newest[0], settings):
        last = newest[0]
        why = f"retry of run {last.id} ({last.status}: {last.reason})"
        attempt = last.attempt + (1 if last.status in COUNTED else 0)
        return _when_enough_rows(
            con, settings, PlannedRun("drift", last.drift_row_id, last.episode, attempt, last.first_row_id, why)
        )
    return None


def feedback_row(con: duckdb.DuckDBPyConnection, monitor: str, row_id: int) -> int:
    """The feedback row where a shift that `monitor` saw begin at `row_id` begins: the same row for the feedback
    stream; for served traffic, the first feedback stored at or after that prediction's time."""
    if monitor != SERVED_MONITOR:
        return row_id
    when = prediction_time(con, row_id)
    return history.row_at(con, when) if when is not None else history.current_episode_start(con) + 1


def _may_retry(con: duckdb.DuckDBPyConnection, last: TrainingRun, settings: DaemonSettings) -> bool:
    if last.status not in (*COUNTED, *NOT_COUNTED):
        return False
    counted = con.execute(
        f"SELECT count(*) FROM training_runs WHERE drift_row_id = ? AND status IN {COUNTED}", [last.drift_row_id]
    ).fetchall()[0][0]
    if counted >= settings.max_training_attempts:
        log.debug("drift event at row %s: %d attempts made; not retried", last.drift_row_id, counted)
        return False
    return True


def _when_enough_rows(con: duckdb.DuckDBPyConnection, settings: DaemonSettings, plan: PlannedRun) -> PlannedRun | None:
    """The plan with its last row, once `min_new_rows` rows have come in since the shift began."""
    count, last = history.rows_since(con, plan.first_row_id)
    if count < settings.min_new_rows or last is None:
        log.debug("%s: %d of %d rows; waiting (daemon.min_new_rows)", plan.why, count, settings.min_new_rows)
        return None
    return dataclasses.replace(plan, last_row_id=last)


def bootstrap_run(con: duckdb.DuckDBPyConnection) -> PlannedRun:
    """The first run: every stored row is episode 0, trained from the base model."""
    stored = history.row_range(con)
    assert stored is not None, "bootstrap stores its rows before it plans the run"
    return PlannedRun("bootstrap", None, 0, 1, stored[0], "bootstrap of the first production model", stored[1])


def open_run(
    con: duckdb.DuckDBPyConnection, plan: PlannedRun, parent_version: str | None, runs_dir: Path
) -> TrainingRun:
    """Record the run as `running` (its candidate goes to `<runs_dir>/run-<id>/candidate`; a queued run keeps its
    record) and open its episode (rows from `first_row_id` on belong to it), in one transaction."""
    con.begin()
    try:
        opened_by = {"bootstrap": "bootstrap", "operator": f"operator run requested by {plan.actor}"}.get(
            plan.trigger, f"drift event at row {plan.drift_row_id}"
        )
        history.open_episode(con, plan.episode, plan.first_row_id, opened_by)
        if plan.run_id is None:
            run_id = _insert(con, plan, "running", parent_version, runs_dir)
        else:
            run_id = plan.run_id
            started = con.execute(
                "UPDATE training_runs SET status = 'running', parent_version = ?, last_row_id = ?, started_at = now() "
                "WHERE id = ? AND status = 'queued' RETURNING id",
                [parent_version, plan.last_row_id, run_id],
            ).fetchall()
            assert started, f"run {run_id} is no longer queued"  # the training slot's lock keeps cancel out
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return get_run(con, run_id)


def queue_run(con: duckdb.DuckDBPyConnection, plan: PlannedRun, runs_dir: Path) -> TrainingRun:
    """Record an operator's run as `queued` (its `started_at` is when it was asked for until it starts)."""
    return get_run(con, _insert(con, plan, "queued", None, runs_dir))


def cancel_stored(con: duckdb.DuckDBPyConnection, run_id: int, why: str) -> TrainingRun:
    """End a queued run `cancelled` with `why`. A running one only the daemon that trains it can stop; an ended one
    is refused."""
    run = get_run(con, run_id)
    if run.status == "queued":
        end_run(con, run_id, status="cancelled", reason=why)
        log.info("training run %d cancelled before it started: %s", run_id, why)
        return get_run(con, run_id)
    if run.status == "running":
        raise RunRefused(
            f"run {run_id} is recorded running, but no daemon trains it (its daemon died); "
            "the next `driftloop run` marks it aborted and kills its training process"
        )
    ended = f"run {run_id} has already ended {run.status}" + (f" ({run.reason})" if run.reason else "")
    if run.status == "succeeded":
        ended = f"run {run_id} has finished training; its candidate goes to the gate (`driftloop reject` it then)"
    raise RunRefused(f"{ended}; only a queued or running run can be cancelled")


def _insert(
    con: duckdb.DuckDBPyConnection, plan: PlannedRun, status: str, parent_version: str | None, runs_dir: Path
) -> int:
    run_id = int(con.execute("SELECT nextval('training_run_ids')").fetchall()[0][0])
    out_dir = str(runs_dir / f"run-{run_id}" / "candidate")
    con.execute(
        "INSERT INTO training_runs (id, trigger, drift_row_id, episode, attempt, status, parent_version, out_dir, "
        "first_row_id, last_row_id, started_at, actor, why) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now(), ?, ?)",
        [run_id, plan.trigger, plan.drift_row_id, plan.episode, plan.attempt, status, parent_version, out_dir,
         plan.first_row_id, plan.last_row_id, plan.actor, plan.why],
    )  # fmt: skip
    return run_id


def end_run(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    status: str,
    reason: str | None = None,
    candidate_version: str | None = None,
) -> None:
    """Record how a run ended (and when); `candidate_version` once its candidate is registered."""
    con.execute(
        "UPDATE training_runs SET status = ?, reason = ?, candidate_version = ?, ended_at = now() WHERE id = ?",
        [status, reason, candidate_version, run_id],
    )


def record_start(con: duckdb.DuckDBPyConnection, run_id: int, pid: int, data: dict[str, Any]) -> None:
    """Record the training process of a started run and a description of its data."""
    con.execute(
        "UPDATE training_runs SET pid = ?, data = ? WHERE id = ?",
        [pid, json.dumps(data, sort_keys=True, default=str), run_id],
    )


def _record(row: tuple[Any, ...]) -> TrainingRun:
    values = list(row)
    values[10] = None if values[10] is None else json.loads(values[10])
    return TrainingRun(*values)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
