"""Effectively once: an ingest process SIGKILLed at random moments loses and duplicates nothing."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from pathlib import Path

import duckdb
import pytest

from ingest.kafka_clients import ensure_topics, feedback_producer
from ingest.settings import KafkaSettings
from tests.conftest import wait_until
from tests.ingest.kafka_helpers import assignments, ingest_process

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

KILLS = 20
RECORDS = 24_000
BAD_VALUES = [b"\xff\xfe", b"not json", b"[1]", b'{"id": "x"}', b'{"id": 1, "text": "t", "label": "l"}']


def stream(seed: int) -> tuple[list[bytes], int, int]:
    """The records to send, how many distinct valid ids they hold, and how many must be rejected."""
    rng = random.Random(seed)
    values: list[bytes] = []
    valid_ids: set[str] = set()
    rejected = 0
    for index in range(RECORDS):
        draw = rng.random()
        if draw < 0.08:
            values.append(rng.choice(BAD_VALUES))
            rejected += 1
        elif draw < 0.10 and valid_ids:
            repeat = rng.choice(sorted(valid_ids)[-50:])
            values.append(json.dumps({"id": repeat, "text": "a repeat", "label": "dup"}).encode())
            rejected += 1
        else:
            values.append(json.dumps({"id": f"c{index}", "text": f"text {index}", "label": f"l{index % 4}"}).encode())
            valid_ids.add(f"c{index}")
    return values, len(valid_ids), rejected


def produce_slowly(kafka: KafkaSettings, values: list[bytes], chunk: int, pause_s: float) -> None:
    producer = feedback_producer(kafka)
    try:
        for start in range(0, len(values), chunk):
            for value in values[start : start + chunk]:
                producer.send(kafka.topic, value=value)
            producer.flush()
            time.sleep(pause_s)
    finally:
        producer.close()


def test_sigkilled_ingest_stores_every_record_exactly_once(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    values, distinct_valid, expected_rejected = stream(seed=7)
    ensure_topics(kafka_settings, partitions=2)
    # The stream arrives over about two minutes, so the kills land while it flows.
    producer = threading.Thread(target=produce_slowly, args=(kafka_settings, values, 400, 2.0))
    producer.start()
    rng = random.Random(11)
    log = tmp_path / "ingest.log"
    for kill in range(KILLS):
        seen = assignments(log)
        process = ingest_process(kafka_settings, tmp_path / "home", log)
        if kill % 4 == 0:  # sometimes at any moment, also during start-up and the group join
            time.sleep(rng.uniform(0.2, 4.0))
        else:  # mostly while batches are being written
            wait_until(lambda: assignments(log) > seen, 60, "the partitions to be assigned")  # noqa: B023
            time.sleep(rng.uniform(0.0, 1.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
    producer.join()
    final = ingest_process(kafka_settings, tmp_path / "home", log, once=True)
    assert final.wait(timeout=120) == 0

    with duckdb.connect(str(tmp_path / "home" / "driftloop.duckdb"), read_only=True) as con:
        rows, ids = con.execute("SELECT count(*), count(DISTINCT id) FROM feedback").fetchone() or (0, 0)
        rejected = con.execute("SELECT count(*) FROM rejected").fetchone()
        coordinates = con.execute(
            'SELECT count(*), count(DISTINCT (partition, "offset")) FROM '
            '(SELECT partition, "offset" FROM feedback UNION ALL SELECT partition, "offset" FROM rejected)'
        ).fetchone()
        next_offsets = con.execute("SELECT sum(next_offset) FROM kafka_offsets").fetchone()
    assert (rows, ids) == (distinct_valid, distinct_valid)
    assert rejected == (expected_rejected,)
    assert coordinates == (RECORDS, RECORDS)
    assert next_offsets == (RECORDS,)
    resumed_at = {line.partition("resuming at ")[2] for line in log.read_text().splitlines() if "resuming at" in line}
    assert len(resumed_at) >= KILLS // 2, "the kills should interrupt a flowing stream, not an idle consumer"
