"""Producing raw values and running the ingestor in a thread or as a `driftloop ingest` process, for the Kafka tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ingest.consumer import FeedbackIngestor, IngestProgress
from ingest.kafka_clients import ensure_topics, feedback_producer
from ingest.settings import IngestSettings, KafkaSettings
from ingest.store import FeedbackStore


def good(index: int, prefix: str = "r") -> bytes:
    return json.dumps({"id": f"{prefix}{index}", "text": f"feedback number {index}", "label": f"l{index % 3}"}).encode()


def produce(kafka: KafkaSettings, raw: list[bytes], partitions: int = 2) -> None:
    ensure_topics(kafka, partitions)
    producer = feedback_producer(kafka)
    try:
        for value in raw:
            producer.send(kafka.topic, value=value)
        producer.flush()
    finally:
        producer.close()


@dataclass
class RunningIngestor:
    store: FeedbackStore
    stop: threading.Event
    thread: threading.Thread
    errors: list[BaseException] = field(default_factory=list)
    progress: list[IngestProgress] = field(default_factory=list)

    def count(self, table: str = "feedback") -> int:
        row = self.store.con.cursor().execute(f"SELECT count(*) FROM {table}").fetchone()
        return int(row[0]) if row else 0


@contextmanager
def ingest_in_thread(kafka: KafkaSettings, ingest: IngestSettings, store_path: Path) -> Iterator[RunningIngestor]:
    """The ingestor running until the block ends; the block sees its store through its own cursor."""
    store = FeedbackStore(store_path, ingest)
    stop = threading.Event()
    running = RunningIngestor(store, stop, threading.Thread(target=lambda: None))

    def target() -> None:
        try:
            running.progress.append(FeedbackIngestor(kafka, ingest, store, stop).run())
        except BaseException as exc:  # surfaced by the test through running.errors
            running.errors.append(exc)

    running.thread = threading.Thread(target=target, name="ingestor")
    running.thread.start()
    try:
        yield running
    finally:
        stop.set()
        running.thread.join(timeout=30)
        store.close()


def cli_environment(kafka: KafkaSettings, home: Path, **settings: str) -> dict[str, str]:
    """The environment of a `driftloop` process on `home` and `kafka`'s topic and group; `settings` as
    `INGEST_BATCH_MAX_RECORDS="300"` become `DRIFTLOOP_...` variables."""
    return {
        **os.environ,
        "DRIFTLOOP_HOME": str(home),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": kafka.bootstrap,
        "DRIFTLOOP_KAFKA_TOPIC": kafka.topic,
        "DRIFTLOOP_KAFKA_PREDICTIONS_TOPIC": kafka.predictions_topic,
        "DRIFTLOOP_DRIFT_STREAM": "feedback",  # these tests send feedback, no served traffic (unless they set it)
        "DRIFTLOOP_KAFKA_GROUP_ID": kafka.group_id,
        **{f"DRIFTLOOP_{key}": value for key, value in settings.items()},
    }


def ingest_process(kafka: KafkaSettings, home: Path, log: Path, once: bool = False) -> subprocess.Popen[bytes]:
    env = cli_environment(kafka, home, INGEST_BATCH_MAX_RECORDS="300", INGEST_IDLE_EXIT_S="3")
    command = [sys.executable, "-m", "daemon", "ingest", *(["--once"] if once else [])]
    with open(log, "ab") as output:
        return subprocess.Popen(command, env=env, stdout=output, stderr=output)


def assignments(log: Path) -> int:
    return log.read_text(errors="replace").count("assigned partitions") if log.exists() else 0


def running(pid: int) -> bool:
    """True while the process exists and is not a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def spawned_children(pid: int) -> set[int]:
    """Children started by multiprocessing's spawn (the reader), not its resource tracker."""
    found = {int(child) for path in Path(f"/proc/{pid}/task").glob("*/children") for child in path.read_text().split()}
    return {child for child in found if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()}
