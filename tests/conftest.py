"""Shared fixtures: a real Kafka-protocol broker for the session, settings pointing at it, a temp home."""

from __future__ import annotations

import os
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

# prometheus_client picks its value store when first imported: BentoML's in-process /metrics needs the
# multiprocess one, so the directory is set before any test module imports it.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="driftloop-prometheus-"))

import pytest

from ingest.broker import LocalBroker
from ingest.settings import IngestSettings, KafkaSettings

EXTERNAL_BROKER = os.environ.get("DRIFTLOOP_KAFKA_BOOTSTRAP")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The broker every Kafka test talks to: DRIFTLOOP_KAFKA_BOOTSTRAP if set, else a local Tansu process."""
    if EXTERNAL_BROKER:
        yield EXTERNAL_BROKER
        return
    with LocalBroker(log_file=tmp_path_factory.mktemp("broker") / "broker.log") as broker:
        yield broker.bootstrap


@pytest.fixture
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    """Fresh topics and group per test, so tests never see each other's records."""
    suffix = uuid.uuid4().hex[:10]
    return KafkaSettings(
        bootstrap=kafka_bootstrap,
        topic=f"test-{suffix}",
        predictions_topic=f"test-{suffix}-predictions",
        group_id=f"group-{suffix}",
        request_timeout_ms=5_000,
    )


@pytest.fixture
def ingest_settings() -> IngestSettings:
    return IngestSettings(idle_exit_s=1.5, poll_timeout_ms=200, retry_initial_s=0.2, retry_max_s=1.0)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "home" / "driftloop.duckdb"


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.1)
