"""The prediction log: ids from /predict, events published in the background, bounded, counted, flushed at
shutdown; a stub sink at the seam, and one real broker."""

from __future__ import annotations

import gc
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pytest
from kafka.errors import KafkaTimeoutError

from daemon.serving.prediction_log import KafkaPredictionSink, PredictionLog
from ingest.history import read_rows
from ingest.prediction_log import read_predictions
from ingest.predictions import FIELDS, ServedPrediction
from ingest.settings import KafkaSettings
from registry.registry import Registry
from registry.settings import RegistrySettings
from tests.conftest import wait_until
from tests.daemon.serving.test_auth import counted
from tests.daemon.serving.test_service import promote

QUEUE_FULL = 'driftloop_prediction_events_dropped_total{reason="queue_full"}'


class RecordingSink:
    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self.closed = False

    def publish(self, events: Sequence[tuple[str, bytes]]) -> int:
        self.events += events
        return len(events)

    def close(self) -> None:
        self.closed = True

    def ids(self) -> list[str]:
        return [key for key, _ in self.events]


class GatedSink(RecordingSink):
    """Blocks every batch until `gate` opens (Kafka away, and no timeout); `entered` is set once a batch waits."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.entered = threading.Event()

    def publish(self, events: Sequence[tuple[str, bytes]]) -> int:
        self.entered.set()
        self.gate.wait()
        return super().publish(events)


class FailingSink(RecordingSink):
    """Fails its first `failures` batches as kafka-python does when the cluster is unreachable."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def publish(self, events: Sequence[tuple[str, bytes]]) -> int:
        if self.failures:
            self.failures -= 1
            raise KafkaTimeoutError("Failed to update metadata after 5.0 secs.")
        return super().publish(events)


class Counts:
    def __init__(self) -> None:
        self.published = 0
        self.dropped: Counter[str] = Counter()

    def on_published(self, count: int) -> None:
        self.published += count

    def on_dropped(self, reason: str, count: int) -> None:
        self.dropped[reason] += count


def served(index: int) -> ServedPrediction:
    return ServedPrediction(f"p-{index}", f"text {index}", "pos", {"pos": 0.75, "neg": 0.25}, "v1-p1", index)


def started(sink: Any, counts: Counts, **changes: Any) -> PredictionLog:
    settings = RegistrySettings(**{"prediction_log_batch": 1, "prediction_log_timeout_s": 0.5, **changes})
    log = PredictionLog(sink, settings, counts.on_published, counts.on_dropped)
    log.start()
    return log


def test_a_full_queue_drops_and_counts() -> None:
    sink, counts = GatedSink(), Counts()
    log = started(sink, counts, prediction_log_queue=3)
    assert log.append([served(0)]) == 0
    assert sink.entered.wait(5), "the thread did not take the first event"
    assert log.append(served(i) for i in range(1, 6)) == 2  # 3 wait in the queue, 2 find it full
    assert counts.dropped == {"queue_full": 2}
    sink.gate.set()
    log.close()
    assert sink.ids() == ["p-0", "p-1", "p-2", "p-3"]
    assert (counts.published, counts.dropped) == (4, {"queue_full": 2})


def test_a_failing_sink_counts_kafka_unavailable_and_later_events_get_through() -> None:
    sink, counts = FailingSink(failures=2), Counts()
    log = started(sink, counts)
    log.append(served(i) for i in range(3))
    wait_until(lambda: counts.published == 1, 5, "the event after the failures")
    assert counts.dropped == {"kafka_unavailable": 2}
    log.append([served(3)])
    wait_until(lambda: counts.published == 2, 5, "an event appended after the failures")
    log.close()
    assert sink.ids() == ["p-2", "p-3"]
    assert counts.dropped == {"kafka_unavailable": 2}


def test_events_kafka_did_not_acknowledge_count_as_dropped() -> None:
    class HalfSink(RecordingSink):
        def publish(self, events: Sequence[tuple[str, bytes]]) -> int:
            return len(events) // 2

    counts = Counts()
    log = started(HalfSink(), counts, prediction_log_batch=4)
    log.append(served(i) for i in range(4))
    log.close()
    assert (counts.published, counts.dropped) == (2, {"kafka_unavailable": 2})


def test_close_publishes_what_is_queued_then_closes_the_sink() -> None:
    sink, counts = GatedSink(), Counts()
    log = started(sink, counts, prediction_log_batch=3)
    log.append([served(0)])
    assert sink.entered.wait(5)
    log.append(served(i) for i in range(1, 10))  # queued behind the blocked batch
    sink.gate.set()
    log.close()
    assert sink.ids() == [f"p-{i}" for i in range(10)]
    assert sink.closed


