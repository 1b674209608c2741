"""Replay rows through the monitor and through single river detectors; score both against change points."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from drift.detectors import BASELINES, error_detector, feed
from drift.events import DriftEvent
from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows
from drift.settings import DriftSettings

BATCH_ROWS = 10_000


@dataclass(frozen=True)
class Score:
    """How one detector did on one replay."""

    name: str
    rows: int
    seconds: float
    event_rows: tuple[int, ...]
    delays: tuple[int | None, ...]  # per change point: rows from it to the first event after it
    events_per_shift: tuple[int, ...]  # per change point: events before the next change point
    false_alarms: int  # events before the first change point, plus every event after a shift's first

    @property
    def false_alarms_per_10k(self) -> float:
        return 10_000 * self.false_alarms / self.rows if self.rows else 0.0

    @property
    def median_delay(self) -> float | None:
        found = [delay for delay in self.delays if delay is not None]
        return statistics.median(found) if found else None

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds else float("inf")


@dataclass(frozen=True)
class BacktestReport:
    change_points: tuple[int, ...]
    events: tuple[DriftEvent, ...]
    monitor: Score
    baselines: tuple[Score, ...]


def replay(rows: FeedbackRows, settings: DriftSettings, batch_rows: int = BATCH_ROWS) -> list[DriftEvent]:
    """Run a fresh monitor over `rows` in batches, as the daemon would."""
    monitor = DriftMonitor(settings)
    events: list[DriftEvent] = []
    for start in range(0, len(rows), batch_rows):
        events += monitor.update(rows.slice(start, start + batch_rows))
    return events


def baseline_events(rows: FeedbackRows, kind: str) -> list[int]:
    """Row ids where a single river detector at its defaults, fed the error stream, reports drift."""
    errors = np.asarray(
        rows.prediction.to_numpy(zero_copy_only=False) != rows.label.to_numpy(zero_copy_only=False), dtype=np.float64
    )
    errors[np.asarray(rows.prediction.is_null().to_numpy(zero_copy_only=False))] = np.nan
    fired = feed(error_detector(kind), errors)
    return [int(row) for row in rows.row_id[fired]]


def score_detector(
    name: str, event_rows: Sequence[int], change_points: Sequence[int], rows: int, seconds: float
) -> Score:
    points = sorted(change_points)
    bounds = [*points, float("inf")]
    delays: list[int | None] = []
    per_shift: list[int] = []
    for point, following in zip(points, bounds[1:], strict=True):
        inside = [row for row in event_rows if point <= row < following]
        per_shift.append(len(inside))
        delays.append(inside[0] - point if inside else None)
    early = sum(1 for row in event_rows if not points or row < points[0])
    extra = sum(max(count - 1, 0) for count in per_shift)
    return Score(name, rows, seconds, tuple(event_rows), tuple(delays), tuple(per_shift), early + extra)


def backtest(
    rows: FeedbackRows,
    settings: DriftSettings,
    change_points: Sequence[int] = (),
    baselines: Sequence[str] = BASELINES,
    batch_rows: int = BATCH_ROWS,
) -> BacktestReport:
    """Replay `rows` through the configured monitor and each baseline detector; change points are row ids."""
    started = time.perf_counter()
    events = replay(rows, settings, batch_rows)
    monitor = score_detector("driftloop", [event.row_id for event in events], change_points, len(rows), _since(started))
    scores = []
    for kind in baselines:
        started = time.perf_counter()
        fired = baseline_events(rows, kind)
        scores.append(score_detector(kind, fired, change_points, len(rows), _since(started)))
    return BacktestReport(tuple(sorted(change_points)), tuple(events), monitor, tuple(scores))


def _since(started: float) -> float:
    return time.perf_counter() - started
