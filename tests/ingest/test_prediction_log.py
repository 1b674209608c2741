"""The prediction log in the store: events checked and kept, feedback by prediction id filled from them, early
feedback waiting for its prediction (or rejected with a reason), and retention."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from ingest import history
from ingest.prediction_log import ServedAccuracy, audit_sample, forget_old_predictions, served_accuracy
from ingest.predictions import ServedPrediction, logged_answer, prediction_value
from ingest.records import incoming_table
from ingest.settings import IngestSettings
from ingest.store import BatchResult, FeedbackStore
from ingest.summary import recent_rejections, store_summary

LOG, FEEDBACK = "predictions", "feedback"
NOW_MS = int(time.time() * 1000)


def event(prediction_id: str, text: str = "the cat sat", label: str = "pets", ts_ms: int = NOW_MS) -> bytes:
    scores = {label: 0.7, "news" if label != "news" else "pets": 0.3}
    return prediction_value(ServedPrediction(prediction_id, text, label, scores, "v1-p1", ts_ms), top_k=5)


def feedback(ts_ms: int = NOW_MS, **fields: Any) -> bytes:
    return json.dumps({"ts": ts_ms, **fields}).encode()


class Stream:
    """Batches of records on the two topics, each record at the next offset of its topic."""

    def __init__(self, store: FeedbackStore) -> None:
        self.store = store
        self.next = {LOG: 0, FEEDBACK: 0}

    def write(self, *records: tuple[str, bytes]) -> BatchResult:
        tables = []
        for topic, raw in records:
            tables.append(incoming_table([raw], topic, [0], [self.next[topic]], [NOW_MS]))
            self.next[topic] += 1
        offsets = {(topic, 0): offset for topic, offset in self.next.items()}
        return self.store.write_batch(pa.concat_tables(tables), offsets)


@pytest.fixture
def store(store_path: Path) -> FeedbackStore:
    return FeedbackStore(store_path, IngestSettings(unmatched_feedback_s=600), predictions_topic=LOG)


@pytest.fixture
def stream(store: FeedbackStore) -> Stream:
    return Stream(store)


def rows(store: FeedbackStore) -> list[tuple[Any, ...]]:
    return store.con.execute(
        "SELECT id, text, label, prediction, model_version, kind, confidence, prediction_id FROM feedback "
        "ORDER BY row_id"
    ).fetchall()


def test_events_are_kept_once_and_bad_ones_rejected_with_the_reason(store: FeedbackStore, stream: Stream) -> None:
    out_of_range = json.dumps(
        {"prediction_id": "p9", "text": "t", "prediction": "a", "confidence": 1.5, "model_version": "v", "ts": NOW_MS}
    ).encode()
    result = stream.write((LOG, event("p1", " the  cat sat ")), (LOG, event("p1")), (LOG, out_of_range), (LOG, b"{"))
    assert (result.predictions, result.stored, result.rejected) == (1, 0, 3)
    kept = store.con.execute("SELECT prediction_id, text, text_chars, prediction, confidence FROM predictions")
    assert kept.fetchall() == [("p1", "the cat sat", 11, "pets", 0.7)]
    assert sorted(r.reason for r in recent_rejections(store.con, 10)) == [
        "duplicate prediction_id p1; the first event with this id is kept",
        "field 'confidence' is 1.5, not a probability between 0 and 1",
        "not JSON: {",
    ]
    assert store.stored_offsets(LOG) == {0: 4}


def test_a_backlog_from_several_partitions_is_numbered_in_the_order_it_was_served(store: FeedbackStore) -> None:
    served = [(f"p{i}", NOW_MS + i) for i in range(6)]
    by_partition = {0: served[0::2], 1: served[1::2]}  # one batch returns partition 0's events, then partition 1's
    raws, partitions, offsets = [], [], []
    for partition, events in by_partition.items():
        for offset, (prediction_id, ts_ms) in enumerate(events):
            raws.append(event(prediction_id, ts_ms=ts_ms))
            partitions.append(partition)
            offsets.append(offset)
    store.write_batch(incoming_table(raws, LOG, partitions, offsets, [NOW_MS] * 6), {(LOG, 0): 3, (LOG, 1): 3})
    numbered = store.con.execute("SELECT prediction_id FROM predictions ORDER BY row_id").fetchall()
    assert [prediction_id for (prediction_id,) in numbered] == [prediction_id for prediction_id, _ in served]


def test_feedback_by_prediction_id_takes_what_the_log_holds(store: FeedbackStore, stream: Stream) -> None:
    stream.write((LOG, event("p1")), (LOG, event("p2", "stocks fall", "news")), (LOG, event("p3")))
    result = stream.write(
        (FEEDBACK, feedback(prediction_id="p1", label="news")),
        (FEEDBACK, feedback(prediction_id="p2", label="news")),
        (FEEDBACK, feedback(prediction_id="p3", label="pets", kind="audit")),
        (FEEDBACK, feedback(id="full", text="a text", label="news", prediction="pets")),
    )
    assert (result.stored, result.rejected, result.waiting) == (4, 0, 0)
    assert rows(store) == [
        ("p1:feedback", "the cat sat", "news", "pets", "v1-p1", "correction", 0.7, "p1"),
        ("p2:feedback", "stocks fall", "news", "news", "v1-p1", "confirmation", 0.7, "p2"),
        ("p3:audit", "the cat sat", "pets", "pets", "v1-p1", "audit", 0.7, "p3"),
        ("full", "a text", "news", "pets", None, "label", None, None),
    ]
    assert store_summary(store.con, FEEDBACK, LOG).kinds == {"audit": 1, "confirmation": 1, "correction": 1, "label": 1}
    trained = [(row.kind, row.prediction) for row in history.training_rows(store.con, history.UNBOUNDED)]
    assert trained == [("correction", "pets"), ("confirmation", "news"), ("audit", "pets"), ("label", "pets")]


def test_a_generated_answer_is_kept_without_confidence_and_corrected_by_its_id(store_path: Path) -> None:
    answer = logged_answer("kettle\n" * 500, max_chars=2_000)  # 3,500 characters, one word a line
    served = ServedPrediction("a1", "Define the noun: kettle", answer, {}, "v2-p2", NOW_MS)
    with FeedbackStore(store_path, IngestSettings(max_label_chars=2_000), predictions_topic=LOG) as store:
        stream = Stream(store)
        assert stream.write((LOG, prediction_value(served, top_k=5))).predictions == 1
        kept = store.con.execute("SELECT prediction, confidence, top FROM predictions").fetchall()
        assert kept == [(answer, None, "{}")]
        assert (len(answer), "\n" in answer) == (2_000, False)
        corrected = "a metal pot with a lid and a spout"
        assert stream.write((FEEDBACK, feedback(prediction_id="a1", label=corrected))).stored == 1
        assert rows(store) == [("a1:feedback", served.text, corrected, answer, "v2-p2", "correction", None, "a1")]


def test_audits_are_held_out_and_what_users_chose_to_send_is_trained_on(store: FeedbackStore, stream: Stream) -> None:
    stream.write(*((LOG, event(f"p{i}")) for i in range(300)))
    kinds = ("audit", "correction", "confirmation")
    stream.write(*((FEEDBACK, feedback(prediction_id=f"p{i}", label="pets", kind=kinds[i % 3])) for i in range(300)))
    splits = store.con.execute("SELECT kind, list(DISTINCT split) FROM feedback GROUP BY kind ORDER BY kind")
    assert splits.fetchall() == [("audit", ["holdout"]), ("confirmation", ["train"]), ("correction", ["train"])]


def test_a_prediction_and_its_feedback_in_one_batch_are_joined(store: FeedbackStore, stream: Stream) -> None:
    result = stream.write((FEEDBACK, feedback(prediction_id="p1", label="news")), (LOG, event("p1")))
    assert (result.predictions, result.stored, result.waiting) == (1, 1, 0)
    assert rows(store)[0][:4] == ("p1:feedback", "the cat sat", "news", "pets")


def test_feedback_before_its_prediction_waits_then_is_stored(store: FeedbackStore, stream: Stream) -> None:
    first = stream.write((FEEDBACK, feedback(prediction_id="p1", label="news", kind="correction")))
    assert (first.stored, first.rejected, first.waiting) == (0, 0, 1)
    assert store.stored_offsets(FEEDBACK) == {0: 1}, "its offset is stored: the record is kept, not re-read"
    assert store_summary(store.con, FEEDBACK, LOG).prediction_log.waiting_feedback == 1
    later = stream.write((LOG, event("p1")))
    assert (later.predictions, later.stored, later.waiting) == (1, 1, 0)
    assert rows(store) == [("p1:correction", "the cat sat", "news", "pets", "v1-p1", "correction", 0.7, "p1")]
    assert store.con.execute('SELECT topic, "offset" FROM feedback').fetchall() == [(FEEDBACK, 0)]


def test_feedback_whose_prediction_never_comes_is_rejected_once_the_log_has_moved_on(
    store: FeedbackStore, stream: Stream
) -> None:
    stream.write((FEEDBACK, feedback(prediction_id="lost", label="news")))
    assert stream.write((LOG, event("p1", ts_ms=NOW_MS + 300_000))).waiting == 1, "within the window: it waits"
    result = stream.write((LOG, event("p2", ts_ms=NOW_MS + 601_000)))
    assert (result.stored, result.rejected, result.waiting) == (0, 1, 0)
    (reason,) = [r.reason for r in recent_rejections(store.con, 10)]
    assert reason.startswith("no prediction lost arrived in the prediction log within 600.0 s of this feedback")
    assert "registry.prediction_log" in reason


def test_feedback_waits_no_longer_than_the_window_when_the_log_is_silent(store_path: Path) -> None:
    with FeedbackStore(store_path, IngestSettings(unmatched_feedback_s=0.5), predictions_topic=LOG) as store:
        stream = Stream(store)
        assert stream.write((FEEDBACK, feedback(prediction_id="p1", label="news"))).waiting == 1
        time.sleep(1.0)
        result = stream.write((FEEDBACK, feedback(id="other", text="t", label="news")))
        assert (result.stored, result.rejected, result.waiting) == (1, 1, 0)


def test_feedback_by_id_after_its_text_was_forgotten_must_carry_the_text(store: FeedbackStore, stream: Stream) -> None:
    old_ms = NOW_MS - 40 * 86_400_000
    stream.write((LOG, event("old", ts_ms=old_ms)), (LOG, event("new")))
    assert forget_old_predictions(store.con, store.settings, datetime.now(UTC)) == {
        "rows_deleted": 0,
        "texts_forgotten": 1,
    }
    result = stream.write(
        (FEEDBACK, feedback(prediction_id="old", label="news")),
        (FEEDBACK, feedback(prediction_id="old", label="news", kind="audit", text="the cat sat")),
    )
    assert (result.stored, result.rejected) == (1, 1)
    (reason,) = [r.reason for r in recent_rejections(store.con, 10)]
    assert reason == (
        "the text of prediction old is no longer kept (ingest.prediction_text_days); send the text with the feedback"
    )
    assert rows(store) == [("old:audit", "the cat sat", "news", "pets", "v1-p1", "audit", 0.7, "old")]


def test_the_audit_sample_is_stable_random_and_leaves_out_what_is_audited(store: FeedbackStore, stream: Stream) -> None:
    stream.write(*((LOG, event(f"p{i}")) for i in range(2_000)))
    sample = audit_sample(store.con, 0.05, limit=1_000)
    assert 60 < len(sample) < 140, "about 5% of 2,000"
    assert audit_sample(store.con, 0.05, limit=1_000) == sample, "the same predictions every time"
    assert {record["kind"] for record in sample} == {"audit"}
    assert all(record["label"] is None and record["text"] == "the cat sat" for record in sample)
    first = sample[0]["prediction_id"]
    stream.write((FEEDBACK, feedback(prediction_id=first, label="news", kind="correction")))
    assert audit_sample(store.con, 0.05, limit=1_000) == sample, "a correction is no audit label"
    stream.write((FEEDBACK, feedback(prediction_id=first, label="news", kind="audit")))
    assert audit_sample(store.con, 0.05, limit=1_000) == sample[1:]
    assert len(audit_sample(store.con, 0.05, limit=10)) == 10


def test_the_served_accuracy_is_estimated_from_confidence_and_measured_on_audits(
    store: FeedbackStore, stream: Stream
) -> None:
    assert served_accuracy(store.con, 100) == ServedAccuracy(None, None, 0, None, 0)
    old = [prediction_value(ServedPrediction(f"o{i}", "t", "pets", {"pets": 0.5, "news": 0.5}, "v1", NOW_MS), 2)
           for i in range(5)]  # fmt: skip
    stream.write(*((LOG, raw) for raw in old), *((LOG, event(f"p{i}")) for i in range(10)))  # v1-p1 at 0.7
    audits = [feedback(prediction_id=f"p{i}", label="pets" if i < 3 else "news", kind="audit") for i in range(4)]
    stream.write(*((FEEDBACK, raw) for raw in audits), (FEEDBACK, feedback(prediction_id="p9", label="news")))
    accuracy = served_accuracy(store.con, 100)
    assert accuracy.model_version == "v1-p1", "the model that served the newest prediction"
    assert accuracy.estimated == pytest.approx(0.7)
    assert accuracy.predictions == 10
    assert (accuracy.audited, accuracy.audit_rows) == (0.75, 4), "3 of 4 audits agree; the correction is no audit"
    assert served_accuracy(store.con, 2).audit_rows == 2


def test_retention_deletes_rows_past_prediction_days(store: FeedbackStore, stream: Stream) -> None:
    stream.write((LOG, event("ancient", ts_ms=NOW_MS - 500 * 86_400_000)), (LOG, event("new")))
    now = datetime.now(UTC) + timedelta(seconds=1)
    assert forget_old_predictions(store.con, store.settings, now) == {"rows_deleted": 1, "texts_forgotten": 0}
    log = store_summary(store.con, FEEDBACK, LOG).prediction_log
    assert (log.predictions, log.with_text) == (1, 1)


def test_every_offset_lands_in_exactly_one_place(store: FeedbackStore, stream: Stream) -> None:
    stream.write(
        (FEEDBACK, feedback(prediction_id="p1", label="news")),
        (FEEDBACK, feedback(prediction_id="p2", label="news")),
        (LOG, event("p1")),
        (FEEDBACK, b"junk"),
    )
    placed = store.con.execute(
        "SELECT topic, \"offset\", 'feedback' FROM feedback UNION ALL SELECT topic, \"offset\", 'rejected' FROM "
        "rejected UNION ALL SELECT topic, \"offset\", 'waiting' FROM unmatched_feedback UNION ALL "
        "SELECT topic, \"offset\", 'log' FROM predictions ORDER BY 1, 2"
    ).fetchall()
    assert placed == [(FEEDBACK, 0, "feedback"), (FEEDBACK, 1, "waiting"), (FEEDBACK, 2, "rejected"), (LOG, 0, "log")]
