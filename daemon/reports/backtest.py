"""`driftloop drift backtest` over the stored rows: bounds and change points as row ids or ISO times."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import duckdb

from daemon.errors import DaemonError
from drift.backtest import BacktestReport, backtest
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from ingest.history import read_rows, row_at

RowOrTime = int | str


def row_or_time(value: str, flag: str) -> RowOrTime:
    """A row id as an int, an ISO time as given (checked); the message names the flag."""
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        datetime.fromisoformat(text)
    except ValueError:
        raise DaemonError(f"{flag} {value!r} is neither a row id nor an ISO time such as 2014-06-01") from None
    return text


def backtest_stored(
    con: duckdb.DuckDBPyConnection,
    settings: DriftSettings,
    start: RowOrTime | None = None,
    end: RowOrTime | None = None,
    change_points: Sequence[RowOrTime] = (),
) -> dict[str, Any]:
    """Replay the stored rows from `start` (inclusive) to `end` (a row id inclusive, a time exclusive)."""
    first = None if start is None else _row(con, start)
    last = None if end is None else end if isinstance(end, int) else row_at(con, _time(end)) - 1
    rows = FeedbackRows.from_arrow(read_rows(con, after_row_id=None if first is None else first - 1, until_row_id=last))
    return report_json(backtest(rows, settings, [_row(con, point) for point in change_points]))


def report_json(report: BacktestReport) -> dict[str, Any]:
    scores = [
        {
            "name": score.name,
            "event_rows": score.event_rows,
            "delays": score.delays,
            "false_alarms_per_10k": score.false_alarms_per_10k,
            "median_delay_rows": score.median_delay,
            "rows_per_s": score.rows_per_s,
        }
        for score in (report.monitor, *report.baselines)
    ]
    return {
        "change_points": report.change_points,
        "scores": scores,
        "events": [event.evidence() for event in report.events],
        "described": [event.describe() for event in report.events],
    }


def _row(con: duckdb.DuckDBPyConnection, value: RowOrTime) -> int:
    return value if isinstance(value, int) else row_at(con, _time(value))


def _time(text: str) -> datetime:
    when = datetime.fromisoformat(text)
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)
