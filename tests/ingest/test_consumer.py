"""The ingest loop against a real Kafka-protocol broker over loopback."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from ingest.broker import LocalBroker, free_port
from ingest.consumer import FeedbackIngestor
from ingest.errors import OffsetOutOfRange
from ingest.kafka_clients import connection_config
from ingest.records import incoming_table
from ingest.settings import IngestSettings, KafkaSettings
from ingest.store import FeedbackStore
from ingest.summary import store_summary
from tests.conftest import EXTERNAL_BROKER, wait_until
from tests.ingest.kafka_helpers import good, ingest_in_thread, produce

pytestmark = pytest.mark.kafka

BAD_KINDS: dict[bytes, str] = {
    b"\xc3\x28 broken": "not valid UTF-8",
    b"plain words": "not JSON",
    b"[1, 2, 3]": "not a JSON object (got array)",
    b'{"text": "t", "label": "l"}': "missing field 'id'",
    b'{"id": "b1", "label": "l"}': "missing field 'text'",
    b'{"id": "b2", "text": "t"}': "missing field 'label'",
    b'{"id": 5, "text": "t", "label": "l"}': "field 'id' must be a string (got number)",
    b'{"id": "b3", "text": 5, "label": "l"}': "field 'text' must be a string (got number)",
    b'{"id": "b4", "text": "  ", "label": "l"}': "text is empty after whitespace normalisation",
    b'{"id": "b5", "text": "' + b"x" * 25_000 + b'", "label": "l"}': "text is 25000 characters",
    b'{"id": "' + b"i" * 300 + b'", "text": "t", "label": "l"}': "id is 300 characters",
    b'{"id": "r0", "text": "again", "label": "l"}': "duplicate id r0",
}


def drain(kafka: KafkaSettings, ingest: IngestSettings, store_path: Path) -> tuple[int, int]:
    with FeedbackStore(store_path, ingest) as store:
        progress = FeedbackIngestor(kafka, ingest, store, threading.Event()).run(once=True)
    return progress.stored, progress.rejected


def test_once_drains_the_topic_and_a_rerun_adds_nothing(
    kafka_settings: KafkaSettings, ingest_settings: IngestSettings, store_path: Path
) -> None:
    produce(kafka_settings, [good(i) for i in range(500)])
    assert drain(kafka_settings, ingest_settings, store_path) == (500, 0)
    assert drain(kafka_settings, ingest_settings, store_path) == (0, 0)
    with FeedbackStore(store_path, ingest_settings) as store:
        assert store_summary(store.con, kafka_settings.topic, kafka_settings.predictions_topic).rows == 500
        assert sum(store.stored_offsets(kafka_settings.topic).values()) == 500


def test_bad_records_interleaved_are_rejected_and_the_consumer_keeps_running(
    kafka_settings: KafkaSettings, ingest_settings: IngestSettings, store_path: Path
) -> None:
    bad = list(BAD_KINDS)
    with ingest_in_thread(kafka_settings, ingest_settings, store_path) as running:
        produce(kafka_settings, [good(0)])
        wait_until(lambda: running.count() == 1, 60, "the first record")
        stream = [good(index) for index in range(1, 241)]
        for position, value in enumerate(bad):
            stream.insert(20 * position + 10, value)
        produce(kafka_settings, stream)
        wait_until(lambda: running.count("rejected") == len(bad), 60, "every bad record")
        produce(kafka_settings, [good(1_000)])
        wait_until(lambda: running.count() == 242, 60, "a record sent after the bad ones")
        assert running.thread.is_alive()
        assert not running.errors
        reasons = running.store.con.cursor().execute("SELECT reason FROM rejected").fetchall()
    for expected in BAD_KINDS.values():
        assert sum(reason.startswith(expected) for (reason,) in reasons) == 1, expected
    assert not running.errors
    assert not running.thread.is_alive()


def test_offsets_are_committed_to_kafka_after_the_store(
    kafka_settings: KafkaSettings, ingest_settings: IngestSettings, store_path: Path
) -> None:
    produce(kafka_settings, [good(i) for i in range(300)])
    drain(kafka_settings, ingest_settings, store_path)
    with FeedbackStore(store_path, ingest_settings) as store:
        stored = store.stored_offsets(kafka_settings.topic)
    probe = KafkaConsumer(group_id=kafka_settings.group_id, **connection_config(kafka_settings))
    try:
        committed = {p: probe.committed(TopicPartition(kafka_settings.topic, p)) for p in stored}
    finally:
        probe.close()
    assert committed == stored


def test_stored_offset_beyond_the_partition_end_stops_loudly_or_restarts_by_policy(
    kafka_settings: KafkaSettings, ingest_settings: IngestSettings, store_path: Path
) -> None:
    produce(kafka_settings, [good(i) for i in range(10)], partitions=1)
    with FeedbackStore(store_path, ingest_settings) as store:
        store.write_batch(incoming_table([], kafka_settings.topic), {(kafka_settings.topic, 0): 1_000_000})
    with pytest.raises(OffsetOutOfRange, match="lies beyond the end of the partition: was the topic recreated"):
        drain(kafka_settings, ingest_settings, store_path)
    restart = ingest_settings.model_copy(update={"offset_out_of_range": "earliest"})
    assert drain(kafka_settings, restart, store_path) == (10, 0)


@pytest.mark.slow
@pytest.mark.skipif(bool(EXTERNAL_BROKER), reason="restarts a broker process of its own")
def test_a_topic_recreated_past_the_stored_offset_stops_ingest_until_the_policy_says_where(
    tmp_path: Path, ingest_settings: IngestSettings, store_path: Path
) -> None:
    port, topic = free_port(), f"recreated-{uuid.uuid4().hex[:6]}"
    with LocalBroker(port, log_file=tmp_path / "broker.log") as first:
        kafka = KafkaSettings(bootstrap=first.bootstrap, topic=topic, request_timeout_ms=5_000)
        produce(kafka, [good(i) for i in range(100)], partitions=1)
        assert drain(kafka, ingest_settings, store_path) == (100, 0)
    with LocalBroker(port, log_file=tmp_path / "broker.log"):  # a new broker: the topic is created again
        produce(kafka, [good(i, prefix="new") for i in range(150)], partitions=1)
        with pytest.raises(OffsetOutOfRange, match="ingest.offset_out_of_range") as stopped:
            drain(kafka, ingest_settings, store_path)
        assert "offset 100 of " + topic + "[0] follows a record that is not the one stored" in str(stopped.value)
        with FeedbackStore(store_path, ingest_settings) as store:
            assert store_summary(store.con, topic, "p").rows == 100, "nothing is stored past the check"
        restart = ingest_settings.model_copy(update={"offset_out_of_range": "earliest"})
        assert drain(kafka, restart, store_path) == (150, 0)


def test_unreachable_broker_at_start_is_waited_for(
    tmp_path: Path, ingest_settings: IngestSettings, store_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ingest.kafka_clients")
    with LocalBroker(log_file=tmp_path / "broker.log") as broker:
        kafka = KafkaSettings(
            bootstrap=broker.bootstrap, topic=f"late-{uuid.uuid4().hex[:6]}", request_timeout_ms=5_000
        )
        produce(kafka, [good(i) for i in range(300)])
        broker.pause()  # frozen, not killed: its topics live in memory only
        with ingest_in_thread(kafka, ingest_settings, store_path) as running:
            wait_until(lambda: "Kafka unreachable" in caplog.text, 30, "the ingestor to find Kafka unreachable")
            assert running.count() == 0
            assert running.thread.is_alive()
            broker.resume()
            wait_until(lambda: running.count() == 300, 60, "the records once the broker answers")
            assert running.thread.is_alive()
            assert not running.errors
    assert not running.errors
    assert running.progress[0].stored == 300


def test_meta_and_timestamps_are_stored(
    kafka_settings: KafkaSettings, ingest_settings: IngestSettings, store_path: Path
) -> None:
    record = {"id": "m1", "text": "t", "label": "l", "ts": "2020-02-03T04:05:06Z", "meta": {"app": "web"}}
    produce(kafka_settings, [json.dumps(record).encode()])
    drain(kafka_settings, ingest_settings, store_path)
    with FeedbackStore(store_path, ingest_settings) as store:
        row = store.con.execute("SELECT strftime(ts, '%Y-%m-%d %H:%M:%S'), meta->>'app' FROM feedback").fetchone()
    assert row == ("2020-02-03 04:05:06", "web")
