"""Filling a real store through its own write path: a stream of rows as feedback records."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from drift.rows import FeedbackRows
from ingest.records import incoming_table
from ingest.store import FeedbackStore

START = datetime(2024, 1, 1, tzinfo=UTC)


def feedback_values(rows: FeedbackRows, id_prefix: str = "r", timed: bool = False) -> list[bytes]:
    """The rows as feedback records (ids `<id_prefix><index>`); `timed`: with `ts` one minute apart from START."""
    values = []
    for index, (text, label, prediction) in enumerate(
        zip(rows.text.to_pylist(), rows.label.to_pylist(), rows.prediction.to_pylist(), strict=True)
    ):
        record = {"id": f"{id_prefix}{index}", "text": text, "label": label}
        if timed:
            record["ts"] = (START + timedelta(minutes=index)).isoformat()
        if prediction is not None:
            record["prediction"] = prediction
        values.append(json.dumps(record).encode())
    return values


def store_stream(store: FeedbackStore, rows: FeedbackRows, topic: str = "feedback") -> datetime:
    """Write `rows` (row ids 0..n-1 become stored row ids 1..n) with `ts` one minute apart from START."""
    values = feedback_values(rows, timed=True)
    result = store.write_batch(incoming_table(values, topic), {(topic, 0): len(values)})
    assert (result.stored, result.rejected) == (len(values), 0)
    return START
