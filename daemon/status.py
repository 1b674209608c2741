"""What `driftloop status` shows, computed from the store; the daemon adds its own live figures."""

from __future__ import annotations

from typing import Any

import duckdb

from daemon import runs
from daemon.settings import Settings
from drift.store import ensure_schema as drift_schema
from drift.store import load_monitor, stored_events


def collect_status(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, Any]:
    """Ingest, drift, training and model figures, from a store whose tables `ensure_schemas` made."""
    totals = con.execute(
        "SELECT count(*), count(*) FILTER (split = 'holdout'), count(DISTINCT label), max(ingested_at) FROM feedback"
    ).fetchall()[0]
    rejected = con.execute("SELECT count(*) FROM rejected").fetchall()[0][0]
    offsets = con.execute(
        "SELECT partition, next_offset, updated_at FROM kafka_offsets WHERE topic = ? ORDER BY partition",
        [settings.kafka.topic],
    ).fetchall()
    monitor = load_monitor(con, settings.drift).status()
    events = stored_events(con, limit=1)
    event_count = con.execute("SELECT count(*) FROM drift_events").fetchall()[0][0]
    return {
        "ingest": {
            "topic": settings.kafka.topic,
            "rows": totals[0],
            "holdout_rows": totals[1],
            "labels": totals[2],
            "last_ingested_at": None if totals[3] is None else totals[3].isoformat(),
            "rejected": rejected,
            "partitions": [
                {"partition": partition, "next_offset": offset, "updated_at": updated.isoformat()}
                for partition, offset, updated in offsets
            ],
        },
        "drift": {
            **monitor.as_dict(),
            "events_stored": event_count,
            "last_event": events[0].describe() if events else None,
        },
        "training": _training(con),
        "models": _models(con, settings.registry.task),
    }


def _training(con: duckdb.DuckDBPyConnection) -> dict[str, Any]:
    by_status = dict(con.execute("SELECT status, count(*) FROM training_runs GROUP BY status").fetchall())
    last = runs.runs(con, limit=1)
    return {"runs_by_status": by_status, "last_run": last[0].as_dict() if last else None}


def _models(con: duckdb.DuckDBPyConnection, task: str) -> dict[str, Any]:
    stages = con.execute(
        "SELECT version, stage, gate_passed FROM models WHERE task = ? ORDER BY seq", [task]
    ).fetchall()
    actions = con.execute("SELECT action, count(*) FROM promotions WHERE task = ? GROUP BY action", [task]).fetchall()
    production = [version for version, stage, _ in stages if stage == "production"]
    return {
        "production": production[0] if production else None,
        "pending": [version for version, stage, _ in stages if stage == "pending"],
        "gate_decisions": {
            "passed": sum(1 for *_, passed in stages if passed),
            "failed": sum(1 for *_, passed in stages if not passed),
        },
        "promotions": dict(actions),
    }


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Every table of the daemon's store beyond ingest's own: drift, training runs, the registry."""
    from registry import records

    drift_schema(con)
    runs.ensure_schema(con)
    records.ensure_schema(con)
