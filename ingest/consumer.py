"""The ingest loop: Kafka → checked rows + next offsets in one DuckDB transaction → commit to Kafka.

DuckDB holds the truth about what was consumed: on every assignment the consumer seeks to the offsets
stored there, so a crash at any moment loses and duplicates nothing. The Kafka commit that follows each
write only keeps the group's lag visible to Kafka tools.

While DuckDB writes one batch (in a worker thread, outside the GIL) the loop polls the next one.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, OffsetOutOfRangeError
from kafka.structs import OffsetAndMetadata

from ingest.errors import BrokerUnavailable, OffsetOutOfRange
from ingest.kafka_clients import feedback_consumer, with_retries
from ingest.records import INCOMING_SCHEMA
from ingest.settings import IngestSettings, KafkaSettings
from ingest.store import BatchResult, FeedbackStore

log = logging.getLogger(__name__)


@dataclass
class IngestProgress:
    """Running totals of one ingest session."""

    stored: int = 0
    rejected: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)

    def add(self, result: BatchResult) -> None:
        self.stored += result.stored
        self.rejected += result.rejected
        self.batches += 1


class FeedbackIngestor(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumes the feedback topic into the store until `stop` is set (or, with `once`, until idle)."""

    def __init__(
        self, kafka: KafkaSettings, ingest: IngestSettings, store: FeedbackStore, stop: threading.Event
    ) -> None:
        self.kafka = kafka
        self.ingest = ingest
        self.store = store
        self.stop = stop
        self.progress = IngestProgress()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb-writer")
        self._pending: Future[BatchResult] | None = None
        self._consumer: KafkaConsumer | None = None

    def run(self, once: bool = False) -> IngestProgress:
        try:
            consumer = with_retries(
                lambda: feedback_consumer(self.kafka, self.ingest), "ingest", self.ingest, self.stop
            )
        except BrokerUnavailable:
            log.info("ingest stopped before Kafka answered")
            return self.progress
        self._consumer = consumer
        consumer.subscribe([self.kafka.topic], listener=self)
        log.info("ingesting %s as %s/%s", self.kafka.topic, self.kafka.group_id, self.kafka.group_instance_id)
        idle_since = time.monotonic()
        try:
            while not self.stop.is_set():
                if self._poll_once(consumer):
                    idle_since = time.monotonic()
                elif once and consumer.assignment() and time.monotonic() - idle_since >= self.ingest.idle_exit_s:
                    break
                elif not consumer.assignment():
                    idle_since = time.monotonic()
        finally:
            self._shutdown(consumer)
        return self.progress

    def _connect(self) -> KafkaConsumer:
        return feedback_consumer(self.kafka, self.ingest)

    def _poll_once(self, consumer: KafkaConsumer) -> bool:
        try:
            polled = consumer.poll(timeout_ms=self.ingest.poll_timeout_ms, max_records=self.ingest.batch_max_records)
        except OffsetOutOfRangeError as exc:
            self._handle_out_of_range(consumer, exc)
            return False
        except KafkaError as exc:
            log.warning("poll failed (%s); the loop goes on and Kafka retries", exc)
            self.stop.wait(self.ingest.retry_initial_s)
            return False
        batch = _to_incoming(polled)
        self._finish_pending()
        if batch is None:
            return False
        incoming, next_offsets = batch
        self._pending = self._writer.submit(self.store.write_batch, incoming, next_offsets)
        return True

    def _finish_pending(self) -> None:
        """Wait for the batch being written, then commit its offsets to Kafka (best effort)."""
        if self._pending is None:
            return
        result = self._pending.result()
        self._pending = None
        self.progress.add(result)
        log.debug("stored %d, rejected %d", result.stored, result.rejected)
        self._commit_to_kafka(result)

    def _commit_to_kafka(self, result: BatchResult) -> None:
        assert self._consumer is not None
        offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in result.next_offsets.items()}
        try:
            self._consumer.commit(offsets)
        except KafkaError as exc:
            log.warning("Kafka commit failed (%s); DuckDB already holds the offsets, so nothing is lost", exc)

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self._finish_pending()

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        assert self._consumer is not None
        self._finish_pending()
        stored = self.store.stored_offsets(self.kafka.topic)
        for tp in sorted(assigned):
            if tp.partition in stored:
                self._consumer.seek(tp, stored[tp.partition])
            else:
                self._consumer.seek_to_beginning(tp)
        log.info(
            "assigned partitions %s; resuming at %s",
            sorted(tp.partition for tp in assigned),
            {tp.partition: stored.get(tp.partition, "beginning") for tp in sorted(assigned)},
        )

    def _handle_out_of_range(self, consumer: KafkaConsumer, exc: OffsetOutOfRangeError) -> None:
        positions: dict[TopicPartition, int] = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
        policy = self.ingest.offset_out_of_range
        detail = ", ".join(f"partition {tp.partition} at {offset}" for tp, offset in positions.items())
        if policy == "fail":
            raise OffsetOutOfRange(
                f"stored offsets lie outside the topic {self.kafka.topic} ({detail}): was it recreated? "
                "Set ingest.offset_out_of_range to 'earliest' or 'latest' to restart from there"
            )
        log.error("stored offsets out of range (%s); restarting at the %s offset by policy", detail, policy)
        for tp in positions:
            if policy == "earliest":
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek_to_end(tp)

    def _shutdown(self, consumer: KafkaConsumer) -> None:
        log.info("ingest stopping: finishing the batch in flight")
        try:
            self._finish_pending()
        finally:
            self._writer.shutdown(wait=True)
            consumer.close(autocommit=False)
            log.info(
                "ingest stopped: %d stored, %d rejected in %d batches",
                self.progress.stored,
                self.progress.rejected,
                self.progress.batches,
            )


def _to_incoming(polled: dict[TopicPartition, list[Any]]) -> tuple[pa.Table, dict[tuple[str, int], int]] | None:
    """Columns of the polled records and each partition's next offset; None when nothing arrived."""
    topics: list[str] = []
    partitions: list[int] = []
    offsets: list[int] = []
    timestamps: list[int] = []
    values: list[bytes] = []
    next_offsets: dict[tuple[str, int], int] = {}
    for tp, records in polled.items():
        if not records:
            continue
        topics += [tp.topic] * len(records)
        partitions += [tp.partition] * len(records)
        offsets += [record.offset for record in records]
        timestamps += [record.timestamp for record in records]
        values += [record.value if record.value is not None else b"" for record in records]
        next_offsets[(tp.topic, tp.partition)] = records[-1].offset + 1
    if not values:
        return None
    columns = [
        pa.array(topics, pa.string()),
        pa.array(partitions, pa.int32()),
        pa.array(offsets, pa.int64()),
        pa.array(timestamps, pa.int64()),
        pa.array(values, pa.binary()),
    ]
    return pa.Table.from_arrays(columns, schema=INCOMING_SCHEMA), next_offsets
