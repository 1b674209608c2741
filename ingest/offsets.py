"""Checking offsets stored in DuckDB against the partitions they point into.

A stored offset beyond the end of its partition means the topic was recreated (or the cluster replaced);
consuming on would silently skip the new records until they pass the old offset. Brokers disagree on
how they report the end (Tansu reports the start of the last record batch), so a stored offset past the
reported end is confirmed by fetching the record just before it: if that record exists, all is well.
"""

from __future__ import annotations

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
    return {tp: offset for tp, offset in past_end.items() if offset > 0 and not _record_exists(kafka, tp, offset - 1)}


def _record_exists(kafka: KafkaSettings, tp: TopicPartition, offset: int) -> bool:
    probe = KafkaConsumer(enable_auto_commit=False, fetch_max_wait_ms=100, **connection_config(kafka))
    try:
        probe.assign([tp])
        probe.seek(tp, offset)
        polled = probe.poll(timeout_ms=PROBE_TIMEOUT_MS, max_records=1)
    finally:
        probe.close()
    found = any(record.offset == offset for records in polled.values() for record in records)
    log.debug("probe of %s at %d: %s", tp, offset, "found" if found else "missing")
    return found
