"""Producing feedback records: single corrections and JSON-lines files, checked before they are sent."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from ingest.errors import BadFeedback
from ingest.records import check_values
from ingest.settings import IngestSettings, KafkaSettings

log = logging.getLogger(__name__)
CHUNK_LINES = 10_000


@dataclass
class LoadReport:
    sent: int = 0
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def encode_record(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def content_id(record: dict[str, Any]) -> str:
    """An id for a record sent without one, from what it says: a retried request gets the same id, so the
    store keeps one record (the first) however often it is sent."""
    said = [record.get(field) for field in ("text", "label", "prediction", "model_version")]
    return "auto-" + hashlib.sha256(json.dumps(said, ensure_ascii=False).encode()).hexdigest()[:32]


def feedback_record(
    label: str,
    text: str | None = None,
    prediction_id: str | None = None,
    kind: str | None = None,
    record_id: str | None = None,
    prediction: str | None = None,
    model_version: str | None = None,
    meta: object = None,
) -> dict[str, Any]:
    """A feedback record from its fields, those left out absent. Without an id, one by prediction id gets
    `prediction_id:kind` from the check and one with a text an id from what it says (see `content_id`)."""
    fields = {"text": text, "label": label, "prediction_id": prediction_id, "kind": kind, "prediction": prediction,
              "model_version": model_version, "meta": meta}  # fmt: skip
    record = {key: value for key, value in fields.items() if value is not None}
    if record_id is None and prediction_id is None:
        record_id = content_id(record)
    return record if record_id is None else {"id": record_id, **record}


def checked_record(record: dict[str, Any], ingest: IngestSettings) -> tuple[str, bytes]:
    """The record's id and its Kafka value, after the check the consumer applies; BadFeedback names the problem."""
    value = encode_record(record)
    (checked,) = check_values([value], ingest)
    if checked.reason is not None:
        raise BadFeedback(checked.reason)
    return str(checked.id), value


def send_value(producer: KafkaProducer, kafka: KafkaSettings, key: str, value: bytes) -> None:
    """Send one checked value keyed by its id, waiting for the broker's acknowledgement."""
    producer.send(kafka.topic, key=key.encode(), value=value).get(timeout=kafka.request_timeout_ms / 1000)


def send_batch(producer: KafkaProducer, topic: str, values: Sequence[tuple[str, bytes]], timeout_s: float) -> int:
    """Send values keyed by their ids and wait until each is acknowledged or has failed (within the producer's
    `delivery_timeout_ms`, and at most `timeout_s`); how many the broker acknowledged. Raises the first error when
    none was: a send that cannot start (no metadata within `max_block_ms`) ends the batch."""
    futures: list[Any] = []
    error: Exception | None = None
    try:
        for key, value in values:
            futures.append(producer.send(topic, key=key.encode(), value=value))
    except KafkaError as exc:
        error = exc
    try:
        producer.flush(timeout=timeout_s)
    except KafkaError as exc:
        error = error or exc
    acknowledged = sum(1 for future in futures if future.succeeded())
    if acknowledged == 0 and values:
        failed = next((future.exception for future in futures if future.failed()), None)
        raise error or failed or KafkaTimeoutError(f"no record acknowledged within {timeout_s:.1f} s")
    return acknowledged


def send_one(producer: KafkaProducer, kafka: KafkaSettings, ingest: IngestSettings, record: dict[str, Any]) -> str:
    """Check one record and send it, keyed by its id; the id."""
    key, value = checked_record(record, ingest)
    send_value(producer, kafka, key, value)
    return key


def load_file(
    producer: KafkaProducer,
    kafka: KafkaSettings,
    ingest: IngestSettings,
    path: Path,
    check: bool = True,
    on_progress: Callable[[int], None] = lambda _lines: None,
) -> LoadReport:
    """Send every line of a JSON-lines file; a bad line is reported with its number and not sent.

    With `check=False` lines go out verbatim (for replaying captured traffic or testing the consumer).
    """
    report = LoadReport()
    for numbered in _chunks(path):
        lines = [value for _, value in numbered]
        checked = check_values(lines, ingest) if check else None
        for index, (number, value) in enumerate(numbered):
            verdict = checked[index] if checked is not None else None
            if verdict is not None and verdict.reason is not None:
                report.skipped.append((number, verdict.reason))
                continue
            key = str(verdict.id).encode() if verdict is not None else None
            producer.send(kafka.topic, key=key, value=value)
            report.sent += 1
        on_progress(len(lines))
    producer.flush()
    for line, reason in report.skipped:
        log.warning("%s:%d not sent: %s", path, line, reason)
    return report


def _chunks(path: Path) -> Iterator[list[tuple[int, bytes]]]:
    """Lists of (line number, raw line without its newline); blank lines are dropped."""
    chunk: list[tuple[int, bytes]] = []
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            stripped = line.rstrip(b"\r\n")
            if stripped.strip():
                chunk.append((number, stripped))
            if len(chunk) == CHUNK_LINES:
                yield chunk
                chunk = []
    if chunk:
        yield chunk
