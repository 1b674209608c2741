"""The Kafka side of ingest, run in a process of its own (see link.py for why).

DuckDB holds the truth about what was consumed: on every assignment the reader seeks to the offsets the
store holds, so a crash of either process at any moment loses and duplicates nothing. The Kafka commit
that follows each confirmed write only keeps the group's lag visible to Kafka tools.

While the store writes one batch the reader polls the next.
"""

from __future__ import annotations

import logging
import pickle
import signal
import time
from multiprocessing.connection import Connection
from operator import attrgetter
from types import FrameType
from typing import Any

import pyarrow as pa
from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, OffsetOutOfRangeError
from kafka.structs import OffsetAndMetadata

from ingest.errors import BrokerUnavailable, IngestError, OffsetOutOfRange
from ingest.kafka_clients import feedback_consumer, with_retries
from ingest.link import Failed, Finished, ForwardLogs, Lag, StoreLink, WriteBatch, to_ipc
from ingest.offsets import deleted_offsets, replaced_offsets, stale_offsets
from ingest.records import INCOMING_SCHEMA
from ingest.settings import IngestSettings, KafkaSettings
from ingest.store import BatchResult, Position

log = logging.getLogger(__name__)
# The bound of each Kafka call that can wait on a broker that is away (a commit, a lag query, closing), so the loop
# sees `stop` and SIGTERM exits in time
KAFKA_CALL_TIMEOUT_MS = 5_000


def read_kafka(
    connection: Connection, kafka: KafkaSettings, ingest: IngestSettings, once: bool, log_levels: dict[str, int]
) -> None:
    """The reader process: Kafka → the store's process, until told to stop (or, with `once`, until idle)."""
    link = StoreLink(connection)

    def stop(signum: int, frame: FrameType | None) -> None:
        link.stop.set()  # Ctrl-C reaches the whole process group; the store's process stops in order too

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    root = logging.getLogger()
    root.handlers[:] = [ForwardLogs(link)]
    for name, level in log_levels.items():
        logging.getLogger(name).setLevel(level)
    try:
        KafkaReader(kafka, ingest, link).run(once)
    except BaseException as exc:
        if not isinstance(exc, IngestError):
            log.exception("the Kafka reader failed")
        _send_last(link, Failed(sendable_error(exc)))
    else:
        _send_last(link, Finished())


def _send_last(link: StoreLink, message: Failed | Finished) -> None:
    try:
        link.send(message)
    except OSError:
        pass  # the store's process is gone: nobody is left to tell


