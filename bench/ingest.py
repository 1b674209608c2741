"""Ingest throughput: driftloop's Kafka → DuckDB path against a raw kafka-python consumer, same run, for both
things it ingests: feedback records and the service's prediction events.

Sends N feedback records and N prediction events (real health-news tweets, cycled with unique ids) to a topic
each through a real broker (a local Tansu process, or DRIFTLOOP_KAFKA_BOOTSTRAP), then alternates, `--repeats`
times each and for each topic:
  raw:       a kafka-python consumer with the same fetch settings that only decodes each value's JSON;
  driftloop: the ingest loop: check, clean, deduplicate and store rows + offsets in DuckDB transactions.
Rates count from the first non-empty poll to the last record handled (the group join is excluded from
both). RSS (the ingest process plus its Kafka reader process) is sampled during the driftloop runs:
"flat" means the last quarter is not above the first.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kafka import KafkaConsumer  # noqa: E402

from ingest.broker import LocalBroker  # noqa: E402
from ingest.consumer import FeedbackIngestor  # noqa: E402
from ingest.datasets import health_tweets  # noqa: E402
from ingest.kafka_clients import connection_config, ensure_topics, feedback_producer, fetch_config  # noqa: E402
from ingest.predictions import ServedPrediction, new_prediction_id, prediction_value  # noqa: E402
from ingest.settings import IngestSettings, KafkaSettings  # noqa: E402
from ingest.store import FeedbackStore  # noqa: E402


def rss_mb(broker_pid: int | None) -> float:
    """Resident memory of this process and its children but the broker: the ingest and Kafka reader processes."""
    pids = {os.getpid()} | {
        int(pid) for path in Path("/proc/self/task").glob("*/children") for pid in path.read_text().split()
    }
    total = 0
    for pid in pids - {broker_pid}:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (FileNotFoundError, ProcessLookupError):
            pass  # a process that ended between the listing and the read
    return total * os.sysconf("SC_PAGE_SIZE") / 2**20


def send(kafka: KafkaSettings, count: int) -> None:
    """`count` feedback records to the feedback topic and as many prediction events to the prediction log's."""
    tweets = health_tweets()
    producer = feedback_producer(kafka)
    for index in range(count):
        tweet = tweets[index % len(tweets)]
        record = {"id": f"b{index}", "text": tweet.text, "label": tweet.label, "prediction": tweet.label}
        producer.send(kafka.topic, key=record["id"].encode(), value=json.dumps(record).encode())
        served = ServedPrediction(new_prediction_id(), tweet.text, tweet.label, {tweet.label: 0.8, "other": 0.2},
                                  "v1-p1", int(time.time() * 1000))  # fmt: skip
        producer.send(kafka.predictions_topic, key=served.prediction_id.encode(), value=prediction_value(served, 5))
    producer.flush()
    producer.close()


def only(kafka: KafkaSettings, topic: str) -> KafkaSettings:
    """Settings whose ingest reads `topic` alone (the other of the pair is a topic nothing was sent to)."""
    empty = f"{topic}-empty"
    if topic == kafka.topic:
        return kafka.model_copy(update={"predictions_topic": empty})
    return kafka.model_copy(update={"topic": empty})


def raw_rate(kafka: KafkaSettings, ingest: IngestSettings, count: int, topic: str) -> float:
    """kafka-python alone: poll `topic` with the ingest consumer's settings and decode every value's JSON."""
    consumer = KafkaConsumer(
        topic,
        group_id=f"raw-{uuid.uuid4().hex[:8]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=kafka.session_timeout_ms,
        max_poll_interval_ms=kafka.max_poll_interval_ms,
        **fetch_config(ingest),
        **connection_config(kafka),
    )
    decoded = 0
    first = 0.0
    while decoded < count:
        polled = consumer.poll(timeout_ms=500, max_records=ingest.batch_max_records)
        if polled and not first:
            first = time.monotonic()
        for records in polled.values():
            for record in records:
                json.loads(record.value)
                decoded += 1
    elapsed = time.monotonic() - first
    consumer.close(autocommit=False)
    return decoded / elapsed


