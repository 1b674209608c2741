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
from trainer.data import Row

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
class RunRecord:
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


def runs(con: duckdb.DuckDBPyConnection, where: str = "", *params: Any, limit: int = 2**31) -> list[RunRecord]:
    """Runs, newest first."""
    found = con.execute(f"SELECT {RUN_COLUMNS} FROM training_runs {where} ORDER BY id DESC LIMIT ?", [*params, limit])
    return [_record(row) for row in found.fetchall()]


def run(con: duckdb.DuckDBPyConnection, run_id: int) -> RunRecord:
    return runs(con, "WHERE id = ?", run_id)[0]


def next_drift_run(con: duckdb.DuckDBPyConnection, settings: DaemonSettings) -> PlannedRun | None:
    """The run the drift events call for now, or None (nothing pending, a run active, or too few new rows)."""
    newest = runs(con, "WHERE trigger = 'drift'", limit=1)
    if newest and newest[0].status == "running":
        return None
    handled = newest[0].drift_row_id if newest else None
    events = con.execute(
        "SELECT min(first_row_id), max(row_id), count(*) FROM drift_events WHERE row_id > ?",
        [handled if handled is not None else -1],
    ).fetchall()[0]
    if events[2]:
        start = max(int(events[0]), _episode_start(con) + 1)
        why = f"{events[2]} drift event(s) up to row {events[1]}, the shift estimated to start at row {start}"
        return _when_enough_rows(con, settings, PlannedRun("drift", int(events[1]), _next_episode(con), 1, start, why))
    if newest and _may_retry(con, newest[0], settings):
        last = newest[0]
        why = f"retry of run {last.id} ({last.status}: {last.reason})"
        attempt = last.attempt + (1 if last.status in COUNTED else 0)
        return _when_enough_rows(
            con, settings, PlannedRun("drift", last.drift_row_id, last.episode, attempt, last.first_row_id, why)
        )
    return None


def _may_retry(con: duckdb.DuckDBPyConnection, last: RunRecord, settings: DaemonSettings) -> bool:
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
    sql = "SELECT count(*), max(row_id) FROM feedback WHERE row_id >= ?"
    count, last = con.execute(sql, [plan.first_row_id]).fetchall()[0]
    if count < settings.min_new_rows:
        log.debug("%s: %d of %d rows; waiting (daemon.min_new_rows)", plan.why, count, settings.min_new_rows)
        return None
    return dataclasses.replace(plan, last_row_id=int(last))


def bootstrap_run(con: duckdb.DuckDBPyConnection) -> PlannedRun:
    """The first run: every stored row is episode 0, trained from the base model."""
    first, last = con.execute("SELECT min(row_id), max(row_id) FROM feedback").fetchall()[0]
    return PlannedRun("bootstrap", None, 0, 1, int(first), "bootstrap of the first production model", int(last))


def open_run(con: duckdb.DuckDBPyConnection, plan: PlannedRun, parent_version: str | None, runs_dir: Path) -> RunRecord:
    """Record the run as `running` (its candidate goes to `<runs_dir>/run-<id>/candidate`) and open its episode
    (rows from `first_row_id` on belong to it), in one transaction."""
    con.begin()
    try:
        run_id = int(con.execute("SELECT nextval('training_run_ids')").fetchall()[0][0])
        out_dir = str(runs_dir / f"run-{run_id}" / "candidate")
        if not con.execute("SELECT 1 FROM episodes WHERE episode = ?", [plan.episode]).fetchall():
            opened_by = "bootstrap" if plan.trigger == "bootstrap" else f"drift event at row {plan.drift_row_id}"
            con.execute("INSERT INTO episodes VALUES (?, now(), ?, ?)", [plan.episode, plan.first_row_id, opened_by])
        con.execute(
            "UPDATE feedback SET episode = ? WHERE row_id >= ? AND episode < ?",
            [plan.episode, plan.first_row_id, plan.episode],
        )
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
    return run(con, run_id)


def update_run(con: duckdb.DuckDBPyConnection, run_id: int, **values: Any) -> None:
    """Set columns of one run (`data` is stored as JSON); `status` other than running also sets `ended_at`."""
    if "data" in values:
        values["data"] = json.dumps(values["data"], sort_keys=True, default=str)
    assignments = ", ".join(f"{column} = ?" for column in values)
    ended = ", ended_at = now()" if values.get("status", "running") != "running" else ""
    con.execute(f"UPDATE training_runs SET {assignments}{ended} WHERE id = ?", [*values.values(), run_id])


def training_rows(con: duckdb.DuckDBPyConnection, first_row_id: int, last_row_id: int) -> tuple[list[Row], list[Row]]:
    """The new window (`first_row_id..last_row_id`) and the history before it, oldest first.

    A row's episode is the newest episode opened at or before it (the `episodes` table is the truth; the
    column stamped at ingest can lag by one batch when an episode opens during a write).
    """
    table = con.execute(
        "SELECT f.row_id, f.id, f.text, f.label, coalesce(e.episode, 0), f.split FROM feedback f "
        "ASOF LEFT JOIN episodes e ON f.row_id >= e.first_row_id WHERE f.row_id <= ? ORDER BY f.row_id",
        [last_row_id],
    ).fetchall()
    window: list[Row] = []
    history: list[Row] = []
    for row_id, id_, text, label, episode, split in table:
        (window if row_id >= first_row_id else history).append(Row(id_, text, label, int(episode), split))
    return window, history


def _episode_start(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(first_row_id), 0) FROM episodes").fetchall()[0][0])


def _next_episode(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(episode), 0) + 1 FROM episodes").fetchall()[0][0])


def _record(row: tuple[Any, ...]) -> RunRecord:
    values = list(row)
    values[10] = None if values[10] is None else json.loads(values[10])
    return RunRecord(*values)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)
