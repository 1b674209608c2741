from __future__ import annotations

import pytest

from drift.events import DriftEvent
from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows
from drift.settings import DriftSettings


def run(rows: FeedbackRows, settings: DriftSettings | None = None, batch_rows: int = 10_000) -> list[DriftEvent]:
    monitor = DriftMonitor(settings or DriftSettings())
    events: list[DriftEvent] = []
    for start in range(0, len(rows), batch_rows):
        events += monitor.update(rows.slice(start, start + batch_rows))
    return events


@pytest.fixture(autouse=True)
def _quiet_drift_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("ERROR", logger="drift")
