"""The daemon's DuckDB file: opened with every package's tables, by the daemon or, with none running, by the CLI."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import duckdb

from daemon.loop import runs
from daemon.settings import Settings
from drift import store as drift_store
from ingest.errors import IngestError
from ingest.store import FeedbackStore
from registry import records

log = logging.getLogger(__name__)


def ensure_schemas(con: duckdb.DuckDBPyConnection) -> None:
    """Every table of the store beyond ingest's own (which FeedbackStore makes): drift, training runs, registry."""
    drift_store.ensure_schema(con)
    runs.ensure_schema(con)
    records.ensure_schema(con)


def open_store(settings: Settings, wait_s: float = 0.0) -> FeedbackStore:
    """The store with all its tables; waits up to `wait_s` for another process (a CLI command) to let go of it."""
    settings.home.mkdir(parents=True, exist_ok=True)
    settings.home.chmod(0o700)  # a home made before files were kept private
    deadline = time.monotonic() + wait_s
    while True:
        try:
            store = FeedbackStore(settings.store_path, settings.ingest, settings.kafka.predictions_topic)
            break
        except IngestError:
            if time.monotonic() > deadline:
                raise
            log.info("the store is held by another process (a CLI command?); waiting")
            time.sleep(0.5)
    ensure_schemas(store.con)
    return store


def bentoml_home(settings: Settings) -> Path:
    return settings.registry.bentoml_home or settings.home / "bentoml"