def driftloop_rate(
    kafka: KafkaSettings, ingest: IngestSettings, count: int, rss: list[float], broker_pid: int | None
) -> float:
    group = kafka.model_copy(update={"group_id": f"ingest-{uuid.uuid4().hex[:8]}"})
    stop = threading.Event()
    path = Path(tempfile.mkdtemp()) / "bench.duckdb"
    with FeedbackStore(path, ingest, group.predictions_topic) as store:
        ingestor = FeedbackIngestor(group, ingest, store, stop)

        def sample() -> None:
            while not stop.wait(0.05):
                if ingestor.progress.stored or ingestor.progress.predictions:
                    rss.append(rss_mb(broker_pid))
                if ingestor.progress.handled >= count:
                    stop.set()

        sampler = threading.Thread(target=sample)
        sampler.start()
        progress = ingestor.run()
        sampler.join()
    shutil.rmtree(path.parent)
    assert progress.stored + progress.predictions == count, (
        f"stored {progress.stored + progress.predictions} of {count}"
    )
    return progress.records_per_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=2)
    args = parser.parse_args()
    external = os.environ.get("DRIFTLOOP_KAFKA_BOOTSTRAP")
    broker = None if external else LocalBroker().start()
    try:
        bootstrap = broker.bootstrap if broker is not None else str(external)
        broker_pid = broker.process.pid if broker is not None and broker.process is not None else None
        name = f"bench-{uuid.uuid4().hex[:8]}"
        kafka = KafkaSettings(bootstrap=bootstrap, topic=name, predictions_topic=f"{name}-predictions")
        ingest = IngestSettings()
        ensure_topics(kafka, args.partitions)
        for topic in (kafka.topic, kafka.predictions_topic):
            ensure_topics(only(kafka, topic), args.partitions)  # the empty partner topic of each run
        started = time.monotonic()
        send(kafka, args.records)
        print(f"sent {args.records} records and {args.records} events in {time.monotonic() - started:.1f} s")
        raw: dict[str, list[float]] = {"feedback": [], "predictions": []}
        ours: dict[str, list[float]] = {"feedback": [], "predictions": []}
        rss: list[float] = []
        for repeat in range(args.repeats):
            for path, topic in (("feedback", kafka.topic), ("predictions", kafka.predictions_topic)):
                raw[path].append(raw_rate(kafka, ingest, args.records, topic))
                ours[path].append(driftloop_rate(only(kafka, topic), ingest, args.records, rss, broker_pid))
                print(f"repeat {repeat + 1} {path}: raw {raw[path][-1]:,.0f}/s  driftloop {ours[path][-1]:,.0f}/s",
                      flush=True)  # fmt: skip
    finally:
        if broker is not None:
            broker.stop()
    quarter = max(len(rss) // 4, 1)
    median = {path: (statistics.median(raw[path]), statistics.median(ours[path])) for path in raw}
    result = {
        "records": args.records,
        "raw_per_s": round(median["feedback"][0]),
        "ingest_per_s": round(median["feedback"][1]),
        "ratio": round(median["feedback"][1] / median["feedback"][0], 3),
        "predictions_raw_per_s": round(median["predictions"][0]),
        "predictions_ingest_per_s": round(median["predictions"][1]),
        "predictions_ratio": round(median["predictions"][1] / median["predictions"][0], 3),
        "predictions_vs_feedback": round(median["predictions"][1] / median["feedback"][1], 3),
        "peak_rss_mb": round(max(rss), 1),
        "rss_first_quarter_mb": round(statistics.median(rss[:quarter]), 1),
        "rss_last_quarter_mb": round(statistics.median(rss[-quarter:]), 1),
    }
    for path in raw:
        prefix = "" if path == "feedback" else "predictions_"
        print(f"driftloop ingest of {path} {result[prefix + 'ingest_per_s']:,}/s vs raw kafka-python "
              f"{result[prefix + 'raw_per_s']:,}/s: ratio {result[prefix + 'ratio']} (target >= 0.8)")  # fmt: skip
    print(f"prediction events at {result['predictions_vs_feedback']} of the feedback path's speed; "
          f"peak RSS {result['peak_rss_mb']} MB")  # fmt: skip
    print(json.dumps(result))


if __name__ == "__main__":
    main()
