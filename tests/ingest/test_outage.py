"""A broker that stops answering mid-run: the ingestor waits, resumes, and stores every record once."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ingest.broker import LocalBroker
from ingest.settings import IngestSettings, KafkaSettings
from tests.conftest import EXTERNAL_BROKER, wait_until
from tests.ingest.kafka_helpers import good, ingest_in_thread, produce

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.skipif(bool(EXTERNAL_BROKER), reason="pauses a broker process of its own"),
]


def test_broker_frozen_mid_run_then_back(
    tmp_path: Path, ingest_settings: IngestSettings, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with LocalBroker(log_file=tmp_path / "broker.log") as broker:
        kafka = KafkaSettings(
            bootstrap=broker.bootstrap, topic=f"outage-{uuid.uuid4().hex[:6]}", request_timeout_ms=5_000
        )
        with ingest_in_thread(kafka, ingest_settings, store_path) as running:
            produce(kafka, [good(i) for i in range(1_000)])
            wait_until(lambda: running.count() == 1_000, 60, "the first thousand")
            broker.pause()
            running.stop.wait(8.0)
            broker.resume()
            produce(kafka, [good(i) for i in range(1_000, 2_000)])
            wait_until(lambda: running.count() == 2_000, 90, "the records sent after the outage")
            assert running.thread.is_alive()
            assert not running.errors
            distinct = running.store.con.cursor().execute("SELECT count(DISTINCT id) FROM feedback").fetchone()
    assert distinct == (2_000,)
    assert not running.errors