def test_close_gives_up_on_a_sink_that_never_answers() -> None:
    sink, counts = GatedSink(), Counts()
    log = started(sink, counts, prediction_log_timeout_s=0.1)
    log.append(served(i) for i in range(3))
    assert sink.entered.wait(5)
    closing = threading.Thread(target=log.close)
    closing.start()
    closing.join(30)
    try:
        assert not closing.is_alive(), "close() waited for a sink that never answers"
        assert not sink.closed, "the sink is left to the stuck thread"
    finally:
        sink.gate.set()


def test_predict_returns_a_fresh_id_per_prediction_and_publishes_it(
    registry: Registry, tiny_models: tuple[Path, ...], serve: Any
) -> None:
    version = promote(registry, tiny_models[0], "r1")
    sink = RecordingSink()
    client = serve(predictions=sink, prediction_log_top_k=1)
    texts = ["w1 w2 w3", "w4  w5", "w1"]
    answers = [client.post("/predict", json={"texts": texts}).json() for _ in range(2)]
    predictions = [prediction for answer in answers for prediction in answer["predictions"]]
    ids = [prediction["prediction_id"] for prediction in predictions]
    assert len(set(ids)) == 6, "every prediction gets its own id, the same text included"
    assert {uuid.UUID(prediction_id).version for prediction_id in ids} == {7}
    assert all(set(prediction) == {"label", "scores", "prediction_id"} for prediction in predictions)

    wait_until(lambda: len(sink.events) == 6, 10, "the six prediction events")
    assert sink.ids() == ids
    events = [json.loads(value) for _, value in sink.events]
    assert [tuple(event) for event in events] == [FIELDS] * 6
    for event, prediction, text in zip(events, predictions, texts * 2, strict=True):
        label = prediction["label"]
        assert (event["prediction_id"], event["text"], event["text_chars"]) == (prediction["prediction_id"], text,
                                                                                 len(text))  # fmt: skip
        assert (event["prediction"], event["model_version"]) == (label, version)
        assert event["confidence"] == pytest.approx(prediction["scores"][label])
        assert event["top"] == {label: pytest.approx(prediction["scores"][label])}
        assert uuid.UUID(event["prediction_id"]).int >> 80 == event["ts"], "the id's time is the event's"
    assert abs(events[0]["ts"] - time.time() * 1000) < 600_000


def test_predict_answers_while_the_prediction_log_is_stuck(
    registry: Registry, tiny_models: tuple[Path, ...], serve: Any
) -> None:
    promote(registry, tiny_models[0], "r1")
    sink = GatedSink()
    try:
        client = serve(predictions=sink, prediction_log_queue=2, prediction_log_batch=1, prediction_log_timeout_s=0.1)
        before = counted(client, QUEUE_FULL)
        assert client.post("/predict", json={"texts": ["w1"]}).status_code == 200
        assert sink.entered.wait(5), "the log's thread did not take the first event"
        answers: list[Any] = []
        posting = threading.Thread(
            target=lambda: answers.extend(client.post("/predict", json={"texts": ["w1 w2", "w3"]}) for _ in range(3))
        )
        posting.start()
        posting.join(60)  # a guard against a hang, not a timing
        assert not posting.is_alive(), "/predict waits for the prediction log"
        assert not sink.gate.is_set(), "the sink is still blocked: /predict answered without it"
        assert [answer.status_code for answer in answers] == [200] * 3
        assert all(len(answer.json()["predictions"]) == 2 for answer in answers)
        assert counted(client, QUEUE_FULL) == before + 4  # the queue holds 2 of the 6
    finally:
        sink.gate.set()


def test_the_log_is_off_when_switched_off(registry: Registry, tiny_models: tuple[Path, ...], serve: Any) -> None:
    promote(registry, tiny_models[0], "r1")
    sink = RecordingSink()
    answer = serve(predictions=sink, prediction_log=False).post("/predict", json={"texts": ["w1"]}).json()
    assert "prediction_id" in answer["predictions"][0]
    serve()  # the first instance shuts down: an open log would publish what it holds now
    assert (sink.events, sink.closed) == ([], False)


