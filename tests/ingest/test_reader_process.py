"""The Kafka reader process and the process that owns the store: when one dies, the other does not linger."""

from __future__ import annotations

import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from ingest.errors import IngestError, OffsetOutOfRange, ReaderLost
from ingest.reader import sendable_error
from ingest.settings import IngestSettings, KafkaSettings
from tests.conftest import wait_until
from tests.ingest.kafka_helpers import (
    assignments,
    good,
    ingest_in_thread,
    ingest_process,
    produce,
    running,
    spawned_children,
)


@pytest.mark.kafka
def test_a_killed_reader_stops_ingest_with_an_error_that_says_so(
    kafka_settings: KafkaSettings, ingest_settings: IngestSettings, store_path: Path
) -> None:
    produce(kafka_settings, [good(0)])
    with ingest_in_thread(kafka_settings, ingest_settings, store_path) as ingest:
        wait_until(lambda: ingest.count() == 1, 60, "the first record")
        (reader,) = [process for process in multiprocessing.active_children() if process.name == "kafka-reader"]
        assert reader.pid is not None
        os.kill(reader.pid, signal.SIGKILL)
        ingest.thread.join(timeout=30)
        assert not ingest.thread.is_alive()
    (error,) = ingest.errors
    assert isinstance(error, ReaderLost)
    assert "the Kafka reader process ended without a word (exit code -9)" in str(error)


@pytest.mark.kafka
def test_the_reader_of_a_killed_ingest_process_exits(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    produce(kafka_settings, [good(i) for i in range(10)])
    log = tmp_path / "ingest.log"
    process = ingest_process(kafka_settings, tmp_path / "home", log)
    try:
        wait_until(lambda: assignments(log) > 0, 60, "the partitions to be assigned")
        (reader,) = spawned_children(process.pid)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    wait_until(lambda: not running(reader), 10, "the orphaned reader to exit")


class NeedsTwo(Exception):
    def __init__(self, first: int, second: int) -> None:
        super().__init__(f"{first} and {second}")


def test_an_error_that_cannot_cross_to_the_store_process_is_named_in_an_ingest_error() -> None:
    stale = OffsetOutOfRange("the offset 9 lies outside the partition")
    assert sendable_error(stale) is stale
    replaced = sendable_error(NeedsTwo(1, 2))
    assert isinstance(replaced, IngestError)
    assert str(replaced) == "the Kafka reader failed: NeedsTwo('1 and 2')"
