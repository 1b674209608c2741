"""Drift on served traffic: the monitor watches every logged prediction with the corrections joined to it by id,
and its event opens the run at the feedback that came in with the shift."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from daemon.daemon_settings import DaemonSettings
from daemon.loop import runs
from daemon.loop.jobs import check_drift
from daemon.loop.store import ensure_schemas
from drift.settings import DriftSettings
from drift.store import SERVED_MONITOR, load_monitor
from ingest.history import row_at
from ingest.predictions import ServedPrediction, prediction_value
from ingest.records import incoming_table
from ingest.settings import IngestSettings
from ingest.store import FeedbackStore

LOG, FEEDBACK = "predictions", "feedback"
START = datetime(2026, 1, 1, tzinfo=UTC)
SHIFT = 3_000  # served predictions before the shift
SERVED = DriftSettings(stream="served", served_label_wait_s=0, warmup_rows=1_000, cooldown_rows=500)


def served_stream(shifts: set[str], seed: int = 5) -> Iterator[tuple[str, bytes]]:
    """6,000 predictions, one a second; from SHIFT on what `shifts` names changes: `errors` (the model is wrong
    more often), `words` (the texts use other words), `confidence` (the model is less sure). A user corrects 30%
    of the wrong answers (by id, half a second later)."""
    rng = random.Random(seed)
    old, new = [f"old{i}" for i in range(300)], [f"new{i}" for i in range(300)]
    for index in range(2 * SHIFT):
        shifted = {name for name in shifts if index >= SHIFT}
        words = new if "words" in shifted else old
        text = " ".join(rng.choice(words) for _ in range(rng.randint(5, 15)))
        truth = rng.choice("ab")
        wrong = rng.random() < (0.4 if "errors" in shifted else 0.1)
        predicted = ("b" if truth == "a" else "a") if wrong else truth
        confidence = rng.uniform(0.5, 0.7) if "confidence" in shifted else rng.uniform(0.8, 0.99)
        scores = {predicted: confidence, "b" if predicted == "a" else "a": 1 - confidence}
        ts_ms = int((START + timedelta(seconds=index)).timestamp() * 1000)
        yield LOG, prediction_value(ServedPrediction(f"p{index}", text, predicted, scores, "v1", ts_ms), top_k=2)
        if wrong and rng.random() < 0.3:
            correction = {"prediction_id": f"p{index}", "label": truth, "kind": "correction", "ts": ts_ms + 500}
            yield FEEDBACK, json.dumps(correction).encode()


@contextmanager
def served_store(path: Path, shifts: set[str]) -> Iterator[duckdb.DuckDBPyConnection]:
    with FeedbackStore(path, IngestSettings(), predictions_topic=LOG) as store:
        ensure_schemas(store.con)
        records = list(served_stream(shifts))
        tables = [
            incoming_table([raw for t, raw in records if t == topic], topic) for topic in (LOG, FEEDBACK)
        ]  # the log first: each correction finds its prediction
        store.write_batch(pa.concat_tables(tables), {})
        yield store.con


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with served_store(tmp_path / "driftloop.duckdb", {"errors", "words", "confidence"}) as con:
        yield con


def test_the_served_stream_is_watched_and_its_event_opens_the_run_at_the_shift(con: duckdb.DuckDBPyConnection) -> None:
    checked = check_drift(con, SERVED)
    assert checked.rows == 2 * SHIFT
    (event, *later) = checked.events
    assert SHIFT < event.row_id <= SHIFT + 600, "detected within 600 served predictions"
    assert later == [] or later[0].row_id > event.row_id + SERVED.cooldown_rows
    fired = set(event.signals)
    assert fired & {"unseen", "ngram", "confidence"}, "the input signals see every served prediction"
    readings = {reading.name: reading for reading in event.readings}
    assert readings["confidence"].value is not None, "the served confidence feeds its signal"
    error = readings["error"]
    assert error.reference is not None
    assert 0.01 < error.reference < 0.06, "the correction rate: about 30% of a 10% error rate"
    assert load_monitor(con, SERVED, SERVED_MONITOR).last_row_id == 2 * SHIFT

    plan = runs.next_drift_run(con, DaemonSettings(min_new_rows=50), SERVED_MONITOR)
    assert plan is not None
    shift_time = START + timedelta(seconds=event.first_row_id - 1)
    assert plan.first_row_id == row_at(con, shift_time), "the run starts at the feedback of the shift's time"
    assert f"up to served prediction {event.row_id}" in plan.why


@pytest.mark.parametrize(("shift", "signal"), [("errors", "error"), ("confidence", "confidence")])
def test_a_shift_in_one_thing_served_raises_its_own_signal(shift: str, signal: str, tmp_path: Path) -> None:
    """The error rate seen only through corrections per served prediction; the confidence only the log holds."""
    with served_store(tmp_path / "driftloop.duckdb", {shift}) as con:
        (event, *_) = check_drift(con, SERVED).events
    assert event.signals == (signal,), f"only {shift} changed"
    assert SHIFT < event.row_id <= SHIFT + 600


def test_predictions_younger_than_the_label_wait_are_left_for_later(con: duckdb.DuckDBPyConnection) -> None:
    waits = SERVED.model_copy(update={"served_label_wait_s": 10**9})  # longer than since 2026-01-01
    assert check_drift(con, waits).rows == 0
    assert check_drift(con, SERVED).rows == 2 * SHIFT
