"""Settings of the `daemon` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DaemonSettings(BaseModel):
    """How the long-running process schedules its jobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    drift_check_interval_s: float = Field(
        30.0, gt=0.0, description="Seconds between drift checks over the rows ingested since the last one."
    )
