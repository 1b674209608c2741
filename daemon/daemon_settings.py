"""Settings of the `daemon` section: job intervals and the policy that turns drift events into training runs."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DaemonSettings(BaseModel):
    """How the long-running process schedules its jobs and when it trains."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    drift_check_interval_s: float = Field(
        30.0, gt=0.0, description="Seconds between drift checks over the rows ingested since the last one."
    )
    training_check_interval_s: float = Field(
        10.0, gt=0.0, description="Seconds between checks whether a training run should start or has finished."
    )
    min_new_rows: int = Field(
        500,
        ge=10,
        description="Rows stored since the drift event's estimated start before a run starts (train and holdout); "
        "`driftloop train` needs as many since the current episode began.",
    )
    max_training_attempts: int = Field(
        2,
        ge=1,
        description="Runs tried per drift event: a failed or aborted run is retried until this many were made "
        "(a run interrupted by a shutdown or a production change is retried without counting; a cancelled run, "
        "and an operator's run however it ended, is not retried).",
    )
    housekeeping_interval_s: float = Field(
        600.0, gt=0.0, description="Seconds between housekeeping runs (CHECKPOINT, then gc when `gc_in_housekeeping`)."
    )
    gc_in_housekeeping: bool = Field(
        True, description="Housekeeping deletes what `driftloop gc` would (run folders, old store versions)."
    )
    gc_runs_after_days: float = Field(
        7.0,
        ge=0.0,
        description="`driftloop gc` deletes the folder of a training run that ended longer ago than this, unless "
        "the registry keeps its model's files (production, pending, the rollback target, recently retired or "
        "gate-failed).",
    )
    metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="Port of the Prometheus /metrics endpoint (read-only, on metrics_host); 0 turns it off.",
    )
    metrics_host: str = Field("127.0.0.1", description="Address the Prometheus endpoint listens on.")
