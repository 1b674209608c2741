"""Checking offsets stored in DuckDB against the partitions they point into.

A stored offset beyond the end of its partition means the topic was recreated (or the cluster replaced);
consuming on would silently skip the new records until they pass the old offset. Brokers disagree on
how they report the end (Tansu reports the start of the last record batch), so a stored offset past the
reported end is confirmed by fetching the record just before it: if that record exists, all is well.

A topic recreated with at least as many records as the stored offset is not past its end: it is told by
the record just before the stored offset, whose value no longer has the hash the store kept for it. A
stored offset below the partition's start means retention deleted records before they were read.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping

from kafka import KafkaConsumer, TopicPartition

from ingest.kafka_clients import connection_config
from ingest.settings import KafkaSettings

log = logging.getLogger(__name__)
PROBE_TIMEOUT_MS = 2_000


def stale_offsets(
    kafka: KafkaSettings, consumer: KafkaConsumer, stored: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The stored offsets that lie beyond the end of their partition."""
    if not stored:
        return {}
    ends: dict[TopicPartition, int] = consumer.end_offsets(list(stored))
    past_end = {tp: offset for tp, offset in stored.items() if offset > ends.get(tp, 0)}
    return {tp: offset for tp, offset in past_end.items() if offset > 0 and record_value(kafka, tp, offset - 1) is None}


def deleted_offsets(consumer: KafkaConsumer, stored: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
    """The stored offsets below the start of their partition (retention deleted records never read)."""
    if not stored:
        return {}
    starts: dict[TopicPartition, int] = consumer.beginning_offsets(list(stored))
    return {tp: offset for tp, offset in stored.items() if offset < starts.get(tp, 0)}


def replaced_offsets(
    kafka: KafkaSettings, stored: Mapping[TopicPartition, tuple[int, str]]
) -> dict[TopicPartition, int]:
    """The stored offsets (with the md5 of the record before each) whose record before is not the one stored."""
    replaced = {}
    for tp, (offset, md5) in stored.items():
        value = record_value(kafka, tp, offset - 1)
        if value is not None and hashlib.md5(value).hexdigest() != md5:
            replaced[tp] = offset
    return replaced


def record_value(kafka: KafkaSettings, tp: TopicPartition, offset: int) -> bytes | None:
    """The raw value of the record at `offset`, or None when the partition has no such record."""
    probe = KafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=100, **connection_config(kafka))
    try:
        probe.assign([tp])
        probe.seek(tp, offset)
        polled = probe.poll(timeout_ms=PROBE_TIMEOUT_MS, max_records=1)
    finally:
        probe.close()
    found = [record.value or b"" for records in polled.values() for record in records if record.offset == offset]
    log.debug("probe of %s at %d: %s", tp, offset, "found" if found else "missing")
    return found[0] if found else None
