from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.synthetic import Kind, synthetic_stream
from tests.drift.conftest import run

CHANGES = (10_000, 30_000)


@pytest.mark.parametrize(
    ("kind", "changes", "expected_rows", "signal"),
    [
        ("abrupt", CHANGES, [10_274, 30_199], "error"),
        ("ramp", CHANGES[:1], [11_124], "error"),
        ("label_mix", CHANGES, [10_349, 30_324], "label_mix"),
        ("length", CHANGES, [10_199, 30_149], "length"),
    ],
)
def test_one_event_per_shift_at_the_expected_row(
    kind: Kind, changes: tuple[int, ...], expected_rows: list[int], signal: str
) -> None:
    stream = synthetic_stream(kind, 45_000, changes, seed=0)

    events = run(stream.rows)

    assert [event.row_id for event in events] == expected_rows
    for event in events:
        assert event.signals == (signal,)
        reading = next(reading for reading in event.readings if reading.name == signal)
        assert reading.beyond
        assert reading.exceeded_checks >= DriftSettings().confirm_n
        assert event.first_row_id == event.row_id - DriftSettings().window_rows + 1
        assert event.reference_last_row_id - event.reference_first_row_id + 1 == DriftSettings().warmup_rows


def test_no_event_on_200k_stationary_rows() -> None:
    stream = synthetic_stream("stationary", 200_000, seed=7)

    monitor = DriftMonitor(DriftSettings())
    events = [
        event
        for start in range(0, 200_000, 20_000)
        for event in monitor.update(stream.rows.slice(start, start + 20_000))
    ]

    assert events == []
    status = monitor.status()
    assert status.phase == "monitoring"
    assert status.rows_seen == 200_000
    assert all(
        reading.value is not None
        for reading in status.readings
        if reading.name not in ("edit", "confidence", "distance")
    )


def test_events_do_not_depend_on_batch_sizes() -> None:
    rows = synthetic_stream("abrupt", 20_000, (8_000,), seed=3).rows

    assert run(rows, batch_rows=777) == run(rows, batch_rows=20_000)


def test_a_shift_during_warmup_or_cooldown_raises_nothing_until_monitoring() -> None:
    settings = DriftSettings(cooldown_rows=20_000)
    rows = synthetic_stream("abrupt", 40_000, (5_000, 15_000), seed=1).rows

    events = run(rows, settings)

    assert [event.row_id for event in events] == [5_199]  # the second shift falls into the cooldown


def test_a_shift_below_the_threshold_raises_no_event() -> None:
    rows = synthetic_stream("abrupt", 20_000, (8_000,), seed=2).rows

    assert run(rows, DriftSettings(error_threshold=0.3)) == []


def test_a_confidence_column_that_drops_raises_a_confidence_event_and_rows_without_one_raise_none() -> None:
    """The monitor's contract for an optional model-number column; nothing in production fills it yet."""
    rows = synthetic_stream("stationary", 12_000, seed=4).rows
    confidence = np.where(rows.row_id < 6_000, 0.9, 0.6) + 0.05 * np.random.default_rng(0).standard_normal(len(rows))
    with_confidence = FeedbackRows(rows.row_id, rows.text, rows.label, rows.prediction, confidence=confidence)

    events = run(with_confidence)

    assert [event.signals for event in events] == [("confidence",)]
    assert events[0].row_id == 6_099
    dropped = next(reading for reading in events[0].readings if reading.name == "confidence")
    assert dropped.value is not None
    assert dropped.beyond

    without = DriftMonitor(DriftSettings())
    events_without = without.update(rows)

    assert rows.confidence is None
    assert [event for event in events_without if "confidence" in event.signals] == []
    status = without.status()
    assert status.phase == "monitoring"
    assert next(reading for reading in status.readings if reading.name == "error").value is not None
    unjudged = next(reading for reading in status.readings if reading.name == "confidence")
    assert unjudged.value is None
    assert not unjudged.beyond


def test_a_falling_error_rate_is_no_drift() -> None:
    rows = synthetic_stream("stationary", 12_000, seed=4).rows
    better = pc.if_else(pa.array(rows.row_id >= 6_000), rows.label, rows.prediction)

    events = run(FeedbackRows(rows.row_id, rows.text, rows.label, better))

    assert events == []


def test_rows_already_seen_are_skipped() -> None:
    rows = synthetic_stream("stationary", 3_000, seed=5).rows
    monitor = DriftMonitor(DriftSettings())
    monitor.update(rows.slice(0, 2_000))

    monitor.update(rows.slice(1_500, 3_000))

    assert monitor.status().rows_seen == 3_000
    assert monitor.last_row_id == 2_999


def test_rebaseline_restarts_the_warmup() -> None:
    rows = synthetic_stream("stationary", 3_000, seed=6).rows
    monitor = DriftMonitor(DriftSettings(cooldown_rows=100))
    monitor.update(rows.slice(0, 2_500))
    assert monitor.status().phase == "monitoring"

    monitor.rebaseline()
    monitor.update(rows.slice(2_500, 3_000))

    status = monitor.status()
    assert (status.phase, status.rows_left_in_phase) == ("warmup", 1_600)
    assert status.reference_rows == (2_600, 2_999)


def test_start_after_skips_the_training_set_and_takes_the_reference_from_later_rows() -> None:
    rows = synthetic_stream("stationary", 3_000, seed=7).rows
    monitor = DriftMonitor(DriftSettings())
    monitor.start_after(999)
    monitor.update(rows)

    status = monitor.status()
    assert (status.phase, status.rows_seen) == ("monitoring", 2_000)
    assert status.reference_rows == (1_000, 2_999)


def test_every_phase_change_is_logged_with_the_row_it_follows(caplog: pytest.LogCaptureFixture) -> None:
    rows = synthetic_stream("abrupt", 12_000, (6_000,), seed=1).rows
    monitor = DriftMonitor(DriftSettings(warmup_rows=2_000, cooldown_rows=1_000))
    caplog.set_level("INFO", logger="drift.monitor")

    (event,) = monitor.update(rows)

    phases = [r.getMessage() for r in caplog.records if r.getMessage().startswith("drift monitor:")]
    assert phases == [
        "drift monitor: monitoring after row 1999",
        f"drift monitor: cooldown after row {event.row_id}",
        f"drift monitor: warmup after row {event.row_id + 1_000}",
        f"drift monitor: monitoring after row {event.row_id + 3_000}",
    ]