def test_an_evaluation_asks_to_be_left_out_of_the_log(
    registry: Registry, tiny_models: tuple[Path, ...], serve: Any
) -> None:
    promote(registry, tiny_models[0], "r1")
    sink = RecordingSink()
    client = serve(predictions=sink)
    evaluated = client.post("/predict", json={"texts": ["w1", "w2"], "log": False}).json()
    served = client.post("/predict", json={"texts": ["w3"]}).json()
    serve()  # the instance shuts down and publishes what its log holds
    assert sink.ids() == [served["predictions"][0]["prediction_id"]]
    assert all("prediction_id" in prediction for prediction in evaluated["predictions"])


# kafka-python 3.0 leaves the sockets of a producer that could not bootstrap to the garbage collector: closed here,
# unwarned, and kept from pytest's records (its own error log, a ResourceWarning's traceback), which would keep them
# open until a later test.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_the_kafka_sink_fails_fast_without_a_broker(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.CRITICAL, logger="kafka")
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    kafka = KafkaSettings(bootstrap=f"127.0.0.1:{port}", request_timeout_ms=1_000, max_poll_interval_ms=1_000)
    counts = Counts()
    log = started(KafkaPredictionSink(kafka, timeout_s=0.5, retry_initial_s=0.1), counts, prediction_log_batch=10)
    log.append(served(i) for i in range(3))
    wait_until(lambda: counts.dropped["kafka_unavailable"] == 3, 30, "the events counted as not taken")
    log.append([served(3)])
    wait_until(lambda: counts.dropped["kafka_unavailable"] == 4, 30, "a later event tried again")
    log.close()
    assert counts.published == 0
    gc.collect()


@pytest.mark.kafka
def test_served_predictions_are_ingested_and_feedback_by_their_id_is_filled_from_them(
    registry: Registry, tiny_models: tuple[Path, ...], serve: Any, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    from daemon.serving.feedback import KafkaFeedbackSink
    from ingest.kafka_clients import ensure_topics
    from tests.ingest.kafka_helpers import cli_environment

    ensure_topics(kafka_settings, 1)
    version = promote(registry, tiny_models[0], "r1")
    client = serve(KafkaFeedbackSink(kafka_settings), KafkaPredictionSink(kafka_settings, timeout_s=5.0))
    answer = client.post("/predict", json={"texts": ["w1 w2", "w3", "w4  w5 w6"]}).json()
    served = answer["predictions"]
    first, second, third = (prediction["prediction_id"] for prediction in served)
    corrected = "neg" if served[0]["label"] == "pos" else "pos"
    for label, fields in ((corrected, {"prediction_id": first}), ("pos", {"prediction_id": second, "kind": "audit"})):
        assert client.post("/feedback", json={"label": label, **fields}).status_code == 200
    unknown = client.post("/feedback", json={"label": "pos", "prediction_id": third, "kind": "opinion"})
    assert unknown.status_code == 400
    assert unknown.json()["error"].startswith("field 'kind' is opinion")

    home = tmp_path / "ingest-home"  # the registry fixture holds the one at home
    env = cli_environment(kafka_settings, home, AUDIT_SAMPLE_RATE="1.0")

    def driftloop(*arguments: str) -> str:
        done = subprocess.run([sys.executable, "-m", "daemon", *arguments], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=120, check=False)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    driftloop("ingest", "--once")
    with duckdb.connect(str(home / "driftloop.duckdb"), read_only=True) as con:
        logged = read_predictions(con).select(["prediction_id", "text", "model_version"]).to_pylist()
        rows = read_rows(con).select(["prediction_id", "text", "label", "prediction", "model_version", "kind"])
    assert [tuple(row.values()) for row in logged] == [
        (first, "w1 w2", version), (second, "w3", version), (third, "w4 w5 w6", version)
    ]  # fmt: skip
    assert [tuple(row.values()) for row in rows.to_pylist()] == [
        (first, "w1 w2", corrected, served[0]["label"], version, "correction"),
        (second, "w3", "pos", served[1]["label"], version, "audit"),
    ]

    assert "wrote 2 predictions to label to audit.jsonl" in driftloop("audit", "export", "--out", "audit.jsonl")
    to_label = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [record["prediction_id"] for record in to_label] == [third, first], "the unaudited ones, newest first"
    (tmp_path / "audit.jsonl").write_text("".join(json.dumps({**record, "label": "neg"}) + "\n" for record in to_label))
    driftloop("feedback", "load", "audit.jsonl")
    driftloop("ingest", "--once")
    stats = driftloop("feedback", "stats")
    assert "stored 4 (3 holdout)" in stats, "audit labels are held out for the gate"
    assert "kinds: audit 3, correction 1" in stats
    assert "wrote 0 predictions" in driftloop("audit", "export", "--out", "audit.jsonl")
