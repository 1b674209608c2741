from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from drift.errors import DriftStateError
from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.store import ensure_schema, load_monitor, save_monitor, stored_events
from drift.synthetic import synthetic_stream
from tests.drift.conftest import run


def connect(path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(path))
    ensure_schema(con)
    return con


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
