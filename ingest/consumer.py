"""The ingest loop: Kafka → checked rows + next offsets in one DuckDB transaction → commit to Kafka.

The process that owns the store starts a Kafka reader process (reader.py) and writes the batches it sends,
answering each with the result; the reader commits to Kafka only what the store confirmed, and seeks to
the stored offsets on every assignment. Two processes, so that polling and writing overlap (link.py).
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ingest.errors import ReaderLost
from ingest.link import AskOffsets, Failed, Finished, Lag, Stop, WriteBatch, from_ipc
from ingest.reader import read_kafka
from ingest.settings import IngestSettings, KafkaSettings
from ingest.store import BatchResult, FeedbackStore

log = logging.getLogger(__name__)

# A fresh interpreter for the reader: forking beside the daemon's threads can copy a lock held by one.
PROCESSES = multiprocessing.get_context("spawn")
STOP_CHECK_S = 0.1  # how often the loop looks at `stop` while the reader is quiet
READER_EXIT_S = 30.0  # how long the reader may take to close its Kafka client once told to stop


@dataclass
class IngestProgress:
    """Running totals of one ingest session."""

    stored: int = 0
    rejected: int = 0
    batches: int = 0
    first_polled: float | None = None  # when the first non-empty poll returned
    last_written: float | None = None  # when the newest batch was committed to DuckDB
    lag: dict[str, dict[int, int]] = field(default_factory=dict)  # per topic and partition: records not yet stored
    predictions: int = 0  # prediction events stored

    def add(self, result: BatchResult) -> None:
        self.stored += result.stored
        self.predictions += result.predictions
        self.rejected += result.rejected
        self.batches += 1
        self.last_written = time.monotonic()

    @property
    def records_per_s(self) -> float:
        """Records (feedback and prediction events) stored or rejected per second of streaming (group join and idle
        time excluded)."""
        if self.first_polled is None or self.last_written is None or self.last_written <= self.first_polled:
            return 0.0
        return self.handled / (self.last_written - self.first_polled)

    @property
    def handled(self) -> int:
        return self.stored + self.predictions + self.rejected


class FeedbackIngestor:
    """Consumes the feedback topic into the store until `stop` is set (or, with `once`, until idle).

    The reader is a spawned process, so a script that runs this needs `if __name__ == "__main__":`.
    """

    def __init__(
        self, kafka: KafkaSettings, ingest: IngestSettings, store: FeedbackStore, stop: threading.Event
    ) -> None:
        self.kafka = kafka
        self.ingest = ingest
        self.store = store
        self.stop = stop
        self.progress = IngestProgress()

    def run(self, once: bool = False) -> IngestProgress:
        """Write what the reader process sends until it finishes; an error that stopped it is raised here."""
        here, there = PROCESSES.Pipe()
        levels = {name: logging.getLogger(name).getEffectiveLevel() for name in ("ingest", "kafka")}
        reader = PROCESSES.Process(
            target=read_kafka, args=(there, self.kafka, self.ingest, once, levels), name="kafka-reader", daemon=True
        )
        reader.start()
        there.close()
        try:
            self._serve(here, reader)
        finally:
            here.close()  # a reader still running sees the pipe close and stops
            reader.join(READER_EXIT_S)
            if reader.is_alive():
                log.warning("the Kafka reader did not stop within %.0f s; killing it", READER_EXIT_S)
                reader.kill()
                reader.join()
            log.info(
                "ingest stopped: %d stored, %d rejected in %d batches",
                self.progress.stored,
                self.progress.rejected,
                self.progress.batches,
            )
        return self.progress

    def _serve(self, link: Connection, reader: BaseProcess) -> None:
        asked_to_stop = False
        while True:
            try:
                if self.stop.is_set() and not asked_to_stop:
                    link.send(Stop())
                    asked_to_stop = True
                message = link.recv() if link.poll(STOP_CHECK_S) else None
                if isinstance(message, Failed | Finished):
                    break
                if message is not None:
                    self._answer(link, message)
            except (EOFError, BrokenPipeError, ConnectionResetError):
                reader.join(READER_EXIT_S)
                raise ReaderLost(
                    f"the Kafka reader process ended without a word (exit code {reader.exitcode}); "
                    "the store holds everything up to its last confirmed batch, so a restart resumes there"
                ) from None
        if isinstance(message, Failed):
            raise message.error

    def _answer(self, link: Connection, message: object) -> None:
        match message:
            case WriteBatch(incoming=incoming, next_offsets=next_offsets, polled_at=polled_at):
                if self.progress.first_polled is None:
                    self.progress.first_polled = polled_at
                result = self.store.write_batch(from_ipc(incoming), next_offsets)
                self.progress.add(result)
                log.debug("stored %d, rejected %d", result.stored, result.rejected)
                link.send(result)
            case AskOffsets(topic=topic):
                link.send(self.store.stored_positions(topic))
            case Lag(partitions=partitions):
                self.progress.lag = partitions
            case logging.LogRecord():
                logging.getLogger(message.name).handle(message)
            case _:
                raise AssertionError(f"unexpected message from the Kafka reader: {message!r}")
