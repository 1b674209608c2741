"""The drift job as a plain function over a DuckDB connection; the daemon schedules it, `drift check` calls it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import duckdb

from drift.events import DriftEvent
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.store import load_monitor, save_monitor
from ingest.history import read_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftCheck:
    rows: int
    events: tuple[DriftEvent, ...]

    def describe(self) -> dict[str, Any]:
        return {"rows": self.rows, "events": [event.describe() for event in self.events]}


def check_drift(con: duckdb.DuckDBPyConnection, settings: DriftSettings) -> DriftCheck:
    """Feed the monitor the stored rows it has not seen yet; its state and new events are saved together."""
    monitor = load_monitor(con, settings)
    rows = FeedbackRows.from_arrow(read_rows(con, after_row_id=monitor.last_row_id))
    events = monitor.update(rows)
    save_monitor(con, monitor, events)
    for event in events:
        log.warning("%s", event.describe())
    return DriftCheck(rows=len(rows), events=tuple(events))
