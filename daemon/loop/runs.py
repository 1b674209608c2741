"""Training runs and episodes in the store: which run is due, the rows it trains on, and what became of it.

Every decision is read from DuckDB, so a restart or a missed check is harmless: a drift event that no run has
handled yet is still pending, a run left `running` by a dead daemon is found and marked `aborted`.
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
from drift.store import events_after
from ingest import history

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
    candidate_version VARCHAR
);
"""
Trigger = Literal["drift", "bootstrap"]
# Ended without a verdict on the data: tried again without using up an attempt.
NOT_COUNTED = ("interrupted",)
# Ended badly: tried again while fewer than `max_training_attempts` of these were made for the same event.
COUNTED = ("failed", "aborted")
RUN_COLUMNS = (
    "id, trigger, drift_row_id, episode, attempt, status, parent_version, out_dir, first_row_id, last_row_id, "
    "data, pid, started_at, ended_at, reason, candidate_version"
)


@dataclass(frozen=True)
class PlannedRun:
    """A run that is due: its rows start at `first_row_id` (the new episode) and end at `last_row_id`
    (-1 while planned)."""

    trigger: Trigger
    drift_row_id: int | None
    episode: int
    attempt: int
    first_row_id: int
    why: str
    last_row_id: int = -1


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

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "started_at": str(self.started_at), "ended_at": _text(self.ended_at)}


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)


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
    return _record(found[0])


def runs_by_status(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    return {str(status): int(count) for status, count in
            con.execute("SELECT status, count(*) FROM training_runs GROUP BY status").fetchall()}  # fmt: skip


def bootstrap_end(con: duckdb.DuckDBPyConnection) -> int | None:
    """The last row the bootstrap run trained on (the drift monitor starts after it), or None."""
    found = con.execute("SELECT max(last_row_id) FROM training_runs WHERE trigger = 'bootstrap'").fetchall()
    return None if found[0][0] is None else int(found[0][0])


def next_drift_run(con: duckdb.DuckDBPyConnection, settings: DaemonSettings) -> PlannedRun | None:
    """The run the drift events call for now, or None (nothing pending, a run active, or too few new rows)."""
    newest = list_runs(con, trigger="drift", limit=1)
    if newest and newest[0].status == "running":
        return None
    pending = events_after(con, newest[0].drift_row_id if newest else None)
    if pending is not None:
        start = max(pending.first_row_id, history.current_episode_start(con) + 1)
        why = (
            f"{pending.count} drift event(s) up to row {pending.last_row_id}, "
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
    """Record the run as `running` (its candidate goes to `<runs_dir>/run-<id>/candidate`) and open its episode
    (rows from `first_row_id` on belong to it), in one transaction."""
    con.begin()
    try:
        run_id = int(con.execute("SELECT nextval('training_run_ids')").fetchall()[0][0])
        out_dir = str(runs_dir / f"run-{run_id}" / "candidate")
        opened_by = "bootstrap" if plan.trigger == "bootstrap" else f"drift event at row {plan.drift_row_id}"
        history.open_episode(con, plan.episode, plan.first_row_id, opened_by)
        con.execute(
            "INSERT INTO training_runs VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, NULL, NULL, now(), NULL, NULL, "
            "NULL)",
            [run_id, plan.trigger, plan.drift_row_id, plan.episode, plan.attempt, parent_version, out_dir,
             plan.first_row_id, plan.last_row_id],
        )  # fmt: skip
        con.commit()
    except BaseException:
        con.rollback()
        raise
    return get_run(con, run_id)


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
