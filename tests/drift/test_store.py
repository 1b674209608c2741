from __future__ import annotations

import json
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


def test_a_state_saved_before_the_edit_signal_continues_as_if_never_stopped() -> None:
    """monitor_state_v1.pickle: drift/ as of state version 1 after rows 0..609 of this stream, these settings."""
    settings = DriftSettings(warmup_rows=200, window_rows=100, min_window_rows=50, ngram_buckets=16, cooldown_rows=0)
    rows = synthetic_stream("abrupt", 1_500, (800,), seed=11).rows
    uninterrupted = DriftMonitor(settings)
    assert uninterrupted.update(rows.slice(0, 610)) == []

    restored = DriftMonitor.from_state_bytes(settings, (Path(__file__).parent / "monitor_state_v1.pickle").read_bytes())

    assert restored.status() == uninterrupted.status()
    later = restored.update(rows.slice(610, 1_500))
    assert [event.row_id for event in later] == [949]
    assert later == uninterrupted.update(rows.slice(610, 1_500))
    assert restored.status() == uninterrupted.status()


def test_a_changed_output_starts_over_and_a_state_saved_without_one_was_labels(tmp_path: Path) -> None:
    rows = synthetic_stream("stationary", 3_000, seed=1).rows
    with connect(tmp_path / "store.duckdb") as con:
        monitor = load_monitor(con, DriftSettings())
        monitor.update(rows)
        save_monitor(con, monitor, [])
        older = DriftSettings().model_dump(mode="json", exclude={"output", "edit_threshold"})
        con.execute("UPDATE detector_state SET settings = ?", [json.dumps(older)])

        labels = load_monitor(con, DriftSettings())
        answers = load_monitor(con, DriftSettings(output="answers"))

    assert (labels.status().phase, labels.status().rows_seen) == ("monitoring", 3_000)
    assert (answers.status().phase, answers.status().rows_seen, answers.last_row_id) == ("warmup", 0, 2_999)
