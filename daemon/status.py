"""What `driftloop status` shows, computed from the store; the daemon adds its own live figures."""

from __future__ import annotations

from typing import Any

import duckdb

from daemon.settings import Settings
from drift.store import load_monitor, stored_events


def collect_status(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, Any]:
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
        "drift": {**monitor.as_dict(), "last_event": events[0].describe() if events else None},
    }
