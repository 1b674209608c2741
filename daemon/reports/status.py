"""What `driftloop status` shows, computed from the store; the daemon adds its own live figures."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import duckdb

from daemon.loop import runs
from daemon.loop.store import bentoml_home
from daemon.settings import Settings
from drift.settings import DriftSettings
from drift.signals import watches
from drift.store import count_events, load_monitor, monitor_name, stored_events
from ingest.prediction_log import served_accuracy
from ingest.summary import PartitionOffset, StoreSummary, store_summary
from registry.records import select_models, select_promotions
from registry.served import read_served


def collect_status(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, Any]:
    """Ingest, drift, training and model figures."""
    stored = store_summary(con, settings.kafka.topic, settings.kafka.predictions_topic)
    log = stored.prediction_log
    name = monitor_name(settings.drift)
    events = stored_events(con, name, limit=1)
    last_run = runs.list_runs(con, limit=1)
    return {
        "ingest": {
            "topic": stored.topic,
            "rows": stored.rows,
            "holdout_rows": stored.holdout_rows,
            "labels": stored.distinct_labels,
            "last_ingested_at": None if stored.last_ingested_at is None else stored.last_ingested_at.isoformat(),
            "rejected": stored.rejected,
            "kinds": stored.kinds,
            "partitions": _partitions(stored.partitions),
            "prediction_log": {
                "topic": log.topic,
                "predictions": log.predictions,
                "with_text": log.with_text,
                "waiting_feedback": log.waiting_feedback,
                "newest": None if log.newest is None else log.newest.isoformat(),
                "partitions": _partitions(log.partitions),
            },
        },
        "drift": {
            **drift_status(con, settings.drift),
            "events_stored": count_events(con, name),
            "warning": stream_warning(settings, stored),
            "last_event": events[0].describe() if events else None,
        },
        "training": {
            "runs_by_status": runs.runs_by_status(con),
            "last_run": last_run[0].as_dict() if last_run else None,
        },
        "models": {
            **_models(con, settings.registry.task),
            "serving": serving_state(con, settings),
            "accuracy": asdict(served_accuracy(con, settings.audit.accuracy_window)),
        },
    }


def drift_status(con: duckdb.DuckDBPyConnection, drift: DriftSettings) -> dict[str, Any]:
    """The watched stream's monitor, and what each signal watches."""
    status = load_monitor(con, drift, monitor_name(drift)).status().as_dict()
    return {**status, "stream": drift.stream, "watches": watches(drift.stream, drift.output)}


def stream_warning(settings: Settings, stored: StoreSummary) -> str | None:
    """Why the watched stream may be the wrong one: served traffic watched with no prediction logged, while
    feedback comes in (a deployment without the prediction log)."""
    if settings.drift.stream == "served" and stored.prediction_log.predictions == 0 and stored.rows > 0:
        return (
            "drift watches served traffic, but the prediction log is empty while feedback arrives: turn "
            "registry.prediction_log on in the service, or set drift.stream = feedback"
        )
    return None


def _partitions(partitions: list[PartitionOffset]) -> list[dict[str, Any]]:
    return [
        {"partition": p.partition, "next_offset": p.next_offset, "updated_at": p.updated_at.isoformat()}
        for p in partitions
    ]


def serving_state(con: duckdb.DuckDBPyConnection, settings: Settings) -> dict[str, Any] | None:
    """The registry's production beside what the service last said it serves (None before any service ran)."""
    from registry.registry import Registry

    home = bentoml_home(settings)
    served = read_served(home, settings.registry.production_name())
    if served is None:
        return None
    tag = Registry(con, settings.registry, home).production_tag()
    recorded = None if tag is None else tag.split(":", 1)[1]
    return {**asdict(served), "registry_version": recorded, "matches": served.version == recorded}


def _models(con: duckdb.DuckDBPyConnection, task: str) -> dict[str, Any]:
    models = select_models(con, task)
    actions: dict[str, int] = {}
    for promotion in select_promotions(con, task):
        actions[promotion.action] = actions.get(promotion.action, 0) + 1
    production = [model.version for model in models if model.stage == "production"]
    return {
        "production": production[0] if production else None,
        "pending": [model.version for model in models if model.stage == "pending"],
        "gate_decisions": {
            "passed": sum(1 for model in models if model.gate_passed),
            "failed": sum(1 for model in models if not model.gate_passed),
        },
        "promotions": actions,
    }
