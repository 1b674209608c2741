"""Persistence in the daemon's DuckDB file: drift events, detector state, and reading feedback rows."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import duckdb

from drift.errors import DriftError
from drift.events import DriftEvent, SignalReading
from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows
from drift.settings import DriftSettings

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS drift_events (
    monitor VARCHAR NOT NULL,
    row_id BIGINT NOT NULL,
    first_row_id BIGINT NOT NULL,
    reference_first_row_id BIGINT NOT NULL,
    reference_last_row_id BIGINT NOT NULL,
    signals VARCHAR[] NOT NULL,
    evidence JSON NOT NULL,
    detected_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (monitor, row_id)
);
CREATE TABLE IF NOT EXISTS detector_state (
    monitor VARCHAR PRIMARY KEY,
    last_row_id BIGINT,
    state BLOB NOT NULL,
    settings JSON NOT NULL,
    saved_at TIMESTAMPTZ NOT NULL
);
"""
# Settings that shape the pickled state; when one changes, the stored state cannot be continued.
STRUCTURAL = ("check_every_rows", "window_rows", "confirm_m", "ngram_buckets", "error_detector", "adwin_delta")
DEFAULT_MONITOR = "default"


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Open the store read-write (when no daemon holds it) and make sure the drift tables exist."""
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        raise DriftError(
            f"cannot open the store {path}: {exc}. The daemon probably holds it; ask the running daemon instead"
        ) from None
    ensure_schema(con)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(SCHEMA)


def save_monitor(
    con: duckdb.DuckDBPyConnection,
    monitor: DriftMonitor,
    events: list[DriftEvent],
    name: str = DEFAULT_MONITOR,
    transaction: bool = True,
) -> None:
    """Store new events and the monitor's state (with the last row it saw) together.

    With transaction=False the caller runs the surrounding transaction (e.g. with its own writes).
    """
    if transaction:
        con.begin()
    try:
        for event in events:
            con.execute(
                "INSERT OR REPLACE INTO drift_events VALUES (?, ?, ?, ?, ?, ?, ?, now())",
                [
                    name,
                    event.row_id,
                    event.first_row_id,
                    event.reference_first_row_id,
                    event.reference_last_row_id,
                    list(event.signals),
                    json.dumps(event.evidence()),
                ],
            )
        con.execute(
            "INSERT OR REPLACE INTO detector_state VALUES (?, ?, ?, ?, now())",
            [name, monitor.last_row_id, monitor.state_bytes(), monitor.settings.model_dump_json()],
        )
        if transaction:
            con.commit()
    except BaseException:
        if transaction:
            con.rollback()
        raise


def load_monitor(con: duckdb.DuckDBPyConnection, settings: DriftSettings, name: str = DEFAULT_MONITOR) -> DriftMonitor:
    """The stored monitor, or a fresh one; a fresh one too (continuing after the stored row) when a
    structural setting changed since the state was saved."""
    ensure_schema(con)
    found = con.execute("SELECT last_row_id, state, settings FROM detector_state WHERE monitor = ?", [name]).fetchall()
    if not found:
        return DriftMonitor(settings)
    last_row_id, blob, saved_json = found[0]
    saved = json.loads(saved_json)
    changed = [key for key in STRUCTURAL if saved.get(key) != getattr(settings, key)]
    if changed:
        log.warning(
            "drift settings %s changed since the state was saved; the monitor starts over after row %s",
            ", ".join(changed),
            last_row_id,
        )
        monitor = DriftMonitor(settings)
        monitor.state.last_row_id = last_row_id
        return monitor
    return DriftMonitor.from_state_bytes(settings, bytes(blob))


def stored_events(
    con: duckdb.DuckDBPyConnection, name: str = DEFAULT_MONITOR, limit: int | None = None
) -> list[DriftEvent]:
    """Stored events, newest first."""
    ensure_schema(con)
    rows = con.execute(
        "SELECT row_id, first_row_id, reference_first_row_id, reference_last_row_id, signals, evidence "
        "FROM drift_events WHERE monitor = ? ORDER BY row_id DESC LIMIT ?",
        [name, limit if limit is not None else 2**62],
    ).fetchall()
    events = []
    for row_id, first, ref_first, ref_last, signals, evidence in rows:
        readings = tuple(SignalReading(**reading) for reading in json.loads(evidence)["readings"])
        events.append(DriftEvent(row_id, first, ref_first, ref_last, tuple(signals), readings))
    return events


def read_rows(
    con: duckdb.DuckDBPyConnection,
    after_row_id: int | None = None,
    until_row_id: int | None = None,
    limit: int | None = None,
) -> FeedbackRows:
    """Feedback rows with after_row_id < row_id <= until_row_id, in row_id order, as Arrow columns."""
    table = con.sql(
        "SELECT row_id, text, label, prediction FROM feedback WHERE row_id > ? AND row_id <= ? ORDER BY row_id LIMIT ?",
        params=[
            after_row_id if after_row_id is not None else -(2**62),
            until_row_id if until_row_id is not None else 2**62,
            limit if limit is not None else 2**62,
        ],
    ).to_arrow_table()
    return FeedbackRows.from_arrow(table)


def row_at(con: duckdb.DuckDBPyConnection, when: int | datetime) -> int:
    """A row id as given, or the first row id stored at or after a time (one past the last when none is)."""
    if isinstance(when, int):
        return when
    found = con.execute(
        "SELECT coalesce(min(row_id) FILTER (ts >= ?), max(row_id) + 1, 0) FROM feedback", [when]
    ).fetchall()
    return int(found[0][0])
