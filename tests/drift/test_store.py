from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from drift.errors import DriftStateError
from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.store import connect, load_monitor, read_rows, row_at, save_monitor, stored_events
from drift.synthetic import synthetic_stream
from tests.drift.conftest import run


def test_two_halves_with_a_restart_between_equal_one_pass(tmp_path: Path) -> None:
    rows = synthetic_stream("abrupt", 45_000, (10_000, 30_000), seed=0).rows
    settings = DriftSettings()
    uninterrupted = run(rows, settings, batch_rows=45_000)
    path = tmp_path / "store.duckdb"

    with connect(path) as con:
        monitor = load_monitor(con, settings)
        first_half = monitor.update(rows.slice(0, 20_013))
        save_monitor(con, monitor, first_half)
    with connect(path) as con:
        restored = load_monitor(con, settings)
        assert restored.last_row_id == 20_012
        second_half = restored.update(rows.slice(20_013, 45_000))
        save_monitor(con, restored, second_half)
        events = stored_events(con)

    assert len(uninterrupted) == 2
    assert first_half + second_half == uninterrupted
    assert events[::-1] == uninterrupted
    assert restored.status() == run_status(rows, settings)


def run_status(rows: FeedbackRows, settings: DriftSettings) -> object:
    monitor = DriftMonitor(settings)
    monitor.update(rows)
    return monitor.status()


def test_a_changed_window_starts_over_after_the_stored_row(tmp_path: Path) -> None:
    rows = synthetic_stream("stationary", 3_000, seed=1).rows
    with connect(tmp_path / "store.duckdb") as con:
        monitor = load_monitor(con, DriftSettings())
        monitor.update(rows)
        save_monitor(con, monitor, [])

        same_window = load_monitor(con, DriftSettings(error_threshold=0.2))
        new_window = load_monitor(con, DriftSettings(window_rows=300))

    assert same_window.status().phase == "monitoring"
    assert same_window.status().readings[0].threshold == 0.2
    assert (new_window.status().phase, new_window.status().rows_seen, new_window.last_row_id) == ("warmup", 0, 2_999)


def test_unreadable_state_is_a_drift_error(tmp_path: Path) -> None:
    with pytest.raises(DriftStateError, match="delete it"):
        DriftMonitor.from_state_bytes(DriftSettings(), b"not a pickle")


def make_feedback(con: duckdb.DuckDBPyConnection, rows: FeedbackRows) -> datetime:
    """A `feedback` table with the columns drift reads, one row a minute from the returned start time."""
    start = datetime(2024, 1, 1, tzinfo=UTC)
    incoming = pa.table(
        {
            "row_id": pa.array(rows.row_id + 1),
            "text": rows.text,
            "label": rows.label,
            "prediction": rows.prediction,
            "ts": pa.array([start + timedelta(minutes=int(i)) for i in rows.row_id], pa.timestamp("us", tz="UTC")),
        }
    )
    con.register("incoming", incoming)
    con.execute("CREATE TABLE feedback AS SELECT * FROM incoming")
    con.unregister("incoming")
    return start


def test_read_rows_and_row_at(tmp_path: Path) -> None:
    rows = synthetic_stream("stationary", 100, seed=2).rows
    with connect(tmp_path / "store.duckdb") as con:
        start = make_feedback(con, rows)

        middle = read_rows(con, after_row_id=10, until_row_id=20)
        limited = read_rows(con, after_row_id=95, limit=3)
        at_time = row_at(con, start + timedelta(minutes=41, seconds=30))
        past_end = row_at(con, start + timedelta(days=1))

    assert middle.row_id.tolist() == list(range(11, 21))
    assert middle.text.to_pylist() == rows.text[10:20].to_pylist()
    assert middle.prediction.to_pylist() == rows.prediction[10:20].to_pylist()
    assert limited.row_id.tolist() == [96, 97, 98]
    assert (at_time, past_end) == (43, 101)
