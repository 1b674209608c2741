"""The service's prediction log: every served prediction, published to `kafka.predictions_topic` in the background.

/predict only puts events in a bounded queue and never waits: when the queue is full the event is dropped and
counted (`queue_full`). One daemon thread drains the queue in batches into the sink (Kafka, keyed by prediction id);
a batch Kafka does not take within its bound is dropped and counted (`kafka_unavailable`), and the thread goes on
with the next. At shutdown the queue is published for at most `registry.prediction_log_timeout_s`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING

from kafka import KafkaProducer
from kafka.errors import KafkaError

from ingest.errors import BrokerUnavailable
from ingest.kafka_clients import prediction_producer
from ingest.predictions import ServedPrediction, prediction_value
from ingest.producer import send_batch
from ingest.settings import KafkaSettings
from registry.settings import RegistrySettings

if TYPE_CHECKING:  # config builds the Kafka sink from this module
    from daemon.serving.config import PredictionSink

log = logging.getLogger(__name__)
IDLE_WAIT_S = 0.1  # how long the thread waits for a first event before it looks at the stop flag again
FULL_WARNING_EVERY_S = 60.0


class KafkaPredictionSink:
    """The predictions topic, through a producer of its own that fails fast (/feedback's waits for the cluster).
    After a failed connection it tries again only after a wait that doubles up to `retry_max_s`; until then a
    batch fails at once."""

    def __init__(
        self, kafka: KafkaSettings, timeout_s: float, retry_initial_s: float = 0.5, retry_max_s: float = 30.0
    ) -> None:
        self.kafka = kafka
        self.timeout_ms = max(int(timeout_s * 1000), 1)
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._producer: KafkaProducer | None = None
        self._retry_wait_s = retry_initial_s
        self._retry_at = 0.0

    def publish(self, events: Sequence[tuple[str, bytes]]) -> int:
        producer = self._producer or self._connect()  # only the log's thread calls this
        delivery_s = max(self.timeout_ms, self.kafka.request_timeout_ms) / 1000 + 1.0
        return send_batch(producer, self.kafka.predictions_topic, events, delivery_s)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=self.timeout_ms / 1000)

    def _connect(self) -> KafkaProducer:
        if time.monotonic() < self._retry_at:
            raise BrokerUnavailable(f"Kafka at {self.kafka.bootstrap} did not answer; next attempt in "
                                    f"{self._retry_at - time.monotonic():.1f} s")  # fmt: skip
        try:
            self._producer = prediction_producer(self.kafka, self.timeout_ms)
        except KafkaError:
            self._retry_at = time.monotonic() + self._retry_wait_s
            self._retry_wait_s = min(self._retry_wait_s * 2, self.retry_max_s)
            raise
        self._retry_wait_s = self.retry_initial_s
        return self._producer


class PredictionLog:
    """A bounded queue of served predictions and the thread that publishes them; `start` it, `close` it at
    shutdown. `on_published(n)` and `on_dropped(reason, n)` count what became of the events."""

    def __init__(
        self,
        sink: PredictionSink,
        settings: RegistrySettings,
        on_published: Callable[[int], None],
        on_dropped: Callable[[str, int], None],
    ) -> None:
        self.sink = sink
        self.top_k = settings.prediction_log_top_k
        self.batch = settings.prediction_log_batch
        self.timeout_s = settings.prediction_log_timeout_s
        self.on_published = on_published
        self.on_dropped = on_dropped
        self._queue: queue.Queue[ServedPrediction] = queue.Queue(settings.prediction_log_queue)
        self._stop = threading.Event()
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="driftloop-prediction-log", daemon=True)
        self._failing = False
        self._warned_full_at = -FULL_WARNING_EVERY_S

    def start(self) -> None:
        self._thread.start()

    def append(self, predictions: Iterable[ServedPrediction]) -> int:
        """Queue the events without waiting; how many were dropped because the queue was full."""
        dropped = 0
        for prediction in predictions:
            try:
                self._queue.put_nowait(prediction)
            except queue.Full:
                dropped += 1
        if dropped:
            self.on_dropped("queue_full", dropped)
            now = time.monotonic()
            if now - self._warned_full_at >= FULL_WARNING_EVERY_S:
                self._warned_full_at = now
                log.warning("prediction log: the queue is full (%d events); dropping new prediction events until "
                            "Kafka takes them", self._queue.maxsize)  # fmt: skip
        return dropped

    def close(self) -> None:
        """Publish what is queued for at most `timeout_s`, then stop; what is left is lost, with a warning."""
        self._deadline = time.monotonic() + self.timeout_s
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(self.timeout_s)
        if self._thread.is_alive() or not self._queue.empty():
            log.warning("prediction log: %d prediction events not published at shutdown (Kafka did not take them "
                        "within %.1f s)", self._queue.qsize(), self.timeout_s)  # fmt: skip
        if not self._thread.is_alive():
            self.sink.close()

    def _run(self) -> None:
        while not (self._stop.is_set() and time.monotonic() > self._deadline):
            batch = self._take()
            if batch:
                self._publish(batch)
            elif self._stop.is_set():
                return

    def _take(self) -> list[ServedPrediction]:
        try:
            batch = [self._queue.get(timeout=IDLE_WAIT_S)]
        except queue.Empty:
            return []
        while len(batch) < self.batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _publish(self, batch: list[ServedPrediction]) -> None:
        try:
            events = [(prediction.prediction_id, prediction_value(prediction, self.top_k)) for prediction in batch]
        except Exception:  # a value that cannot be encoded must not stop the log
            log.exception("prediction log: %d prediction events could not be encoded", len(batch))
            self.on_dropped("error", len(batch))
            return
        try:
            published, problem = self.sink.publish(events), ""
        except Exception as exc:  # the thread outlives any failure of Kafka or its client
            published, problem = 0, f"{type(exc).__name__}: {exc}"
        if published:
            self.on_published(published)
        lost = len(events) - published
        if lost:
            self.on_dropped("kafka_unavailable", lost)
            if not self._failing:
                log.warning("prediction log: Kafka did not take %d of %d prediction events%s; dropping events until "
                            "it does", lost, len(events), f" ({problem})" if problem else "")  # fmt: skip
            self._failing = True
        elif self._failing:
            log.info("prediction log: Kafka takes prediction events again")
            self._failing = False
