"""The drift job as a plain function over a DuckDB connection; the daemon schedules it, `drift check` calls it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb

from drift.events import DriftEvent
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.store import load_monitor, monitor_name, save_monitor
from ingest.history import read_rows
from ingest.prediction_log import read_served

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DriftCheck:
    rows: int
    events: tuple[DriftEvent, ...]

    def describe(self) -> dict[str, Any]:
        return {"rows": self.rows, "events": [event.describe() for event in self.events]}


def check_drift(con: duckdb.DuckDBPyConnection, settings: DriftSettings) -> DriftCheck:
    """Feed the monitor of the watched stream the rows it has not seen yet; its state and new events are saved
    together. The `served` stream's rows are the predictions old enough for their labels to have come in."""
    name = monitor_name(settings)
    monitor = load_monitor(con, settings, name)
    if settings.stream == "served":
        settled = datetime.now(UTC) - timedelta(seconds=settings.served_label_wait_s)
        table = read_served(con, monitor.last_row_id, settled)
    else:
        table = read_rows(con, after_row_id=monitor.last_row_id)
    rows = FeedbackRows.from_arrow(table)
    events = monitor.update(rows)
    save_monitor(con, monitor, events, name)
    for event in events:
        log.warning("%s", event.describe())
    return DriftCheck(rows=len(rows), events=tuple(events))