def sendable_error(exc: BaseException) -> BaseException:
    """`exc`, or an IngestError naming it when it would not survive the trip (some need arguments to unpickle)."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return IngestError(f"the Kafka reader failed: {exc!r}")
    return exc


class KafkaReader(ConsumerRebalanceListener):  # type: ignore[misc]
    """Consumes the feedback topic and the prediction log into the store behind `link` until its stop is set (or,
    with `once`, idle)."""

    def __init__(self, kafka: KafkaSettings, ingest: IngestSettings, link: StoreLink) -> None:
        self.kafka = kafka
        self.ingest = ingest
        self.link = link
        self.stop = link.stop
        self._in_flight = False  # a batch was sent to the store and its answer not read yet
        self._consumer: KafkaConsumer | None = None
        self._stale_error: OffsetOutOfRange | None = None
        self._unpositioned: set[TopicPartition] = set()
        self._stored_offsets: dict[tuple[str, int], int] = {}  # next offset per partition as of the newest batch
        self.topics = [kafka.topic, kafka.predictions_topic]

    def run(self, once: bool = False) -> None:
        try:
            consumer = with_retries(self._connect, "ingest", self.ingest, self.stop)
        except BrokerUnavailable:
            log.info("ingest stopped before Kafka answered")
            return
        self._consumer = consumer
        consumer.subscribe(self.topics, listener=self)
        log.info("ingesting %s as %s/%s", " and ".join(self.topics), self.kafka.group_id, self.kafka.group_instance_id)
        idle_since = started = time.monotonic()
        # `once` on a topic that does not exist: give up after a group join's time (one that exists is waited for)
        assignment_wait_s = self.kafka.request_timeout_ms / 1000 + self.ingest.idle_exit_s
        lag_measured = 0.0
        try:
            while not self.stop.is_set():
                if time.monotonic() - lag_measured >= self.ingest.lag_interval_s:
                    self._measure_lag(consumer)
                    lag_measured = time.monotonic()
                if self._poll_once(consumer):
                    idle_since = time.monotonic()
                elif once and consumer.assignment() and time.monotonic() - idle_since >= self.ingest.idle_exit_s:
                    break
                elif not consumer.assignment():
                    idle_since = time.monotonic()
                    if once and idle_since - started >= assignment_wait_s and not self._topic_exists(consumer):
                        log.warning("%s has no partitions after %.0f s: nothing to drain (create it with "
                                    "`driftloop topic create`)", self.kafka.topic, assignment_wait_s)  # fmt: skip
                        break
        finally:
            self._shutdown(consumer)

    def _topic_exists(self, consumer: KafkaConsumer) -> bool:
        try:
            return bool(consumer.partitions_for_topic(self.kafka.topic))
        except KafkaError:
            return True  # unknown: keep waiting, as for a topic that exists

    def _measure_lag(self, consumer: KafkaConsumer) -> None:
        """Records each assigned partition holds beyond what the store holds (as the broker reports its end)."""
        assigned = consumer.assignment()
        if not assigned:
            return
        try:
            ends: dict[TopicPartition, int] = consumer.end_offsets(list(assigned), timeout_ms=KAFKA_CALL_TIMEOUT_MS)
        except KafkaError as exc:
            log.debug("end offsets unavailable (%s); lag not updated", exc)
            return
        lag: dict[str, dict[int, int]] = {}
        for tp, end in ends.items():
            stored = self._stored_offsets.get((tp.topic, tp.partition), 0)
            lag.setdefault(tp.topic, {})[tp.partition] = max(end - stored, 0)
        self.link.send(Lag(lag))

    def _connect(self) -> KafkaConsumer:
        return feedback_consumer(self.kafka, self.ingest)

    def _poll_once(self, consumer: KafkaConsumer) -> bool:
        """One poll; True when it moved something (a batch, or partitions positioned)."""
        try:
            polled = consumer.poll(timeout_ms=self.ingest.poll_timeout_ms, max_records=self.ingest.batch_max_records)
        except OffsetOutOfRangeError as exc:
            out_of_range = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
            if not out_of_range:
                raise OffsetOutOfRange(
                    f"Kafka says an offset of {self.kafka.topic} is out of range ({exc}): records may have been "
                    "deleted before they were read; see ingest.offset_out_of_range"
                ) from None
            for tp, offset in out_of_range.items():
                self._restart_stale(tp, offset, "lies outside")
            polled = {}
        except KafkaError as exc:
            log.warning("poll failed (%s); the loop goes on and Kafka retries", exc)
            self.stop.wait(self.ingest.retry_initial_s)
            polled = {}
        polled_at = time.monotonic()
        positioned = bool(self._unpositioned)
        if positioned:
            self._position(consumer)
        if self._stale_error is not None:
            raise self._stale_error
        batch = _to_batch(polled, polled_at)
        written = self._await_written()
        if batch is not None:
            self.link.send(batch)
            self._in_flight = True
        if written is not None:
            self._commit_to_kafka(written)  # after the send: the store writes the next batch meanwhile
        return batch is not None or positioned

    def _finish_pending(self) -> None:
        """Wait for the store to answer the batch in flight, then commit its offsets to Kafka."""
        written = self._await_written()
        if written is not None:
            self._commit_to_kafka(written)

    def _await_written(self) -> BatchResult | None:
        """The store's answer to the batch in flight; None when none is."""
        if not self._in_flight:
            return None
        self._in_flight = False
        result = self.link.written()
        self._stored_offsets.update(result.next_offsets)
        return result

    def _commit_to_kafka(self, result: BatchResult) -> None:
        """Best effort: DuckDB holds the offsets; this only keeps the group's lag visible to Kafka tools."""
        assert self._consumer is not None
        offsets = {TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in result.next_offsets.items()}
        try:
            self._consumer.commit(offsets, timeout_ms=KAFKA_CALL_TIMEOUT_MS)
        except KafkaError as exc:
            log.warning("Kafka commit failed (%s); DuckDB already holds the offsets, so nothing is lost", exc)

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions %s revoked", [f"{tp.topic}[{tp.partition}]" for tp in sorted(revoked)])

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        """Runs on kafka-python's IO thread, where nothing may block: park the partitions until the loop
        positions them from DuckDB (see _position)."""
        assert self._consumer is not None
        for tp in assigned:
            self._consumer.seek(tp, 0)
        self._consumer.pause(*assigned)
        self._unpositioned |= assigned

    def _position(self, consumer: KafkaConsumer) -> None:
        """Seek newly assigned partitions to the offsets DuckDB holds, after the write in flight lands."""
        self._finish_pending()
        assigned = self._unpositioned & consumer.assignment()
        self._unpositioned = set()
        stored = {
            (topic, partition): position
            for topic in {tp.topic for tp in assigned}
            for partition, position in self.link.stored_positions(topic).items()
        }
        self._stored_offsets.update({key: position.next_offset for key, position in stored.items()})
        resume = {tp: stored[key].next_offset for tp in assigned if (key := (tp.topic, tp.partition)) in stored}
        try:
            stale = self._misplaced(consumer, stored, resume)
        except KafkaError as exc:  # a broker outage during the assignment: the partitions wait, paused
            log.warning("checking the stored offsets against Kafka failed (%s); trying again", exc)
            self._unpositioned |= assigned
            self.stop.wait(self.ingest.retry_initial_s)
            return
        for tp in sorted(assigned):
            if tp in stale:
                self._restart_stale(tp, *stale[tp])
                continue
            if tp in resume:
                consumer.seek(tp, resume[tp])
            else:
                consumer.seek_to_beginning(tp)
            consumer.resume(tp)
        log.info(
            "assigned partitions %s; resuming at %s",
            [f"{tp.topic}[{tp.partition}]" for tp in sorted(assigned)],
            {f"{tp.topic}[{tp.partition}]": resume.get(tp, "beginning") for tp in sorted(assigned)},
        )

    def _misplaced(
        self, consumer: KafkaConsumer, stored: dict[tuple[str, int], Position], resume: dict[TopicPartition, int]
    ) -> dict[TopicPartition, tuple[int, str]]:
        """The stored offsets that no longer point where the store read up to, with where they point."""
        stale = {
            tp: (offset, "lies beyond the end of") for tp, offset in stale_offsets(self.kafka, consumer, resume).items()
        }
        stale |= {tp: (offset, "lies before the start of") for tp, offset in deleted_offsets(consumer, resume).items()}
        checkable: dict[TopicPartition, tuple[int, str]] = {}
        for tp, offset in resume.items():
            md5 = stored[tp.topic, tp.partition].last_value_md5
            if md5 and offset > 0 and tp not in stale:
                checkable[tp] = (offset, md5)
        for tp, offset in replaced_offsets(self.kafka, checkable).items():
            stale[tp] = (offset, "follows a record that is not the one stored before it in")
        return stale

    def _restart_stale(self, tp: TopicPartition, offset: int, where: str) -> None:
        """A stored offset that no longer points where the store read up to: stop (the default) or restart where
        the policy says."""
        assert self._consumer is not None
        policy = self.ingest.offset_out_of_range
        problem = f"the stored offset {offset} of {tp.topic}[{tp.partition}] {where} the partition"
        if policy == "fail":
            self._stale_error = OffsetOutOfRange(
                f"{problem}: was the topic recreated, or records deleted before they were read? Nothing was read "
                "past it. Set ingest.offset_out_of_range to 'earliest' or 'latest' to restart there"
            )
            return
        log.error("%s; restarting at the %s offset (ingest.offset_out_of_range)", problem, policy)
        if policy == "earliest":
            self._consumer.seek_to_beginning(tp)
        else:
            self._consumer.seek_to_end(tp)
        self._consumer.resume(tp)

    def _shutdown(self, consumer: KafkaConsumer) -> None:
        log.info("ingest stopping: finishing the batch in flight")
        try:
            self._finish_pending()
        finally:
            consumer.close(autocommit=False, timeout_ms=KAFKA_CALL_TIMEOUT_MS)


def _to_batch(polled: dict[TopicPartition, list[Any]], polled_at: float) -> WriteBatch | None:
    """The polled records as Arrow IPC with each partition's next offset; None when nothing arrived."""
    parts = [(tp, records) for tp, records in polled.items() if records]
    if not parts:
        return None
    columns = [
        pa.array([tp.topic for tp, records in parts for _ in range(len(records))], pa.string()),
        pa.array([tp.partition for tp, records in parts for _ in range(len(records))], pa.int32()),
        pa.array([offset for _, records in parts for offset in map(_OFFSET, records)], pa.int64()),
        pa.array([ts for _, records in parts for ts in map(_TIMESTAMP, records)], pa.int64()),
        pa.array([value for _, records in parts for value in map(_VALUE, records)], pa.binary()),
    ]
    next_offsets = {(tp.topic, tp.partition): records[-1].offset + 1 for tp, records in parts}
    incoming = pa.Table.from_arrays(columns, schema=INCOMING_SCHEMA)
    return WriteBatch(to_ipc(incoming), next_offsets, polled_at)


_OFFSET = attrgetter("offset")
_TIMESTAMP = attrgetter("timestamp")
_VALUE = attrgetter("value")
