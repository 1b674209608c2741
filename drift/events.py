"""What the monitor reports: drift events with their evidence, and its current status."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SignalReading:
    """One signal at one check: its value against its threshold."""

    name: str
    value: float | None  # None: window or reference too thin to judge
    threshold: float
    direction: str  # "up", "down" or "both"
    reference: float | None  # the signal's raw quantity during warm-up (None for divergences)
    exceeded_checks: int  # of the last confirm_m checks, how many were beyond the threshold
    detector_alarm: bool | None  # None: no river detector behind this signal

    @property
    def beyond(self) -> bool:
        if self.value is None:
            return False
        up = self.direction in ("up", "both") and self.value >= self.threshold
        return up or (self.direction in ("down", "both") and self.value <= -self.threshold)


@dataclass(frozen=True)
class DriftEvent:
    """A confirmed shift: raised at `row_id`, seen in the window first_row_id..row_id."""

    row_id: int
    first_row_id: int
    reference_first_row_id: int
    reference_last_row_id: int
    signals: tuple[str, ...]  # the signals that confirmed it
    readings: tuple[SignalReading, ...]  # every signal at that check

    def evidence(self) -> dict[str, Any]:
        return {"signals": list(self.signals), "readings": [asdict(reading) for reading in self.readings]}

    def describe(self) -> str:
        parts = [
            f"{r.name}={r.value:.4g} (threshold {r.threshold:g})"
            for r in self.readings
            if r.name in self.signals and r.value is not None
        ]
        return f"drift at row {self.row_id} (window from row {self.first_row_id}): " + ", ".join(parts)


@dataclass(frozen=True)
class DriftStatus:
    """Where the monitor stands: phase, rows and each signal at the last check."""

    phase: str  # "warmup", "monitoring" or "cooldown"
    rows_seen: int
    last_row_id: int | None
    rows_left_in_phase: int | None  # None while monitoring
    reference_rows: tuple[int, int] | None  # first and last row id of the reference
    events: int
    last_event_row_id: int | None
    readings: tuple[SignalReading, ...]

    def as_dict(self) -> dict[str, Any]:
        """As JSON data, each reading with whether it is `beyond` its threshold."""
        return {**asdict(self), "readings": [{**asdict(r), "beyond": r.beyond} for r in self.readings]}


def finite_or_none(value: float) -> float | None:
    return None if math.isnan(value) else float(value)
