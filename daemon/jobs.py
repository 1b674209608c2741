"""The work the daemon schedules, as plain functions over a DuckDB connection; the CLI calls the same ones."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import duckdb

from drift.events import DriftEvent
from drift.settings import DriftSettings
from drift.store import ensure_schema, load_monitor, read_rows, save_monitor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftCheck:
    rows: int
    events: tuple[DriftEvent, ...]


def check_drift(con: duckdb.DuckDBPyConnection, settings: DriftSettings) -> DriftCheck:
    """Feed the monitor the stored rows it has not seen yet; its state and new events are saved together."""
    ensure_schema(con)
    monitor = load_monitor(con, settings)
    rows = read_rows(con, after_row_id=monitor.last_row_id)
    events = monitor.update(rows)
    save_monitor(con, monitor, events)
    for event in events:
        log.warning("%s", event.describe())
    return DriftCheck(rows=len(rows), events=tuple(events))
