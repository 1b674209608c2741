"""Persistence in the daemon's DuckDB file: drift events and detector state (the tables drift/ owns)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

import duckdb

from drift.events import DriftEvent, SignalReading
from drift.monitor import DriftMonitor
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
STRUCTURAL = (
    "check_every_rows",
    "window_rows",
    "confirm_m",
    "ngram_buckets",
    "error_detector",
    "adwin_delta",
    "output",  # a classifier's reference (label mix, error rate) says nothing about a generation model's
)
DEFAULT_MONITOR = "default"  # the monitor of the `feedback` stream (the only one before the prediction log)
SERVED_MONITOR = "served"


def monitor_name(settings: DriftSettings) -> str:
    """The stored monitor of the stream `settings` watch: each stream keeps its own state and events."""
    return SERVED_MONITOR if settings.stream == "served" else DEFAULT_MONITOR


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
    found = con.execute("SELECT last_row_id, state, settings FROM detector_state WHERE monitor = ?", [name]).fetchall()
    if not found:
        return DriftMonitor(settings)
    last_row_id, blob, saved_json = found[0]
    saved = json.loads(saved_json)
    defaults = DriftSettings()  # a setting added since the state was saved had its default then
    changed = [key for key in STRUCTURAL if saved.get(key, getattr(defaults, key)) != getattr(settings, key)]
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


@dataclass(frozen=True)
class PendingEvents:
    """Stored events after some row: how many, the earliest estimated start of a shift among them, the last row."""

    count: int
    first_row_id: int
    last_row_id: int


def events_after(
    con: duckdb.DuckDBPyConnection, row_id: int | None, name: str = DEFAULT_MONITOR
) -> PendingEvents | None:
    """The events detected at rows after `row_id` (all of them for None), or None when there is none."""
    count, first, last = con.execute(
        "SELECT count(*), min(first_row_id), max(row_id) FROM drift_events WHERE monitor = ? AND row_id > ?",
        [name, row_id if row_id is not None else -1],
    ).fetchall()[0]
    return PendingEvents(int(count), int(first), int(last)) if count else None


def event_record(con: duckdb.DuckDBPyConnection, row_id: int, name: str = DEFAULT_MONITOR) -> dict[str, Any] | None:
    """The stored event at `row_id` as JSON data (for a model's lineage), or None."""
    found = con.execute(
        "SELECT row_id, first_row_id, signals, evidence, detected_at FROM drift_events "
        "WHERE monitor = ? AND row_id = ?",
        [name, row_id],
    ).fetchall()
    if not found:
        return None
    row, first, signals, evidence, detected = found[0]
    return {"row_id": row, "first_row_id": first, "signals": list(signals), "evidence": json.loads(evidence),
            "detected_at": str(detected)}  # fmt: skip


def count_events(con: duckdb.DuckDBPyConnection, name: str = DEFAULT_MONITOR) -> int:
    return int(con.execute("SELECT count(*) FROM drift_events WHERE monitor = ?", [name]).fetchall()[0][0])
